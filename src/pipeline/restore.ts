/**
 * Restore: plan the chain from the bucket alone and apply it with `zfs receive`, verified.
 *
 *   catalog (manifests in the store) ──► select a backup ──► its chain level 0 → … → it
 *   for each step not yet on the target:
 *     downloader (K parts ahead, ciphertext on scratch disk, retried, resumed by range)
 *       ──► SHA-256 of the ciphertext checked BEFORE any byte of it is decrypted
 *       ──► age decrypt (every 64 KiB STREAM chunk authenticated)
 *       ──► per-part BLAKE3 + whole-stream BLAKE3 on the fly
 *       ──► `zfs receive -u [-F] [-s] TARGET`, except the final 1 MiB of the stream.
 *
 * Streaming, no plaintext scratch: scratch disk holds at most K ciphertext parts
 * (K × chunk_size), never the stream. `zfs receive` cannot complete without the stream's
 * END record, which lives in the withheld final 1 MiB: that tail is written only after every
 * part hash and the stream BLAKE3 have matched the manifest. On any mismatch the receive is
 * killed (SIGKILL, stdin closed), a resumable partial state is aborted (`zfs receive -A`),
 * and a dataset this step created is destroyed. A verified, completed step is kept: a rerun
 * resumes after it (the target's snapshots are matched to the chain by guid).
 */
