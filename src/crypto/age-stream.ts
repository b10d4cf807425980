/**
 * The age payload STREAM (https://age-encryption.org/v1, "Payload"): 64 KiB plaintext blocks,
 * each sealed with ChaCha20-Poly1305 under the stream key with the nonce
 * counter (11 bytes, big-endian) || last-block flag. A block's ciphertext depends only on its
 * bytes, its counter and whether it is the last one, so blocks at known offsets can be sealed
 * and opened independently, by several Workers at once, and the file is byte-identical to one
 * sealed in order (AgeEncryptStream and the parallel path share these functions).
 *
 * A *run* is up to RUN_BLOCKS consecutive blocks in one buffer of RUN_BYTES. In memory block j
 * of a run sits at j × SEALED_CHUNK_SIZE before sealing: sealing in place leaves the sealed run
 * contiguous. Opening goes through a 64 KiB scratch block (libsodium wipes its output when a
 * block does not authenticate, and the ciphertext is still needed to tell why) and leaves the
 * plaintext contiguous. Only the final run of a payload may hold a short (or, for an empty
 * payload, empty) block.
 */
import { integrityError } from "../util/errors.ts";
import { openChunk, sealChunk, sealInPlace, TAG_BYTES } from "./sodium.ts";

/** Plaintext bytes per STREAM block ("chunk" in the age spec). */
export const CHUNK_SIZE = 64 * 1024;
/** Bytes per sealed (encrypted) full block. */
export const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_BYTES;
/** Payload nonce that follows the header. */
export const PAYLOAD_NONCE_SIZE = 16;
/** Blocks per run: what one Worker seals or opens per message. */
export const RUN_BLOCKS = 16;
/** Plaintext bytes of a full run (1 MiB). */
export const RUN_PLAIN = RUN_BLOCKS * CHUNK_SIZE;
/** Size of a run buffer: a full run sealed. */
export const RUN_BYTES = RUN_BLOCKS * SEALED_CHUNK_SIZE;

/** Writes the block counter into nonce[0..10] (big-endian) and the last-block flag into nonce[11]. */
export function setNonce(nonce: Uint8Array, counter: number, last: boolean): void {
  if (counter > Number.MAX_SAFE_INTEGER) throw new Error("age STREAM chunk counter overflow");
  const hi = Math.floor(counter / 0x1_0000_0000);
  const lo = counter >>> 0;
  nonce.fill(0, 0, 3);
  nonce[3] = hi >>> 24;
  nonce[4] = (hi >>> 16) & 0xff;
  nonce[5] = (hi >>> 8) & 0xff;
  nonce[6] = hi & 0xff;
  nonce[7] = lo >>> 24;
  nonce[8] = (lo >>> 16) & 0xff;
  nonce[9] = (lo >>> 8) & 0xff;
  nonce[10] = lo & 0xff;
  nonce[11] = last ? 1 : 0;
}

/** Seals one block from `plain` into `out`; returns the sealed length. */
export function sealBlock(out: Uint8Array, plain: Uint8Array, counter: number, last: boolean, key: Uint8Array): number {
  const nonce = new Uint8Array(12);
  setNonce(nonce, counter, last);
  return sealChunk(out.subarray(0, plain.length + TAG_BYTES), plain, nonce, key);
}

/**
 * The verdict on one block, with age's diagnosis of a failure: a block that opens with the
 * other last-block flag means the file was cut short or has bytes after its end.
 * `open(last)` opens the block with the given flag and returns the plaintext length or -1.
 */
function verdict(counter: number, last: boolean, open: (last: boolean) => number, wipe: () => void): number {
  const n = open(last);
  if (n >= 0) {
    if (last && n === 0 && counter > 0)
      throw integrityError(`age payload ends with an empty final chunk after data (chunk ${counter}); the file is corrupted`);
    return n;
  }
  if (open(!last) >= 0) {
    wipe();
    if (last) throw integrityError(`age file is truncated: it ends after chunk ${counter} without the final chunk`);
    throw integrityError(`age file has trailing data after its final chunk (chunk ${counter})`);
  }
  throw integrityError(`age payload chunk ${counter} failed authentication: the file is corrupted or was modified`);
}

