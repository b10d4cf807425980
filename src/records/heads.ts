/**
 * Per-level heads (`manifests/<pool>/<dataset>/heads.yaml`): the newest backup at each level
 * that is still part of the live chain — the bases of the next backups. It is only a cache of
 * the manifests: when it is missing, unreadable, wrongly shaped, names snapshots of another
 * dataset or is not signed as the trust requires, it is rebuilt from the trusted manifests
 * (with one warning per run), never believed.
 *
 * Nor can it be rolled back: each heads.yaml the NAS writes carries a sequence number one above
 * the last (signed with the rest), the NAS remembers the last it wrote (its local head cache)
 * and refuses an older one; and any trusted manifest newer than every head (its backup id
 * sorts later) is replayed on top, so the newest trusted manifest per level wins over heads.
 * That costs one listing of the dataset's manifests per read.
 */
import { readRecord } from "./record.ts";
import type { ObjectStore } from "../store/store.ts";
import { isSnapshotOf } from "../zfs/names.ts";
import { log } from "../util/log.ts";
import { compareTimes, laterTime, now } from "../util/clock.ts";
import type { Signature } from "../crypto/signing.ts";
import { NO_TRUST, canVerify, headsTrusted, manifestTrustProblem, type Trust } from "./trust.ts";
import { listManifests, type Manifest, type SnapshotRef } from "./manifest.ts";
import { backupIdOfKey, fullName, headsKey, isManifestKey, manifestDir, manifestKey } from "../store/layout.ts";
import { ZrbError } from "../util/errors.ts";
import { readManifest } from "./manifest.ts";

export const HEADS_FORMAT = "zrb-heads/1";
const MAX_HEADS_BYTES = 1024 * 1024;

export interface Head {
  backupId: string;
  snapshot: SnapshotRef;
  finishedAt: string;
}

export interface Heads {
  format: string;
  updatedAt: string;
  levels: Record<string, Head>;
  /** One above the heads.yaml this one replaced (absent in files written before it existed). */
  sequence?: number;
  /** Made with the NAS's signing key over pool, dataset and the rest (records/trust.ts). */
  signature?: Signature;
}

/** Why a parsed heads file is not usable for dataset `fs`, or undefined. */
export function headsProblem(h: unknown, fs: string): string | undefined {
  const x = h as Heads;
  if (!x || typeof x !== "object" || Array.isArray(x)) return "it is not a mapping";
  if (x.format !== HEADS_FORMAT) return `unknown format ${JSON.stringify(String(x.format)).slice(0, 40)}`;
  if (!x.levels || typeof x.levels !== "object" || Array.isArray(x.levels)) return "it has no levels";
  for (const [k, v] of Object.entries(x.levels)) {
    if (!/^\d{1,3}$/.test(k)) return `level ${JSON.stringify(k).slice(0, 20)} is not a number`;
    if (!v || typeof v !== "object") return `level ${k} is not a mapping`;
    if (typeof v.backupId !== "string" || !/^[0-9A-Za-z-]{1,64}$/.test(v.backupId)) return `level ${k} has a bad backup id`;
    if (!v.snapshot || !isSnapshotOf(v.snapshot.name, fs) || typeof v.snapshot.guid !== "string" || !/^\d{1,20}$/.test(v.snapshot.guid))
      return `level ${k} names a snapshot that is not one of ${fs}`;
    if (typeof v.finishedAt !== "string") return `level ${k} has no finish time`;
  }
  if (x.sequence !== undefined && !(Number.isSafeInteger(x.sequence) && x.sequence >= 0)) return "its sequence is not a whole number";
  return undefined;
}

const warned = new Set<string>();

/**
 * Heads as recorded in the store; rebuilt from the trusted manifests when missing, not usable,
 * not signed as `trust` requires, or older than `minSequence` (the sequence of the last heads
 * this NAS wrote); then caught up with any trusted manifest newer than every head.
 */
