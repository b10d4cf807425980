/** `zrb iam-policy`: print the least-privilege AWS IAM policy of one role (store/iam.ts). */
import { defineCommand } from "citty";
import { configArg, loadConfigLogged } from "./common.ts";
import { ROLES, iamPolicy, type Role } from "../store/iam.ts";
import { configError, usageError } from "../util/errors.ts";
import type { Config } from "../config/config.ts";
import { DEFAULT_STORE, storesOf, storeView } from "../config/stores.ts";
import { quote } from "../util/redact.ts";

/** The store --store names, or the only S3 store: several stores may sit in several accounts, each with its own policy. */
function policyStore(config: Config, flag: string | undefined): string {
  const all = storesOf(config);
  if (flag !== undefined) {
    if (!all.some((s) => s.name === flag)) throw usageError(`--store ${quote(flag)} names no store in ${config.path} (stores: ${all.map((s) => s.name).join(", ")})`);
    return flag;
  }
  const s3 = all.filter((s) => s.s3.enabled);
  if (s3.length > 1) throw usageError(`${config.path} has ${s3.length} S3 stores (${s3.map((s) => s.name).join(", ")}); pass --store NAME: each store's bucket gets its own policy`);
  return (s3[0] ?? all[0]!).name;
}

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
    store: { type: "string", description: "The store (stores[].name) whose bucket the policy is for; required when the config has several S3 stores", valueHint: "NAME" },
  },
  async run({ args }) {
    const role = (args.role ?? "nas") as Role;
    if (!ROLES.includes(role)) throw usageError(`--role must be one of ${ROLES.join(", ")}, got ${JSON.stringify(args.role)}`);
    const whole = await loadConfigLogged(String(args.config));
    const config = storeView(whole, policyStore(whole, args.store));
    if (!config.s3.enabled) throw configError(`${config.store && config.store !== DEFAULT_STORE ? `store ${config.store} has no s3 section (or s3.enabled: false)` : "s3.enabled is not true"} in ${config.path}: an IAM policy is for an S3 bucket`);
    const policy = iamPolicy(role, { bucket: config.s3.bucket, prefix: config.s3.prefix, objectLock: !!config.s3.objectLock });
    process.stdout.write(JSON.stringify(policy, null, 2) + "\n");
  },
});
