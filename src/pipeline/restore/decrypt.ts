/**
 * Decrypt: turn one verified ciphertext file back into its slice of the send stream, checking
 * the plaintext size and BLAKE3 against the manifest, and check before any download that the
 * identity opens the chain at all. The age header is read here; the payload's runs of 16
 * blocks (their offsets and counters follow from the file size) are read and opened by every
 * crypto worker at once, each block authenticated; the plaintext is hashed and emitted strictly
 * in stream order, and nothing after a block that failed is ever emitted.
 */
import { open } from "node:fs/promises";
import { AgeDecryptStream } from "../../crypto/age.ts";
import { RUN_BLOCKS, RUN_BYTES, truncatedNoPayload } from "../../crypto/age-stream.ts";
import type { ObjectStore } from "../../store/store.ts";
import type { Manifest, ManifestPart } from "../../records/manifest.ts";
import { ZrbError, fsError, integrityError, isKind, noIdentityError } from "../../util/errors.ts";
import type { Run, Threads } from "../parallel/index.ts";
import { partName } from "./fetch.ts";

/** Header bytes read per step (the age header of a part is a few hundred bytes). */
const HEAD_READ = 64 * 1024;
/** The largest header plus payload nonce AgeDecryptStream accepts. */
const HEAD_MAX = 1024 * 1024 + 16;

function ageError(err: unknown, m: Manifest, p: ManifestPart, url: string): ZrbError {
  const msg = (err as Error)?.message ?? String(err);
  if (isKind(err, "no-identity"))
    return noIdentityError(
      `this identity does not match any recipient of backup ${m.backupId}; it was encrypted to ${m.recipients.join(", ")}: use the private key file of one of those recipients`,
    );
  if (err instanceof ZrbError && !isKind(err, "integrity")) return err;
  return integrityError(`${partName(m, p, url)} does not decrypt: ${msg.split("\n")[0]}`);
}

/** The age header of the file at `path` (`size` bytes): where the payload starts and its stream key. */
async function readHeader(path: string, size: number, identities: string[]): Promise<{ start: number; key: Uint8Array }> {
  const dec = await AgeDecryptStream.create(identities);
  const fh = await open(path, "r").catch((e) => {
    throw fsError(e, "reading restore scratch file", path);
  });
  try {
    const buf = new Uint8Array(HEAD_READ);
    for (let pos = 0; pos < Math.min(size, HEAD_MAX); ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
      if (bytesRead === 0) break;
      const got = await dec.payloadStart(buf.subarray(0, bytesRead));
      if (got) return { start: pos + got.used, key: got.key };
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return dec.endedInPrefix();
}

export interface DecryptOptions {
  identities: string[];
  /** Where the part lives, for messages (ObjectStore.urlOf). */
  url: string;
  /** Gets each piece of plaintext in order: a view valid only until it returns (copy what you keep). */
  emit: (b: Uint8Array) => Promise<void> | void;
  threads: Threads;
  /** More BLAKE3 hashers (CryptoPool.newHasher) to feed the plaintext into, e.g. the stream's. */
  alsoHash?: number[];
  signal?: AbortSignal;
}

/**
 * Decrypt one verified ciphertext file, check its plaintext size and BLAKE3 against the
 * manifest, and hand each plaintext piece to `emit` in order. The BLAKE3 is computed on the
 * hashing worker while `emit` runs.
 */
export async function decryptPart(path: string, m: Manifest, p: ManifestPart, o: DecryptOptions): Promise<void> {
  const { url, threads } = o;
  let head: { start: number; key: Uint8Array };
  try {
    head = await readHeader(path, p.cipherSize, o.identities);
  } catch (err) {
    throw ageError(err, m, p, url);
  }
  const payload = p.cipherSize - head.start;
  const runs = Math.ceil(payload / RUN_BYTES);
  const hasher = threads.crypto.newHasher();
  const into = [hasher, ...(o.alsoHash ?? [])];
  let size = 0;
  // Runs in flight, in stream order: enough to keep every crypto worker busy.
  const window = threads.crypto.size * 2 + 1;
  const inflight: Promise<Run>[] = [];
  let next = 0;
  const dispatch = async (r: number): Promise<Run> => {
    const slot = await threads.buffers.take(o.signal);
    const len = Math.min(RUN_BYTES, payload - r * RUN_BYTES);
    return threads.crypto.open(slot, path, head.start + r * RUN_BYTES, len, r * RUN_BLOCKS, r === runs - 1, head.key);
  };
  try {
    if (payload === 0) throw ageError(truncatedNoPayload(), m, p, url);
    for (let r = 0; r < runs; r++) {
      while (next < runs && inflight.length < window) {
        const run = dispatch(next++);
        run.catch(() => {});
        inflight.push(run);
      }
      let run: Run;
      try {
        run = await inflight.shift()!;
      } catch (err) {
        throw ageError(err, m, p, url);
      }
      size += run.len;
      if (size > p.plainSize) {
        threads.buffers.put(run.slot);
        throw integrityError(`${partName(m, p, url)} decrypts to more than the ${p.plainSize} bytes its manifest records`);
      }
      // Hashed (in order, on the hashing worker) while emitted: the slot is read by both.
      const hashed = threads.crypto.hash(run.slot, run.len, "flat", into);
      try {
        await o.emit(threads.buffers.view(run.slot, run.len));
      } finally {
        await hashed.catch(() => {});
        threads.buffers.put(run.slot);
      }
      await hashed;
    }
  } catch (err) {
    // Runs still in flight hand their slots back when they come in; the hasher is dropped.
    for (const run of inflight) run.then((r) => threads.buffers.put(r.slot), () => {});
    threads.crypto.digest(hasher).catch(() => {});
    throw err;
  } finally {
    head.key.fill(0);
  }
  const digest = await threads.crypto.digest(hasher);
  if (size !== p.plainSize)
    throw integrityError(`${partName(m, p, url)} decrypts to ${size} bytes, manifest says ${p.plainSize}`);
  if (digest !== p.blake3)
    throw integrityError(`${partName(m, p, url)}: plaintext BLAKE3 is ${digest}, manifest says ${p.blake3}`);
}

/**
 * Check before any download that the identity opens this chain: fetch the age header of
 * the first part (a ranged GET) and unwrap its file key. Only the header is authenticated
 * (age's header MAC); no plaintext is produced or used.
 */
export async function preflightIdentity(store: ObjectStore, m: Manifest, identities: string[]): Promise<void> {
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
    if (isKind(e, "crypto", "no-identity")) throw e;
  }
}
