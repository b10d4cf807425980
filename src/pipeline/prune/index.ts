/**
 * `zrb prune`, stage by stage, under the dataset's lock (it never races a backup on this host):
 *   what must stay (references.ts: refuses, deleting nothing, when a manifest or the state file
 *   cannot be read) ─► the catalog and the heads ─► the bucket plan (plan.ts) and the local plan
 *   (local.ts) ─► with --dry-run, stop here
 *   ─► per backup given up, higher levels and newer ones first: its manifest (the commit point),
 *      then its parts and its file catalog ─► orphan parts and catalogs (cleanup's rule: also finishes a prune killed between a
 *      manifest and its parts; never a backup in flight on any host, nor what no record accounts
 *      for while it is younger than prune.orphan_grace) ─► local snapshots, one `zfs destroy` at a time.
 * A delete the store refuses (object lock, a bucket policy, credentials without delete) is a
 * reported skip: a refused manifest keeps its whole backup (its parts are not touched), a
 * refused part stays an orphan that the next prune tries again. Nothing half-deleted ever
 * looks complete, because the manifest goes first.
 */
import type { Config, Task } from "../../config/config.ts";
import { assertSafeBaseDir } from "../../state/basedir.ts";
import { readHeads } from "../../records/heads.ts";
import { acquireLock } from "../../state/lock.ts";
import { RunDir, type BackupState } from "../../state/rundir.ts";
import { storesOf } from "../../config/stores.ts";
import { minStorageDaysFor } from "../../report/pricing.ts";
import type { Trust } from "../../records/trust.ts";
import { badParts, readRotation } from "../../records/rotation.ts";
import { backupIdOfCatalogKey, datasetDataPrefix, manifestDir, manifestKey } from "../../store/layout.ts";
import { isStoreError, type ObjectStore } from "../../store/store.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { now as clockNow } from "../../util/clock.ts";
import { log } from "../../util/log.ts";
import { formatSize } from "../../util/size.ts";
import * as zfs from "../../zfs/zfs.ts";
import { buildCatalog } from "../catalog.ts";
import { graceSplit, orphanCatalogs, orphanParts, readReferences } from "../references.ts";
import { deleteOrLeave } from "../backup/finish.ts";
import { destroySnapshots, planLocal, type SnapshotDecision } from "./local.ts";
import { deletionOrder, planBucket, type BackupDecision } from "./plan.ts";
import { describePolicy, type Policy } from "./policy.ts";

export interface PruneOptions {
  /** The bucket policy; null keeps every backup. */
  policy: Policy | null;
  local: Policy;
  dryRun: boolean;
  allowEarlyDelete: boolean;
  /** Which records count (cli/trust.ts): an untrusted one never decides a keep or a delete. */
  trust: Trust;
  signal?: AbortSignal;
}

export interface PruneResult {
  dryRun: boolean;
  dataset: string;
  location: string;
  policy: { bucket: string | null; local: string };
  /** One decision per readable backup, oldest first. */
  backups: BackupDecision[];
  /** Part objects no manifest refers to (before this prune's own deletes), old enough to go; after a real run, those deleted (what the store refused is in refused or locked). */
  orphans: { key: string; size: number }[];
  /** Part objects no record accounts for that are younger than prune.orphan_grace: left alone, and why. */
  spared: { key: string; why: string }[];
  /** Backups in flight on some host (trusted markers): their parts were left alone. */
  inflight: { backupId: string; host: string; updatedAt: string }[];
  /** In-flight markers that protect nothing (left alone), and why. */
  untrustedMarkers: { key: string; why: string }[];
  /** The pool's zrb-named snapshots; absent when the dataset is not on this host. */
  local: SnapshotDecision[] | null;
  /** Deletes the store refused: reported, skipped. */
  refused: { key: string; message: string }[];
  /** Objects still under object lock (parts of an aborted backup, say): left for a later prune. */
  locked: { key: string; message: string }[];
  /** Snapshots zfs refused to destroy (held or cloned meanwhile). */
  refusedSnapshots: string[];
  /** Backups the plan gave up but this run kept: a backup whose manifest the store did not delete (`neededBy`) is built on them. */
  keptForChain: { backupId: string; neededBy: string }[];
  summary: { kept: number; deleted: number; objects: number; bytes: number; earlyDeleteGbDays: number; keptForMinStorage: number; snapshotsDestroyed: number };
}

