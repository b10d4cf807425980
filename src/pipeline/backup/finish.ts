/**
 * The end of a backup, and of an interrupted one that is given up.
 *
 * Commit order (restic's rule): every part is stored, then the manifest — the commit point —
 * then the bookkeeping: heads in the bucket, the local head cache, the base holds, the send
 * holds, and only then the state file. A kill at any point is finished by the next run, which
 * finds the manifest and repeats these idempotent steps.
 */
import { hostname } from "node:os";
import { rmSync } from "node:fs";
import YAML from "yaml";
import { storageClassFor, type Config, type Task } from "../../config/config.ts";
import { StoreError, type ObjectStore } from "../../store/store.ts";
import { ExitCode, ZrbError } from "../../util/errors.ts";
import { catalogKey, dataPrefix, headsKey, manifestKey, partKey } from "../../store/layout.ts";
import { writeYamlAtomic } from "../../state/atomic.ts";
import { MANIFEST_FORMAT, readManifest, type Manifest } from "../../records/manifest.ts";
import { advanceHeads, readHeads, type Heads } from "../../records/heads.ts";
import type { BackupState, RunDir } from "../../state/rundir.ts";
import * as zfs from "../../zfs/zfs.ts";
import { log } from "../../util/log.ts";
import { VERSION } from "../../version.ts";
import { SEND_HOLD, holdTags, moveBaseHolds, type SendHolds } from "./holds.ts";
import type { SigningKey } from "../../crypto/signing.ts";
import { signHeads, type Trust } from "../../records/trust.ts";
import { now } from "../../util/clock.ts";
import { deleteMarker } from "../../records/marker.ts";
import type { CatalogRef } from "../../records/file-catalog.ts";

/**
 * The manifest of a finished stream: parts in order with sizes and hashes, the stream's BLAKE3.
 * Throws (exit 1, the state kept for the rerun) unless every part from 0 on is recorded as
 * stored with its size and SHA-256 and their plaintext adds up to the stream: a manifest never
 * names a part this run has not seen in the bucket (the caller's listing checked the uploaded ones).
 */
export function buildManifest(cfg: Config, state: BackupState, stream: { size: number; blake3: string }, zfsVersion: string, catalog?: CatalogRef): Manifest {
  const notStored: number[] = [];
  let plain = 0;
  for (let i = 0; i < state.chunks.length; i++) {
    const c = state.chunks[i];
    if (!c || c.index !== i || !c.uploaded || c.cipherSize === undefined || !c.sha256) notStored.push(i);
    else plain += c.plainSize;
  }
  if (state.chunks.length === 0 || notStored.length || plain !== stream.size)
    throw new ZrbError(
      `backup ${state.backupId}: no manifest written: ${notStored.length ? `part(s) ${notStored.slice(0, 5).join(", ")} not recorded as stored` : `its ${state.chunks.length} part(s) hold ${plain} bytes of the ${stream.size}-byte stream`}; rerun the backup (it resumes)`,
      ExitCode.FAILURE,
    );
  return {
    format: MANIFEST_FORMAT,
    backupId: state.backupId,
    pool: state.pool,
    dataset: state.dataset,
    level: state.level,
    snapshot: state.snapshot,
    parent: state.parent,
    send: { flags: state.sendFlags, zfs: zfsVersion },
    stream,
    recipients: state.recipients,
    storageClass: storageClassFor(cfg, state.level),
    chunkSize: state.chunkSize,
    parts: state.chunks.map((c) => ({
      index: c.index,
      key: partKey(state.pool, state.dataset, state.level, state.backupId, c.index),
      plainSize: c.plainSize,
      cipherSize: c.cipherSize!,
      sha256: c.sha256!,
      blake3: c.blake3,
    })),
    tool: { name: "zrb", version: VERSION },
    host: hostname(),
    startedAt: state.startedAt,
    finishedAt: now().toISOString(),
    ...(catalog ? { catalog } : {}),
  };
}

/**
 * Store the manifest: the commit point. Uploads a killed run created but never recorded are
 * aborted first (`uploads`: their listing, if the caller began it once every part was stored).
 */
export async function commitManifest(cfg: Config, store: ObjectStore, m: Manifest, uploads?: Promise<{ key: string; uploadId: string }[]>): Promise<string> {
  for (const u of await (uploads ?? store.listUploads(dataPrefix(m.pool, m.dataset, m.level, m.backupId)))) await store.abortUpload(u.key, u.uploadId);
  const key = manifestKey(m.pool, m.dataset, m.backupId);
  await store.put(key, YAML.stringify(m, { lineWidth: 0 }), { storageClass: cfg.s3.storageClass.manifest });
  return key;
}

/**
 * The bookkeeping after the manifest: heads (signed with the NAS's key), head cache, base holds,
 * send holds, state, spill. `headsBefore`: the heads as read while the manifest was being stored
 * (a round trip saved; the new manifest is added to them all the same); without it they are read now.
 */
