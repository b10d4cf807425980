/**
 * The catalog in the bucket: one manifest per backup plus a per-level head file.
 * The bucket alone is enough to list and restore everything; local files are a cache.
 */
import YAML from "yaml";
import { isStoreError, type ObjectStore } from "../store/store.ts";
import { isSnapshotOf } from "../zfs/names.ts";
import { backupIdOfCatalogKey, backupIdOfKey, dataPrefix, fullName, isManifestKey, manifestDir } from "../store/layout.ts";
import type { CatalogRef } from "./file-catalog.ts";
import { hasUnsafeChars } from "../util/text.ts";
import { ZrbError, integrityError } from "../util/errors.ts";
import type { Signature } from "../crypto/signing.ts";
import { log } from "../util/log.ts";
import { isInterrupt } from "../util/abort.ts";
import { compareTimes } from "../util/clock.ts";

export const MANIFEST_FORMAT = "zrb-manifest/1";
/**
 * A manifest zrb rekey rewrote (parts with rewrap records): a zrb older than rekey would check
 * those parts against a SHA-256 their objects no longer have and call them damaged; with the
 * format it says instead that a newer zrb wrote the manifest.
 */
export const REKEYED_MANIFEST_FORMAT = "zrb-manifest/2";

export interface ManifestPart {
  index: number;
  /** Object key relative to the store prefix. */
  key: string;
  plainSize: number;
  cipherSize: number;
  /** SHA-256 (hex) of the encrypted object as the backup uploaded it. */
  sha256: string;
  /** BLAKE3 (hex) of this part's plaintext (its slice of the send stream). */
  blake3: string;
  /** Set by zrb rekey: the object now carries a new age header (pipeline/rekey/origin.ts). */
  rewrap?: PartRewrap;
}

/**
 * A part whose age header zrb rekey replaced, its payload untouched: the object is now
 * `prefixSize` bytes of new header and payload nonce (SHA-256 `prefixSha256`) followed by the
 * payload as uploaded. `origin` is the original header and payload nonce, age-encrypted to the
 * manifest's recipients (base64): with the private key, a reader rebuilds the original object's
 * bytes and checks them against `sha256` before decrypting anything.
 */
export interface PartRewrap {
  prefixSize: number;
  prefixSha256: string;
  origin: string;
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
  /**
   * The backup's file catalog (records/file-catalog.ts): absent when none was made (catalog off,
   * a volume, a listing that failed, a zrb before catalogs). Covered by the signature.
   */
  catalog?: CatalogRef;
  /** Made on the NAS with its signing key (config signing_key) over everything above. */
  signature?: Signature;
}

const HEX64 = /^[0-9a-f]{64}$/;
const BACKUP_ID = /^[0-9A-Za-z-]{1,64}$/;
const GUID = /^\d{1,20}$/;
const TXG = /^\d{1,20}$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;
const RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;
const SEND_FLAG = /^-[A-Za-z]{1,8}$/;
const STORAGE_CLASS = /^[A-Z_]{1,32}$/;
/** No manifest zrb writes comes near this (a 10 TiB stream in 64 KiB chunks would); larger is not ours. */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

const isInt = (v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): v is number => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const isText = (v: unknown, max: number): v is string => typeof v === "string" && v.length <= max && !hasUnsafeChars(v);

/**
 * Parse and check a manifest fetched from the store. Everything in it is untrusted text from
 * the bucket: names must be snapshots of exactly this dataset, ids and hashes of their shape,
 * free text printable; part keys must stay inside the backup's own prefix. Throws an integrity
 * ZrbError naming the key and the first problem.
 */