export async function prune(cfg: Config, task: Task, store: ObjectStore, opts: PruneOptions): Promise<PruneResult> {
  assertSafeBaseDir(cfg.baseDir, { create: true });
  const rd = new RunDir(cfg.baseDir, task.pool, task.dataset);
  const lock = acquireLock(rd.lockPath, `dataset ${task.fullName}`, "zrb prune");
  try {
    const base = datasetDataPrefix(task.pool, task.dataset);
    // Listed before the records are read (references.ts: a backup finishing meanwhile is then seen by one of them).
    const listing = await store.list(base);
    const mdir = manifestDir(task.pool, task.dataset);
    const mlisting = await store.list(mdir);
    const refs = await readReferences(store, task, rd, "prune", opts.trust);
    const cat = buildCatalog(refs.manifests, [], listing, opts.trust);
    const untrusted = cat.untrusted;
    for (const [id, why] of untrusted) log.warn(`backup ${id} (level ${cat.manifests.get(id)!.level}) is not trusted: ${why}; prune leaves it alone and does not count it`);
    const heads = await readHeads(store, task.pool, task.dataset, opts.trust, await rd.lastHeadsSequence());
    const now = clockNow();
    const input = {
      entries: cat.entries,
      manifests: cat.manifests,
      heads,
      state: refs.state,
      policy: opts.policy,
      objects: new Map(listing.map((o) => [o.key, o])),
      now,
      allowEarlyDelete: opts.allowEarlyDelete,
      minDays: minStorageDaysFor(cfg),
      untrusted,
      bad: badParts(await readRotation(store, task.pool, task.dataset)),
    };
    // A listing carries no retain-until date: ask for those of the candidates only (one HEAD
    // each), so that a locked backup is a planned keep with its date, not a refused delete.
    const lockedUntil = new Map<string, Date>();
    for (const b of planBucket(input)) {
      if (b.action !== "delete") continue;
      const until = (await store.head(manifestKey(task.pool, task.dataset, b.backupId)))?.lockedUntil;
      if (until) lockedUntil.set(b.backupId, until);
    }
    const backups = planBucket({ ...input, lockedUntil });
    const strays = [...orphanParts(listing, base, refs.manifests, refs.keepPrefixes), ...orphanCatalogs(mlisting, mdir, refs.manifests, refs.keepPrefixes)];
    const grace = graceSplit(strays, (o) => o.lastModified, cfg.prune.orphanGrace, now.getTime(), "prune.orphan_grace");
    const orphans = grace.go.map((o) => ({ key: o.key, size: o.size }));
    for (const x of grace.spared) log.info(`spared ${x.key}: ${x.why}`);
    const onPool = await zfs.datasetExists(task.fullName);
    if (!onPool) log.warn(`dataset ${task.fullName} is not on this host: its local snapshots are left alone`);
    const others = onPool ? await otherStoresStates(cfg, task) : [];
    const local = onPool ? planLocal(await zfs.listSnapshots(task.fullName), await zfs.userRefs(task.fullName), heads, refs.state, opts.local, now, others) : null;
    const manifestSizes = new Map(mlisting.map((o) => [o.key, o.size]));
    // A backup's catalogs go with its manifest: the one it names, and any a killed rekey left under its id.
    const catalogsOf = (id: string) => mlisting.filter((o) => backupIdOfCatalogKey(mdir, o.key) === id).map((o) => o.key);
    const gone = backups.filter((b) => b.action === "delete");
    const result: PruneResult = {
      dryRun: opts.dryRun,
      dataset: task.fullName,
      location: store.location,
      policy: { bucket: opts.policy ? describePolicy(opts.policy) : null, local: describePolicy(opts.local) },
      backups,
      orphans,
      spared: grace.spared.map((x) => ({ key: x.key, why: x.why })),
      inflight: refs.markers.flatMap((r) => (r.marker && !r.untrusted && !refs.moot.includes(r.key) ? [{ backupId: r.marker.backupId, host: r.marker.host, updatedAt: r.marker.updatedAt }] : [])),
      untrustedMarkers: refs.markers.flatMap((r) => (r.untrusted && !/^it is gone/.test(r.untrusted) ? [{ key: r.key, why: r.untrusted }] : [])),
      local,
      refused: [],
      locked: [],
      refusedSnapshots: [],
      keptForChain: [],
      summary: {
        kept: backups.length - gone.length,
        deleted: gone.length,
        objects: gone.reduce((a, b) => a + b.parts + 1 + catalogsOf(b.backupId).length, 0) + orphans.length,
        bytes:
          gone.reduce((a, b) => a + b.bytes + (manifestSizes.get(manifestKey(task.pool, task.dataset, b.backupId)) ?? 0) + catalogsOf(b.backupId).reduce((x, k) => x + (manifestSizes.get(k) ?? 0), 0), 0) +
          orphans.reduce((a, o) => a + o.size, 0),
        earlyDeleteGbDays: Math.round(gone.reduce((a, b) => a + (b.earlyGbDays ?? 0), 0) * 1e6) / 1e6,
        keptForMinStorage: backups.filter((b) => b.reasons.length > 0 && b.reasons.every((r) => r.rule === "min-storage")).length,
        snapshotsDestroyed: local?.filter((s) => s.action === "destroy").length ?? 0,
      },
    };
    if (opts.dryRun) return result;

    const freed: Freed = { objects: 0, bytes: 0, refused: result.refused, locked: result.locked, keptForChain: result.keptForChain, sizes: new Map([...listing.map((o) => [o.key, o.size] as const), ...manifestSizes]) };
    const deleted = await deleteBackups(store, task, cat.manifests, gone, freed, catalogsOf, opts.signal);
    const remaining = refs.manifests.filter((m) => !deleted.has(m.backupId));
    const refusedNow = new Set([...result.refused, ...result.locked].map((x) => x.key));
    // Only what the first listing showed, and the grace did not spare: a part uploaded since is
    // a backup this run's records did not see.
    const listed = new Set([...listing, ...mlisting].map((o) => o.key));
    const young = new Set(grace.spared.map((x) => x.key));
    const again = [...orphanParts(await store.list(base), base, remaining, refs.keepPrefixes), ...orphanCatalogs(await store.list(mdir), mdir, remaining, refs.keepPrefixes)];
    const orphansDeleted = new Set<string>();
    for (const o of again) {
      checkInterrupted(opts.signal);
      if (refusedNow.has(o.key) || !listed.has(o.key) || young.has(o.key)) continue; // asked once this run, or not ours to judge
      if (await deleteOrRefuse(store, o.key, freed)) orphansDeleted.add(o.key);
    }
    result.orphans = result.orphans.filter((o) => orphansDeleted.has(o.key));
    // Markers of backups whose manifest is written are moot (a NAS without delete right leaves them).
    await deleteOrLeave(store, refs.moot, "in-flight markers of finished backups");
    // The summary of a real run says what was freed: what the store refused stays.
    result.summary.deleted = deleted.size;
    result.summary.kept = backups.length - deleted.size;
    result.summary.objects = freed.objects;
    result.summary.bytes = freed.bytes;
    if (local) {
      result.refusedSnapshots = await destroySnapshots(local, opts.signal);
      for (const s of local) if (s.action === "destroy" && !result.refusedSnapshots.includes(s.name)) log.info(`destroyed snapshot ${s.name}`);
      result.summary.snapshotsDestroyed -= result.refusedSnapshots.length;
    }
    return result;
  } finally {
    lock.release();
  }
}

