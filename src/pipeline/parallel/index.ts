/**
 * The Workers of one run of the data path (a backup, a restore, a verify): `workers` crypto
 * workers that seal or open runs of age blocks, one file worker that writes and SHA-256s
 * files in order, and the fixed set of run buffers they pass around. Started once per run,
 * terminated at its end.
 */
import { RunBuffers } from "./buffers.ts";
import { CryptoPool } from "./crypto-pool.ts";
import { FileWriter } from "./file-writer.ts";

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
