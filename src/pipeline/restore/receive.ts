/**
 * Receive: apply one step of the chain to the target. Parts come from the fetcher (ciphertext
 * already checked), are decrypted and BLAKE3-checked, and stream into `zfs receive -u [-F] [-s]`
 * — except the last WITHHOLD bytes actually read, which hold the stream's END record: they are
 * written only after every part hash, the whole-stream BLAKE3 and the stream's BEGIN and END
 * records matched the manifest, so `zfs receive` cannot commit unverified bytes. A receive that
 * takes no byte for zfs.stall_timeout, or has not exited that long after the stream's last byte
 * (it hangs on commit), is a stall (exit 5). On any failure the receive is killed,
 * a resumable partial state aborted (`zfs receive -A`), and a dataset the step created destroyed.
 */
import type { FileSink } from "bun";
import type { ObjectStore } from "../../store/store.ts";
import type { Manifest, ManifestPart } from "../../records/manifest.ts";
import * as zfs from "../../zfs/zfs.ts";
import { parseFailure } from "../../zfs/errors.ts";
import { StreamEndsCollector } from "../../zfs/stream.ts";
import { ZrbError, integrityError, zfsError } from "../../util/errors.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { log } from "../../util/log.ts";
import type { Threads } from "../parallel/index.ts";
import { PartFetcher } from "./fetch.ts";
import { claimScratch } from "./scratch.ts";
import { decryptPart } from "./decrypt.ts";
import { shortSnap } from "./select.ts";
import { within, zfsStallError } from "../../zfs/stall.ts";
import type { TransferProgress } from "../../report/progress.ts";

/** Bytes of the stream kept back from `zfs receive` until everything is verified (holds the END record). */
export const WITHHOLD = 1 << 20;

export interface StepOptions {
  target: string;
  force: boolean;
  identities: string[];
  scratchRoot: string;
  ahead: number;
  /** The run's Workers: downloads are written and hashed, parts decrypted, on them. */
  threads: Threads;
  signal?: AbortSignal;
  /** How long `zfs receive` may take no byte (zfs.stall_timeout). */
  stallMs?: number;
  /**
   * Progress as bytes arrive from the store, counted in stream (plaintext) bytes: a part's
   * downloaded ciphertext scaled by its plain/cipher sizes, so a step adds up to its stream size.
   */
  onBytes?: (n: number) => void;
  /** Ranged GETs at once for one part (s3.concurrency). */
  connections?: number;
  progress?: Pick<TransferProgress, "part">;
  /** Checks that must pass before the first byte is received; the downloads start meanwhile. */
  before?: Promise<void>;
}

function receiveError(target: string, code: number, stderr: string, m: Manifest, force: boolean): ZrbError {
  const f = parseFailure(stderr);
  const msg = f.line || `exit ${code}`;
  const what = `zfs receive of ${shortSnap(m.snapshot.name)} into ${target} failed: ${msg}`;
  if (f.kind === "foreign-snapshots") return zfsError(`${what}; ${target} has snapshots that are not part of this chain: destroy them or choose another --target`);
  if (f.kind === "modified" && !force) return zfsError(`${what}; rerun with --force to roll ${target} back (zfs receive -F)`);
  if (f.kind === "no-space") return zfsError(`${what}; free space in the pool`);
  return zfsError(what);
}

/**
 * The last `size` bytes of what was written into it stay here; the rest is passed on in order.
 * Flushing releases the tail. What is held is copied into one buffer made once (a copy of every
 * piece, 1 MiB at a time, cost the restore's main thread and its collector ≈ 0.3 CPU s per GiB);
 * what goes on is passed as a view of the caller's piece or of that buffer, valid only until
 * `write` returns — a pipe's FileSink copies what it cannot write at once (pipeWriter).
 */
class TailWithholder {
  private readonly held: Uint8Array;
  private len = 0;
  constructor(
    private readonly size: number,
    private readonly write: (b: Uint8Array) => Promise<void>,
  ) {
    this.held = new Uint8Array(size);
  }
  async push(b: Uint8Array): Promise<void> {
    const over = this.len + b.length - this.size;
    if (over > 0) {
      // The oldest bytes go first: from what is held, then from the front of b.
      const fromHeld = Math.min(over, this.len);
      if (fromHeld > 0) {
        await this.write(this.held.subarray(0, fromHeld));
        this.held.copyWithin(0, fromHeld, this.len);
        this.len -= fromHeld;
      }
      if (over > fromHeld) await this.write(b.subarray(0, over - fromHeld));
      b = b.subarray(over - fromHeld);
    }
    this.held.set(b, this.len);
    this.len += b.length;
  }
  /** The last `n` bytes held back (n ≤ size). */
  async flush(): Promise<void> {
    if (this.len > 0) await this.write(this.held.subarray(0, this.len));
    this.len = 0;
  }
}

async function waitGone(target: string, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (!(await zfs.datasetExists(target))) return true;
    if (Date.now() > until) return false;
    await Bun.sleep(200);
  }
}