export async function readHeads(store: ObjectStore, pool: string, dataset: string, trust: Trust = NO_TRUST, minSequence = 0): Promise<Heads> {
  const key = headsKey(pool, dataset);
  const fs = fullName(pool, dataset);
  const r = await readRecord<Heads>(store, key, MAX_HEADS_BYTES, (v) => headsProblem(v, fs));
  if (r.kind === "none") return headsFromManifests(await trustedManifests(store, pool, dataset, trust));
  let why = r.kind === "unusable" ? r.why : headsTrusted(r.value, pool, dataset, trust) ? undefined : `it is not signed with a key of ${trust.source}`;
  if (!why && r.kind === "ok" && (r.value.sequence ?? 0) < minSequence)
    why = `its sequence ${r.value.sequence ?? 0} is older than ${minSequence}, the last heads this host wrote: rolled back`;
  if (r.kind === "ok" && !why) return await catchUp(store, pool, dataset, r.value, trust);
  if (!warned.has(key)) {
    warned.add(key);
    log.warn(`${key} in ${store.location} is not used (${why}); rebuilt the heads from the ${canVerify(trust) ? "signed " : ""}manifests`);
  }
  return { ...headsFromManifests(await trustedManifests(store, pool, dataset, trust)), sequence: r.kind === "ok" ? Math.max(r.value.sequence ?? 0, minSequence) : minSequence };
}

/**
 * Replay the trusted manifests that finished after every head (one listing; reads only those
 * not older by their id's second). A backup id's time has a resolution of one second and its
 * random suffix does not sort by time: two backups in the same second (a fast run, a script)
 * are told apart by their manifests' finishedAt, never by their ids.
 */
async function catchUp(store: ObjectStore, pool: string, dataset: string, heads: Heads, trust: Trust): Promise<Heads> {
  const known = new Set(Object.values(heads.levels).map((h) => h.backupId));
  const newest = Object.values(heads.levels).reduce((a, h) => (laterTime(h.finishedAt, a.finishedAt) ? h : a), { backupId: "", finishedAt: "" });
  const second = (id: string) => id.split("-")[0]!;
  const dir = manifestDir(pool, dataset);
  const later = (await store.list(dir))
    .filter((o) => isManifestKey(dir, o.key))
    .map((o) => backupIdOfKey(o.key))
    .filter((id) => !known.has(id) && second(id) >= second(newest.backupId))
    .sort();
  let out = heads;
  const ms: Manifest[] = [];
  for (const id of later) {
    try {
      const m = await readManifest(store, manifestKey(pool, dataset, id), { pool, dataset });
      if (m && manifestTrustProblem(m, trust) === undefined && laterTime(m.finishedAt, newest.finishedAt)) ms.push(m);
    } catch (err) {
      if (!(err instanceof ZrbError)) throw err; // unreadable: not a head (catalog readers report it)
    }
  }
  ms.sort((a, b) => compareTimes(a.finishedAt, b.finishedAt));
  for (const m of ms) out = { ...advanceHeads(out, m), sequence: heads.sequence };
  return out;
}

/** The manifests of a dataset that `trust` accepts (all readable ones without a key). */
async function trustedManifests(store: ObjectStore, pool: string, dataset: string, trust: Trust): Promise<Manifest[]> {
  return (await listManifests(store, pool, dataset)).filter((m) => manifestTrustProblem(m, trust) === undefined);
}

/** Replay the backups in order with dump(8) rules: a level-N backup clears every head above N. */
export function headsFromManifests(ms: Manifest[]): Heads {
  let heads: Heads = { format: HEADS_FORMAT, updatedAt: new Date(0).toISOString(), levels: {} };
  for (const m of ms) heads = advanceHeads(heads, m);
  return heads;
}

export function advanceHeads(h: Heads, m: Manifest): Heads {
  const levels: Heads["levels"] = {};
  for (const [k, v] of Object.entries(h.levels)) if (Number(k) < m.level) levels[k] = v;
  levels[String(m.level)] = { backupId: m.backupId, snapshot: m.snapshot, finishedAt: m.finishedAt };
  return { format: HEADS_FORMAT, updatedAt: now().toISOString(), levels }; // a new file: signed by the writer
}

/** dump(8): the base of a level-N backup is the most recent head at any level below N. */
export function chooseParent(h: Heads, level: number): { level: number; backupId: string; snapshot: SnapshotRef } | null {
  let best: (Head & { level: number }) | null = null;
  for (const [k, v] of Object.entries(h.levels)) {
    const l = Number(k);
    if (l >= level) continue;
    const order = best ? compareTimes(v.finishedAt, best.finishedAt) : 1;
    if (order > 0 || (order === 0 && l > best!.level)) best = { level: l, ...v };
  }
  return best && { level: best.level, backupId: best.backupId, snapshot: best.snapshot };
}
