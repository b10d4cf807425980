/**
 * `zrb cleanup --abandon ID`: give up a backup that was killed on some host and will not be
 * resumed. Its parts have no manifest and its in-flight marker keeps every cleanup and prune
 * away from them (records/marker.ts), so only a person can say it is dead — and a person may be
 * wrong: the backup may still be running on another host, or be the base of a finished backup
 * whose own manifest was lost. So the command refuses, and removes nothing, when:
 * - the backup is finished (its manifest exists: prune's retention decides), or this host's
 *   own interrupted backup (the next backup resumes or discards it), or unknown to the bucket;
 * - a manifest names it as its parent, or a manifest cannot be read (it may be such a one);
 * - it shows a sign of life younger than prune.orphan_grace (--older-than for one run): its
 *   marker refreshed or rewritten, a part stored, a multipart upload begun. A running backup
 *   refreshes its marker at least once per stored part (records/marker.ts), so its newest sign
 *   is at most one part's upload old; restic likewise removes only stale locks unless told.
 * Otherwise it aborts the uploads, deletes the parts, and last the marker (a run stopped
 * halfway still protects what is left, and a rerun finishes it).
 */
import type { Config, Task } from "../config/config.ts";
import { deleteOrLeave } from "./backup/finish.ts";
import { acquireLock } from "../state/lock.ts";
import { assertSafeBaseDir } from "../state/basedir.ts";
import { RunDir } from "../state/rundir.ts";
import { judgeMarker } from "../records/marker.ts";
import { listManifests } from "../records/manifest.ts";
import type { Trust } from "../records/trust.ts";
import { backupIdOfCatalogKey, dataPrefix, datasetDataPrefix, isPartKey, manifestDir, manifestKey, markerKey } from "../store/layout.ts";
import type { ObjectStore } from "../store/store.ts";
import { ExitCode, ZrbError, integrityError, usageError } from "../util/errors.ts";
import { formatDuration, roughAge } from "../util/duration.ts";
import { log } from "../util/log.ts";
import { now as clockNow } from "../util/clock.ts";

export interface AbandonOptions {
  dryRun: boolean;
  /** Refuse while the backup's newest sign of life is younger than this (ms): prune.orphan_grace, or --older-than; 0 = any age. */
  olderThanMs: number;
  /** Where olderThanMs came from, for the refusal ("prune.orphan_grace", "--older-than"). */
  graceKnob?: string;
  /** Which records count: a marker's host and time are shown whether trusted or not (refusing only keeps). */
  trust: Trust;
  now?: Date;
}

export interface AbandonResult {
  dryRun: boolean;
  dataset: string;
  backupId: string;
  /** The in-flight marker found, if there was one: removed (or, with --dry-run, to remove) unless it is in `left`. */
  marker: string | null;
  uploads: { key: string; uploadId: string }[];
  parts: { key: string; size: number }[];
  /** Parts the store refused to delete (and then the marker, kept to protect them): left for a rerun. */
  left: string[];
  /** The backup's newest sign of life (ISO time), and what it was. */
  lastActive?: { at: string; what: string };
}

const BACKUP_ID = /^[0-9A-Za-z-]{1,64}$/;

/**
 * The newest sign of life: a sign the store gave no (valid) date for, with `at` undefined, since
 * its age is not known to be past anything; else the newest dated one. `signs` is not empty.
 */
function newest(signs: { at: Date | undefined; what: string }[]): { at: Date | undefined; what: string } {
  const undated = signs.find((s) => !s.at || Number.isNaN(s.at.getTime()));
  return undated ? { at: undefined, what: undated.what } : signs.reduce((a, b) => (b.at! > a.at! ? b : a));
}

/**
 * Abandon backup `backupId` of `task` (see above). Throws a ZrbError and removes nothing when it
 * refuses: USAGE (finished, this host's, unknown, a manifest builds on it), INTEGRITY (a manifest
 * cannot be read), LOCKED (a sign of life younger than the grace).
 */
