/** `zrb cleanup`: flag parsing around pipeline/cleanup.ts; a recursive task is cleaned child by child under the tree's lock. */
import { storeArg } from "./stores.ts";
import { defineCommand } from "citty";
import type { Config, Task } from "../config/config.ts";
import { cleanup, parseDuration, type CleanupOptions, type CleanupResult } from "../pipeline/cleanup.ts";
import { abandon, type AbandonOptions } from "../pipeline/abandon.ts";
import { datasetDataPrefix, manifestDir } from "../store/layout.ts";
import { ExitCode, ZrbError, usageError } from "../util/errors.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { allChildren } from "../pipeline/tree/known.ts";
import { treeError } from "../pipeline/tree/outcome.ts";
import { driveChildren, withTreeLock, type Step } from "../pipeline/tree/drive.ts";
import type { ObjectStore } from "../store/store.ts";
import { log } from "../util/log.ts";
import { formatSize } from "../util/size.ts";
import { configArg, outputArgs, taskArg } from "./common.ts";
import { removeStaleDrills } from "../pipeline/drill/stale.ts";
import { removeStaleScratch } from "../pipeline/restore/scratch.ts";
import { restoreScratchRoot } from "../state/rundir.ts";
import { assertSafeBaseDir } from "../state/basedir.ts";
import { runJob, type JobResult } from "./job.ts";
import { childArg, childRuns, parseChild, printChildren } from "./tree.ts";
import { requireKeyToDelete, resolveTrust, trustArgs } from "./trust.ts";

function summary(r: CleanupResult): string {
  return (
    `${r.dryRun ? "would abort" : "aborted"} ${r.uploads.length} dangling upload(s), ` +
    `${r.dryRun ? "would delete" : "deleted"} ${r.orphans.length - r.left.length} orphan object(s) (${formatSize(r.orphanBytes)})` +
    (r.left.length ? `; ${r.left.length} the store would not delete (object lock or no delete right: left for a later cleanup)` : "") +
    (r.kept.resumableBackupId ? `; kept the resumable backup ${r.kept.resumableBackupId}` : "") +
    (r.inflight.length ? `; kept ${r.inflight.length} backup(s) in flight (${r.inflight.map((b) => `${b.backupId} on ${b.host || "?"}`).join(", ")})` : "") +
    (r.spared.length ? `; spared ${r.spared.length} unclaimed object(s)/upload(s) younger than the grace` : "") +
    (r.untrustedMarkers.length ? `; ${r.untrustedMarkers.length} in-flight marker(s) not trusted (left alone)` : "")
  );
}

/** Which dataset of a recursive task backup `id` belongs to: the child whose manifests prefix holds its marker or manifest, else whose data holds its parts. */
async function childOfBackup(store: ObjectStore, task: Task, id: string): Promise<string> {
  const dir = manifestDir(task.pool, task.dataset);
  for (const o of await store.list(dir))
    if (o.key.endsWith(`/${id}.inflight.yaml`) || o.key.endsWith(`/${id}.manifest.yaml`)) return o.key.slice(dir.length, o.key.lastIndexOf("/") + 1).replace(/\/$/, "");
  const base = datasetDataPrefix(task.pool, task.dataset);
  const hit = (await store.list(base)).find((o) => o.key.includes(`/${id}/`));
  const m = hit && /^(?:(.*)\/)?level\d+\/[^/]+\/[^/]+$/.exec(hit.key.slice(base.length));
  if (m) return m[1] ?? "";
  throw usageError(`--abandon ${id}: no child of ${task.fullName} has a backup ${id} in ${store.location}; name the child with --child`);
}

export async function runAbandon(config: Config, t: Task, store: ObjectStore, only: string | undefined, id: string, opts: AbandonOptions, json: boolean): Promise<JobResult> {
  const dryRun = opts.dryRun;
  const rel = t.recursive && only === undefined ? await childOfBackup(store, t, id) : only;
  const task = rel === undefined ? t : childTask(t, rel);
  const r = await abandon(config, task, store, id, opts);
  // Not done while the store kept anything of it: a script must not take it for given up.
  const parts = r.left.filter((k) => k !== r.marker).length;
  const error = r.left.length
    ? new ZrbError(
        parts > 0
          ? `cleanup --abandon ${id}: the store would not delete ${parts} object(s) of backup ${id} of ${task.fullName} (object lock or no delete right)` +
              `${r.marker && r.left.includes(r.marker) ? "; its in-flight marker is kept to protect them" : ""}; rerun --abandon once the store allows it`
          : `cleanup --abandon ${id}: every object of backup ${id} of ${task.fullName} was deleted, but the store would not delete its in-flight marker ${r.marker} (object lock or no delete right); rerun --abandon once the store allows it`,
        ExitCode.STORE,
      )
    : undefined;
  if (!json && !error)
    log.success(
      `cleanup of ${task.fullName}: ${dryRun ? "would abandon" : "abandoned"} backup ${id}: ${dryRun ? "would abort" : "aborted"} ${r.uploads.length} upload(s), ` +
        `${dryRun ? "would delete" : "deleted"} ${r.parts.length} part(s)${r.marker ? " and its in-flight marker" : ""} in ${store.location}`,
    );
  return { result: r, ...(error ? { error } : {}) };
}

