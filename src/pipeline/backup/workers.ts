/**
 * The encryption workers: Bun Workers that age-encrypt one chunk at a time straight into its
 * spill file and SHA-256 the ciphertext (workers/encrypt.worker.ts), fed through a fixed pool of
 * transferred 1 MiB buffers, so memory stays flat whatever the chunk or stream size.
 */
import type { FromWorker, Sealed, ToWorker } from "../../workers/protocol.ts";
import { ExitCode, ZrbError, fsError } from "../../util/errors.ts";

export const BUF_SIZE = 1 << 20;

function workerUrl(): string {
  // In a compiled binary every module is bundled into the main entry at /$bunfs/root/, and
  // the worker (an extra entry point of the compile) sits at workers/ beside it.
  if (import.meta.url.includes("$bunfs")) return new URL("./workers/encrypt.worker.ts", import.meta.url).href;
  return new URL("../../workers/encrypt.worker.ts", import.meta.url).href;
}

/** A fixed set of transfer buffers: memory stays flat whatever the stream size. */
export class BufferPool {
  private free: ArrayBuffer[] = [];
  private waiters: ((b: ArrayBuffer) => void)[] = [];
  constructor(count: number) {
    for (let i = 0; i < count; i++) this.free.push(new ArrayBuffer(BUF_SIZE));
  }
  /** A free buffer; rejects when `signal` aborts (a dead worker never hands its buffers back). */
  async take(signal: AbortSignal): Promise<ArrayBuffer> {
    const b = this.free.pop();
    if (b) return b;
    if (signal.aborted) throw signal.reason;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(give);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal.reason);
      };
      const give = (buf: ArrayBuffer) => {
        signal.removeEventListener("abort", onAbort);
        resolve(buf);
      };
      this.waiters.push(give);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
  put(b: ArrayBuffer): void {
    const w = this.waiters.shift();
    if (w) w(b);
    else this.free.push(b);
  }
}

/** One encryption worker: one chunk at a time, in order of `begin`. */
export class EncryptWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { path: string; resolve: (v: Sealed) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly pool: BufferPool,
    private readonly onFatal: (e: Error) => void,
  ) {
    this.worker = new Worker(workerUrl());
    this.worker.onmessage = (ev: MessageEvent<FromWorker>) => this.receive(ev.data);
    this.worker.onerror = (ev) => this.onFatal(new ZrbError(`encryption worker crashed: ${(ev as ErrorEvent).message}`));
  }

  private send(m: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  private receive(m: FromWorker): void {
    if (m.type === "ack") return this.pool.put(m.buf);
    const p = this.pending.get(m.index);
    this.pending.delete(m.index);
    if (m.type === "done") return p?.resolve({ cipherSize: m.cipherSize, sha256: m.sha256 });
    const err =
      m.code === "ENOSPC" || m.code === "EROFS" || m.code === "EACCES"
        ? fsError(Object.assign(new Error(m.message), { code: m.code }), "writing spill chunk", p?.path ?? "the spill directory")
        : new ZrbError(`encrypting chunk ${m.index} failed: ${m.message}`, ExitCode.FAILURE);
    if (p) p.reject(err);
    else this.onFatal(err);
  }

  /** Start chunk `index`, encrypted into `path`; resolves when its part file is complete. */
  begin(index: number, path: string, recipients: string[]): Promise<Sealed> {
    const done = new Promise<Sealed>((resolve, reject) => this.pending.set(index, { path, resolve, reject }));
    this.send({ type: "begin", index, path, recipients });
    return done;
  }

  /** Hand over a buffer (transferred: it comes back through the pool when the worker is done with it). */
  data(buf: ArrayBuffer, len: number): void {
    this.send({ type: "data", buf, len }, [buf]);
  }

  end(): void {
    this.send({ type: "end" });
  }

  terminate(): void {
    this.worker.terminate();
  }
}
