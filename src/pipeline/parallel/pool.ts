/**
 * One set of Workers for a whole tree run (a recursive backup or restore of many children):
 * starting and stopping the crypto and file Workers costs ≈ 0.6 s per run on a small machine,
 * which for a tree of hundreds of small children is most of the run. The tree run owns the
 * pool (withThreadPool: closed on every path, error and interrupt included) and each child's run
 * leases it: the lease's terminate() hands the Workers back instead of stopping them.
 *
 * A pool is reused only when it is known clean: the child's run ended with every run buffer
 * free and no job or file outstanding, and no Worker died. Otherwise (a failed or interrupted
 * child may leave work in flight) the Workers are stopped at the release and the next child
 * starts fresh ones — exactly what every child did before. A Worker that dies during a lease
 * fails that child's run as before (the lease's onFatal); one that dies between leases is
 * replaced at the next lease.
 */
import { log } from "../../util/log.ts";
import { startThreads, type Threads } from "./index.ts";

export class ThreadPool {
  private threads: Threads | undefined;
  private broken = false;
  private leased = false;
  private onFatal: ((e: Error) => void) | undefined;
  private closed = false;

  constructor(private readonly workers: number) {}

  /** The pool's Workers for one run; `onFatal` hears of a Worker dying until terminate() hands them back. */
  async lease(onFatal: (e: Error) => void): Promise<Threads> {
    if (this.closed) throw new Error("internal error: thread pool leased after it was closed");
    if (this.leased) throw new Error("internal error: thread pool leased by two runs at once");
    if (this.broken) this.stop();
    this.threads ??= await startThreads(this.workers, (e) => {
      this.broken = true;
      this.onFatal?.(e);
    });
    this.leased = true;
    this.onFatal = onFatal;
    const t = this.threads;
    let released = false;
    return {
      ...t,
      terminate: () => {
        if (released) return;
        released = true;
        this.release(t);
      },
    };
  }

  private release(t: Threads): void {
    this.leased = false;
    this.onFatal = undefined;
    // A spare file belongs to the run that kept it (FileWriter.recycle), not to the next child.
    t.files.dropSpare();
    const clean = !this.broken && t.buffers.idle && t.crypto.idle && t.files.idle;
    if (!clean && !this.closed) log.debug(`Worker pool not clean after a child's run (${this.broken ? "a Worker died" : "work still out"}): the next child starts fresh Workers`);
    if (!clean || this.closed) this.stop();
  }

  private stop(): void {
    this.threads?.terminate();
    this.threads = undefined;
    this.broken = false;
  }

  /** Stop the Workers (after the tree run; a lease still out stops them when handed back). */
  close(): void {
    this.closed = true;
    if (!this.leased) this.stop();
  }
}

/** Run `fn` with a Worker pool that lives exactly as long as it (the tree run). */
export async function withThreadPool<T>(workers: number, fn: (pool: ThreadPool) => Promise<T>): Promise<T> {
  const pool = new ThreadPool(workers);
  try {
    return await fn(pool);
  } finally {
    pool.close();
  }
}
