/**
 * `zrb cleanup`: remove what interrupted or abandoned runs left in the store for one task —
 * multipart uploads never completed or aborted (providers bill their parts forever) and part
 * objects no manifest refers to — without touching anything a finished backup or the
 * resumable backup in backup_state.yaml still needs. Runs under the dataset's lock, so it
 * never races a backup on this host; --older-than also spares work younger than the given
 * age (e.g. a backup of the same dataset from another host). --dry-run lists and changes nothing.
 *
 * A part is an orphan only if it is provably unreferenced (references.ts, shared with prune):
 * when any manifest of the dataset cannot be read (damaged, or written by a newer zrb), nothing
 * is deleted at all — its parts would look orphaned, and they may be the base of the whole chain.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Config, Task } from "../config/config.ts";
import { releaseStraySendHolds } from "./backup/holds.ts";
import { deleteOrLeave } from "./backup/finish.ts";
import * as zfs from "../zfs/zfs.ts";
import { acquireLock } from "../state/lock.ts";
import { assertSafeBaseDir } from "../state/basedir.ts";
import { RunDir } from "../state/rundir.ts";
import type { Trust } from "../state/trust.ts";
import { datasetDataPrefix, isPartKey } from "../store/layout.ts";
import type { ObjectStore } from "../store/store.ts";
import { usageError } from "../util/errors.ts";
import { orphanParts, readReferences } from "./references.ts";
import { log } from "../util/log.ts";
import { checkInterrupted } from "../util/abort.ts";
import { formatSize } from "../util/size.ts";
import { parseDuration as parseDurationText } from "../util/duration.ts";
import { now as clockNow } from "../util/clock.ts";

export interface CleanupOptions {
  dryRun: boolean;
  /** Only touch uploads/objects at least this old (ms); 0 = any age. */
  olderThanMs: number;
  /** Which records count (cli/trust.ts). */
  trust: Trust;
  /** The run's interrupt signal: checked before each delete. */
  signal?: AbortSignal;
  now?: Date;
}

export interface CleanupResult {
  dryRun: boolean;
  uploads: { key: string; uploadId: string; initiated?: string }[];
  orphans: { key: string; size: number; lastModified?: string }[];
  orphanBytes: number;
  spillDirs: string[];
  kept: { resumableBackupId: string | null; manifests: number };
}

/** "30s", "15m", "24h", "7d", "2w" → milliseconds (util/duration.ts); a usage error names the flag. */
export function parseDuration(v: string, flag = "--older-than"): number {
  const d = parseDurationText(v);
  if ("problem" in d) throw usageError(`${flag} ${d.problem}`);
  return d.ms;
}

export async function cleanup(cfg: Config, task: Task, store: ObjectStore, opts: CleanupOptions): Promise<CleanupResult> {
  assertSafeBaseDir(cfg.baseDir, { create: true });
  const rd = new RunDir(cfg.baseDir, task.pool, task.dataset);
  const lock = acquireLock(rd.lockPath, `dataset ${task.fullName}`, "zrb cleanup");
  try {
    const now = (opts.now ?? clockNow()).getTime();
    const oldEnough = (d?: Date) => opts.olderThanMs <= 0 || (d !== undefined && now - d.getTime() >= opts.olderThanMs);
    const base = datasetDataPrefix(task.pool, task.dataset);

    // What must stay: every part of every manifest, and the interrupted backup that a rerun resumes.
    const { state, manifests: ms, keepPrefix, keepUploads } = await readReferences(store, task, rd, "cleanup");

    const uploads = (await store.listUploads(base))
      .filter((u) => isPartKey(base, u.key) && !keepUploads.has(u.uploadId) && oldEnough(u.initiated))
      .map((u) => ({ key: u.key, uploadId: u.uploadId, ...(u.initiated ? { initiated: u.initiated.toISOString() } : {}) }));
    const orphans = orphanParts(await store.list(base), base, ms, keepPrefix)
      .filter((o) => oldEnough(o.lastModified))
      .map((o) => ({ key: o.key, size: o.size, ...(o.lastModified ? { lastModified: o.lastModified.toISOString() } : {}) }));
    const spillRoot = rd.spillRoot;
    const spillDirs = existsSync(spillRoot) ? readdirSync(spillRoot).filter((d) => d !== state?.backupId).map((d) => join(spillRoot, d)) : [];

    const verb = opts.dryRun ? "would" : "will";
    for (const u of uploads) log.info(`${verb} abort multipart upload ${u.key} (upload id ${u.uploadId}${u.initiated ? `, started ${u.initiated}` : ""})`);
    for (const o of orphans) log.info(`${verb} delete orphan object ${o.key} (${formatSize(o.size)})`);
    for (const d of spillDirs) log.info(`${verb} remove stale spill directory ${d}`);
    if (!opts.dryRun) {
      // Send holds a killed run leaked (its state lost): everything but the resumable backup's.
      if (await zfs.datasetExists(task.fullName).catch(() => false))
        await releaseStraySendHolds(task.fullName, [state?.snapshot?.name, state?.parent?.name]);
      for (const u of uploads) {
        checkInterrupted(opts.signal);
        await store.abortUpload(u.key, u.uploadId);
      }
      checkInterrupted(opts.signal);
      await deleteOrLeave(store, orphans.map((o) => o.key), "orphan parts");
      for (const d of spillDirs) rmSync(d, { recursive: true, force: true });
    }
    return {
      dryRun: opts.dryRun,
      uploads,
      orphans,
      orphanBytes: orphans.reduce((a, o) => a + o.size, 0),
      spillDirs,
      kept: { resumableBackupId: state?.backupId ?? null, manifests: ms.length },
    };
  } finally {
    lock.release();
  }
}