export async function abandon(cfg: Config, task: Task, store: ObjectStore, backupId: string, opts: AbandonOptions): Promise<AbandonResult> {
  if (!BACKUP_ID.test(backupId)) throw usageError(`--abandon ${JSON.stringify(backupId).slice(0, 80)} is not a backup id (like 20261124T023000Z-L1-3fa9c2)`);
  assertSafeBaseDir(cfg.baseDir, { create: true });
  const rd = new RunDir(cfg.baseDir, task.pool, task.dataset);
  const lock = acquireLock(rd.lockPath, `dataset ${task.fullName}`, "zrb cleanup --abandon");
  try {
    const nothing = "; nothing was removed";
    const read = await rd.readState();
    if (read.kind === "ok" && read.state.backupId === backupId)
      throw usageError(
        `--abandon ${backupId}: it is this host's interrupted backup (${rd.statePath}): the next backup of ${task.fullName} resumes it, or discards it if a backup at another level supersedes it${nothing}`,
      );
    if (await store.head(manifestKey(task.pool, task.dataset, backupId)))
      throw usageError(`--abandon ${backupId}: backup ${backupId} of ${task.fullName} is finished (its manifest is in ${store.location}); zrb prune deletes finished backups by the retention rules${nothing}`);
    // A backup another one is built on finished, and its manifest is lost: putting that manifest
    // back repairs the chain (prune and cleanup keep its parts for that), deleting them would not.
    // Any manifest's word counts here, signed or not: refusing only keeps.
    const unreadable: string[] = [];
    const child = (await listManifests(store, task.pool, task.dataset, (key) => unreadable.push(key))).find((m) => m.parent?.backupId === backupId);
    if (unreadable.length > 0)
      throw integrityError(
        `--abandon ${backupId}: manifest ${unreadable[0]} cannot be read${unreadable.length > 1 ? ` (and ${unreadable.length - 1} more)` : ""} and may name this backup as its parent; put back a good copy of it, use the zrb version that wrote it, or remove it if its backup is truly gone${nothing}`,
      );
    if (child)
      throw usageError(
        `--abandon ${backupId}: backup ${child.backupId} of ${task.fullName} is built on it (its manifest names it as parent), so it finished and only its manifest is missing; put that manifest back to repair the chain, or let zrb prune give up both${nothing}`,
      );
    const base = datasetDataPrefix(task.pool, task.dataset);
    // Ids name their level (…-L2-…): list only that backup's prefix; any other id, the dataset's data.
    const lvl = /-L(\d{1,3})-/.exec(backupId);
    const prefix = lvl ? dataPrefix(task.pool, task.dataset, Number(lvl[1]), backupId) : base;
    const ours = (key: string) => isPartKey(base, key) && key.slice(base.length).split("/")[1] === backupId;
    const mdir = manifestDir(task.pool, task.dataset);
    // Its parts, and a file catalog it stored before it was killed (written just before the manifest).
    const parts = [...(await store.list(prefix)).filter((o) => ours(o.key)), ...(await store.list(mdir)).filter((o) => backupIdOfCatalogKey(mdir, o.key) === backupId)];
    const uploads = (await store.listUploads(prefix)).filter((u) => ours(u.key));
    const mk = markerKey(task.pool, task.dataset, backupId);
    const markerInfo = await store.head(mk);
    const marker = markerInfo ? mk : null;
    if (!marker && parts.length === 0 && uploads.length === 0)
      throw usageError(`--abandon ${backupId}: ${store.location} holds nothing of a backup ${backupId} of ${task.fullName} (no in-flight marker, part or upload)${nothing}`);
    // Is it dead? Its newest sign of life must be older than the grace (any marker's word counts: refusing only keeps).
    const rec = marker ? (await judgeMarker(store, mk, task.pool, task.dataset, opts.trust)).marker : undefined;
    const host = rec?.host ? ` on host ${rec.host}` : "";
    const signs = [
      ...(markerInfo ? [{ at: markerInfo.lastModified, what: `its in-flight marker was written${host}` }] : []),
      ...(rec ? [{ at: new Date(rec.updatedAt), what: `its in-flight marker says it was updated${host}` }] : []),
      ...parts.map((p) => ({ at: p.lastModified, what: `part ${p.key} was stored` })),
      ...uploads.map((u) => ({ at: u.initiated, what: `the multipart upload of ${u.key} was begun` })),
    ];
    // Something of it is there (checked above), so there is a sign.
    const last = newest(signs);
    const nowMs = (opts.now ?? clockNow()).getTime();
    const knob = opts.graceKnob ?? "--older-than";
    if (opts.olderThanMs > 0 && (!last.at || nowMs - last.at.getTime() < opts.olderThanMs))
      throw new ZrbError(
        `--abandon ${backupId}: backup ${backupId} of ${task.fullName} ${last.at ? `was active ${roughAge(nowMs - last.at.getTime())} ago (${last.what})` : `shows a sign of life of unknown age (${last.what})`}, within ${knob} ${formatDuration(opts.olderThanMs)}, so it may still be running; ` +
          `make sure it is not (stop it on the host that runs it), then rerun with --older-than 0s${nothing}`,
        ExitCode.LOCKED,
      );
    const verb = opts.dryRun ? "would" : "will";
    const left: string[] = [];
    log.info(`${verb} abandon backup ${backupId} of ${task.fullName}: abort ${uploads.length} upload(s), delete ${parts.length} part(s)${marker ? " and its in-flight marker" : ""}`);
    if (!opts.dryRun) {
      for (const u of uploads) await store.abortUpload(u.key, u.uploadId);
      left.push(...(await deleteOrLeave(store, parts.map((p) => p.key), `parts of the abandoned backup ${backupId}`)));
      // The marker goes last, and only when every part went: what is left stays protected until a rerun.
      if (marker) left.push(...(left.length === 0 ? await deleteOrLeave(store, [marker], `in-flight marker of the abandoned backup ${backupId}`) : [marker]));
    }
    return {
      dryRun: opts.dryRun,
      dataset: task.fullName,
      backupId,
      marker,
      uploads: uploads.map((u) => ({ key: u.key, uploadId: u.uploadId })),
      parts: parts.map((p) => ({ key: p.key, size: p.size })),
      left,
      ...(last.at ? { lastActive: { at: last.at.toISOString(), what: last.what } } : {}),
    };
  } finally {
    lock.release();
  }
}
