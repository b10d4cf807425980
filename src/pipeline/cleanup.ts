/**
 * `zrb cleanup`: remove what interrupted or abandoned runs left in the store for one task —
 * multipart uploads never completed or aborted (providers bill their parts forever), part
 * objects and file catalogs no manifest refers to, and a killed backup's catalog clone — without touching anything a finished backup or the
 * resumable backup in backup_state.yaml or a backup in flight on any host (its trusted
 * in-flight marker) still needs. Runs under the dataset's lock, so it never races a backup on
 * this host; what no record accounts for is spared while younger than prune.orphan_grace
 * (--older-than for one run): it may be a backup on another host whose marker this host cannot
 * see or trust. Markers of finished backups are deleted; --abandon ID (abandon.ts) gives up a killed
 * backup whose marker keeps it. --dry-run lists and changes nothing.
 *
 * A part is an orphan only if it is provably unreferenced (references.ts, shared with prune):
 * when any manifest of the dataset cannot be read (damaged, or written by a newer zrb), nothing
 * is deleted at all — its parts would look orphaned, and they may be the base of the whole chain.
 */
import { rmSync } from "node:fs";
import type { Config, Task } from "../config/config.ts";
import { holdTags, releaseStraySendHolds } from "./backup/holds.ts";
import { deleteOrLeave } from "./backup/finish.ts";
import * as zfs from "../zfs/zfs.ts";
import { acquireLock, lockHeld } from "../state/lock.ts";
import { assertSafeBaseDir, namedDirs } from "../state/basedir.ts";
import { RunDir } from "../state/rundir.ts";
import type { Trust } from "../records/trust.ts";
import { datasetDataPrefix, isNewBackupId, isPartKey, manifestDir } from "../store/layout.ts";
import type { ObjectStore } from "../store/store.ts";
import { usageError } from "../util/errors.ts";
import { graceSplit, orphanCatalogs, orphanParts, readReferences, underKept } from "./references.ts";
import { removeStaleClone } from "../zfs/snapfiles.ts";
import { log } from "../util/log.ts";
import { checkInterrupted } from "../util/abort.ts";
import { formatSize } from "../util/size.ts";
import { parseDuration as parseDurationText } from "../util/duration.ts";
import { now as clockNow } from "../util/clock.ts";

export interface CleanupOptions {
  dryRun: boolean;
  /** Only touch what no record accounts for once it is at least this old (ms): prune.orphan_grace, or --older-than; 0 = any age. */
  olderThanMs: number;
  /** Where olderThanMs came from, for the report ("prune.orphan_grace", "--older-than"). */
  graceKnob?: string;
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
  /** The orphans' bytes deleted (or, with --dry-run, to delete): what the store refused is not counted. */
  orphanBytes: number;
  /** Orphans the store refused to delete (object lock, no delete right): left for a later cleanup. */
  left: string[];
  spillDirs: string[];
  kept: { resumableBackupId: string | null; manifests: number };
  /** Backups in flight on some host (trusted markers): their parts and uploads were left alone. */
  inflight: { backupId: string; level: number; host: string; updatedAt: string }[];
  /** Orphans and uploads younger than the grace: left alone this time, and why. */
  spared: { key: string; why: string }[];
  /** Markers that protect nothing (left alone), and why. */
  untrustedMarkers: { key: string; why: string }[];
  /** Markers of finished backups: deleted (or, with --dry-run, would be). */
  mootMarkers: string[];
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
    const base = datasetDataPrefix(task.pool, task.dataset);
    // Listed before the records are read (references.ts: a backup finishing meanwhile is then seen by one of them).
    const listedUploads = await store.listUploads(base);
    const listing = await store.list(base);
    const mdir = manifestDir(task.pool, task.dataset);
    const mlisting = await store.list(mdir);
    // What must stay: every part of every manifest, the interrupted backup that a rerun resumes, every backup in flight.
    const refs = await readReferences(store, task, rd, "cleanup", opts.trust);
    const { state, manifests: ms, keepUploads, keepPrefixes } = refs;
    const knob = opts.graceKnob ?? "--older-than";

