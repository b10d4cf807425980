/**
 * `zrb drill`: prove a backup restores, without anyone at a console.
 *
 *   stale drills removed (stale.ts) ──► catalog ──► select (restore/select.ts)
 *     ──► throwaway pool on a sparse file (pool.ts) ──► verified chain restore into it
 *         (restore/index.ts, unchanged: every part's SHA-256, BLAKE3, the stream's ends)
 *     ──► the source snapshot (source.ts) ──► compare (compare.ts) ──► pool destroyed
 *
 * The result says what was compared; the command turns differences into exit 7. Without the
 * source on this host — or for a raw-encrypted dataset, whose restored files need the dataset's
 * own key — the restore still ran and verified every stream: the result says no source was
 * compared, and why.
 */
import type { Config, Task } from "../../config/config.ts";
import type { ObjectStore } from "../../store/store.ts";
import type { TransferProgress } from "../../report/progress.ts";
import { loadCatalog, type Catalog } from "../catalog.ts";
import { restore } from "../restore/index.ts";
import { selectBackup, shortSnap, type Selector, type Selection } from "../restore/select.ts";
import type { Trust } from "../../records/trust.ts";
import { warnUnauthenticated } from "../../records/trust.ts";
import { integrityError, type ZrbError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";
import * as zfs from "../../zfs/zfs.ts";
import * as zpool from "../../zfs/zpool.ts";
import { compareTrees, compareVolumes, type Comparison } from "./compare.ts";
import { withDrillPool, type DrillPool } from "./pool.ts";
import { openSource, waitForDevice } from "./source.ts";
import { removeStaleDrills } from "./stale.ts";

export interface DrillOptions {
  selector: Selector;
  identities: string[];
  trust: Trust;
  /** Hash only this many files, chosen at random (all when undefined). */
  sample?: number;
  ahead?: number;
  signal?: AbortSignal;
  progress?: TransferProgress;
  catalog?: Catalog;
}

export interface DrillResult extends Comparison {
  dataset: string;
  backupId: string;
  level: number;
  snapshot: string;
  /** How the source snapshot was read, or "none" (then `noSource` says why). */
  source: "snapdir" | "clone" | "none";
  noSource?: string;
  /** Bytes of the chain's streams restored, and how long the restore took. */
  bytes: number;
  restoreSeconds: number;
}

const round1 = (s: number) => Math.round(s * 10) / 10;

/** The restore's rate in MB/s (10^6 bytes). */
export const mbps = (r: Pick<DrillResult, "bytes" | "restoreSeconds">) => (r.restoreSeconds > 0 ? r.bytes / 1e6 / r.restoreSeconds : 0);

/** The one summary line. */
export function drillLine(r: DrillResult): string {
  return `drill: ${r.compared} files compared, ${r.differ} differ, restore ${r.restoreSeconds.toFixed(1)} s (${mbps(r).toFixed(1)} MB/s)`;
}

/** Exit 7 when anything differs, naming the first difference. */
export function drillError(r: DrillResult): ZrbError | undefined {
  if (r.differ === 0) return undefined;
  return integrityError(
    `drill of ${r.dataset}@${shortSnap(r.snapshot)} (backup ${r.backupId}): ${r.differ} of ${r.compared} paths differ from the source snapshot, first: ${r.first[0]}; the backup does not restore what was snapshotted: run zrb verify, and take a new level-0 backup`,
  );
}

/** Restore the selection into a dataset of the drill pool and mount it read-only: its mount point, or its device for a zvol. */
export async function restoreIntoPool(cfg: Config, task: Task, store: ObjectStore, p: DrillPool, sel: Selection, cat: Catalog, opts: DrillOptions): Promise<{ path: string; volume: boolean; encrypted?: boolean; seconds: number }> {
  const d = p.dataset("restored");
  const t0 = performance.now();
  await restore(cfg, task, store, {
    target: d.fs,
    selector: { backupId: sel.manifest.backupId },
    force: false,
    identities: opts.identities,
    trust: opts.trust,
    planOnly: false,
    ahead: opts.ahead,
    signal: opts.signal,
    progress: opts.progress,
    catalog: cat,
  });
  const seconds = (performance.now() - t0) / 1000;
  if ((await zfs.getProp(d.fs, "type")) === "volume") return { path: await waitForDevice(`/dev/zvol/${d.fs}`, d.fs), volume: true, seconds };
  // A raw send (-w) of an encrypted dataset arrives still encrypted: its files need the source's key.
  if ((await zfs.getProp(d.fs, "keystatus")) === "unavailable") return { path: "", volume: false, encrypted: true, seconds };
  await zpool.setProp(d.fs, "readonly", "on");
  await zpool.setProp(d.fs, "canmount", "on"); // received properties (send_properties) may say off
  await zpool.setProp(d.fs, "mountpoint", d.mnt);
  if ((await zfs.getProp(d.fs, "mounted")) !== "yes") await zpool.mount(d.fs);
  return { path: d.mnt, volume: false, seconds };
}

/**
 * Run `compare`; "gone" instead of its differences or its failure when `sourceGone` then says
 * the source snapshot was destroyed meanwhile. The source carries no hold: a prune may destroy it
 * mid-compare, and its files vanish or fail to read — no difference of the backup's. Throws what
 * `compare` throws otherwise (and always once `signal` is aborted).
 */
export async function unlessSourceGone<T extends { differ: number }>(compare: () => Promise<T>, sourceGone: () => Promise<boolean>, signal?: AbortSignal): Promise<T | "gone"> {
  let cmp: T;
  try {
    cmp = await compare();
  } catch (err) {
    if (!signal?.aborted && (await sourceGone())) return "gone";
    throw err;
  }
  return cmp.differ > 0 && (await sourceGone()) ? "gone" : cmp;
}

/** Whether zfs says snapshot `name` does not exist; false when it lists it or cannot tell (a difference found then stands). */
export const sourceSurelyGone = (name: string): Promise<boolean> => zfs.datasetSurelyMissing(name).catch(() => false);

/** One dataset's drill (a recursive task's child is a task of its own here). */
export async function drill(cfg: Config, task: Task, store: ObjectStore, opts: DrillOptions): Promise<DrillResult> {
  warnUnauthenticated(opts.trust, "drill");
  await removeStaleDrills(cfg, [task.pool]);
  const cat = opts.catalog ?? (await loadCatalog(store, task.pool, task.dataset, opts.trust));
  const sel = selectBackup(cat, opts.selector, task.fullName, store);
  const m = sel.manifest;
  const bytes = sel.chain.reduce((a, c) => a + c.stream.size, 0);
  const snap = shortSnap(m.snapshot.name);
  log.info(`drill of ${task.fullName}@${snap} (backup ${m.backupId}, level ${m.level}, ${sel.chain.length} step(s), ${bytes} bytes of streams)`);
  return withDrillPool(cfg, bytes, `zrb drill --task ${task.name}`, async (p) => {
    const got = await restoreIntoPool(cfg, task, store, p, sel, cat, opts);
    const base = { dataset: task.fullName, backupId: m.backupId, level: m.level, snapshot: m.snapshot.name, bytes, restoreSeconds: round1(got.seconds) };
    if (got.encrypted) return { ...base, source: "none", noSource: `${task.fullName} is sent raw (encrypted); its files cannot be read without the dataset's own key`, compared: 0, differ: 0, first: [] };
    const src = await openSource(task.fullName, snap, m.snapshot.guid, p);
    if (src.kind === "none") return { ...base, source: "none", noSource: src.why, compared: 0, differ: 0, first: [] };
    try {
      const cmp = await unlessSourceGone(
        () => (got.volume || src.volume ? compareVolumes(src.path, got.path, task.fullName, opts.signal) : compareTrees(src.path, got.path, { sample: opts.sample, signal: opts.signal })),
        () => sourceSurelyGone(`${task.fullName}@${snap}`),
        opts.signal,
      );
      if (cmp === "gone") return { ...base, source: "none", noSource: `the source snapshot ${task.fullName}@${snap} was destroyed during the compare (a prune?); the restore itself was verified`, compared: 0, differ: 0, first: [] };
      return { ...base, source: src.kind, ...cmp };
    } finally {
      await src.close();
    }
  });
}