export function parseManifest(text: string, key: string, expect: { pool: string; dataset: string }): Manifest {
  let m: Manifest;
  try {
    m = YAML.parse(text) as Manifest;
  } catch (err) {
    throw integrityError(`manifest ${key} is not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const bad = (what: string) => integrityError(`manifest ${key} is corrupt: ${what}`);
  if (!m || typeof m !== "object") throw bad("it is not a mapping");
  if (m.format !== MANIFEST_FORMAT && m.format !== REKEYED_MANIFEST_FORMAT) {
    const v = /^zrb-manifest\/(\d+)$/.exec(String(m.format));
    if (v && Number(v[1]) > 2)
      throw integrityError(`manifest ${key} has format ${m.format}, written by a newer zrb; use that zrb version (or newer) to read it`);
    throw bad(`unknown format ${JSON.stringify(String(m.format)).slice(0, 60)}`);
  }
  const fs = fullName(expect.pool, expect.dataset);
  if (m.pool !== expect.pool || m.dataset !== expect.dataset) throw bad(`it describes ${String(m.pool)}/${String(m.dataset)}`);
  if (!isInt(m.level, 0, 999)) throw bad("bad level");
  if (typeof m.backupId !== "string" || !BACKUP_ID.test(m.backupId)) throw bad("bad backupId");
  if (key.endsWith(".manifest.yaml") && backupIdOfKey(key) !== m.backupId) throw bad(`it is stored as ${backupIdOfKey(key)} but describes backup ${m.backupId}`);
  const snapOk = (s: unknown) => {
    const r = s as SnapshotRef | null;
    return !!r && typeof r === "object" && isSnapshotOf(r.name, fs) && typeof r.guid === "string" && GUID.test(r.guid) && (r.createtxg === undefined || TXG.test(String(r.createtxg)));
  };
  if (!snapOk(m.snapshot)) throw bad(`snapshot is not a snapshot of ${fs} with a numeric guid`);
  if (m.level === 0 && m.parent !== null && m.parent !== undefined) throw bad("a level-0 backup has a parent");
  if (m.level > 0) {
    const p = m.parent;
    if (!p || !snapOk(p) || typeof p.backupId !== "string" || !BACKUP_ID.test(p.backupId) || !isInt(p.level, 0, m.level - 1))
      throw bad(`level ${m.level} needs a parent: a lower-level backup of a snapshot of ${fs}`);
  }
  m.parent ??= null;
  if (!m.send || !Array.isArray(m.send.flags) || !m.send.flags.every((f) => typeof f === "string" && SEND_FLAG.test(f)) || !isText(m.send.zfs, 200))
    throw bad("bad send flags");
  if (!m.stream || !HEX64.test(m.stream.blake3) || !isInt(m.stream.size)) throw bad("bad stream hash/size");
  if (!Array.isArray(m.recipients) || !m.recipients.every((r) => typeof r === "string" && RECIPIENT.test(r))) throw bad("bad recipients");
  if (typeof m.storageClass !== "string" || !STORAGE_CLASS.test(m.storageClass)) throw bad("bad storage class");
  if (!isInt(m.chunkSize, 1)) throw bad("bad chunk size");
  if (!m.tool || !isText(m.tool.name, 40) || !isText(m.tool.version, 100)) throw bad("bad tool");
  if (!isText(m.host, 255)) throw bad("bad host");
  if (typeof m.startedAt !== "string" || !TIME.test(m.startedAt) || typeof m.finishedAt !== "string" || !TIME.test(m.finishedAt)) throw bad("bad times");
  if (!Array.isArray(m.parts)) throw bad("no parts");
  const dp = dataPrefix(m.pool, m.dataset, m.level, m.backupId);
  let total = 0;
  m.parts.forEach((p, i) => {
    if (!p || typeof p !== "object") throw bad(`part ${i} is not a mapping`);
    if (p.index !== i) throw bad(`part ${i} has index ${String(p.index)}`);
    if (typeof p.key !== "string" || !p.key.startsWith(dp) || p.key.includes("..") || p.key.slice(dp.length).includes("/") || hasUnsafeChars(p.key))
      throw bad(`part ${i} key ${JSON.stringify(String(p.key)).slice(0, 200)} is outside ${dp}`);
    if (!HEX64.test(p.sha256) || !HEX64.test(p.blake3)) throw bad(`part ${i} has a malformed hash`);
    if (!isInt(p.plainSize) || !isInt(p.cipherSize, 1)) throw bad(`part ${i} has a bad size`);
    const w = p.rewrap as unknown as Record<string, unknown> | undefined;
    if (w !== undefined && (!w || typeof w !== "object" || !isInt(w.prefixSize, 1, p.cipherSize) || !HEX64.test(String(w.prefixSha256)) || typeof w.origin !== "string" || !/^[A-Za-z0-9+/=]{1,65536}$/.test(w.origin)))
      throw bad(`part ${i} has a malformed rewrap record`);
    if (w !== undefined && m.format !== REKEYED_MANIFEST_FORMAT) throw bad(`part ${i} has a rewrap record in a ${m.format} manifest`);
    total += p.plainSize;
  });
  if (total !== m.stream.size) throw bad(`parts add up to ${total} bytes, stream size says ${m.stream.size}`);
  if (m.catalog !== undefined) {
    const c = m.catalog as unknown as Record<string, unknown>;
    // A catalog of this dataset (readers take no key from the bucket outside it); whose it is, the signature vouches for.
    if (!c || typeof c !== "object" || typeof c.key !== "string" || backupIdOfCatalogKey(manifestDir(m.pool, m.dataset), c.key) === null)
      throw bad(`catalog key ${JSON.stringify(String(c?.key)).slice(0, 200)} is not a file catalog of ${fs}`);
    if (!isInt(c.size, 1) || !HEX64.test(String(c.sha256)) || !isInt(c.entries) || (c.kind !== "full" && c.kind !== "changes")) throw bad("malformed catalog record");
  }
  if (m.signature !== undefined) {
    const g = m.signature as unknown as Record<string, unknown>;
    if (!g || typeof g !== "object" || g.alg !== "ed25519" || typeof g.key !== "string" || !/^zrbverify1[0-9a-z]{1,100}$/.test(g.key) || typeof g.value !== "string" || !/^[A-Za-z0-9+/=]{1,200}$/.test(g.value))
      throw bad("malformed signature");
  }
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
  const objs = (await store.list(dir))
    .filter((o) => isManifestKey(dir, o.key))
    .sort((a, b) => (a.key < b.key ? -1 : 1));
  const out: Manifest[] = [];
  for (const { key } of objs) {
    try {
      const m = await readManifest(store, key, { pool, dataset });
      if (m) out.push(m);
    } catch (err) {
      // One damaged manifest must not hide every other backup on the worst day: it is
      // reported and left out, so only the chains that need it become unrestorable. A read
      // cut short by SIGTERM/SIGINT says nothing about the manifest: the run stops (143/130).
      if (!(err instanceof ZrbError) || isInterrupt(err)) throw err;
      onCorrupt(key, err.message);
    }
  }
  // Ids carry the start time to the second; two runs in one second are ordered by when they finished.
  out.sort((a, b) => compareTimes(a.finishedAt, b.finishedAt) || (a.backupId < b.backupId ? -1 : 1));
  return out;
}

/**
 * One manifest from the store, parsed and checked; null when it does not exist. Refuses to
 * read more than MAX_MANIFEST_BYTES (an integrity error, like any other damage).
 */
export async function readManifest(store: ObjectStore, key: string, expect: { pool: string; dataset: string }): Promise<Manifest | null> {
  let body: Uint8Array | null;
  try {
    body = await store.get(key, { maxBytes: MAX_MANIFEST_BYTES });
  } catch (err) {
    if (isStoreError(err, "too-large"))
      throw integrityError(`manifest ${key} is too large (${err.size} bytes, over ${MAX_MANIFEST_BYTES / 1024 / 1024} MiB); zrb never writes one that big`);
    throw err;
  }
  if (body === null) return null;
  return parseManifest(new TextDecoder().decode(body), key, expect);
}
