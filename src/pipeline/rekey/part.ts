/**
 * Rekey one part: read the first ≈ 5 MiB of its object (the age header and the start of the
 * payload), unwrap the file key with the old identity, wrap it to the new recipients, and have
 * the store replace the object with new header ‖ those first payload bytes ‖ the rest of the
 * payload copied inside the store (store.rewriteHead). A part too small for S3's 5 MiB first
 * part is downloaded and written whole. The payload never changes, so the manifest keeps the
 * part's original SHA-256 and BLAKE3 and gains a rewrap record (origin.ts says why and how a
 * reader checks it).
 */
import { MIN_REWRITE_HEAD, type ObjectInfo, type ObjectStore } from "../../store/store.ts";
import type { ManifestPart, PartRewrap } from "../../records/manifest.ts";
import { PAYLOAD_NONCE_SIZE } from "../../crypto/age.ts";
import { rewrapHeader, unwrapFileKey } from "../../crypto/rewrap.ts";
import { ZrbError, integrityError } from "../../util/errors.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { openOrigin, sealOrigin } from "./origin.ts";
import type { RekeyPartState, RekeyStateFile } from "./state.ts";

/** Read beyond the 5 MiB first part: room for the old header (a few hundred bytes per recipient). */
const HEADER_ROOM = 64 * 1024;
const MAC_LINE = new TextEncoder().encode("\n--- ");

export interface PartJob {
  store: ObjectStore;
  backupId: string;
  part: ManifestPart;
  /** The object as head() found it just before. */
  info: ObjectInfo;
  identities: string[];
  recipients: string[];
  state: RekeyStateFile;
  signal?: AbortSignal;
}

export interface PartOutcome {
  part: ManifestPart;
  downloaded: number;
  copied: number;
  /** The object had been rewritten by a killed run already. */
  resumed: boolean;
}

async function bytesOf(store: ObjectStore, key: string, start: number, end: number): Promise<Uint8Array> {
  return new Uint8Array(await new Response(await store.getStream(key, { start, end })).arrayBuffer());
}

const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** Where the age header of `first` ends (after its "--- MAC" line). */
function headerEnd(first: Uint8Array, where: string): number {
  outer: for (let i = 0; i + MAC_LINE.length <= first.length; i++) {
    for (let j = 0; j < MAC_LINE.length; j++) if (first[i + j] !== MAC_LINE[j]) continue outer;
    const eol = first.indexOf(0x0a, i + MAC_LINE.length);
    if (eol > 0) return eol + 1;
    break;
  }
  throw integrityError(`${where} has no complete age header in its first ${first.length} bytes; the object is damaged or not zrb's`);
}

/** The manifest record of a part rewritten with `s`. */
function rewrapped(p: ManifestPart, s: RekeyPartState): ManifestPart {
  const prefix = Buffer.from(s.prefix, "base64");
  const rewrap: PartRewrap = { prefixSize: prefix.length, prefixSha256: sha256(prefix), origin: s.origin };
  return { ...p, cipherSize: prefix.length + s.oldSize - s.oldPrefixSize, rewrap };
}

/** A killed run's record: is the object already the rewritten one? (a ranged GET of its new header) */
async function alreadyDone(j: PartJob, s: RekeyPartState): Promise<{ done: boolean; downloaded: number }> {
  const prefix = Buffer.from(s.prefix, "base64");
  const want = prefix.length + s.oldSize - s.oldPrefixSize;
  if (j.info.size !== want) return { done: false, downloaded: 0 };
  const got = await bytesOf(j.store, j.part.key, 0, prefix.length - 1);
  return { done: Buffer.compare(got, prefix) === 0, downloaded: got.length };
}

/** The file key of a part's header, or an error naming the part and the key it needs. */
function unwrapAt(where: string, header: Uint8Array, identities: string[]): Promise<Uint8Array> {
  return unwrapFileKey(header, identities).catch((err: unknown) => {
    if (err instanceof ZrbError) throw new ZrbError(`${where}: ${err.message}; --private-key must be a key this backup is encrypted to (its manifest's recipients)`, err.exitCode);
    throw err;
  });
}

