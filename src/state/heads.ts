/**
 * Per-level heads (`manifests/<pool>/<dataset>/heads.yaml`): the newest backup at each level
 * that is still part of the live chain — the bases of the next backups. It is only a cache of
 * the manifests: when it is missing, unreadable, wrongly shaped or names snapshots of another
 * dataset, it is rebuilt from the manifests (with one warning per run), never trusted.
 */
import { readRecord } from "./record.ts";
import type { ObjectStore } from "../store/store.ts";
import { isSnapshotOf } from "../zfs/names.ts";
import { log } from "../util/log.ts";
import { now } from "../util/clock.ts";
import type { Signature } from "../crypto/signing.ts";
import { NO_TRUST, headsTrusted, manifestTrustProblem, type Trust } from "./trust.ts";
import { listManifests, type Manifest, type SnapshotRef } from "./manifest.ts";
import { fullName, headsKey } from "../store/layout.ts";

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
  /** Made with the NAS's signing key over pool, dataset and the rest (state/trust.ts). */
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
  return undefined;
}

const warned = new Set<string>();

/**
 * Heads as recorded in the store; rebuilt from the manifests when missing, not usable, or not
 * signed as `trust` requires (then only trusted manifests count).
 */
export async function readHeads(store: ObjectStore, pool: string, dataset: string, trust: Trust = NO_TRUST): Promise<Heads> {
  const key = headsKey(pool, dataset);
  const fs = fullName(pool, dataset);
  const r = await readRecord<Heads>(store, key, MAX_HEADS_BYTES, (v) => headsProblem(v, fs));
  if (r.kind === "none") return headsFromManifests(await trustedManifests(store, pool, dataset, trust));
  const why = r.kind === "unusable" ? r.why : headsTrusted(r.value, pool, dataset, trust) ? undefined : `it is not signed with ${trust.source}'s key`;
  if (r.kind === "ok" && !why) return r.value;
  if (!warned.has(key)) {
    warned.add(key);
    log.warn(`${key} in ${store.location} is unreadable (${why}); rebuilt the heads from the manifests`);
  }
  return headsFromManifests(await trustedManifests(store, pool, dataset, trust));
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
    if (!best || v.finishedAt > best.finishedAt || (v.finishedAt === best.finishedAt && l > best.level)) best = { level: l, ...v };
  }
  return best && { level: best.level, backupId: best.backupId, snapshot: best.snapshot };
}