import { constants as C, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { FileSink } from "bun";
import { AgeDecryptStream, parseIdentityFile } from "../crypto/age.ts";
import { createBlake3 } from "../crypto/blake3.ts";
import type { Config, Task } from "../config/config.ts";
import type { ObjectInfo, ObjectStore } from "../store/store.ts";
import { describeError, sleep } from "../store/retry.ts";
import { acquireLock } from "../state/lock.ts";
import { assertSafeBaseDir } from "../state/basedir.ts";
import { dataPrefix, type Manifest, type ManifestPart } from "../state/manifest.ts";
import { isMissing, loadCatalog, resolveChain, newestPoint, type Catalog, type CatalogEntry } from "./catalog.ts";
import * as zfs from "../zfs/zfs.ts";
import { datasetProblem } from "../zfs/names.ts";
import { ExitCode, ZrbError, cryptoError, fsError, integrityError, storeError, usageError, zfsError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { Semaphore } from "../util/semaphore.ts";

export const ARCHIVED_CLASSES = new Set(["GLACIER", "DEEP_ARCHIVE"]);
/** Bytes of the stream kept back from `zfs receive` until everything is verified (holds the END record). */
export const WITHHOLD = 1 << 20;
const READ_BUF = 1 << 20;

export type ThawTier = "Bulk" | "Standard" | "Expedited";

export interface Selector {
  backupId?: string;
  snapshot?: string;
  level?: number;
}

export interface Selection {
  manifest: Manifest;
  chain: Manifest[];
}

// ───────────────────────────── selection ─────────────────────────────

function shortSnap(name: string): string {
  const at = name.indexOf("@");
  return at >= 0 ? name.slice(at + 1) : name;
}

function point(e: CatalogEntry): string {
  return `${e.backupId} (level ${e.level}, ${shortSnap(e.snapshot)})`;
}

/** Where to go when a point cannot be restored: the newest intact one, or a new full. */
function intactHint(cat: Catalog): string {
  const intact = cat.entries.filter((e) => e.restorable).at(-1);
  return intact
    ? `the newest restorable point is ${point(intact)}: restore it with --backup-id ${intact.backupId}, or run a new level-0 backup`
    : "no backup of this dataset is restorable; run a new level-0 backup";
}

function notRestorable(entry: CatalogEntry, cat: Catalog, store: Where): ZrbError {
  const problem = entry.problem!;
  const affected = cat.entries.filter((e) => e.backupId === problem.at || e.chain.includes(problem.at)).map((e) => `${e.backupId} (level ${e.level})`);
  const message = problem.message.replace(/\((data\/[^)]+)\)/, (_, key: string) => `(${store.urlOf(key)})`);
  return new ZrbError(
    `backup ${entry.backupId} cannot be restored: ${message}; backups affected: ${affected.length ? affected.join(", ") : entry.backupId}; ${intactHint(cat)}`,
    isMissing(problem) ? ExitCode.STORE : ExitCode.INTEGRITY,
  );
}

/**
 * The newest restore point, refusing (exit 7) when it cannot be restored: a restore or verify
 * without a selector never falls back to an older point by itself.
 */
/** What selection needs of a store: its name, and where a key lives. */
type Where = Pick<ObjectStore, "location" | "urlOf">;

export function newestRestorable(cat: Catalog, fs: string, store: Where): CatalogEntry {
  const location = store.location;
  const n = newestPoint(cat);
  if (!n) throw storeError(`no backups of ${fs} in ${location}; check s3.bucket, s3.prefix and the task's pool/dataset in the config`);
  if ("corrupt" in n) throw integrityError(`the newest backup ${n.corrupt.backupId} cannot be restored: ${n.corrupt.message}; ${intactHint(cat)}`);
  const e = n.entry;
  if (!e.restorable) throw integrityError(`the newest backup ${point(e)} cannot be restored: ${e.problem!.message}; ${intactHint(cat)}`);
  return e;
}

export function selectBackup(cat: Catalog, sel: Selector, fs: string, store: Where): Selection {
  const all = cat.entries;
  const location = store.location;
  let pick: CatalogEntry | undefined;
  const list = () => "run zrb list to see the backups";
  if (sel.backupId !== undefined) {
    pick = all.find((e) => e.backupId === sel.backupId);
    const bad = cat.corrupt.find((c) => c.backupId === sel.backupId);
    if (!pick && bad) throw integrityError(bad.message);
    if (!pick) throw usageError(`no backup ${sel.backupId} of ${fs} in ${location}; ${list()}`);
  } else if (sel.snapshot !== undefined) {
    const want = shortSnap(sel.snapshot);
    const c = all.filter((e) => shortSnap(e.snapshot) === want);
    if (c.length === 0) throw usageError(`no backup of snapshot ${want} of ${fs} in ${location}; ${list()}`);
    pick = c.filter((e) => e.restorable).at(-1) ?? c.at(-1);
  } else if (sel.level !== undefined) {
    const c = all.filter((e) => e.level === sel.level);
    if (c.length === 0) throw usageError(`no level-${sel.level} backup of ${fs} in ${location}; ${list()}`);
    pick = c.at(-1);
  } else {
    pick = newestRestorable(cat, fs, store);
  }
  if (!pick) throw usageError(`no matching backup of ${fs} in ${location}; ${list()}`);
  if (!pick.restorable) throw notRestorable(pick, cat, store);
  const manifest = cat.manifests.get(pick.backupId)!;
  const chain = resolveChain(manifest, cat.manifests);
  return { manifest, chain };
}

// ───────────────────────────── plan ─────────────────────────────

export interface StepPlan {
  step: number;
  level: number;
  backupId: string;
  snapshot: string;
  snapshotGuid: string;
  parentSnapshot: string | null;
  parts: number;
  /** Ciphertext bytes to download. */
  downloadBytes: number;
  /** Size of the zfs send stream. */
  streamBytes: number;
  storageClasses: string[];
  /** Objects in an archived class (GLACIER / DEEP_ARCHIVE), and how many of them are readable now. */
  archived: number;
  thawed: number;
  thawing: number;
  action: "present" | "receive";
}

export interface RestorePlan {
  source: string;
  location: string;
  target: string;
  targetExists: boolean;
  backupId: string;
  snapshot: string;
  force: boolean;
  steps: StepPlan[];
  /** Index of the first step to apply (steps before it are already on the target). */
  resumeFrom: number;
  /** Archived objects of the steps to apply that are not readable yet. */
  frozen: number;
  warnings: string[];
}

interface Inspected {
  plan: RestorePlan;
  chain: Manifest[];
  /** key → object info (class, restore status) of every part of the steps to apply. */
  objects: Map<string, ObjectInfo>;
  targetSnaps: zfs.Snapshot[];
}

export function checkTargetName(target: string): void {
  if (!target) throw usageError("--target POOL/DATASET is required (where to restore to, e.g. tank/restored)");
  if (target.includes("@")) throw usageError(`--target ${target} must be a dataset, not a snapshot (drop the @…)`);
  const why = datasetProblem(target);
  if (why) throw usageError(`--target ${JSON.stringify(target)} is not a valid dataset name: ${why}`);
}

async function inspect(store: ObjectStore, chain: Manifest[], target: string, force: boolean, fs: string): Promise<Inspected> {
  const pool = target.split("/")[0]!;
  if (!(await zfs.poolExists(pool)))
    throw zfsError(`pool ${pool} (of --target ${target}) does not exist; create it (zpool create) or import it (zpool import ${pool}), or choose another --target`);
  const targetExists = await zfs.datasetExists(target);
  if (!targetExists) {
    const parent = target.slice(0, target.lastIndexOf("/"));
    if (parent !== pool && !(await zfs.datasetExists(parent)))
      throw zfsError(`parent ${parent} of --target ${target} does not exist; create it first (zfs create -p ${parent}) or choose another --target`);
  }
  const targetSnaps = targetExists ? await zfs.listSnapshots(target) : [];
  const guids = new Set(targetSnaps.map((s) => s.guid));
  let have = -1;
  chain.forEach((m, i) => {
    if (guids.has(m.snapshot.guid)) have = i;
  });
  const warnings: string[] = [];
  if (targetExists && have < 0 && !force)
    throw zfsError(
      `target ${target} already exists and holds none of the snapshots of this chain; ` +
        `choose a new --target, or add --force to overwrite it (zfs receive -F: its current contents are replaced)`,
    );
  if (targetExists && have >= 0) {
    const after = targetSnaps.filter((s) => s.createtxg > targetSnaps.find((t) => t.guid === chain[have]!.snapshot.guid)!.createtxg);
    if (after.length && have < chain.length - 1)
      warnings.push(`${target} has snapshots newer than ${chain[have]!.snapshot.name.split("@")[1]} (e.g. ${after[0]!.name}); the next incremental receive needs --force (zfs receive -F rolls them back)`);
  }
  const objects = new Map<string, ObjectInfo>();
  const steps: StepPlan[] = [];
  let frozen = 0;
  for (const [i, m] of chain.entries()) {
    const present = i <= have;
    const listed = new Map((await store.list(dataPrefix(m.pool, m.dataset, m.level, m.backupId))).map((o) => [o.key, o]));
    const classes = new Set<string>();
    let archived = 0;
    let thawed = 0;
    let thawing = 0;
    for (const p of m.parts) {
      let info = listed.get(p.key);
      if (!info) throw storeError(`part ${p.index} of backup ${m.backupId} is missing: ${store.urlOf(p.key)}; run zrb list to see which backups are intact`);
      const cls = info.storageClass ?? m.storageClass ?? "STANDARD";
      classes.add(cls);
      if (ARCHIVED_CLASSES.has(cls)) {
        archived++;
        if (!present) {
          const h = await store.head(p.key);
          if (h) info = { ...info, ...h, storageClass: cls };
          if (info.restore === "available") thawed++;
          else if (info.restore === "ongoing") thawing++;
          if (info.restore !== "available") frozen++;
        }
      } else {
        info = { ...info, storageClass: cls };
      }
      if (!present) objects.set(p.key, info);
    }
    steps.push({
      step: i + 1,
      level: m.level,
      backupId: m.backupId,
      snapshot: m.snapshot.name,
      snapshotGuid: m.snapshot.guid,
      parentSnapshot: m.parent?.name ?? null,
      parts: m.parts.length,
      downloadBytes: m.parts.reduce((a, p) => a + p.cipherSize, 0),
      streamBytes: m.stream.size,
      storageClasses: [...classes].sort(),
      archived,
      thawed,
      thawing,
      action: present ? "present" : "receive",
    });
  }
  const last = chain.at(-1)!;
  return {
    plan: {
      source: fs,
      location: store.location,
      target,
      targetExists,
      backupId: last.backupId,
      snapshot: last.snapshot.name,
      force,
      steps,
      resumeFrom: have + 1,
      frozen,
      warnings,
    },
    chain,
    objects,
    targetSnaps,
  };
}

// ───────────────────────────── thaw ─────────────────────────────

export interface ThawProgress {
  total: number;
  requested: number;
  ongoing: number;
  available: number;
}

/** Ask for every archived object of the steps to apply at once; report how many are requested/ongoing/available. */
export async function thawObjects(
  store: ObjectStore,
  objects: ObjectInfo[],
  opts: { tier: ThawTier; days: number; concurrency?: number },
): Promise<ThawProgress> {
  const todo = objects.filter((o) => ARCHIVED_CLASSES.has(o.storageClass ?? ""));
  const prog: ThawProgress = { total: todo.length, requested: 0, ongoing: 0, available: 0 };
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const o = todo[next++]!;
      if (o.restore === "available") {
        prog.available++;
        continue;
      }
      const r = await store.thaw(o.key, { tier: opts.tier, days: opts.days });
      prog[r]++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 16, Math.max(1, todo.length)) }, worker));
  return prog;
}

