/**
 * The messages between the backup pipeline and an encryption worker (workers/encrypt.worker.ts),
 * typed on both sides.
 *
 *   main → worker:  begin {index, path, recipients}   a new chunk: encrypt into path (+ ".tmp" until done)
 *                   data  {buf, len}                  a transferred 1 MiB buffer, `len` bytes used
 *                   end   {}                          the chunk is complete: finish, fsync, rename
 *   worker → main:  ack   {buf}                       the buffer, handed back for reuse
 *                   done  {index, cipherSize, sha256} the part file is complete
 *                   error {index, message, code?}     the chunk failed (code: the errno, e.g. ENOSPC)
 */

export type ToWorker =
  | { type: "begin"; index: number; path: string; recipients: string[] }
  | { type: "data"; buf: ArrayBuffer; len: number }
  | { type: "end" };

export type FromWorker =
  | { type: "ack"; buf: ArrayBuffer }
  | { type: "done"; index: number; cipherSize: number; sha256: string }
  | { type: "error"; index: number; message: string; code?: string };

/** What the worker reports for a finished chunk: its part file's size and SHA-256. */
export interface Sealed {
  cipherSize: number;
  sha256: string;
}
