/**
 * Rotating verification, `zrb verify --rotate DAYS` (kopia's verify-files-percent idea, made a
 * promise): every stored part is read at least once per DAYS, a small slice on each run.
 *
 * A part's deadline is DAYS after it was last read and found good (or after a rotation first
 * saw its backup). Each run reads
 *   - every part whose deadline falls before the next run is expected (now + the time since the
 *     last run, and 10 % for timer jitter: a weekly verify reads a week ahead, a daily one a day), and
 *   - at least its share of all parts, DAYS spread over the runs (parts × interval / DAYS), the
 *     nearest deadlines first — so the load stays even instead of coming due all at once.
 * A part read and found good gets a new deadline. Progress (records/rotation.ts) is saved in the
 * bucket as the run goes. Parts of archive classes (GLACIER, DEEP_ARCHIVE) cannot be read without
 * a thaw: they are counted, not read. A part whose backup was pruned while the run read it is not
 * a failure.
 */
import type { Manifest } from "../records/manifest.ts";
import { readRotation, writeRotation, type Rotation } from "../records/rotation.ts";
import { manifestKey } from "../store/layout.ts";
import { ARCHIVED_CLASSES, type ObjectStore } from "../store/store.ts";
import { now as clockNow } from "../util/clock.ts";
import { log } from "../util/log.ts";
import { verifyBackups, type PartCheck, type VerifyReport } from "./verify.ts";
import type { TransferProgress } from "../report/progress.ts";

const DAY = 86_400_000;
/** Save progress after this many parts (and at the end). */
const SAVE_EVERY = 20;

export interface PartRef {
  backupId: string;
  index: number;
  /** When it must be read again (ms). */
  due: number;
  /** Read and found good at least once. */
  read: boolean;
}

/** The rotation brought up to date with the manifests: new backups added (seen now), gone ones dropped. */
export function reconcile(r: Rotation, manifests: Manifest[], now: Date): Rotation {
  const backups: Rotation["backups"] = {};
  for (const m of manifests) {
    const old = r.backups[m.backupId];
    backups[m.backupId] =
      old && old.verified.length === m.parts.length ? old : { seen: now.toISOString(), verified: m.parts.map(() => null) };
  }
  return { ...r, backups };
}

/** Every part of the rotation with its deadline: the nearest first, never-read parts first among equals, then by backup id and index. */
export function deadlines(r: Rotation, daysMs: number): PartRef[] {
  const out: PartRef[] = [];
  for (const [backupId, b] of Object.entries(r.backups))
    b.verified.forEach((t, index) => out.push({ backupId, index, due: Date.parse(t ?? b.seen) + daysMs, read: t !== null }));
  return out.sort((a, b) => a.due - b.due || Number(a.read) - Number(b.read) || (a.backupId < b.backupId ? -1 : a.backupId > b.backupId ? 1 : a.index - b.index));
}

/** The parts this run reads: those due before the next run, and at least its share of all. */
export function chooseSlice(r: Rotation, now: Date, daysMs: number): PartRef[] {
  const all = deadlines(r, daysMs);
  const last = r.lastRunAt ? Date.parse(r.lastRunAt) : NaN;
  const interval = Math.min(daysMs, Number.isFinite(last) && last < now.getTime() ? now.getTime() - last : DAY);
  const share = Math.ceil((all.length * interval) / daysMs);
  // 10 % slack: timers start a little early or late (RandomizedDelaySec, a slow previous job).
  const horizon = now.getTime() + interval * 1.1;
  return all.filter((p, i) => i < share || p.due <= horizon);
}

export interface RotationReport {
  days: number;
  /** Parts in the rotation (not archived). */
  parts: number;
  checked: number;
  failed: number;
  /** Parts of archive classes, not read. */
  archived: number;
  /** Parts whose deadline had passed before this run. */
  overdueBefore: number;
  /** Parts past their deadline after this run (read first by the next). */
  overdueAfter: number;
  /** The oldest "last read" (or first seen) among all parts after this run. */
  oldest: string | null;
}