/** The error for an age file that ends right after its header and payload nonce. */
export function truncatedNoPayload(): Error {
  return integrityError("age file is truncated: it has no payload chunk after the header");
}

/** Opens one sealed block into `out`; throws integrityError (see verdict) when it does not authenticate. */
export function openBlock(out: Uint8Array, sealed: Uint8Array, counter: number, last: boolean, key: Uint8Array): number {
  const nonce = new Uint8Array(12);
  const dst = out.subarray(0, sealed.length - TAG_BYTES);
  return verdict(
    counter,
    last,
    (l) => {
      setNonce(nonce, counter, l);
      return openChunk(dst, sealed, nonce, key);
    },
    () => dst.fill(0),
  );
}

/** Blocks in a run of `plainLen` plaintext bytes (an empty payload is one empty block). */
export function runBlocks(plainLen: number): number {
  return Math.max(1, Math.ceil(plainLen / CHUNK_SIZE));
}

/** Sealed size of a run (or a whole payload) of `plainLen` plaintext bytes. */
export function sealedSize(plainLen: number): number {
  return plainLen + runBlocks(plainLen) * TAG_BYTES;
}

/**
 * Seals a run in place. `buf` holds `plainLen` plaintext bytes in the run layout (block j at
 * j × SEALED_CHUNK_SIZE); its blocks get counters counter, counter + 1, …; with `final` the
 * run's last block is the payload's last. Returns the sealed length; the sealed run is
 * contiguous from buf[0].
 */
export function sealRun(buf: Uint8Array, plainLen: number, counter: number, final: boolean, key: Uint8Array): number {
  const blocks = runBlocks(plainLen);
  if (blocks > RUN_BLOCKS || buf.length < sealedSize(plainLen)) throw new RangeError(`run of ${plainLen} bytes does not fit its buffer`);
  if (!final && plainLen % CHUNK_SIZE !== 0) throw new RangeError("only the final run may end with a short block");
  if (plainLen === 0 && !final) throw new RangeError("an empty run must be the final one");
  const nonce = new Uint8Array(12);
  let out = 0;
  for (let j = 0; j < blocks; j++) {
    const len = Math.min(CHUNK_SIZE, plainLen - j * CHUNK_SIZE);
    setNonce(nonce, counter + j, final && j === blocks - 1);
    out += sealInPlace(buf.subarray(j * SEALED_CHUNK_SIZE), len, nonce, key);
  }
  return out;
}

/**
 * Opens a run: `buf` holds `sealedLen` bytes of consecutive sealed blocks, the first with
 * counter `counter`; with `final` its last block is the payload's last. Every block is
 * authenticated; the plaintext is left contiguous from buf[0] and its length returned.
 * Throws integrityError (with age's diagnosis) on the first block that does not open.
 */
export function openRun(buf: Uint8Array, sealedLen: number, counter: number, final: boolean, key: Uint8Array): number {
  const blocks = Math.ceil(sealedLen / SEALED_CHUNK_SIZE);
  if (blocks > RUN_BLOCKS || blocks === 0 || sealedLen > buf.length) throw new RangeError(`run of ${sealedLen} bytes does not fit its buffer`);
  if (!final && sealedLen % SEALED_CHUNK_SIZE !== 0) throw new RangeError("only the final run may end with a short block");
  const scratch = new Uint8Array(CHUNK_SIZE);
  let plain = 0;
  for (let j = 0; j < blocks; j++) {
    const at = j * SEALED_CHUNK_SIZE;
    const block = buf.subarray(at, Math.min(sealedLen, at + SEALED_CHUNK_SIZE));
    if (block.length < TAG_BYTES) throw integrityError(`age file is truncated: its last chunk is ${block.length} bytes, shorter than a tag`);
    const n = openBlock(scratch, block, counter + j, final && j === blocks - 1, key);
    // The plaintext lands before the next block's ciphertext (plain + n ≤ at + n < next block).
    buf.set(scratch.subarray(0, n), plain);
    plain += n;
  }
  scratch.fill(0);
  return plain;
}
