/**
 * The messages between the data path (main thread) and its Workers, typed on both sides.
 * The bytes never travel: main thread and Workers share one arena (a SharedArrayBuffer of
 * run-sized slots, sent once with `init`), and a message hands a slot over by its number. A
 * slot belongs to one side at a time and always comes back, on success and on failure, so
 * the fixed set of slots never leaks (a message costs ≈ 10 µs; transferring a 1 MiB
 * ArrayBuffer instead cost ≈ 40 µs of main-thread CPU, measured in Bun 1.4).
 *
 * Crypto worker (workers/crypto.worker.ts): pure computation on one run of age STREAM blocks
 * at a time (crypto/age-stream.ts), in place in the buffer.
 *   main → worker:  seal  {seq, slot, len, counter, final, key}  plaintext in the run layout → sealed
 *                   open  {seq, slot, path, offset, len, counter, final, key}
 *                         read `len` sealed bytes of `path` at `offset` into the slot, open them
 *                   hash  {seq, slot, len, layout, into}         BLAKE3 the slot's plaintext (layout "run": in
 *                         the run layout, "flat": contiguous) into each hasher of `into`, in message order
 *                   digest {seq, hasher}                         the hasher's hex digest; the hasher is gone
 *   worker → main:  done  {seq, slot, len}                       the sealed / opened / hashed run, len bytes from 0
 *                   digest {seq, hex}
 *                   error {seq, slot, message, integrity}        integrity: a block did not authenticate
 *   The hash and digest messages all go to one worker (the first), which thus also feeds the
 *   stream's and each part's BLAKE3 in stream order; it gets fewer runs to seal in exchange.
 *
 * File worker (workers/file.worker.ts): writes files in order and SHA-256s them on the way
 * (part files being sealed, parts being downloaded), so the hash is always of the file's bytes.
 *   main → worker:  create {file, path, reuse?}         exclusive create (0600, no symlink) of path; with
 *                                                       reuse: that spare file renamed to path and
 *                                                       overwritten from its start (cut at close)
 *                   write  {file, slot, len}            append len bytes of the slot
 *                   close  {file, renameTo?}            close (a reused spare cut to size), rename if asked
 *                   drop   {file}                       close and delete (a failed or aborted file)
 *   worker → main:  ack    {slot, file, size?}          the slot is written, handed back; size: the
 *                                                       file's bytes on disk now (absent once it failed)
 *                   closed {file, size, sha256}         the file is complete
 *                   error  {file, op, message, code?}   the file failed at op (code: the errno, e.g. ENOSPC)
 *
 * Both post {type: "ready"} once their handler is installed; nothing is sent to them before,
 * and the first message they get is init {arena, slotSize}.
 */

/** The shared slots, sent once to every worker. */
export interface Init {
  type: "init";
  arena: SharedArrayBuffer;
  slotSize: number;
}

/** How plaintext lies in a slot: "run" = block j at j × 65552 (as sealed), "flat" = contiguous (as opened). */
export type Layout = "run" | "flat";

export type ToCrypto =
  | Init
  | { type: "seal"; seq: number; slot: number; len: number; counter: number; final: boolean; key: Uint8Array }
  | { type: "open"; seq: number; slot: number; path: string; offset: number; len: number; counter: number; final: boolean; key: Uint8Array }
  | { type: "hash"; seq: number; slot: number; len: number; layout: Layout; into: number[] }
  | { type: "digest"; seq: number; hasher: number };

export type FromCrypto =
  | { type: "ready" }
  | { type: "done"; seq: number; slot: number; len: number }
  | { type: "digest"; seq: number; hex: string }
  | { type: "error"; seq: number; slot: number; message: string; integrity: boolean; code?: string };

export type ToFile =
  | Init
  | { type: "create"; file: number; path: string; reuse?: string }
  | { type: "write"; file: number; slot: number; len: number }
  | { type: "close"; file: number; renameTo?: string }
  | { type: "drop"; file: number };

export type FromFile =
  | { type: "ready" }
  | { type: "ack"; slot: number; file: number; size?: number }
  | { type: "closed"; file: number; size: number; sha256: string }
  | { type: "error"; file: number; op: FileOp; message: string; code?: string };

/** Which step of a file failed. */
export type FileOp = "create" | "write" | "close";

/** What the file worker reports for a complete file: its size and SHA-256. */
export interface Sealed {
  cipherSize: number;
  sha256: string;
}
