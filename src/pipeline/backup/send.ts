/**
 * One pass of the data path for a backup state:
 *   zfs send ──► chunker (chunks; BLAKE3 of the whole stream and of each chunk, on a worker)
 *     ──► part sealer: runs of age blocks sealed on every crypto worker at once, written in
 *         order to the spill file and SHA-256'd by the file worker ──► uploader (resumable, recorded)
 * The sender's exit status is always checked (a failed `zfs send` can emit bytes that
 * `zfs receive` accepts): a stream that ends early is never recorded as complete.
 *
 * Returns `{kind: "restart"}` when the re-sent stream differs from what the interrupted run
 * recorded (OpenZFS does not promise byte-identical streams): the caller starts over under a
 * new backup id. Otherwise `{kind: "done"}` with the stream's size and BLAKE3. On failure or
 * interrupt the state is saved and the error thrown.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { storageClassFor, type Config } from "../../config/config.ts";
import type { ObjectStore } from "../../store/store.ts";
import type { RunDir, BackupState } from "../../state/rundir.ts";
import * as zfs from "../../zfs/zfs.ts";
import { firstLine } from "../../zfs/errors.ts";
import { fsError, zfsError } from "../../util/errors.ts";
import { partFileName } from "../../store/layout.ts";
import { interrupted } from "../../util/abort.ts";
import { log } from "../../util/log.ts";
import { Semaphore } from "../../util/semaphore.ts";
import { TaskGroup } from "../../util/task-group.ts";
import { startThreads } from "../parallel/index.ts";
import type { ThreadPool } from "../parallel/pool.ts";
import { Uploader } from "./upload.ts";
import { Chunker, StreamDiffers } from "./chunker.ts";
import { StateWriter } from "./state-writer.ts";
import { within, zfsStallError } from "../../zfs/stall.ts";
import type { TransferProgress } from "../../report/progress.ts";
import type { SendShare } from "./shared-send.ts";
import { readerOf, spawnPiped, type OwnPipe, type PieceReader } from "./pipe-source.ts";

/** The bytes to back up: `zfs send` normally; the benchmark feeds a `zfs send`-like process. */
export interface StreamSource {
  /** The runtime's stream, or zrb's own pipe (pipe-source.ts), whose pieces are valid only until the next read. */
  stdout: ReadableStream<Uint8Array> | OwnPipe;
  stderr: ReadableStream<Uint8Array>;
  exited: Promise<number>;
  kill(sig?: NodeJS.Signals | number): void;
}

/** A source read through the runtime's stream: every piece is a buffer of its own (what a tee may queue for several stores). */
export type StreamedSource = StreamSource & { stdout: ReadableStream<Uint8Array> };

export interface StreamOptions {
  cfg: Pick<Config, "workers" | "s3"> & Partial<Pick<Config, "zfs">>;
  store: ObjectStore;
  state: BackupState;
  rundir: RunDir;
  /** Instead of `zfs send` of the state's snapshot (the benchmark). */
  source?: StreamSource;
  signal?: AbortSignal;
  onChunkUploaded?: (index: number) => void;
  progress?: TransferProgress;
  /** After each stored part (the in-flight marker's refresh; rate-limited by the callee). */
  afterPart?: () => Promise<void>;
  /** Lease the Workers from this pool (a tree run's) instead of starting them. */
  threads?: ThreadPool;
  /** The run's senders shared with other stores (shared-send.ts); without it, this backup's own `zfs send`. */
  sends?: SendShare;
  /** The whole stream has been read and checked (its last parts may still be uploading). */
  onStreamRead?: () => void;
}

export type StreamResult = { kind: "restart" } | { kind: "done"; streamSize: number; blake3: string; skipped: number };

/** The spill directory of this backup, without leftover temp files (never trusted). */
function prepareSpill(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fsError(err, "creating spill directory", dir);
  }
  removeTemps(dir);
}

function removeTemps(dir: string): void {
  for (const f of existsSync(dir) ? readdirSync(dir) : []) if (f.endsWith(".tmp")) rmSync(join(dir, f), { force: true });
}

/** The sender of the state's snapshot (or the benchmark's, or a branch of one shared with other stores), stopped when the group fails. */
async function startSender(o: StreamOptions, group: TaskGroup): Promise<{ proc: StreamSource; stderrText: Promise<string> }> {
  const { state } = o;
  const plan = { snapshot: state.snapshot.name, from: state.parent?.name, flags: state.sendFlags };
  const proc: StreamSource = o.source ?? (o.sends ? await o.sends.open(plan, group.signal) : (spawnPiped((fd) => zfs.spawnSend(plan, fd)) ?? zfs.spawnSend(plan)));
  const stderrText = new Response(proc.stderr).text();
  group.signal.addEventListener("abort", () => proc.kill("SIGTERM"));
  // Failed before the listener existed (a signal during start-up): a sender nobody reads
  // would block on its full pipe forever.
  if (group.signal.aborted) proc.kill("SIGTERM");
  return { proc, stderrText };
}