// ───────────────────────────── download ─────────────────────────────

function interrupted(signal?: AbortSignal): ZrbError {
  const r = signal?.reason;
  if (r instanceof ZrbError) return r;
  return new ZrbError("interrupted", r === "SIGTERM" ? ExitCode.SIGTERM : ExitCode.SIGINT);
}

/** "part 3 of backup <id> (s3://bucket/prefix/data/…)": `url` is where the part lives (ObjectStore.urlOf). */
function partName(m: Manifest, p: ManifestPart, url: string): string {
  return `part ${p.index} of backup ${m.backupId} (${url})`;
}

/**
 * Download one part to `path`, hashing as it goes. Transport errors and short bodies are
 * retried (resuming with a byte range); a SHA-256 mismatch is downloaded once more from
 * scratch, then reported with both hashes. On return the file holds exactly the bytes the
 * manifest describes.
 */
export async function downloadPart(
  store: ObjectStore,
  m: Manifest,
  p: ManifestPart,
  path: string,
  opts: { attempts: number; signal?: AbortSignal },
): Promise<void> {
  const name = partName(m, p, store.urlOf(p.key));
  for (let round = 0; ; round++) {
    const sha = new Bun.CryptoHasher("sha256");
    let got = 0;
    let fh;
    try {
      // Never through a link someone planted: remove whatever is there, create exclusively.
      rmSync(path, { force: true });
      fh = await open(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw fsError(err, "creating restore scratch file", path);
    }
    try {
      for (let attempt = 1; ; attempt++) {
        if (opts.signal?.aborted) throw interrupted(opts.signal);
        try {
          const stream = await store.getStream(p.key, got > 0 ? { start: got } : undefined);
          for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
            if (opts.signal?.aborted) throw interrupted(opts.signal);
            if (got + chunk.length > p.cipherSize)
              throw integrityError(`${name} is larger than the ${p.cipherSize} bytes its manifest records`);
            sha.update(chunk);
            let off = 0;
            while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
            got += chunk.length;
          }
          if (got < p.cipherSize) throw Object.assign(new Error(`truncated download: got ${got} of ${p.cipherSize} bytes`), { truncated: true });
          break;
        } catch (err) {
          if (err instanceof ZrbError) {
            if (/does not exist/.test(err.message))
              throw storeError(`${name} is missing from the store; run zrb list to see which backups are still intact`);
            // The store already retried the request itself; only broken bodies are retried here.
            throw err;
          }
          if ((err as { code?: string }).code === "ENOSPC" || (err as { code?: string }).code === "EIO") throw fsError(err, "writing restore scratch file", path);
          if (attempt >= opts.attempts)
            throw storeError(
              (err as { truncated?: boolean }).truncated
                ? `${name}: truncated download, got ${got} of ${p.cipherSize} bytes after ${attempt} attempts; check the network and rerun`
                : `downloading ${name} failed after ${attempt} attempts: ${describeError(err)}`,
              err,
            );
          const delay = Math.min(200 * 2 ** (attempt - 1), 5000);
          log.warn(`${name}: ${describeError(err)}; retrying from byte ${got} in ${delay} ms`);
          await sleep(delay, opts.signal).catch(() => {
            throw interrupted(opts.signal);
          });
        }
      }
    } finally {
      await fh.close();
    }
    const digest = sha.digest("hex");
    if (digest === p.sha256) return;
    if (round === 0) {
      log.warn(`${name}: SHA-256 mismatch, downloading it again`);
      continue;
    }
    rmSync(path, { force: true });
    throw integrityError(`${name}: ciphertext SHA-256 is ${digest}, manifest says ${p.sha256}; the object in the store is damaged or was replaced`);
  }
}