    const uploadGrace = graceSplit(
      listedUploads.filter((u) => isPartKey(base, u.key) && !keepUploads.has(u.uploadId) && !underKept(u.key, keepPrefixes)),
      (u) => u.initiated,
      opts.olderThanMs,
      now,
      knob,
    );
    const uploads = uploadGrace.go.map((u) => ({ key: u.key, uploadId: u.uploadId, ...(u.initiated ? { initiated: u.initiated.toISOString() } : {}) }));
    const strays = [...orphanParts(listing, base, ms, keepPrefixes), ...orphanCatalogs(mlisting, mdir, ms, keepPrefixes)];
    const partGrace = graceSplit(strays, (o) => o.lastModified, opts.olderThanMs, now, knob);
    const orphans = partGrace.go.map((o) => ({ key: o.key, size: o.size, ...(o.lastModified ? { lastModified: o.lastModified.toISOString() } : {}) }));
    const spared = [...uploadGrace.spared, ...partGrace.spared].map((x) => ({ key: x.key, why: x.why }));
    const spillRoot = rd.spillRoot;
    // The spill directories of backups other than the resumable one (named by their backup id).
    const spillDirs = namedDirs(spillRoot, (d) => d !== state?.backupId && isNewBackupId(d));

    const verb = opts.dryRun ? "would" : "will";
    for (const u of uploads) log.info(`${verb} abort multipart upload ${u.key} (upload id ${u.uploadId}${u.initiated ? `, started ${u.initiated}` : ""})`);
    for (const o of orphans) log.info(`${verb} delete orphan object ${o.key} (${formatSize(o.size)})`);
    for (const d of spillDirs) log.info(`${verb} remove stale spill directory ${d}`);
    for (const x of spared) log.info(`spared ${x.key}: ${x.why}`);
    for (const k of refs.moot) log.info(`${verb} delete the in-flight marker ${k} (its backup's manifest is written)`);
    const left: string[] = [];
    const mootLeft: string[] = [];
    if (!opts.dryRun) {
      // Send holds a killed run leaked (its state lost): everything but the resumable backup's.
      if (await zfs.datasetExists(task.fullName).catch(() => false)) {
        await releaseStraySendHolds(task.fullName, [state?.snapshot?.name, state?.parent?.name], holdTags(cfg).send);
        // A killed backup's catalog clone (zfs/snapfiles.ts: only one zrb made, for this dataset).
        const clone = await removeStaleClone(task.fullName, lockHeld);
        if (clone === "removed") log.info(`removed the stale catalog clone of ${task.fullName}`);
        if (clone === "busy") log.info(`left the catalog clone of ${task.fullName} alone: a running zrb uses it`);
      }
      for (const u of uploads) {
        checkInterrupted(opts.signal);
        await store.abortUpload(u.key, u.uploadId);
      }
      checkInterrupted(opts.signal);
      left.push(...(await deleteOrLeave(store, orphans.map((o) => o.key), "orphan parts and catalogs")));
      for (const d of spillDirs) rmSync(d, { recursive: true, force: true });
      mootLeft.push(...(await deleteOrLeave(store, refs.moot, "in-flight markers of finished backups")));
    }
    return {
      dryRun: opts.dryRun,
      uploads,
      orphans,
      orphanBytes: orphans.reduce((a, o) => a + (left.includes(o.key) ? 0 : o.size), 0),
      left,
      spillDirs,
      kept: { resumableBackupId: state?.backupId ?? null, manifests: ms.length },
      inflight: refs.markers.flatMap((r) =>
        r.marker && !r.untrusted && !refs.moot.includes(r.key) ? [{ backupId: r.marker.backupId, level: r.marker.level, host: r.marker.host, updatedAt: r.marker.updatedAt }] : [],
      ),
      spared,
      untrustedMarkers: refs.markers.flatMap((r) => (r.untrusted && !/^it is gone/.test(r.untrusted) ? [{ key: r.key, why: r.untrusted }] : [])),
      mootMarkers: refs.moot.filter((k) => !mootLeft.includes(k)),
    };
  } finally {
    lock.release();
  }
}
