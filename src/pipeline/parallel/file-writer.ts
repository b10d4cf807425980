/**
 * The file worker (workers/file.worker.ts) seen from the main thread: files written in order
 * of write() and SHA-256'd off the main thread. A file's failure is kept on its handle, so the
 * producer stops at its next write instead of finding out at the end. Each write's ack says how
 * far the file is on disk, so a reader may start on the bytes before it (a backup's early upload).
 */
import { renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import type { FileOp, FromFile, ToFile } from "../../workers/protocol.ts";
import type { RunBuffers } from "./buffers.ts";
import { HostWorker } from "./host.ts";

/** A file worker failure, with the errno (`code`) for fsError(). */
export class FileFailure extends Error {
  constructor(
    readonly op: FileOp,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface Written {
  size: number;
  sha256: string;
}

export class WriteFile {
  /** Set when the worker reported a failure: nothing more is written. */
  failure: FileFailure | null = null;
  /** Told the file's size on disk after each write (its bytes up to there are final: an early upload reads them). */
  onWritten?: (size: number) => void;
  private readonly closed: Promise<Written>;
  resolve!: (w: Written) => void;
  reject!: (e: FileFailure) => void;

  constructor(
    private readonly owner: FileWriter,
    readonly id: number,
    readonly path: string,
  ) {
    this.closed = new Promise<Written>((a, b) => ((this.resolve = a), (this.reject = b)));
    this.closed.catch(() => {});
  }

  /** Append the first `len` bytes of `slot` (it returns to the free slots once written). Throws the file's failure, if any. */
  write(slot: number, len: number): void {
    if (this.failure) {
      this.owner.buffers.put(slot);
      throw this.failure;
    }
    this.owner.send({ type: "write", file: this.id, slot, len });
  }

  /** Finish the file (not fsynced; renamed if asked): its size and SHA-256. */
  close(opts: { renameTo?: string } = {}): Promise<Written> {
    if (!this.failure) this.owner.send({ type: "close", file: this.id, renameTo: opts.renameTo });
    return this.closed;
  }

  /** Abandon the file: closed and deleted. */
  drop(): void {
    this.owner.send({ type: "drop", file: this.id });
    this.owner.forget(this.id);
  }
}

export class FileWriter {
  private readonly host: HostWorker<ToFile, FromFile>;
  private readonly files = new Map<number, WriteFile>();
  private next = 0;
  /** One finished file kept for the next create() to overwrite (recycle()), or null. */
  private spare: string | null = null;
  private spares = 0;

  constructor(
    readonly buffers: RunBuffers,
    onFatal: (e: Error) => void,
  ) {
    this.host = new HostWorker<ToFile, FromFile>("file", { type: "init", arena: buffers.arena, slotSize: buffers.slotSize }, (m) => this.receive(m), (e) => {
      for (const f of this.files.values()) {
        f.failure = new FileFailure("write", e.message);
        f.reject(f.failure);
      }
      this.files.clear();
      onFatal(e);
    });
  }

  get ready(): Promise<void> {
    return this.host.ready;
  }

  /**
   * A new file at `path` (exclusive create, 0600, never through a symlink), or the spare file
   * recycle() kept, renamed to `path` and overwritten: either way it holds exactly the bytes
   * written to it once closed.
   */
  create(path: string): WriteFile {
    const f = new WriteFile(this, this.next++, path);
    if (this.host.crashed) {
      f.failure = new FileFailure("create", this.host.crashed.message);
      f.reject(f.failure);
      return f;
    }
    this.files.set(f.id, f);
    const reuse = this.spare ?? undefined;
    this.spare = null;
    this.send({ type: "create", file: f.id, path, ...(reuse ? { reuse } : {}) });
    return f;
  }

  /**
   * The run is done with the closed file at `path` (a part uploaded, a downloaded part
   * received): delete it, or, when another file is `wanted` (a part still to come takes the
   * slot this file held, so keeping it adds nothing to the disk's bound), keep it as the spare
   * the next create() overwrites — its page-cache pages are reused rather than freed and taken
   * again. One spare at most, named `.zrb-spare-N.tmp` in its directory (a backup's run deletes
   * its `*.tmp` spill files at its end and a resume at its start; a restore's scratch is emptied
   * at its start and end); an older spare is deleted. Never throws: a file that cannot be kept
   * is deleted.
   */
  recycle(path: string, wanted: boolean): void {
    const old = this.spare;
    this.spare = null;
    if (old) rmSync(old, { force: true });
    if (!wanted) return void rmSync(path, { force: true });
    const spare = join(dirname(path), `.zrb-spare-${this.spares++}.tmp`);
    try {
      renameSync(path, spare);
      this.spare = spare;
    } catch {
      rmSync(path, { force: true });
    }
  }

  /** Delete the spare file, if any (the end of a run that leaves its directory behind). */
  dropSpare(): void {
    if (this.spare) rmSync(this.spare, { force: true });
    this.spare = null;
  }

  /** Post to the worker; nothing is sent once it crashed (every file already failed). */
  send(m: ToFile): void {
    if (!this.host.crashed) this.host.send(m);
  }

  /** No file open or closing. */
  get idle(): boolean {
    return this.files.size === 0;
  }

  forget(id: number): void {
    this.files.delete(id);
  }

  private receive(m: FromFile): void {
    if (m.type === "ready") return;
    if (m.type === "ack") {
      this.buffers.put(m.slot);
      if (m.size !== undefined) this.files.get(m.file)?.onWritten?.(m.size);
      return;
    }
    const f = this.files.get(m.file);
    this.files.delete(m.file);
    if (!f) return;
    if (m.type === "closed") return f.resolve({ size: m.size, sha256: m.sha256 });
    f.failure = new FileFailure(m.op, m.message, m.code);
    f.reject(f.failure);
  }

  terminate(): void {
    this.dropSpare();
    this.host.terminate();
  }
}
