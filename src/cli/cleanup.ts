/** `zrb cleanup`: flag parsing around pipeline/cleanup.ts; a recursive task is cleaned child by child under the tree's lock. */
import { defineCommand } from "citty";
import type { Config, Task } from "../config/config.ts";
import { cleanup, parseDuration, type CleanupOptions, type CleanupResult } from "../pipeline/cleanup.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { allChildren } from "../pipeline/tree/known.ts";
import { treeError } from "../pipeline/tree/outcome.ts";
import { driveChildren, withTreeLock, type Step } from "../pipeline/tree/drive.ts";
import type { ObjectStore } from "../store/store.ts";
import { log } from "../util/log.ts";
import { formatSize } from "../util/size.ts";
import { applyOutput, configArg, interruptSignal, loadAll, outputArgs, printJson, taskArg } from "./common.ts";
import { childArg, parseChild, printChildren } from "./tree.ts";
import { requireKeyToDelete, resolveTrust, trustArgs } from "./trust.ts";

function summary(r: CleanupResult): string {
  return (
    `${r.dryRun ? "would abort" : "aborted"} ${r.uploads.length} dangling upload(s), ` +
    `${r.dryRun ? "would delete" : "deleted"} ${r.orphans.length} orphan object(s) (${formatSize(r.orphanBytes)})` +
    (r.kept.resumableBackupId ? `; kept the resumable backup ${r.kept.resumableBackupId}` : "")
  );
}

/** Every child the bucket or the pool knows, gone ones too: what they left behind is theirs to clean. */
async function cleanupTree(config: Config, task: Task, store: ObjectStore, opts: CleanupOptions, json: boolean): Promise<void> {
  const outcomes = await withTreeLock(config, task, "zrb cleanup", async () =>
    driveChildren(
      (await allChildren(store, task, opts.trust)).children,
      async (c): Promise<Step<CleanupResult>> => ({ status: "ok", result: await cleanup(config, childTask(task, c.rel), store, opts) }),
      { signal: opts.signal },
    ),
  );
  if (json) printJson({ tree: task.fullName, children: outcomes.map(({ rel, ...o }) => ({ child: rel, ...o })) });
  else printChildren(`cleanup of ${task.fullName} in ${store.location}:`, outcomes, (o) => summary(o.result as CleanupResult));
  const error = treeError(`cleanup of ${task.fullName}`, outcomes);
  if (error) throw error;
}

export default defineCommand({
  meta: {
    name: "cleanup",
    description:
      "Abort dangling multipart uploads and delete orphan part objects of the task (under data/<pool>/<dataset>/, referenced by no manifest " +
      "and not by the resumable backup in backup_state.yaml). Takes the dataset's lock, so it never races a backup on this host. " +
      "A recursive task is cleaned child by child (gone children too) under the tree's lock; --child cleans one.",
  },
  args: {
    ...configArg,
    ...taskArg,
    "dry-run": { type: "boolean", description: "List what would be removed; change nothing", default: false },
    "older-than": { type: "string", description: "Only remove uploads/objects at least this old, e.g. 24h, 7d or 2w (default: any age)", valueHint: "AGE" },
    ...trustArgs,
    ...childArg,
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const olderThanMs = args["older-than"] !== undefined ? parseDuration(String(args["older-than"])) : 0;
    const intr = interruptSignal();
    try {
      const { config, task: t, store } = await loadAll(args, { allowDisabled: true, signal: intr.signal });
      const only = parseChild(args.child, t);
      const trust = await resolveTrust(args, undefined, config);
      if (!args["dry-run"]) requireKeyToDelete(trust, args, "zrb cleanup", config.path);
      const opts = { dryRun: !!args["dry-run"], olderThanMs, trust, signal: intr.signal };
      if (t.recursive && only === undefined) return await cleanupTree(config, t, store, opts, !!args.json);
      const task = only === undefined ? t : childTask(t, only);
      const r = await cleanup(config, task, store, opts);
      if (args.json) printJson(r);
      else log.success(`cleanup of ${task.fullName}: ${summary(r)} in ${store.location}`);
    } finally {
      intr.dispose();
    }
  },
});