/**
 * Downloads the parts of one backup in order, at most `ahead` of them on disk at once
 * (a slot is freed when the consumer has used and deleted a file). Each resolved file has
 * already passed its SHA-256 check.
 */
class PartFetcher {
  private readonly slots: Semaphore;
  private readonly done: { promise: Promise<string>; resolve: (p: string) => void; reject: (e: unknown) => void }[];
  private readonly ac = new AbortController();
  private stopped = false;

  constructor(
    private store: ObjectStore,
    private m: Manifest,
    private dir: string,
    ahead: number,
    private attempts: number,
    signal?: AbortSignal,
  ) {
    this.slots = new Semaphore(Math.max(1, ahead));
    this.done = m.parts.map(() => {
      let resolve!: (p: string) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<string>((a, b) => ((resolve = a), (reject = b)));
      promise.catch(() => {});
      return { promise, resolve, reject };
    });
    const onAbort = () => this.ac.abort(signal!.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    void this.pump();
  }

  /** Scratch file name: derived from the part index only, never from a key in the manifest. */
  pathOf(index: number): string {
    return join(this.dir, `part-${String(index).padStart(6, "0")}.age`);
  }

  private async pump(): Promise<void> {
    for (const p of this.m.parts) {
      await this.slots.acquire();
      if (this.stopped) return;
      const path = this.pathOf(p.index);
      downloadPart(this.store, this.m, p, path, { attempts: this.attempts, signal: this.ac.signal }).then(
        () => this.done[p.index]!.resolve(path),
        (e) => {
          rmSync(path, { force: true });
          this.done[p.index]!.reject(e);
        },
      );
    }
  }

  take(index: number): Promise<string> {
    return this.done[index]!.promise;
  }

  /** The consumer is finished with part `index`: delete its file and free its slot. */
  release(index: number): void {
    rmSync(this.pathOf(index), { force: true });
    this.slots.release();
  }

  stop(): void {
    this.stopped = true;
    this.ac.abort(new ZrbError("stopped", ExitCode.FAILURE));
    for (let i = 0; i < 64; i++) this.slots.release();
  }
}

// ───────────────────────────── decrypt + verify ─────────────────────────────

function ageError(err: unknown, m: Manifest, p: ManifestPart, url: string): ZrbError {
  const msg = (err as Error)?.message ?? String(err);
  if (err instanceof ZrbError && err.exitCode !== ExitCode.INTEGRITY && !/does not match any recipient/.test(msg)) return err;
  if (/does not match any recipient|no identity matched|no matching identit/i.test(msg))
    return cryptoError(
      `this identity does not match any recipient of backup ${m.backupId}; it was encrypted to ${m.recipients.join(", ")}: use the private key file of one of those recipients`,
    );
  return integrityError(`${partName(m, p, url)} does not decrypt: ${msg.split("\n")[0]}`);
}

/**
 * Decrypt one verified ciphertext file, check its plaintext size and BLAKE3 against the
 * manifest, and hand each plaintext piece to `emit` in order.
 */
export async function decryptPart(
  path: string,
  m: Manifest,
  p: ManifestPart,
  identities: string[],
  /** Where the part lives, for messages (ObjectStore.urlOf). */
  url: string,
  emit: (b: Uint8Array) => Promise<void> | void,
): Promise<void> {
  let dec: AgeDecryptStream;
  try {
    dec = await AgeDecryptStream.create(identities);
  } catch (err) {
    throw ageError(err, m, p, url);
  }
  const h = await createBlake3();
  let size = 0;
  const out = async (b: Uint8Array) => {
    if (b.length === 0) return;
    size += b.length;
    if (size > p.plainSize) throw integrityError(`${partName(m, p, url)} decrypts to more than the ${p.plainSize} bytes its manifest records`);
    h.update(b);
    await emit(b);
  };
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(READ_BUF);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      let plain: Uint8Array;
      try {
        plain = await dec.push(buf.subarray(0, bytesRead));
      } catch (err) {
        throw ageError(err, m, p, url);
      }
      await out(plain);
    }
    let last: Uint8Array;
    try {
      last = dec.finish();
    } catch (err) {
      throw ageError(err, m, p, url);
    }
    await out(last);
  } finally {
    await fh.close();
  }
  if (size !== p.plainSize)
    throw integrityError(`${partName(m, p, url)} decrypts to ${size} bytes, manifest says ${p.plainSize}`);
  const digest = h.digestHex();
  if (digest !== p.blake3)
    throw integrityError(`${partName(m, p, url)}: plaintext BLAKE3 is ${digest}, manifest says ${p.blake3}`);
}

