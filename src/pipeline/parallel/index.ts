/**
 * The Workers of one run of the data path (a backup, a restore, a verify): `workers` crypto
 * workers that seal or open runs of age blocks, one file worker that writes and SHA-256s
 * files in order, and the fixed set of run buffers they pass around. Started once per run,
 * terminated at its end. A Worker that dies fails its run at once (withThreads): the run's
 * signal is aborted with one error naming the Worker, and the run ends with it, after its own
 * cleanup (a restore kills its zfs receive), whatever it was waiting on at the time.
 */
import { ExitCode, ZrbError } from "../../util/errors.ts";
import { RunBuffers } from "./buffers.ts";
import { CryptoPool } from "./crypto-pool.ts";
import { FileWriter } from "./file-writer.ts";
import type { ThreadPool } from "./pool.ts";

export { RunBuffers } from "./buffers.ts";
export { CryptoPool, type Run } from "./crypto-pool.ts";
export { FileFailure, FileWriter, WriteFile, type Written } from "./file-writer.ts";

export interface Threads {
  buffers: RunBuffers;
  crypto: CryptoPool;
  files: FileWriter;
  terminate(): void;
}

/** Buffers per crypto worker: one being worked on, one queued, two on their way back or to disk. */
const BUFFERS_PER_WORKER = 4;
/** At most this many run buffers (≈ 1 MiB each), whatever `workers` says. */
const MAX_BUFFERS = 64;

/**
 * Start the Workers and wait until each can take messages; `onFatal` hears of one that
 * crashes later (its runs and files are rejected too).
 */
export async function startThreads(workers: number, onFatal: (e: Error) => void): Promise<Threads> {
  const n = Math.max(1, workers);
  const buffers = new RunBuffers(Math.min(MAX_BUFFERS, BUFFERS_PER_WORKER * n + 4));
  const crypto = new CryptoPool(n, buffers, onFatal);
  const files = new FileWriter(buffers, onFatal);
  const terminate = () => {
    crypto.terminate();
    files.terminate();
  };
  try {
    await Promise.all([crypto.ready, files.ready]);
  } catch (err) {
    terminate();
    throw err;
  }
  return { buffers, crypto, files, terminate };
}

/** The one-line error a run ends with when one of its Workers died (exit 1: it is a bug, or the machine ran out of memory). */
export function workerDied(what: string, e: Error): ZrbError {
  return new ZrbError(`${what} stopped: its ${e.message.split("\n")[0]}; rerun it`, ExitCode.FAILURE);
}

/**
 * Run `fn` with the Workers of one run (`what` names it in the error): its own, or leased from
 * the tree run's `pool` (handed back at the end instead of stopped). `fn` gets a signal that
 * aborts when `signal` does or when a Worker dies; a Worker's death aborts it at once with
 * workerDied(), and the run then ends with that error, whatever `fn` threw while it stopped.
 */
export async function withThreads<T>(
  workers: number,
  what: string,
  signal: AbortSignal | undefined,
  fn: (threads: Threads, signal: AbortSignal) => Promise<T>,
  pool?: ThreadPool,
): Promise<T> {
  const ac = new AbortController();
  const onOuter = () => ac.abort(signal!.reason);
  if (signal?.aborted) onOuter();
  else signal?.addEventListener("abort", onOuter, { once: true });
  let died: ZrbError | undefined;
  let threads: Threads | undefined;
  try {
    const onFatal = (e: Error) => {
      if (died || ac.signal.aborted) return;
      died = workerDied(what, e);
      ac.abort(died);
    };
    threads = pool ? await pool.lease(onFatal) : await startThreads(workers, onFatal);
    const out = await fn(threads, ac.signal);
    if (died) throw died;
    return out;
  } catch (err) {
    throw died ?? err;
  } finally {
    signal?.removeEventListener("abort", onOuter);
    threads?.terminate();
  }
}
