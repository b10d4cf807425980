/**
 * Sealing one part, on every core: the part's plaintext is cut into runs of 16 age STREAM
 * blocks (1 MiB) with their block counters; each run is first BLAKE3'd into the given hashers
 * (the stream's and the part's, by the hashing worker, in stream order), then goes to whichever
 * crypto worker is free and is sealed in place; sealed runs are forwarded to the file worker
 * strictly in order, which appends them to `<part>.tmp` after the age header and SHA-256s the
 * file as it grows. The result is byte-identical to sealing in order (crypto/age-stream.ts). A
 * full run is held back until the part's next byte arrives, because only then is it known not
 * to hold the final block. finish() hands over the final run at once (so a digest asked for
 * right after it covers the whole part), then renames the file.
 *
 * The file is not fsynced: a part is uploaded from the page cache and deleted, mostly before
 * the kernel would write it out, and an fsync made the disk write it at once (on the bench
 * machine ≈ 7 CPU s of the kernel's per GiB, more than sealing it). What makes a resume safe
 * is not the file's durability but its check: a rerun uploads a spill file only if its
 * SHA-256 still equals the one the state records (Uploader.intactOnDisk); one that a power
 * loss left short or zeroed is sealed again from the re-sent stream, and its multipart upload
 * aborted (Uploader.abortLost).
 */
import type { AgeHeader } from "../../crypto/age.ts";
import { CHUNK_SIZE, RUN_PLAIN, SEALED_CHUNK_SIZE, runBlocks } from "../../crypto/age-stream.ts";
import type { Sealed } from "../../workers/protocol.ts";
import { ExitCode, ZrbError, fsError } from "../../util/errors.ts";
import type { Run, Threads, WriteFile } from "../parallel/index.ts";
import { FileFailure } from "../parallel/index.ts";

export class PartSealer {
  private run: number | null = null;
  private view: Uint8Array | null = null;
  /** Plaintext bytes in `run`. */
  private runLen = 0;
  /** Counter of the first block of `run`. */
  private counter = 0;
  /** The in-order forwarding of sealed runs to the file: each link waits for the one before. */
  private tail: Promise<void> = Promise.resolve();
  private failure: Error | null = null;

  private constructor(
    private readonly t: Threads,
    private readonly file: WriteFile,
    private readonly key: Uint8Array,
    private readonly path: string,
    private readonly into: number[],
    private readonly signal: AbortSignal,
  ) {}

  /**
   * Start part file `path` (written as `path.tmp` until finish()) with age header `h`
   * (crypto/age.ts createHeader; the sealer zeroes its key); the plaintext is BLAKE3'd into
   * the hashers `into` (CryptoPool.newHasher). `onWritten` hears how many bytes of the file are
   * on disk after each write (an early upload reads them while the rest is sealed).
   */
  static async begin(t: Threads, path: string, h: AgeHeader, into: number[], signal: AbortSignal, onWritten?: (size: number) => void): Promise<PartSealer> {
    const file = t.files.create(path + ".tmp");
    file.onWritten = onWritten;
    const s = new PartSealer(t, file, h.key, path, into, signal);
    const slot = await t.buffers.take(signal);
    t.buffers.view(slot).set(h.prefix);
    s.write(slot, h.prefix.length);
    // The first run's slot now: finish() must not wait for one (see above).
    s.run = await t.buffers.take(signal);
    s.view = t.buffers.view(s.run);
    return s;
  }

  /** Take the next plaintext bytes of the part. */
  async push(piece: Uint8Array): Promise<void> {
    let p = 0;
    while (p < piece.length) {
      this.check();
      // A full run with more bytes after it: it does not hold the final block.
      if (this.runLen === RUN_PLAIN) this.dispatch(false);
      if (this.run === null) {
        this.run = await this.t.buffers.take(this.signal);
        this.runLen = 0;
        this.view = this.t.buffers.view(this.run);
      }
      const at = (this.runLen >>> 16) * SEALED_CHUNK_SIZE + (this.runLen & (CHUNK_SIZE - 1));
      const n = Math.min(piece.length - p, CHUNK_SIZE - (this.runLen & (CHUNK_SIZE - 1)));
      this.view!.set(piece.subarray(p, p + n), at);
      this.runLen += n;
      p += n;
    }
  }

  /**
   * The part is complete: hand over the final run (before this returns its promise: an empty
   * part is one empty final block), wait for every run to be written, rename (no fsync: see above).
   */
  async finish(): Promise<Sealed> {
    this.check();
    this.dispatch(true);
    await this.tail;
    // Every seal has been posted (each carried a copy of the key).
    this.key.fill(0);
    this.check();
    try {
      const w = await this.file.close({ renameTo: this.path });
      return { cipherSize: w.size, sha256: w.sha256 };
    } catch (err) {
      throw this.asError(err);
    }
  }

  /** Abandon the part: its temp file is deleted. */
  abort(): void {
    this.failure ??= new ZrbError("part abandoned", ExitCode.FAILURE);
    this.key.fill(0);
    this.file.drop();
    if (this.run !== null) this.t.buffers.put(this.run);
    this.run = null;
  }

  private check(): void {
    if (this.file.failure) this.failure ??= this.asError(this.file.failure);
    if (this.failure) throw this.failure;
  }

  private asError(err: unknown): Error {
    if (err instanceof FileFailure) return fsError(err, "writing spill chunk", this.path);
    return err as Error;
  }

  private dispatch(final: boolean): void {
    const slot = this.run!;
    const len = this.runLen;
    const counter = this.counter;
    this.run = null;
    this.view = null;
    this.runLen = 0;
    this.counter += runBlocks(len);
    const { crypto, buffers } = this.t;
    // Hashed before it is sealed in place; the hash is asked for now, so in stream order.
    const hashed = this.into.length ? crypto.hash(slot, len, "run", this.into) : Promise.resolve();
    const sealed = hashed.then(
      () => crypto.seal(slot, len, counter, final, this.key),
      (err) => {
        buffers.put(slot);
        throw err;
      },
    );
    sealed.catch(() => {});
    this.tail = this.tail.then(() => this.forward(sealed));
  }

  /** Write a sealed run once the runs before it are written; never rejects (a failure is kept). */
  private async forward(sealed: Promise<Run>): Promise<void> {
    let r: Run;
    try {
      r = await sealed;
    } catch (err) {
      this.failure ??= new ZrbError(`sealing ${this.path} failed: ${(err as Error).message}`, ExitCode.FAILURE);
      return;
    }
    if (this.failure) return this.t.buffers.put(r.slot);
    this.write(r.slot, r.len);
  }

  private write(slot: number, len: number): void {
    try {
      this.file.write(slot, len);
    } catch (err) {
      this.failure ??= this.asError(err);
    }
  }
}