/** Remove what a failed step left behind. `created`: the step was creating the target. */
async function cleanupFailedStep(target: string, created: boolean, m: Manifest, caps: zfs.ZfsCaps): Promise<void> {
  await zfs.abortReceive(target, caps).catch(() => {});
  if (created) {
    // zfs-fuse's daemon notices the closed pipe asynchronously and removes the new dataset itself.
    if (await waitGone(target, 5000)) return;
    for (let i = 0; i < 20; i++) {
      if ((await zfs.tryDestroy(target, { recursive: true })) || (await waitGone(target, 500))) return;
      await Bun.sleep(250);
    }
    log.error(`could not remove the partially received ${target}; destroy it by hand: zfs destroy -r ${target}`);
    return;
  }
  const snaps = await zfs.listSnapshots(target).catch(() => [] as zfs.Snapshot[]);
  if (snaps.some((s) => s.guid === m.snapshot.guid))
    log.error(`${target} unexpectedly holds snapshot ${shortSnap(m.snapshot.name)} of the failed step; destroy it: zfs destroy ${target}@${shortSnap(m.snapshot.name)}`);
}

/** How long a write into the receiver may wait for the pipe, and the error when it waited that long. */
export interface PipeStall {
  ms: number;
  error: () => Error;
}

/**
 * Writes into a receiving process's stdin with the pipe's back-pressure: a write waits only when
 * the sink's buffer is full (a flush after every piece cost a round trip to the receiver per
 * MiB, ≈ 15 % of a restore's time in the bench). Bun's FileSink copies what the pipe does not
 * take at once, so the caller may reuse its buffer as soon as a write returns
 * (stream-records.test checks it through a full pipe). What is written is only what the caller
 * passes, so nothing reaches the receiver earlier than before; end() flushes the rest. A write
 * to a receiver that died throws `died()`; a wait for the pipe longer than `stall.ms` (a
 * receiver that takes no data) throws `stall.error()`.
 */
export function pipeWriter(sink: FileSink, died: () => Promise<Error>, stall?: PipeStall): (b: Uint8Array) => Promise<void> {
  return async (b) => {
    let stalled: Error | undefined;
    try {
      // A number when the sink took it, a promise while the pipe is full: that wait is bounded.
      const wrote = Promise.resolve(sink.write(b));
      await (stall ? within(wrote, stall.ms, () => (stalled = stall.error())) : wrote);
    } catch {
      if (stalled) throw stalled;
      throw await died();
    }
  };
}

/** What receiveParts() needs besides the store and the manifest. */
export interface PartsOptions {
  identities: string[];
  /** A directory of zrb's own for the downloaded parts (at most `ahead` at once). */
  scratch: string;
  ahead: number;
  threads: Threads;
  /** Where the stream goes, for messages. */
  target: string;
  signal?: AbortSignal;
  /** Told of each part verified. */
  progress?: Pick<TransferProgress, "part">;
  /** Ranged GETs at once for one part, and who hears of downloaded bytes as they arrive. */
  connections?: number;
  onPartBytes?: (n: number, p: ManifestPart) => void;
  /** The step's downloads, already started (applyStep: while the checks before it run). */
  fetcher?: PartFetcher;
}

/**
 * The verified send stream of backup `m`, in order, into `write`: parts downloaded (ciphertext
 * SHA-256 checked), decrypted (every block authenticated) and BLAKE3-checked — except the last
 * WITHHOLD bytes actually read, written only after every part hash, the whole-stream BLAKE3 and
 * the stream's first (BEGIN) and last (END) records matched the manifest. Throws (nothing of the
 * tail written) on any mismatch. `write` gets views valid only until it returns: copy what you keep.
 */
export async function receiveParts(store: ObjectStore, m: Manifest, o: PartsOptions, write: (b: Uint8Array) => Promise<void>): Promise<void> {
  const fetcher = o.fetcher ?? new PartFetcher(store, m, o.scratch, o.ahead, o.threads, o.signal, { connections: o.connections, onPartBytes: o.onPartBytes, identities: o.identities });
  const withheld = new TailWithholder(WITHHOLD, write);
  // The whole stream's BLAKE3, fed in order by decryptPart on the hashing worker.
  const whole = o.threads.crypto.newHasher();
  let size = 0;
  // The first records and the last, checked against the manifest before the withheld tail (the END record) goes out.
  const ends = new StreamEndsCollector();
  const emit = async (b: Uint8Array) => {
    checkInterrupted(o.signal);
    size += b.length;
    ends.push(b);
    await withheld.push(b);
  };
  try {
    for (const p of m.parts) {
      try {
        const path = await fetcher.take(p.index);
        await decryptPart(path, m, p, { identities: o.identities, url: store.urlOf(p.key), emit, threads: o.threads, alsoHash: [whole], signal: o.signal });
      } finally {
        fetcher.release(p.index);
      }
      log.info(`backup ${m.backupId}: part ${p.index + 1}/${m.parts.length} verified (${p.plainSize} bytes)`);
      o.progress?.part({ backupId: m.backupId, index: p.index, bytes: p.plainSize });
    }
    const digest = await o.threads.crypto.digest(whole);
    if (size !== m.stream.size) throw integrityError(`backup ${m.backupId}: the parts add up to ${size} bytes, manifest says ${m.stream.size}`);
    if (digest !== m.stream.blake3)
      throw integrityError(`backup ${m.backupId}: stream BLAKE3 is ${digest}, manifest says ${m.stream.blake3}; nothing was committed to ${o.target}`);
    const why = ends.problem(m.snapshot.guid, m.parent?.guid ?? null);
    if (why) throw integrityError(`backup ${m.backupId} is not the zfs stream its manifest describes: ${why}; nothing was committed to ${o.target}`);
    // Everything verified: release the withheld tail (with the END record).
    await withheld.flush();
  } catch (err) {
    fetcher.stop();
    throw err;
  }
}

