/**
 * An early upload: a multipart upload of a file that is still being written (a backup's part
 * while it is sealed into the spill file), so the link is not idle while the first part of a
 * backup is sealed. Its pieces go up as soon as the writer says their bytes are on disk and
 * final (grew()); only whole pieces before the last byte written, so every piece sent early is
 * a full one and the file is surely larger than one PutObject. Once the file is complete
 * (finish(): its final path, size and SHA-256) the rest is sent, and the upload completed and
 * checked as putFile does (s3-multipart.ts).
 *
 * Two differences from putFile, both on the side of keeping: the object carries no zrb-sha256
 * metadata (the hash is not known when the upload is created), so a Complete whose reply was
 * lost, or a run killed right after it, is not recognised as done and the part is uploaded
 * again; and nothing here retries: any failure stops it, and finish() hands back the pieces the
 * server acknowledged for the caller to continue with putFile({resume}) (which lists them).
 * The pieces are read through a hard link made next to the file (`<file>.early.tmp`, removed at
 * the end; a leftover is a temp file of the spill directory) as soon as it has bytes (or, if
 * the writer was faster, to the name it was renamed to), so the rename does not race with
 * them. (Not one descriptor for all: under Bun a read stream closes its descriptor when
 * destroyed, even with autoClose off.) A run that fails before finish() leaves the upload to
 * the next run, which aborts it (its id was recorded by onCreated before any piece was sent).
 */
import { linkSync, rmSync, type ReadStream } from "node:fs";
import type { EarlyUpload, EarlyUploadOptions, MultipartProgress, PutFileOptions } from "./store.ts";
import { SINGLE_PUT_MAX, completeUpload, copy, createMultipart, dedupeSort, nextUploadRank, partSizeFor, uploadPart, type S3Context } from "./s3-multipart.ts";
import { abortReason } from "./retry.ts";