/** Resume: part files a killed run left intact are uploaded from disk (jobs of the group), and only verified in the stream. */
async function resumeFromDisk(uploader: Uploader, spill: string, slots: Semaphore, fromDisk: Set<number>, group: TaskGroup): Promise<void> {
  for (const rec of await uploader.intactOnDisk(spill)) {
    fromDisk.add(rec.index);
    await slots.acquire();
    group.go(async () => {
      try {
        await uploader.upload(rec, join(spill, partFileName(rec.index)), "(resumed)");
      } finally {
        slots.release();
      }
    });
  }
  await uploader.abortLost(fromDisk);
}

/**
 * Read the sender's stdout into the chunker until it ends or the group fails, then check how
 * the sender ended; returns the stream's size. A failure of the group is left for the caller.
 */
type Reader = PieceReader;

async function pump(o: StreamOptions, s: { proc: StreamSource; stderrText: Promise<string> }, chunker: Chunker, group: TaskGroup, reader: Reader): Promise<number> {
  const { state } = o;
  const stallMs = o.cfg.zfs?.stallTimeout ?? 3_600_000;
  const stalled = () => zfsStallError(`zfs send of ${state.snapshot.name} produced no data`, stallMs);
  let size = 0;
  while (!group.failed) {
    const { value, done } = await within(reader.read(), stallMs, stalled);
    if (done) break;
    size += value.length;
    await chunker.push(value);
  }
  if (group.failed) s.proc.kill("SIGTERM");
  const code = await s.proc.exited;
  // A killed sender's children (a wrapper's pipeline) may keep stderr open: do not wait on them.
  const errText = await Promise.race([s.stderrText, Bun.sleep(group.failed ? 1000 : 10_000).then(() => "")]);
  if (group.failed) return size;
  if (code !== 0) throw zfsError(`zfs send ${state.parent ? `-i ${state.parent.name} ` : ""}${state.snapshot.name} failed (exit ${code}): ${firstLine(errText) || "no message"}`);
  if (size === 0) throw zfsError(`zfs send of ${state.snapshot.name} produced no data`);
  // More recorded chunks than this stream has: the bytes changed.
  if (await chunker.end()) group.fail(new StreamDiffers());
  return size;
}

export async function streamBackup(o: StreamOptions): Promise<StreamResult> {
  const { state, store } = o;
  const spill = o.rundir.spillDir(state.backupId);
  prepareSpill(spill);
  // Writes of the state during the run go to the thread pool, one at a time (state-writer.ts).
  const writer = new StateWriter(o.rundir, state);
  const persist = () => writer.persist();
  // The first failure (a job's, a Worker's, the interrupt, or StreamDiffers) stops everything.
  const group = new TaskGroup();
  const nWorkers = Math.max(1, o.cfg.workers);
  const threads = o.threads ? await o.threads.lease((e) => group.fail(e)) : await startThreads(nWorkers, (e) => group.fail(e));
  const unfollow = group.follow(o.signal, () => interrupted(o.signal));
  // At most workers + 1 parts on the spill disk at once (sealing, sealed, uploading). A stored
  // part's file is kept for the next part to overwrite only when that part waits for its slot
  // (FileWriter.recycle): the spare takes the place of the file it replaces, never one more.
  const slots = new Semaphore(nWorkers + 1);
  const uploader = new Uploader({ store, state, storageClass: storageClassFor(o.cfg as Config, state.level), persist, signal: group.signal, onUploaded: o.onChunkUploaded, progress: o.progress, afterPart: o.afterPart, recycle: (p) => threads.files.recycle(p, slots.waiting > 0) });
  let sender: Awaited<ReturnType<typeof startSender>> | undefined;
  const fromDisk = new Set<number>();
  const streamHasher = threads.crypto.newHasher();
  const chunker = new Chunker({ state, spill, threads, streamHasher, slots, uploader, fromDisk, persist, group });
  const differs = () => group.failure instanceof StreamDiffers;
  let reader: Reader | undefined;
  try {
    sender = await startSender(o, group);
    await resumeFromDisk(uploader, spill, slots, fromDisk, group);
    reader = readerOf(sender.proc.stdout);
    const streamSize = await pump(o, sender, chunker, group, reader);
    if (!group.failed) o.onStreamRead?.();
    await group.wait();
    // Asked for after the chunker handed over the stream's last bytes.
    return { kind: "done", streamSize, blake3: await threads.crypto.digest(streamHasher), skipped: chunker.skipped };
  } catch (err) {
    sender?.proc.kill("SIGTERM");
    await group.settle();
    if (differs()) return { kind: "restart" };
    try {
      await writer.idle();
      o.rundir.writeState(state);
    } catch (e) {
      // The last good state is still on disk (writes are atomic); report the original error.
      log.warn((e as Error).message);
    }
    throw group.failed ? group.failure : err;
  } finally {
    // No state write may land after this returns (a restart discards this state file).
    await group.settle();
    await writer.idle();
    unfollow();
    threads.terminate();
    // Close our end of the pipe (also when it was never read): whatever still writes into it gets EPIPE and ends.
    if (sender) (reader ?? readerOf(sender.proc.stdout)).cancel().catch(() => {});
    removeTemps(spill);
  }
}