/** For --dry-run: the old key must open this part's header (a ranged GET of its first bytes). */
export async function opensWith(store: ObjectStore, backupId: string, p: ManifestPart, identities: string[]): Promise<void> {
  const where = `part ${p.index} of backup ${backupId} (${store.urlOf(p.key)})`;
  const first = await bytesOf(store, p.key, 0, Math.min(p.cipherSize, HEADER_ROOM) - 1);
  const key = await unwrapAt(where, first.subarray(0, headerEnd(first, where)), identities);
  key.fill(0);
}

export async function rekeyPart(j: PartJob): Promise<PartOutcome> {
  const { store, part: p, info } = j;
  const where = `part ${p.index} of backup ${j.backupId} (${store.urlOf(p.key)})`;
  let downloaded = 0;
  const recorded = j.state.part(j.backupId, p.index);
  if (recorded) {
    const r = await alreadyDone(j, recorded);
    downloaded += r.downloaded;
    if (r.done) {
      if (!recorded.done) await j.state.setPart(j.backupId, p.index, { ...recorded, done: true });
      return { part: rewrapped(p, recorded), downloaded, copied: 0, resumed: true };
    }
  }
  if (info.size !== p.cipherSize) throw integrityError(`${where} is ${info.size} bytes, the manifest says ${p.cipherSize}; run zrb verify on this backup before rekeying it`);
  checkInterrupted(j.signal);
  const size = info.size;
  const first = await bytesOf(store, p.key, 0, Math.min(size, MIN_REWRITE_HEAD + HEADER_ROOM) - 1);
  downloaded += first.length;
  const hEnd = headerEnd(first.subarray(0, Math.min(first.length, HEADER_ROOM)), where);
  const oldPrefixSize = hEnd + PAYLOAD_NONCE_SIZE;
  const oldPrefix = first.subarray(0, oldPrefixSize);
  const whole = first.length === size;
  // What can be checked of the old object here: all of it when it is small, else its header.
  if (whole && !p.rewrap && sha256(first) !== p.sha256) throw integrityError(`${where}: its SHA-256 is not the manifest's; the object is damaged or was replaced, so it is not rekeyed`);
  if (p.rewrap && sha256(oldPrefix) !== p.rewrap.prefixSha256) throw integrityError(`${where}: its age header is not the one the manifest records; the object is damaged or was replaced`);
  const fileKey = await unwrapAt(where, first.subarray(0, hEnd), j.identities);
  let header: Uint8Array;
  try {
    header = await rewrapHeader(fileKey, j.recipients);
  } finally {
    fileKey.fill(0);
  }
  const newPrefix = new Uint8Array([...header, ...first.subarray(hEnd, oldPrefixSize)]);
  // The original header (of the upload, whatever rekeys came since), sealed to the new recipients.
  const original = p.rewrap ? await openOrigin(p.rewrap.origin, j.identities) : oldPrefix;
  const s: RekeyPartState = { prefix: b64(newPrefix), origin: await sealOrigin(original, j.recipients), oldSize: size, oldPrefixSize, done: false };
  await j.state.setPart(j.backupId, p.index, s);
  // Small enough to go whole (all of it is already here), else 5 MiB of head and a copied rest.
  const take = whole ? size - oldPrefixSize : Math.max(0, MIN_REWRITE_HEAD - newPrefix.length);
  if (!whole && oldPrefixSize + take > first.length) throw integrityError(`${where}: its age header is larger than ${HEADER_ROOM} bytes; not a header zrb wrote`);
  const head = new Uint8Array(newPrefix.length + take);
  head.set(newPrefix);
  head.set(first.subarray(oldPrefixSize, oldPrefixSize + take), newPrefix.length);
  checkInterrupted(j.signal);
  const { copied } = await store.rewriteHead(p.key, head, oldPrefixSize + take, { size, etag: info.etag, storageClass: info.storageClass, signal: j.signal });
  await j.state.setPart(j.backupId, p.index, { ...s, done: true });
  return { part: rewrapped(p, s), downloaded, copied, resumed: false };
}