export class S3EarlyUpload implements EarlyUpload {
  private readonly partSize: number;
  private readonly rank = nextUploadRank();
  /** Bytes of the file on disk and final. */
  private written = 0;
  /** Set by finish(). */
  private size: number | null = null;
  private next = 1;
  private failure: unknown;
  private created: Promise<string> | null = null;
  /** The hard link the pieces are read through, once made. */
  private link: string | null = null;
  private readonly parts: { partNumber: number; etag: string }[] = [];
  private readonly inflight = new Map<number, ReadStream>();
  private bytesDone = 0;
  private wake: (() => void)[] = [];
  private readonly workers: Promise<void>;
  /** After finish(): records the progress after each piece (serialised). */
  private onProgress: PutFileOptions["onProgress"];
  private progressChain: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: S3Context,
    private readonly key: string,
    private readonly path: string,
    private readonly o: EarlyUploadOptions,
  ) {
    this.partSize = partSizeFor(o.maxSize);
    this.workers = Promise.all(Array.from({ length: Math.max(1, ctx.partConcurrency) }, () => this.worker())).then(() => {});
  }

  grew(bytes: number): void {
    this.written = Math.max(this.written, bytes);
    // Now, while the file is most likely still at its first name.
    if (!this.link && this.failure === undefined) {
      try {
        this.link = this.makeLink();
      } catch (err) {
        this.failure = err;
      }
    }
    this.notify();
  }

  async finish(opts: PutFileOptions): Promise<"done" | "unused" | MultipartProgress> {
    this.onProgress = opts.onProgress;
    this.size = opts.size;
    // Larger than announced: its pieces would not be the ones the part size implies; putFile decides.
    if (opts.size <= SINGLE_PUT_MAX || opts.size > this.o.maxSize) this.stop();
    this.notify();
    const uploadId = this.failure === undefined ? await (this.created ??= this.create()).catch(() => "") : await this.created?.catch(() => "");
    if (uploadId) await this.record(uploadId);
    const ticker = this.o.onBytes ? setInterval(() => this.reportBytes(), 500) : undefined;
    ticker?.unref?.();
    await this.workers;
    clearInterval(ticker);
    await this.progressChain.catch(() => {});
    this.dropLink();
    if (this.o.signal?.aborted) throw abortReason(this.o.signal);
    if (!uploadId) return "unused";
    const progress = this.progress(uploadId);
    if (this.failure !== undefined) return progress;
    try {
      await completeUpload(this.ctx, this.key, opts.size, opts.sha256Hex.toLowerCase(), progress, this.o.signal);
    } catch (err) {
      if (this.o.signal?.aborted) throw err;
      return progress;
    }
    return "done";
  }

  /** CreateMultipartUpload, then the caller's record of its id (before any piece is sent). */
  private async create(): Promise<string> {
    const id = await createMultipart(this.ctx, this.key, { storageClass: this.o.storageClass }, this.o.signal);
    await this.o.onCreated?.(id);
    return id;
  }

  private stop(): void {
    this.failure ??= new Error("stopped");
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  private progress(uploadId: string): MultipartProgress {
    return { uploadId, partSize: this.partSize, parts: dedupeSort(this.parts) };
  }

  /** Record the progress as it is now (after finish(): the caller persists it). */
  private record(uploadId: string): Promise<void> {
    const snap = copy(this.progress(uploadId));
    this.progressChain = this.progressChain.then(() => this.onProgress?.(snap));
    return this.progressChain;
  }

  private reportBytes(): void {
    let s = this.bytesDone;
    for (const b of this.inflight.values()) s += b.bytesRead;
    this.o.onBytes?.(s);
  }

  /** The next piece to send, once its bytes are final; null when there is none left (or it stopped). */
  private async nextPiece(): Promise<number | null> {
    for (;;) {
      if (this.failure !== undefined || this.o.signal?.aborted) return null;
      const n = this.next;
      const ready = this.size === null ? n * this.partSize < this.written : (n - 1) * this.partSize < this.size && this.size > SINGLE_PUT_MAX;
      if (ready) {
        this.next++;
        return n;
      }
      if (this.size !== null) return null;
      await new Promise<void>((r) => this.wake.push(r));
    }
  }

  private async worker(): Promise<void> {
    for (let n = await this.nextPiece(); n !== null; n = await this.nextPiece()) {
      await this.ctx.partSlots?.acquire(this.rank);
      try {
        if (this.failure === undefined) await this.send(n);
      } catch (err) {
        this.failure ??= err;
        this.notify();
      } finally {
        this.ctx.partSlots?.release();
      }
    }
  }

  private async send(n: number): Promise<void> {
    const uploadId = await (this.created ??= this.create());
    this.link ??= this.makeLink();
    const start = (n - 1) * this.partSize;
    // Before finish() only full pieces are sent; after it the last one may be shorter.
    const len = Math.min(this.partSize, (this.size ?? Infinity) - start);
    const count = this.size === null ? Math.ceil(this.o.maxSize / this.partSize) : Math.ceil(this.size / this.partSize);
    const etag = await uploadPart(this.ctx, this.key, uploadId, n, count, this.link, start, len, this.o.signal, (b) => (b ? this.inflight.set(n, b) : this.inflight.delete(n)));
    this.parts.push({ partNumber: n, etag });
    this.bytesDone += len;
    this.reportBytes();
    if (this.size !== null) await this.record(uploadId);
  }

  /** The link to the file, at its first name or (already renamed) its final one. */
  private makeLink(): string {
    const link = this.path + ".early.tmp";
    rmSync(link, { force: true });
    try {
      linkSync(this.path, link);
    } catch (err) {
      if ((err as { code?: string }).code !== "ENOENT") throw err;
      linkSync(this.o.renamedTo, link);
    }
    return link;
  }

  private dropLink(): void {
    if (this.link) rmSync(this.link, { force: true });
    this.link = null;
  }
}