/**
 * Check before any download that the identity opens this chain: fetch the age header of
 * the first part (a ranged GET) and unwrap its file key. Only the header is authenticated
 * (age's header MAC); no plaintext is produced or used.
 */
async function preflightIdentity(store: ObjectStore, m: Manifest, identities: string[]): Promise<void> {
  const p = m.parts[0];
  if (!p) return;
  const end = Math.min(p.cipherSize, 16 * 1024) - 1;
  let head: Uint8Array;
  try {
    head = new Uint8Array(await new Response(await store.getStream(p.key, { start: 0, end })).arrayBuffer());
  } catch {
    return; // the real download reports store problems with more detail
  }
  let dec: AgeDecryptStream;
  try {
    dec = await AgeDecryptStream.create(identities);
    await dec.push(head);
  } catch (err) {
    const e = ageError(err, m, p, store.urlOf(p.key));
    if (e.exitCode === ExitCode.CRYPTO) throw e;
  }
}

// ───────────────────────────── receive ─────────────────────────────

function receiveError(target: string, code: number, stderr: string, m: Manifest, force: boolean): ZrbError {
  const msg = zfs.firstLine(stderr) || `exit ${code}`;
  const snap = shortSnap(m.snapshot.name);
  if (/destination has snapshots/.test(msg))
    return zfsError(`zfs receive of ${snap} into ${target} failed: ${msg}; ${target} has snapshots that are not part of this chain: destroy them or choose another --target`);
  if (/has been modified|most recent snapshot/.test(msg) && !force)
    return zfsError(`zfs receive of ${snap} into ${target} failed: ${msg}; rerun with --force to roll ${target} back (zfs receive -F)`);
  if (/out of space|no space/i.test(msg)) return zfsError(`zfs receive of ${snap} into ${target} failed: ${msg}; free space in the pool`);
  return zfsError(`zfs receive of ${snap} into ${target} failed: ${msg}`);
}

async function waitGone(target: string, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (!(await zfs.datasetExists(target))) return true;
    if (Date.now() > until) return false;
    await Bun.sleep(200);
  }
}

