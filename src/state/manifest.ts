/**
 * The catalog in the bucket: one manifest per backup plus a per-level head file.
 * The bucket alone is enough to list and restore everything; local files are a cache.
 */
import YAML from "yaml";
import type { ObjectStore } from "../store/store.ts";
import { ZrbError, integrityError } from "../util/errors.ts";
import { log } from "../util/log.ts";

export const MANIFEST_FORMAT = "zrb-manifest/1";

export interface ManifestPart {
  index: number;
  /** Object key relative to the store prefix. */
  key: string;
  plainSize: number;
  cipherSize: number;
  /** SHA-256 (hex) of the encrypted object. */
  sha256: string;
  /** BLAKE3 (hex) of this part's plaintext (its slice of the send stream). */
  blake3: string;
}

export interface SnapshotRef {
  name: string;
  guid: string;
  createtxg?: string;
}

export interface Manifest {
  format: string;
  backupId: string;
  pool: string;
  dataset: string;
  level: number;
  snapshot: SnapshotRef;
  parent: (SnapshotRef & { backupId: string; level: number }) | null;
  send: { flags: string[]; zfs: string };
  stream: { size: number; blake3: string };
  recipients: string[];
  storageClass: string;
  chunkSize: number;
  parts: ManifestPart[];
  tool: { name: string; version: string };
  host: string;
  startedAt: string;
  finishedAt: string;
}

/** Per-level heads: the newest backup at each level that is still part of the live chain. */
export interface Heads {
  format: string;
  updatedAt: string;
  levels: Record<string, { backupId: string; snapshot: SnapshotRef; finishedAt: string }>;
}

export function fullName(pool: string, dataset: string): string {
  return dataset ? `${pool}/${dataset}` : pool;
}

export function dataPrefix(pool: string, dataset: string, level: number, backupId: string): string {
  return `data/${fullName(pool, dataset)}/level${level}/${backupId}/`;
}

export function partKey(pool: string, dataset: string, level: number, backupId: string, index: number): string {
  return `${dataPrefix(pool, dataset, level, backupId)}part-${String(index).padStart(6, "0")}.age`;
}

export function manifestDir(pool: string, dataset: string): string {
  return `manifests/${fullName(pool, dataset)}/`;
}

export function manifestKey(pool: string, dataset: string, backupId: string): string {
  return `${manifestDir(pool, dataset)}${backupId}.manifest.yaml`;
}

export function headsKey(pool: string, dataset: string): string {
  return `${manifestDir(pool, dataset)}heads.yaml`;
}