/** Every child the bucket or the pool knows, gone ones too: what they left behind is theirs to clean. */
async function cleanupTree(config: Config, task: Task, store: ObjectStore, opts: CleanupOptions, json: boolean): Promise<JobResult> {
  const outcomes = await withTreeLock(config, task, "zrb cleanup", async () =>
    driveChildren(
      (await allChildren(store, task, opts.trust)).children,
      async (c): Promise<Step<CleanupResult>> => ({ status: "ok", result: await cleanup(config, childTask(task, c.rel), store, opts) }),
      { signal: opts.signal },
    ),
  );
  if (!json) printChildren(`cleanup of ${task.fullName} in ${store.location}:`, outcomes, (o) => summary(o.result as CleanupResult));
  for (const o of outcomes) o.bytes = (o.result as CleanupResult | undefined)?.orphanBytes ?? 0;
  const error = treeError(`cleanup of ${task.fullName}`, outcomes);
  const result = { tree: task.fullName, children: outcomes.map(({ rel, ...o }) => ({ child: rel, ...o })) };
  return { result, runs: childRuns(outcomes, () => undefined), ...(error ? { error } : {}) };
}

export default defineCommand({
  meta: {
    name: "cleanup",
    description:
      "Abort dangling multipart uploads and delete orphan part objects of the task (under data/<pool>/<dataset>/, referenced by no manifest " +
      "and not by the resumable backup in backup_state.yaml). Takes the dataset's lock, so it never races a backup on this host. " +
      "Never touches a backup in flight on any host (its in-flight marker, when trusted), nor what no record accounts for while it is younger than prune.orphan_grace. " +
      "--abandon ID gives up a killed backup (its uploads, parts and marker); refused with exit 2 for a finished backup or this host's own interrupted one, and with exit 4 while it was active within prune.orphan_grace (--older-than); exit 6, its marker kept, when the store keeps any of its objects. " +
      "A recursive task is cleaned child by child (gone children too) under the tree's lock; --child cleans one. " +
      "Also removes the throwaway pools and clones of killed `zrb drill` / `restore --path` runs, the staging directories a killed `restore --path` left in --to, and the scratch directories of killed restores, drills and verifies (--dry-run lists them).",
  },
  args: {
    ...configArg,
    ...taskArg,
    ...storeArg,
    "dry-run": { type: "boolean", description: "List what would be removed; change nothing", default: false },
    "older-than": {
      type: "string",
      description: "Only remove unclaimed uploads/objects at least this old, and --abandon only a backup idle this long, e.g. 0s, 24h, 7d or 2w (default: prune.orphan_grace, 2d)",
      valueHint: "AGE",
    },
    abandon: {
      type: "string",
      description: "Give up the killed backup ID: abort its uploads, delete its parts and its in-flight marker; refused (exit 4) while its newest sign of life is younger than prune.orphan_grace (--older-than 0s once you know it is dead)",
      valueHint: "ID",
    },
    ...trustArgs,
    ...childArg,
    ...outputArgs,
  },
  async run({ args }) {
    const flagAge = args["older-than"] !== undefined ? parseDuration(String(args["older-than"])) : undefined;
    const dryRun = !!args["dry-run"];
    // A real cleanup, success or failure, updates the metrics file (zrb_cleanup_*); a dry run does not.
    await runJob(args, { command: "cleanup", record: !dryRun }, async ({ config, task: t, store, signal }) => {
      const only = parseChild(args.child, t);
      // Refused before anything is removed, local leftovers included.
      const trust = await resolveTrust(args, undefined, config);
      if (!dryRun) requireKeyToDelete(trust, args, "zrb cleanup", config.path);
      const olderThanMs = flagAge ?? config.prune.orphanGrace;
      const graceKnob = flagAge !== undefined ? "--older-than" : "prune.orphan_grace";
      if (args.abandon !== undefined) return await runAbandon(config, t, store, only, String(args.abandon), { dryRun, olderThanMs, graceKnob, trust }, !!args.json);
      // Local, and only what is provably a killed drill's (pipeline/drill/stale.ts): no bucket record involved.
      await removeStaleDrills(config, [t.pool], { dryRun });
      // Likewise the scratch directories of killed restores, drills and verifies (pipeline/restore/scratch.ts),
      // in a base_dir no other user can plant anything in.
      assertSafeBaseDir(config.baseDir, { create: true });
      for (const d of removeStaleScratch(restoreScratchRoot(config.baseDir), dryRun)) log.info(`${dryRun ? "would remove" : "removed"} the stale restore scratch directory ${d} (its restore was killed)`);
      const opts = { dryRun, olderThanMs, graceKnob, trust, signal };
      if (t.recursive && only === undefined) return await cleanupTree(config, t, store, opts, !!args.json);
      const task = only === undefined ? t : childTask(t, only);
      const r = await cleanup(config, task, store, opts);
      if (!args.json) log.success(`cleanup of ${task.fullName}: ${summary(r)} in ${store.location}`);
      const runs = only === undefined ? undefined : [{ dataset: task.fullName, ok: true, exitCode: 0, seconds: 0, bytes: r.orphanBytes }];
      return { result: r, bytes: dryRun ? 0 : r.orphanBytes, ...(runs ? { runs } : {}) };
    });
  },
});