/** Remove what a failed step left behind. `created`: the step was creating the target. */
async function cleanupFailedStep(target: string, created: boolean, m: Manifest, caps: zfs.ZfsCaps, resumable: boolean): Promise<void> {
  if (resumable) await zfs.abortReceive(target, caps).catch(() => {});
  if (created) {
    // zfs-fuse's daemon notices the closed pipe asynchronously and removes the new dataset itself.
    if (await waitGone(target, 5000)) return;
    for (let i = 0; i < 20; i++) {
      const r = await zfs.zfsRun(["destroy", "-r", target]);
      if (r.code === 0 || (await waitGone(target, 500))) return;
      await Bun.sleep(250);
    }
    log.error(`could not remove the partially received ${target}; destroy it by hand: zfs destroy -r ${target}`);
    return;
  }
  const snaps = await zfs.listSnapshots(target).catch(() => [] as zfs.Snapshot[]);
  if (snaps.some((s) => s.guid === m.snapshot.guid))
    log.error(`${target} unexpectedly holds snapshot ${shortSnap(m.snapshot.name)} of the failed step; destroy it: zfs destroy ${target}@${shortSnap(m.snapshot.name)}`);
}

export interface StepOptions {
  target: string;
  force: boolean;
  identities: string[];
  scratchRoot: string;
  ahead: number;
  attempts: number;
  signal?: AbortSignal;
}