export async function finishBackup(
  cfg: Config,
  store: ObjectStore,
  task: Task,
  rd: RunDir,
  state: BackupState,
  manifest: Manifest,
  holds: SendHolds,
  signer: SigningKey | undefined,
  trust: Trust,
  headsBefore?: Promise<Heads>,
): Promise<void> {
  await retainChain(cfg, store, manifest);
  const mine = await rd.lastHeadsSequence();
  const prev = await (headsBefore ?? readHeads(store, task.pool, task.dataset, trust, mine));
  const next = { ...advanceHeads(prev, manifest), sequence: Math.max(prev.sequence ?? 0, mine) + 1 };
  const heads = signer ? signHeads(next, task.pool, task.dataset, signer) : next;
  // The manifest makes the in-flight marker moot (a NAS role without delete right leaves it to
  // prune and cleanup): deleted while the heads are written, not after.
  const marker = deleteMarker(store, task.pool, task.dataset, state.backupId);
  marker.catch(() => {});
  await store.put(headsKey(task.pool, task.dataset), YAML.stringify(heads, { lineWidth: 0 }), { storageClass: cfg.s3.storageClass.manifest });
  writeYamlAtomic(rd.headsCachePath, heads);
  await marker;
  await moveBaseHolds(task.fullName, heads, holdTags(cfg).base);
  await holds.releaseAll();
  rd.removeState();
  rmSync(rd.spillDir(state.backupId), { recursive: true, force: true });
}

/** The heads as they are before a manifest is stored (for finishBackup's headsBefore; a failure is finishBackup's). */
export function readHeadsEarly(store: ObjectStore, task: Task, rd: RunDir, trust: Trust): Promise<Heads> {
  const p = rd.lastHeadsSequence().then((mine) => readHeads(store, task.pool, task.dataset, trust, mine));
  p.catch(() => {});
  return p;
}

/**
 * Object lock, chain-aware (kopia's lesson): a new incremental needs every backup of its chain,
 * so their manifests, parts and file catalogs are kept locked at least as long as the new one's objects.
 */
async function retainChain(cfg: Config, store: ObjectStore, m: Manifest): Promise<void> {
  const lock = cfg.s3.enabled ? cfg.s3.objectLock : undefined;
  if (!lock) return;
  const until = new Date(now().getTime() + lock.days * 86_400_000);
  for (let parent = m.parent; parent; ) {
    const key = manifestKey(m.pool, m.dataset, parent.backupId);
    const pm = await readManifest(store, key, { pool: m.pool, dataset: m.dataset });
    if (!pm) break;
    for (const p of pm.parts) await store.retain(p.key, until);
    if (pm.catalog) await store.retain(pm.catalog.key, until);
    await store.retain(key, until);
    parent = pm.parent;
  }
}

/**
 * Forget an interrupted backup: abort its uploads, delete its parts (unless a finished manifest
 * refers to them) and its in-flight marker (both left when the role may not delete), delete its spill files, release its send holds, drop the state. Says which
 * of the two it did with the parts.
 */
export async function discardState(store: ObjectStore, state: BackupState, rd: RunDir, opts: { keepHolds?: boolean; sendTag?: string } = {}): Promise<{ partsKept: boolean }> {
  const prefix = dataPrefix(state.pool, state.dataset, state.level, state.backupId);
  for (const u of await store.listUploads(prefix)) await store.abortUpload(u.key, u.uploadId);
  // Never delete parts a finished manifest refers to (a run killed after writing it).
  const partsKept = !!(await store.head(manifestKey(state.pool, state.dataset, state.backupId)));
  if (partsKept) log.warn(`backup ${state.backupId} is complete in ${store.location}; keeping its parts`);
  // Its parts, and the file catalog a run killed just before its manifest stored.
  else await deleteOrLeave(store, [...(await store.list(prefix)).map((o) => o.key), catalogKey(state.pool, state.dataset, state.backupId)], `objects of the discarded backup ${state.backupId}`);
  // Its marker would keep what is left of it from every cleanup: say how to give it up.
  if (!(await deleteMarker(store, state.pool, state.dataset, state.backupId)) && !partsKept)
    log.warn(`the in-flight marker of the discarded backup ${state.backupId} could not be deleted (this role may not delete); on a host that may: zrb cleanup --abandon ${state.backupId}`);
  rmSync(rd.spillDir(state.backupId), { recursive: true, force: true });
  // A killed run leaves its send holds behind; they are ours to release.
  if (!opts.keepHolds) for (const s of [state.snapshot?.name, state.parent?.name]) if (s) await zfs.release(opts.sendTag ?? SEND_HOLD, s).catch(() => {});
  rd.removeState();
  return { partsKept };
}

/**
 * Delete objects nothing needs; what the store refuses to delete yet (object lock) or at all
 * (a NAS role without s3:DeleteObject) is left with one warning: zrb cleanup or prune, run later
 * or with delete rights, removes it. Returns the keys left.
 */
export async function deleteOrLeave(store: ObjectStore, keys: string[], what: string): Promise<string[]> {
  const left: string[] = [];
  let why = "";
  for (const k of keys) {
    try {
      await store.delete(k);
    } catch (err) {
      if (!(err instanceof StoreError) || (err.kind !== "locked" && err.kind !== "access-denied")) throw err;
      left.push(k);
      why ||= err.message;
    }
  }
  if (left.length) log.warn(`${left.length} of ${keys.length} ${what} could not be deleted (${why}); zrb cleanup removes them once that is possible`);
  return left;
}
