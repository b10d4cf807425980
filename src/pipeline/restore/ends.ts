/**
 * Before a step's first byte reaches `zfs receive`: is this the stream the manifest says? With
 * the private key, read only the stream's first and last 312 bytes — a ranged GET of each part's
 * age header and of the one or two 64 KiB chunks that hold them (age seals every chunk on its
 * own, with its counter as nonce) — and check the BEGIN record's guids against the manifest's
 * snapshot and parent, and that the stream ends with the END record of the same snapshot.
 * A foreign stream, an incremental from another base, or a truncated stream is refused (exit 7)
 * before `zfs receive` is even started. The full pass checks the same records again on the
 * bytes it actually streams (receive.ts), so a store that answers ranges differently gains
 * nothing.
 */
import { AgeDecryptStream, CHUNK_SIZE, PAYLOAD_NONCE_SIZE, SEALED_CHUNK_SIZE, ciphertextSize } from "../../crypto/age.ts";
import { StoreError, type ObjectStore } from "../../store/store.ts";
import type { Manifest, ManifestPart } from "../../records/manifest.ts";
import { headBytesNeeded, RECORD_SIZE, streamEndsProblem, TAIL_BYTES } from "../../zfs/stream.ts";
import { ZrbError, integrityError, isKind } from "../../util/errors.ts";
import { partName } from "./fetch.ts";

/** Bytes fetched for a part's age header (with a few recipients it is well under 1 KiB). */
const HEADER_FETCH = 16 * 1024;

async function bytesOf(store: ObjectStore, key: string, start: number, end: number): Promise<Uint8Array> {
  return new Uint8Array(await new Response(await store.getStream(key, { start, end })).arrayBuffer());
}

/** Plaintext bytes [from, to) of one part, from ranged GETs of its header and of the chunks that hold them. */
export async function readPlainRange(store: ObjectStore, p: ManifestPart, identities: string[], from: number, to: number): Promise<Uint8Array> {
  const dec = await AgeDecryptStream.create(identities);
  const payload = await dec.readHeader(await bytesOf(store, p.key, 0, Math.min(p.cipherSize, HEADER_FETCH) - 1));
  // The manifest's two sizes must fit the age format around this header.
  const want = ciphertextSize(p.plainSize, payload - PAYLOAD_NONCE_SIZE);
  if (want !== p.cipherSize) throw new SizeMismatch(`part ${p.index}: ${p.plainSize} plaintext bytes make a ${want}-byte age file, the manifest says ${p.cipherSize}`);
  const chunks = Math.max(1, Math.ceil(p.plainSize / CHUNK_SIZE));
  const first = Math.floor(from / CHUNK_SIZE);
  const last = Math.min(chunks - 1, Math.floor(Math.max(from, to - 1) / CHUNK_SIZE));
  const out: Uint8Array[] = [];
  for (let i = first; i <= last; i++) {
    const start = payload + i * SEALED_CHUNK_SIZE;
    const end = Math.min(p.cipherSize, start + SEALED_CHUNK_SIZE) - 1;
    out.push(dec.openChunkAt(i, await bytesOf(store, p.key, start, end), i === chunks - 1));
  }
  const all = Buffer.concat(out);
  return all.subarray(from - first * CHUNK_SIZE, to - first * CHUNK_SIZE);
}

/** Stream bytes [from, to) across the parts that hold them. */
async function readStreamRange(store: ObjectStore, m: Manifest, identities: string[], from: number, to: number): Promise<Uint8Array> {
  const out: Uint8Array[] = [];
  let off = 0;
  for (const p of m.parts) {
    const a = Math.max(from, off);
    const b = Math.min(to, off + p.plainSize);
    if (a < b) out.push(await readPlainRange(store, p, identities, a - off, b - off));
    off += p.plainSize;
  }
  return Buffer.concat(out);
}

class SizeMismatch extends Error {}

/** The SHA-256 of a whole part against its manifest, streamed (no scratch): the precise complaint when a part is damaged. */
async function checkPartHash(store: ObjectStore, m: Manifest, p: ManifestPart): Promise<void> {
  // A rekeyed part's hash needs its sealed original header: the full pass names it.
  if (p.rewrap) return;
  const sha = new Bun.CryptoHasher("sha256");
  for await (const b of (await store.getStream(p.key)) as unknown as AsyncIterable<Uint8Array>) sha.update(b);
  const digest = sha.digest("hex");
  if (digest !== p.sha256)
    throw integrityError(`${partName(m, p, store.urlOf(p.key))}: ciphertext SHA-256 is ${digest}, manifest says ${p.sha256}; the object in the store is damaged or was replaced`);
}

/** Refuse (exit 7) a step whose stream does not start and end as the manifest says. */
export async function checkStreamEnds(store: ObjectStore, m: Manifest, identities: string[]): Promise<void> {
  const size = m.stream.size;
  let why: string | undefined;
  try {
    // Head and tail at once: two round trips fewer.
    const tailRead = readStreamRange(store, m, identities, Math.max(0, size - TAIL_BYTES), size);
    tailRead.catch(() => {}); // awaited below, after the head
    let head = await readStreamRange(store, m, identities, 0, Math.min(RECORD_SIZE, size));
    const need = Math.min(headBytesNeeded(head), size);
    if (need > head.length) head = await readStreamRange(store, m, identities, 0, need);
    const tail = await tailRead;
    why = streamEndsProblem(head, tail, m.snapshot.guid, m.parent?.guid ?? null);
  } catch (err) {
    if (err instanceof SizeMismatch) why = err.message;
    else if (err instanceof StoreError || (err instanceof ZrbError && isKind(err, "integrity"))) why = err.message;
    else throw err;
  }
  if (!why) return;
  // A damaged or swapped part also fails here: name it with its hashes, as the full pass would.
  for (const p of new Set([m.parts[0]!, m.parts.at(-1)!])) await checkPartHash(store, m, p);
  throw integrityError(`backup ${m.backupId} is not the zfs stream its manifest describes: ${why}; nothing was sent to zfs receive`);
}