/** Apply one step of the chain: download, verify, decrypt and receive it. */
async function applyStep(store: ObjectStore, m: Manifest, caps: zfs.ZfsCaps, opts: StepOptions): Promise<{ seconds: number }> {
  const t0 = performance.now();
  const { target } = opts;
  const scratch = join(opts.scratchRoot, m.backupId);
  try {
    mkdirSync(scratch, { recursive: true, mode: 0o700 });
    for (const f of readdirSync(scratch)) rmSync(join(scratch, f), { force: true, recursive: true });
  } catch (err) {
    throw fsError(err, "preparing restore scratch directory", scratch);
  }
  const created = !(await zfs.datasetExists(target));
  const resumable = caps.recvFlags.has("s");
  const proc = zfs.spawnReceive(target, { force: opts.force, resumable: true }, caps);
  const stderrText = new Response(proc.stderr).text();
  void new Response(proc.stdout).text();
  let exitCode: number | null = null;
  const exited = proc.exited.then((c) => (exitCode = c));
  const sink = proc.stdin as FileSink;
  const fetcher = new PartFetcher(store, m, scratch, opts.ahead, opts.attempts, opts.signal);

  const receiveDied = async (): Promise<ZrbError> => {
    await Promise.race([exited, Bun.sleep(5000)]);
    return receiveError(target, exitCode ?? -1, await Promise.race([stderrText, Bun.sleep(1000).then(() => "")]), m, opts.force);
  };
  const write = async (b: Uint8Array) => {
    if (exitCode !== null) throw await receiveDied();
    try {
      sink.write(b);
      await sink.flush();
    } catch {
      throw await receiveDied();
    }
  };

  // The last WITHHOLD bytes actually read (never a size the manifest claims) stay here until
  // every hash has matched: they hold the stream's END record, without which zfs receive
  // cannot commit the snapshot.
  const tail: Uint8Array[] = [];
  let tailLen = 0;
  const whole = await createBlake3();
  let off = 0;
  const emit = async (b: Uint8Array) => {
    if (opts.signal?.aborted) throw interrupted(opts.signal);
    whole.update(b);
    off += b.length;
    tail.push(b.slice());
    tailLen += b.length;
    while (tailLen > WITHHOLD) {
      const first = tail[0]!;
      const spare = tailLen - WITHHOLD;
      if (first.length <= spare) {
        tail.shift();
        tailLen -= first.length;
        await write(first);
      } else {
        tail[0] = first.subarray(spare);
        tailLen -= spare;
        await write(first.subarray(0, spare));
      }
    }
  };

  try {
    for (const p of m.parts) {
      let path: string;
      try {
        path = await fetcher.take(p.index);
        await decryptPart(path, m, p, opts.identities, store.urlOf(p.key), emit);
      } finally {
        fetcher.release(p.index);
      }
      log.info(`backup ${m.backupId}: part ${p.index + 1}/${m.parts.length} verified (${p.plainSize} bytes)`);
    }
    if (off !== m.stream.size) throw integrityError(`backup ${m.backupId}: the parts add up to ${off} bytes, manifest says ${m.stream.size}`);
    const digest = whole.digestHex();
    if (digest !== m.stream.blake3)
      throw integrityError(`backup ${m.backupId}: stream BLAKE3 is ${digest}, manifest says ${m.stream.blake3}; nothing was committed to ${target}`);
    // Everything verified: release the withheld tail (with the END record) and let receive commit.
    for (const t of tail) await write(t);
    tail.length = 0;
    tailLen = 0;
    try {
      sink.end();
    } catch {}
    const code = await exited;
    if (code !== 0) throw receiveError(target, code, await stderrText, m, opts.force);
    const snaps = await zfs.listSnapshots(target);
    if (!snaps.some((s) => s.guid === m.snapshot.guid))
      throw zfsError(`zfs receive of backup ${m.backupId} succeeded but ${target} has no snapshot with guid ${m.snapshot.guid} (${shortSnap(m.snapshot.name)})`);
  } catch (err) {
    fetcher.stop();
    proc.kill("SIGKILL");
    try {
      sink.end();
    } catch {}
    await Promise.race([exited, Bun.sleep(5000)]);
    await cleanupFailedStep(target, created, m, caps, resumable);
    throw err;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return { seconds: (performance.now() - t0) / 1000 };
}

// ───────────────────────────── restore ─────────────────────────────

export interface RestoreOptions {
  target: string;
  selector: Selector;
  force: boolean;
  /** Path of an age identity file; required unless planOnly. */
  privateKey?: string;
  planOnly: boolean;
  thaw?: { tier: ThawTier; days: number };
  /** Parts downloaded ahead (and on scratch disk) at most. */
  ahead?: number;
  signal?: AbortSignal;
  /** Progress of thaw requests (called once per run, after all requests were sent). */
  onThaw?: (p: ThawProgress) => void;
}

export interface RestoreResult {
  plan: RestorePlan;
  thaw?: ThawProgress;
  applied: { backupId: string; level: number; snapshot: string; seconds: number }[];
  /** Snapshot now at the head of the target (full name), when something was restored or already present. */
  restored?: string;
}

export async function restore(cfg: Config, task: Task, store: ObjectStore, opts: RestoreOptions): Promise<RestoreResult> {
  checkTargetName(opts.target);
  if (!opts.planOnly && !opts.privateKey)
    throw usageError("--private-key FILE is required to restore (the age identity file made by zrb genkey or age-keygen)");
  const caps = await zfs.detectCaps();
  const cat = await loadCatalog(store, task.pool, task.dataset);
  const sel = selectBackup(cat, opts.selector, task.fullName, store);
  const partial = opts.force ? null : await zfs.getProp(opts.target, "receive_resume_token");
  if (partial && partial !== "-" && partial !== "")
    throw zfsError(
      `${opts.target} holds a partially received stream (receive_resume_token is set), probably from an interrupted run; discard it with: zfs receive -A ${opts.target}, or rerun with --force`,
    );
  if (opts.force && caps.recvFlags.has("A")) {
    const tok = await zfs.getProp(opts.target, "receive_resume_token");
    if (tok && tok !== "-") await zfs.abortReceive(opts.target, caps);
  }
  const ins = await inspect(store, sel.chain, opts.target, opts.force, task.fullName);
  const { plan } = ins;
  const result: RestoreResult = { plan, applied: [] };
  if (opts.planOnly) return result;

  const toApply = ins.chain.slice(plan.resumeFrom);
  if (toApply.length === 0) {
    log.info(`${opts.target} already holds ${shortSnap(plan.snapshot)} (guid ${sel.manifest.snapshot.guid}); nothing to do`);
    result.restored = `${opts.target}@${shortSnap(plan.snapshot)}`;
    return result;
  }

  if (plan.frozen > 0) {
    if (!opts.thaw)
      throw storeError(
        `${plan.frozen} part(s) of this chain are in an archived storage class (${[...new Set(plan.steps.flatMap((s) => s.storageClasses.filter((c) => ARCHIVED_CLASSES.has(c))))].join(", ")}) and not readable yet; ` +
          `rerun with --thaw [--tier Bulk|Standard|Expedited] [--days N] to request them all, then run the same command again once they are available`,
      );
    const prog = await thawObjects(store, [...ins.objects.values()], opts.thaw);
    result.thaw = prog;
    opts.onThaw?.(prog);
    if (prog.available < prog.total)
      throw new ZrbError(
        `thaw in progress: ${prog.requested} requested now, ${prog.ongoing} already thawing, ${prog.available} of ${prog.total} available; ` +
          `run the same command again later (Expedited: minutes, Standard: hours, Bulk: up to 48 h)`,
        ExitCode.STORE,
      );
  }

  const identities = await parseIdentityFile(opts.privateKey!);
  await preflightIdentity(store, toApply[0]!, identities);

  assertSafeBaseDir(cfg.baseDir, { create: true });
  const scratchRoot = join(cfg.baseDir, "restore-scratch");
  const lock = acquireLock(join(scratchRoot, `${encodeURIComponent(opts.target)}.lock`), `restore target ${opts.target}`, `zrb restore --target ${opts.target}`);
  try {
    for (const [i, m] of toApply.entries()) {
      if (opts.signal?.aborted) throw interrupted(opts.signal);
      const n = plan.resumeFrom + i + 1;
      log.info(`step ${n}/${ins.chain.length}: level ${m.level} ${shortSnap(m.snapshot.name)} (backup ${m.backupId}, ${m.parts.length} parts, ${m.stream.size} bytes)`);
      const { seconds } = await applyStep(store, m, caps, {
        target: opts.target,
        // -F on every step: a forced target may be mounted, and atime updates between steps
        // would otherwise make the next incremental fail with "has been modified".
        force: opts.force,
        identities,
        scratchRoot,
        ahead: opts.ahead ?? 2,
        attempts: cfg.s3.retry.maxAttempts,
        signal: opts.signal,
      });
      result.applied.push({ backupId: m.backupId, level: m.level, snapshot: `${opts.target}@${shortSnap(m.snapshot.name)}`, seconds });
      log.info(`step ${n}/${ins.chain.length}: ${opts.target}@${shortSnap(m.snapshot.name)} received and verified in ${seconds.toFixed(1)} s`);
    }
  } finally {
    lock.release();
  }
  result.restored = `${opts.target}@${shortSnap(plan.snapshot)}`;
  return result;
}

// ───────────────────────────── verify (no zfs) ─────────────────────────────

export interface PartCheck {
  backupId: string;
  index: number;
  key: string;
  ok: boolean;
  error?: string;
}

export interface VerifyReport {
  location: string;
  backups: { backupId: string; level: number; snapshot: string; parts: number; checked: number; streamBlake3: "ok" | "mismatch" | "not checked"; error?: string }[];
  parts: PartCheck[];
  decrypted: boolean;
  ok: boolean;
}

/**
 * Download parts and check them without zfs: ciphertext size and SHA-256 always; with
 * identities, also decryption, per-part BLAKE3 and (when every part of a backup is checked)
 * the whole-stream BLAKE3. One part at a time sits on scratch disk as ciphertext.
 */
export async function verifyBackups(
  store: ObjectStore,
  backups: Manifest[],
  opts: { identities?: string[]; sample?: number; attempts: number; signal?: AbortSignal; scratch: string },
): Promise<VerifyReport> {
  const all = backups.flatMap((m) => m.parts.map((p) => ({ m, p })));
  let chosen: Set<string> | null = null;
  if (opts.sample !== undefined && opts.sample < all.length) {
    const idx = all.map((_, i) => i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = crypto.getRandomValues(new Uint32Array(1))[0]! % (i + 1);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    chosen = new Set(idx.slice(0, opts.sample).map((i) => `${all[i]!.m.backupId}/${all[i]!.p.index}`));
  }
  const report: VerifyReport = { location: store.location, backups: [], parts: [], decrypted: !!opts.identities, ok: true };
  // A directory of our own, created 0700 under a name nobody could predict.
  mkdirSync(opts.scratch, { recursive: true, mode: 0o700 });
  const scratch = mkdtempSync(join(opts.scratch, "verify-"));
  try {
    for (const m of backups) {
      const whole = opts.identities && !chosen ? await createBlake3() : null;
      let checked = 0;
      let wholeOk = true;
      let berr: string | undefined;
      for (const p of m.parts) {
        if (chosen && !chosen.has(`${m.backupId}/${p.index}`)) continue;
        if (opts.signal?.aborted) throw interrupted(opts.signal);
        const path = join(scratch, `part-${String(p.index).padStart(6, "0")}.age`);
        const rec: PartCheck = { backupId: m.backupId, index: p.index, key: p.key, ok: true };
        try {
          await downloadPart(store, m, p, path, { attempts: opts.attempts, signal: opts.signal });
          if (opts.identities) await decryptPart(path, m, p, opts.identities, store.urlOf(p.key), (b) => whole?.update(b));
        } catch (err) {
          if (!(err instanceof ZrbError) || err.exitCode === ExitCode.SIGINT || err.exitCode === ExitCode.SIGTERM) throw err;
          if (err.exitCode === ExitCode.CRYPTO) throw err;
          rec.ok = false;
          rec.error = err.message;
          wholeOk = false;
          report.ok = false;
          log.error(err.message);
        } finally {
          rmSync(path, { force: true });
        }
        checked++;
        report.parts.push(rec);
        log.info(`backup ${m.backupId}: part ${p.index + 1}/${m.parts.length} ${rec.ok ? "ok" : "FAILED"}`);
      }
      let streamBlake3: "ok" | "mismatch" | "not checked" = "not checked";
      if (whole && wholeOk) {
        const d = whole.digestHex();
        streamBlake3 = d === m.stream.blake3 ? "ok" : "mismatch";
        if (streamBlake3 === "mismatch") {
          berr = `backup ${m.backupId}: stream BLAKE3 is ${d}, manifest says ${m.stream.blake3}`;
          log.error(berr);
          report.ok = false;
        }
      }
      report.backups.push({
        backupId: m.backupId,
        level: m.level,
        snapshot: m.snapshot.name,
        parts: m.parts.length,
        checked,
        streamBlake3,
        ...(berr ? { error: berr } : {}),
      });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return report;
}