/** Unique, sortable backup id: UTC time, level, random suffix. */
export function newBackupId(level: number, now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const rand = Buffer.from(crypto.getRandomValues(new Uint8Array(3))).toString("hex");
  return `${t}-L${level}-${rand}`;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Parse and sanity-check a manifest fetched from the store. */
export function parseManifest(text: string, key: string, expect: { pool: string; dataset: string }): Manifest {
  let m: Manifest;
  try {
    m = YAML.parse(text) as Manifest;
  } catch (err) {
    throw integrityError(`manifest ${key} is not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const bad = (what: string) => integrityError(`manifest ${key} is corrupt: ${what}`);
  if (!m || typeof m !== "object" || m.format !== MANIFEST_FORMAT) throw bad(`unknown format ${JSON.stringify(m?.format)}`);
  if (m.pool !== expect.pool || m.dataset !== expect.dataset) throw bad(`it describes ${m.pool}/${m.dataset}`);
  if (!Number.isInteger(m.level) || m.level < 0) throw bad("bad level");
  if (typeof m.backupId !== "string" || !/^[0-9A-Za-z-]+$/.test(m.backupId)) throw bad("bad backupId");
  if (!m.snapshot || typeof m.snapshot.name !== "string" || typeof m.snapshot.guid !== "string") throw bad("bad snapshot");
  if (!m.stream || !HEX64.test(m.stream.blake3) || !Number.isSafeInteger(m.stream.size)) throw bad("bad stream hash/size");
  if (!Array.isArray(m.parts)) throw bad("no parts");
  const dp = dataPrefix(m.pool, m.dataset, m.level, m.backupId);
  let total = 0;
  m.parts.forEach((p, i) => {
    if (p.index !== i) throw bad(`part ${i} has index ${p.index}`);
    if (typeof p.key !== "string" || !p.key.startsWith(dp) || p.key.includes("..") || p.key.slice(dp.length).includes("/"))
      throw bad(`part ${i} key ${JSON.stringify(p.key)} is outside ${dp}`);
    if (!HEX64.test(p.sha256) || !HEX64.test(p.blake3)) throw bad(`part ${i} has a malformed hash`);
    if (!Number.isSafeInteger(p.plainSize) || !Number.isSafeInteger(p.cipherSize) || p.plainSize < 0 || p.cipherSize <= 0)
      throw bad(`part ${i} has a bad size`);
    total += p.plainSize;
  });
  if (total !== m.stream.size) throw bad(`parts add up to ${total} bytes, stream size says ${m.stream.size}`);
  return m;
}

/** Every manifest of one dataset in the store, oldest first (by finish time, then id). */
export async function listManifests(
  store: ObjectStore,
  pool: string,
  dataset: string,
  onCorrupt: (key: string, message: string) => void = (_k, m) => log.warn(`${m} (left out)`),
): Promise<Manifest[]> {
  const dir = manifestDir(pool, dataset);
  const objs = await store.list(dir);
  const keys = objs
    .map((o) => o.key)
    .filter((k) => k.endsWith(".manifest.yaml") && !k.slice(dir.length).includes("/"))
    .sort();
  const out: Manifest[] = [];
  for (const key of keys) {
    const body = await store.get(key);
    if (!body) continue;
    try {
      out.push(parseManifest(new TextDecoder().decode(body), key, { pool, dataset }));
    } catch (err) {
      // One damaged manifest must not hide every other backup on the worst day: it is
      // reported and left out, so only the chains that need it become unrestorable.
      if (!(err instanceof ZrbError)) throw err;
      onCorrupt(key, err.message);
    }
  }
  // Ids carry the start time to the second; two runs in one second are ordered by when they finished.
  out.sort((a, b) => (a.finishedAt < b.finishedAt ? -1 : a.finishedAt > b.finishedAt ? 1 : a.backupId < b.backupId ? -1 : 1));
  return out;
}

/** Heads as recorded in the store; rebuilt from the manifests if the file is missing. */
export async function readHeads(store: ObjectStore, pool: string, dataset: string): Promise<Heads> {
  const body = await store.get(headsKey(pool, dataset));
  if (body) {
    const h = YAML.parse(new TextDecoder().decode(body)) as Heads;
    if (h && typeof h === "object" && h.levels && typeof h.levels === "object") return h;
  }
  return headsFromManifests(await listManifests(store, pool, dataset));
}

/** Replay the backups in order with dump(8) rules: a level-N backup clears every head above N. */
export function headsFromManifests(ms: Manifest[]): Heads {
  let heads: Heads = { format: "zrb-heads/1", updatedAt: new Date(0).toISOString(), levels: {} };
  for (const m of ms) heads = advanceHeads(heads, m);
  return heads;
}

export function advanceHeads(h: Heads, m: Manifest): Heads {
  const levels: Heads["levels"] = {};
  for (const [k, v] of Object.entries(h.levels)) if (Number(k) < m.level) levels[k] = v;
  levels[String(m.level)] = { backupId: m.backupId, snapshot: m.snapshot, finishedAt: m.finishedAt };
  return { format: "zrb-heads/1", updatedAt: new Date().toISOString(), levels };
}

/** dump(8): the base of a level-N backup is the most recent head at any level below N. */
export function chooseParent(h: Heads, level: number): { level: number; backupId: string; snapshot: SnapshotRef } | null {
  let best: { level: number; backupId: string; snapshot: SnapshotRef; finishedAt: string } | null = null;
  for (const [k, v] of Object.entries(h.levels)) {
    const l = Number(k);
    if (l >= level) continue;
    if (!best || v.finishedAt > best.finishedAt || (v.finishedAt === best.finishedAt && l > best.level)) best = { level: l, ...v };
  }
  return best && { level: best.level, backupId: best.backupId, snapshot: best.snapshot };
}