/** Apply one step of the chain: download, verify, decrypt and receive it. */
export async function applyStep(store: ObjectStore, m: Manifest, caps: zfs.ZfsCaps, opts: StepOptions): Promise<{ seconds: number }> {
  const t0 = performance.now();
  const { target } = opts;
  const claim = claimScratch(opts.scratchRoot, m.backupId);
  const scratch = claim.dir;
  const onPartBytes = opts.onBytes && ((n: number, p: ManifestPart) => opts.onBytes!(p.cipherSize > 0 ? (n * p.plainSize) / p.cipherSize : 0));
  // The downloads start now; nothing is received before `opts.before` (the checks) passed.
  const fetcher = new PartFetcher(store, m, scratch, opts.ahead, opts.threads, opts.signal, { connections: opts.connections, onPartBytes, identities: opts.identities });
  let created: boolean;
  let proc: ReturnType<typeof zfs.spawnReceive>;
  try {
    await opts.before;
    // Only a target zfs says is not there counts as made by this step (a failed step destroys it):
    // a `zfs list` that failed for another reason stops the step before anything is received.
    created = await zfs.datasetSurelyMissing(target);
    // -F into a mounted target: unmount it first, as OpenZFS's receive -F does by itself (zfs-fuse
    // fails a forced full receive over a mounted dataset with "I/O error" now and then). A target
    // that is busy (open files, a share) refuses, and the message says so.
    if (opts.force && !created && (await zfs.getProp(target, "mounted")) === "yes") await zfs.unmount(target);
    proc = zfs.spawnReceive(target, { force: opts.force, resumable: true }, caps);
  } catch (err) {
    fetcher.stop();
    claim.release();
    throw err;
  }
  const stderrText = new Response(proc.stderr).text();
  void new Response(proc.stdout).text();
  let exitCode: number | null = null;
  const exited = proc.exited.then((c) => (exitCode = c));
  const sink = proc.stdin as FileSink;

  const receiveDied = async (): Promise<ZrbError> => {
    await Promise.race([exited, Bun.sleep(5000)]);
    return receiveError(target, exitCode ?? -1, await Promise.race([stderrText, Bun.sleep(1000).then(() => "")]), m, opts.force);
  };
  const stallMs = opts.stallMs ?? 3_600_000;
  const stall: PipeStall = { ms: stallMs, error: () => zfsStallError(`zfs receive into ${target} took no data`, stallMs) };
  const toPipe = pipeWriter(sink, receiveDied, stall);
  const write = async (b: Uint8Array) => {
    if (exitCode !== null) throw await receiveDied();
    await toPipe(b);
  };

  try {
    const parts = { identities: opts.identities, scratch, ahead: opts.ahead, threads: opts.threads, target, signal: opts.signal, progress: opts.progress, fetcher };
    await receiveParts(store, m, parts, write);
    // The whole stream is in: flush what the pipe still holds, close it, let receive commit.
    // A receiver that takes no more bytes, or never exits after the last one, is a stall too.
    const ended = Promise.resolve()
      .then(() => sink.end())
      .catch(() => {});
    await within(ended, stallMs, stall.error);
    const code = await within(exited, stallMs, () => zfsStallError(`zfs receive into ${target} took the whole stream but did not exit`, stallMs));
    if (code !== 0) throw receiveError(target, code, await stderrText, m, opts.force);
    const snaps = await zfs.listSnapshots(target);
    if (!snaps.some((s) => s.guid === m.snapshot.guid))
      throw zfsError(`zfs receive of backup ${m.backupId} succeeded but ${target} has no snapshot with guid ${m.snapshot.guid} (${shortSnap(m.snapshot.name)})`);
  } catch (err) {
    proc.kill("SIGKILL");
    try {
      sink.end();
    } catch {}
    await Promise.race([exited, Bun.sleep(5000)]);
    // zfs found the target there when it started (with -F: with snapshots): someone made it after
    // zrb looked. It is theirs: not destroyed, and no receive state of theirs aborted.
    const kind = created ? parseFailure(await Promise.race([stderrText, Bun.sleep(1000).then(() => "")])).kind : undefined;
    if (kind !== "exists" && kind !== "foreign-snapshots") await cleanupFailedStep(target, created, m, caps);
    throw err;
  } finally {
    claim.release();
  }
  return { seconds: (performance.now() - t0) / 1000 };
}