/** What a real run freed, and what the store refused. */
interface Freed {
  objects: number;
  bytes: number;
  refused: PruneResult["refused"];
  locked: PruneResult["locked"];
  keptForChain: PruneResult["keptForChain"];
  sizes: Map<string, number>;
}

/**
 * Each backup: its manifest first (the commit point), then its parts. Returns the ids whose
 * manifest is gone. A backup whose manifest the store refuses (a legal hold, which no HEAD
 * shows beforehand; access denied) stays whole, and so does every backup of its chain: children
 * come first in deletionOrder, so its bases are reached after it and kept, or it could never be
 * restored again.
 */
async function deleteBackups(
  store: ObjectStore,
  task: Task,
  manifests: Map<string, { parts: { key: string }[]; parent: { backupId: string } | null }>,
  gone: BackupDecision[],
  freed: Freed,
  catalogsOf: (backupId: string) => string[],
  signal?: AbortSignal,
): Promise<Set<string>> {
  const deleted = new Set<string>();
  /** Bases of a backup that stayed: id → the backup that needs it. */
  const needed = new Map<string, string>();
  const keepChainOf = (id: string) => {
    for (let p = manifests.get(id)?.parent?.backupId; p !== undefined && !needed.has(p) && p !== id; p = manifests.get(p)?.parent?.backupId) needed.set(p, id);
  };
  for (const b of deletionOrder(gone)) {
    checkInterrupted(signal);
    const of = needed.get(b.backupId);
    if (of !== undefined) {
      log.warn(`kept backup ${b.backupId} (level ${b.level}): backup ${of}, whose manifest the store did not delete, is built on it`);
      freed.keptForChain.push({ backupId: b.backupId, neededBy: of });
      keepChainOf(b.backupId);
      continue;
    }
    if (!(await deleteOrRefuse(store, manifestKey(task.pool, task.dataset, b.backupId), freed))) {
      keepChainOf(b.backupId); // the backup stays whole, and so must its chain
      continue;
    }
    deleted.add(b.backupId);
    for (const p of manifests.get(b.backupId)!.parts) {
      checkInterrupted(signal);
      await deleteOrRefuse(store, p.key, freed);
    }
    for (const k of catalogsOf(b.backupId)) await deleteOrRefuse(store, k, freed);
    // zrb rekey on another host may have written the manifest back meanwhile (it checks the
    // parts just before it writes, and again after: rekey/index.ts). That manifest names parts
    // given up here: it goes again. One the store refuses stands, and names its base: the
    // backup counts as kept, and so does its chain.
    const mkey = manifestKey(task.pool, task.dataset, b.backupId);
    if (await store.head(mkey)) {
      if (await deleteOrRefuse(store, mkey, freed, false)) log.warn(`the manifest of backup ${b.backupId} was written back while it was pruned (zrb rekey on another host?); deleted again`);
      else {
        log.warn(`the manifest of backup ${b.backupId} was written back while it was pruned (zrb rekey on another host?) and the store keeps it; its chain is kept`);
        deleted.delete(b.backupId);
        keepChainOf(b.backupId);
        continue;
      }
    }
    log.info(`deleted backup ${b.backupId} (level ${b.level}, ${b.parts} part(s), ${formatSize(b.bytes)})`);
  }
  return deleted;
}

