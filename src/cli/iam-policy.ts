/** `zrb iam-policy`: print the least-privilege AWS IAM policy of one role (store/iam.ts). */
import { defineCommand } from "citty";
import { configArg, loadConfigLogged } from "./common.ts";
import { ROLES, iamPolicy, type Role } from "../store/iam.ts";
import { configError, usageError } from "../util/errors.ts";

export default defineCommand({
  meta: {
    name: "iam-policy",
    description:
      "Print an AWS IAM policy (JSON) scoped to the config's bucket and prefix for one role: nas (backup; no delete, so a stolen NAS cannot wipe the bucket), " +
      "prune (reads the catalog, deletes what no kept point needs), restore (read only, plus RestoreObject to thaw), or all (one host does everything). " +
      "See docs/install-nas.md for the recommended split.",
  },
  args: {
    ...configArg,
    role: { type: "string", description: `One of ${ROLES.join(", ")} (default nas)`, valueHint: "ROLE" },
  },
  async run({ args }) {
    const role = (args.role ?? "nas") as Role;
    if (!ROLES.includes(role)) throw usageError(`--role must be one of ${ROLES.join(", ")}, got ${JSON.stringify(args.role)}`);
    const config = await loadConfigLogged(String(args.config));
    if (!config.s3.enabled) throw configError(`s3.enabled is not true in ${config.path}: an IAM policy is for an S3 bucket`);
    const policy = iamPolicy(role, { bucket: config.s3.bucket, prefix: config.s3.prefix, objectLock: !!config.s3.objectLock });
    process.stdout.write(JSON.stringify(policy, null, 2) + "\n");
  },
});
