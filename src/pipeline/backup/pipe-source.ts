/**
 * The sender's stdout read by zrb itself, in place of the runtime's stream reader (why:
 * util/os-pipe.ts). One buffer is reused for every read, so what read() gives is valid only
 * until the next read(): the chunker copies each piece before it asks for the next (send.ts
 * pump). Shared sends (shared-send.ts) keep pieces queued for several stores, so they read the
 * runtime's stream instead.
 *
 * When bytes are waiting the read is made at once, on this thread (only the kernel's copy);
 * when none are (a sender slower than zrb) it waits on the runtime's I/O threads. The pipe is
 * closed only when no read is outstanding: a read still queued when its descriptor number is
 * given to another file would read that file.
 */
import { closeSync, read, readSync } from "node:fs";
import { openPipe, readyToRead } from "../../util/os-pipe.ts";
import { zfsError } from "../../util/errors.ts";
import type { StreamSource } from "./send.ts";

export type Piece = { done: true; value?: Uint8Array } | { done: false; value: Uint8Array };

/** The part of a stream reader that send.ts uses. */
export interface PieceReader {
  /** The next bytes (valid until the next read() for a PipeReader), or done at the end. Rejects when the pipe cannot be read. */
  read(): Promise<Piece>;
  /** Stop reading and close our end (whatever still writes into the pipe gets EPIPE). */
  cancel(): Promise<void>;
}

/** A sender's stdout read through zrb's own pipe. */
export interface OwnPipe {
  readonly own: PieceReader;
}

/** The reader of a sender's stdout: zrb's own pipe's, or a reader of the runtime's stream. */
export function readerOf(stdout: ReadableStream<Uint8Array> | OwnPipe): PieceReader {
  return "own" in stdout ? stdout.own : stdout.getReader();
}

const PIECE = 1 << 20;

export class PipeReader implements PieceReader {
  /** A plain Uint8Array: what read() gives is a view, and a Buffer's slice() would be one too. */
  private readonly buf = new Uint8Array(PIECE);
  private pending: Promise<unknown> | null = null;
  private closed = false;
  private cancelled = false;

  constructor(private readonly fd: number) {}

  async read(): Promise<Piece> {
    if (this.cancelled || this.closed) return { done: true, value: undefined };
    let n: number;
    try {
      n = readyToRead(this.fd) ? readSync(this.fd, this.buf, 0, PIECE, null) : await this.readLater();
    } catch (err) {
      this.close();
      throw zfsError(`reading the output of zfs send failed: ${(err as Error).message}`);
    }
    if (this.cancelled) return { done: true, value: undefined };
    if (n === 0) {
      this.close();
      return { done: true, value: undefined };
    }
    return { done: false, value: this.buf.subarray(0, n) };
  }

  async cancel(): Promise<void> {
    this.cancelled = true;
    // A read in flight closes the pipe when it returns (the sender's end is closed by then or soon).
    if (!this.pending) this.close();
  }

  private readLater(): Promise<number> {
    const p = new Promise<number>((resolve, reject) => read(this.fd, this.buf, 0, PIECE, null, (err, n) => (err ? reject(err) : resolve(n))));
    this.pending = p.finally(() => {
      this.pending = null;
      if (this.cancelled) this.close();
    });
    this.pending.catch(() => {});
    return p;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

/**
 * Start the sender (`spawn` gets the pipe's write end as its stdout) with a pipe of zrb's own;
 * null where zrb cannot make one (the caller spawns with the runtime's pipe). Throws what
 * `spawn` throws, with both ends closed.
 */
export function spawnPiped(spawn: (stdout: number) => Omit<StreamSource, "stdout">): StreamSource | null {
  const pipe = openPipe();
  if (!pipe) return null;
  let proc: Omit<StreamSource, "stdout">;
  try {
    proc = spawn(pipe.write);
  } catch (err) {
    closeSync(pipe.read);
    throw err;
  } finally {
    // The child has its copy: with ours closed, the child's exit is the end of the stream.
    closeSync(pipe.write);
  }
  return {
    stdout: { own: new PipeReader(pipe.read) },
    stderr: proc.stderr,
    exited: proc.exited,
    kill: (sig) => proc.kill(sig),
  };
}
