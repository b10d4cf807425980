/** `zrb cleanup`: flag parsing around pipeline/cleanup.ts. */
import { defineCommand } from "citty";
import { cleanup, parseDuration } from "../pipeline/cleanup.ts";
import { log } from "../util/log.ts";
import { formatSize } from "../util/size.ts";
import { applyOutput, configArg, loadAll, outputArgs, printJson, taskArg } from "./common.ts";

export default defineCommand({
  meta: {
    name: "cleanup",
    description:
      "Abort dangling multipart uploads and delete orphan part objects of the task (under data/<pool>/<dataset>/, referenced by no manifest " +
      "and not by the resumable backup in backup_state.yaml). Takes the dataset's lock, so it never races a backup on this host.",
  },
  args: {
    ...configArg,
    ...taskArg,
    "dry-run": { type: "boolean", description: "List what would be removed; change nothing", default: false },
    "older-than": { type: "string", description: "Only remove uploads/objects at least this old, e.g. 24h, 7d or 2w (default: any age)", valueHint: "AGE" },
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const olderThanMs = args["older-than"] !== undefined ? parseDuration(String(args["older-than"])) : 0;
    const { config, task, store } = await loadAll(args, { allowDisabled: true });
    const r = await cleanup(config, task, store, { dryRun: !!args["dry-run"], olderThanMs });
    if (args.json) printJson(r);
    else
      log.success(
        `cleanup of ${task.fullName}: ${r.dryRun ? "would abort" : "aborted"} ${r.uploads.length} dangling upload(s), ` +
          `${r.dryRun ? "would delete" : "deleted"} ${r.orphans.length} orphan object(s) (${formatSize(r.orphanBytes)})` +
          (r.kept.resumableBackupId ? `; kept the resumable backup ${r.kept.resumableBackupId}` : "") +
          ` in ${store.location}`,
      );
  },
});