export async function verifyRotating(
  store: ObjectStore,
  manifests: Manifest[],
  opts: {
    days: number;
    identities?: string[];
    signal?: AbortSignal;
    scratch: string;
    /** Crypto workers that open the parts (config `workers`). */
    workers: number;
    /** Ranged GETs at once for one part (config `s3.concurrency`). */
    connections?: number;
    storageClass: string;
    pool: string;
    dataset: string;
    progress?: TransferProgress;
  },
): Promise<{ report: VerifyReport; rotation: RotationReport }> {
  const now = clockNow();
  const daysMs = opts.days * DAY;
  const readable = manifests.filter((m) => !ARCHIVED_CLASSES.has(m.storageClass));
  const archived = manifests.filter((m) => ARCHIVED_CLASSES.has(m.storageClass)).reduce((a, m) => a + m.parts.length, 0);
  let rot = reconcile(await readRotation(store, opts.pool, opts.dataset), readable, now);
  const overdueBefore = deadlines(rot, daysMs).filter((p) => p.due < now.getTime()).length;
  const slice = chooseSlice(rot, now, daysMs);
  rot = { ...rot, lastRunAt: now.toISOString() };
  const only = new Set(slice.map((p) => `${p.backupId}/${p.index}`));
  const byId = new Map(readable.map((m) => [m.backupId, m]));
  let unsaved = 0;
  const save = () => writeRotation(store, opts.pool, opts.dataset, rot, opts.storageClass).then(() => void (unsaved = 0));
  const onPart = async (rec: PartCheck) => {
    const b = rot.backups[rec.backupId]!;
    if (rec.ok) {
      b.verified[rec.index] = now.toISOString();
      if (b.bad) delete b.bad[String(rec.index)];
    } else b.bad = { ...b.bad, [String(rec.index)]: { at: now.toISOString(), why: rec.error ?? "it failed its check" } };
    if (++unsaved >= SAVE_EVERY) await save();
  };
  const chosen = [...new Set(slice.map((p) => p.backupId))].map((id) => byId.get(id)!);
  const report = await verifyBackups(store, chosen, { identities: opts.identities, only, onPart, signal: opts.signal, scratch: opts.scratch, workers: opts.workers, connections: opts.connections, progress: opts.progress });
  report.backups = report.backups.filter((b) => b.checked > 0);
  await forgivePruned(store, report, opts.pool, opts.dataset);
  await save();
  const after = deadlines(rot, daysMs);
  return {
    report,
    rotation: {
      days: opts.days,
      parts: after.length,
      checked: report.parts.length,
      failed: report.parts.filter((p) => !p.ok).length,
      archived,
      overdueBefore,
      overdueAfter: after.filter((p) => p.due < now.getTime()).length,
      oldest: after.length ? new Date(after[0]!.due - daysMs).toISOString() : null,
    },
  };
}

/** A part that failed because prune deleted its backup meanwhile (its manifest is gone) is not a failure. */
async function forgivePruned(store: ObjectStore, report: VerifyReport, pool: string, dataset: string): Promise<void> {
  const failed = report.parts.filter((p) => !p.ok);
  if (failed.length === 0) return;
  const gone = new Set<string>();
  for (const id of new Set(failed.map((p) => p.backupId))) if (!(await store.head(manifestKey(pool, dataset, id)))) gone.add(id);
  if (gone.size === 0) return;
  for (const id of gone) log.info(`backup ${id} was pruned while this run read it; its parts are no longer checked`);
  report.parts = report.parts.filter((p) => p.ok || !gone.has(p.backupId));
  report.backups = report.backups.filter((b) => !gone.has(b.backupId));
  report.ok = report.parts.every((p) => p.ok) && report.backups.every((b) => b.streamBlake3 !== "mismatch");
}