/**
 * Delete one object; a refusal is recorded, not thrown: object lock ("locked": expected, the
 * next prune after the date deletes it) apart from access denied (a bucket policy, no permission).
 * `count` false: an object deleted before (and written back since) is not counted twice.
 */
async function deleteOrRefuse(store: ObjectStore, key: string, freed: Freed, count = true): Promise<boolean> {
  try {
    await store.delete(key);
  } catch (err) {
    if (isStoreError(err, "locked")) {
      freed.locked.push({ key, message: err.message });
      log.warn(`${err.message}; left for a later prune`);
      return false;
    }
    if (!isStoreError(err, "access-denied")) throw err;
    freed.refused.push({ key, message: err.message });
    log.warn(`could not delete ${store.urlOf(key)}: ${err.message}; skipped`);
    return false;
  }
  if (count) {
    freed.objects++;
    freed.bytes += freed.sizes.get(key) ?? 0;
  }
  return true;
}

/** The resume states the task's other stores keep on this host (config/stores.ts): their snapshots stay on the pool. */
async function otherStoresStates(cfg: Config, task: Task): Promise<BackupState[]> {
  const out: BackupState[] = [];
  for (const s of storesOf(cfg)) {
    if (s.baseDir === cfg.baseDir) continue;
    const read = await new RunDir(s.baseDir, task.pool, task.dataset).readState();
    if (read.kind === "ok") out.push(read.state);
  }
  return out;
}
