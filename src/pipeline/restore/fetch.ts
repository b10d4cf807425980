/**
 * Fetch: download a backup's parts in order to scratch files, at most `ahead` on disk at once.
 * A part's file is handed over only after its size and ciphertext SHA-256 matched the manifest,
 * so no byte of a damaged or replaced object is ever decrypted. Transport failures are the
 * store's business (the retry wrapper resumes a broken body by range); a SHA-256 mismatch is
 * downloaded once more from scratch, then reported with both hashes.
 *
 * One TCP connection to a bucket 20–100 ms away carries a fraction of the link: a part larger
 * than one range is fetched as ranged GETs of RANGE_BYTES, up to `connections` at once (config
 * `s3.concurrency`), and written in order — so memory holds at most `connections` ranges, and
 * the file worker still hashes the bytes in stream order. The last range is asked open-ended, so
 * an object longer than its manifest says is still caught. Every piece counts for progress as
 * it arrives.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { isStoreError, type ObjectStore } from "../../store/store.ts";
import { partFileName } from "../../store/layout.ts";
import type { Manifest, ManifestPart } from "../../records/manifest.ts";
import { ExitCode, ZrbError, fsError, integrityError, storeError } from "../../util/errors.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { log } from "../../util/log.ts";
import { Semaphore } from "../../util/semaphore.ts";
import { FileFailure, type Threads, type Written } from "../parallel/index.ts";
import { SlotFiller } from "../parallel/slot-filler.ts";
import { rewrappedProblem } from "../rekey/origin.ts";
import { RangeSlots } from "./range-slots.ts";

/** "part 3 of backup <id> (s3://bucket/prefix/data/…)". */
export function partName(m: Manifest, p: ManifestPart, url: string): string {
  return `part ${p.index} of backup ${m.backupId} (${url})`;
}

/** The file worker's failure as the one-line error a user sees. */
function scratchError(err: unknown, path: string): unknown {
  if (!(err instanceof FileFailure)) return err;
  return fsError(err, err.op === "create" ? "creating restore scratch file" : "writing restore scratch file", path);
}

/**
 * Bytes per ranged GET when a part is fetched over several connections. 4 MiB, not 8: each range
 * in flight costs about twice its size in RSS (our buffer and the HTTP client's), and at 8
 * connections 8 MiB ranges took a loopback restore's peak RSS to 359 MiB (4 MiB: 239 MiB).
 */
export const RANGE_BYTES = 4 * 1024 * 1024;

/** How a part is downloaded: connections at once for one part, and who hears of every piece. */
export interface FetchOptions {
  signal?: AbortSignal;
  /** Bytes downloaded, as they arrive (before any check). */
  onBytes?: (n: number) => void;
  /** Ranged GETs in flight at once for one part (1: one GET for the whole part). */
  connections?: number;
  /** Bytes per ranged GET (tests use small ones); default RANGE_BYTES. */
  rangeBytes?: number;
  /** The private key's identities: a rekeyed part's original SHA-256 is checked through its sealed original header. */
  identities?: string[];
  /** The bytes of its step's parts after this one: the ranges near the step's end shrink (rangesOf). */
  after?: number;
  /** Connections and range buffers shared by the parts downloading at once (PartFetcher; range-slots.ts); `rank`: the part's index. */
  shared?: { slots: RangeSlots; rank: number };
}

/** Where a part lies in its step, for rangesOf's taper: the connections, and the bytes of the parts after it. */
export interface Taper {
  connections: number;
  after: number;
}

/**
 * The ranges of a part of `size` bytes: `step` bytes each, the last one open-ended (so an object
 * longer than its manifest says is still caught) — with the first `stagger` of them growing
 * from step/stagger to step, and, with `taper`, those within the step's last `connections`
 * ranges' worth of bytes each a `connections`-th of what the step has left from there (never
 * below step/16).
 *
 * Ranges that start together share the link and end together, so every connection then waits
 * out its next request's round trip at the same moment and the link idles each time (≈ 5 % of a
 * 20 ms-away link at 4 MiB ranges); started at staggered sizes, the connections stay out of step
 * and the others fill each one's wait. At a step's end the connections run out one by one, and
 * the last ranges, alone on a connection or two, get a fraction of the link — unless each range
 * taken there is a share of what is left, so that the ones in flight end at about the same time.
 */
export function rangesOf(size: number, step: number, stagger = 0, taper?: Taper): { start: number; end?: number }[] {
  const out: { start: number; end?: number }[] = [];
  const least = Math.max(1, Math.ceil(step / 16));
  let start = 0;
  for (let j = 0; ; j++) {
    let len = j < stagger ? Math.ceil((step * (j + 1)) / stagger) : step;
    if (taper) {
      const left = size - start + taper.after;
      if (left < taper.connections * step) len = Math.min(len, Math.max(least, Math.ceil(left / taper.connections)));
    }
    if (start + len >= size) break;
    out.push({ start, end: start + len - 1 });
    start += len;
  }
  out.push({ start });
  return out;
}

/** One range read whole into `into` (its first bytes): exactly its bytes, or an error naming what was wrong. */
async function fetchRange(store: ObjectStore, key: string, r: { start: number; end?: number }, size: number, name: string, o: FetchOptions, into: Uint8Array): Promise<Uint8Array> {
  const want = (r.end ?? size - 1) - r.start + 1;
  const buf = into.subarray(0, want);
  let got = 0;
  for await (const chunk of (await store.getStream(key, r)) as unknown as AsyncIterable<Uint8Array>) {
    checkInterrupted(o.signal);
    if (got + chunk.length > want) throw integrityError(`${name} is larger than the ${size} bytes its manifest records`);
    buf.set(chunk, got);
    got += chunk.length;
    o.onBytes?.(chunk.length);
  }
  if (got < want) throw storeError(`${name}: the store returned ${r.start + got} of ${size} bytes; check the object (zrb verify) and the network`);
  return buf;
}

/**
 * The part's bytes in order, up to `connections` ranges in flight at once and a few more asked
 * for (range-slots.ts). Each range holds a buffer from its GET until the consumer took its
 * bytes, and a connection only while its GET runs; without `o.shared` the part has slots of
 * its own.
 */
async function* rangedBody(store: ObjectStore, key: string, size: number, name: string, o: FetchOptions): AsyncGenerator<Uint8Array> {
  const step = o.rangeBytes ?? RANGE_BYTES;
  const slots = o.shared && o.shared.slots.bytes >= step ? o.shared.slots : new RangeSlots(o.connections ?? 1, step);
  // Staggered once per run (the connections stay out of step from then on); tapered at the step's end (rangesOf).
  const ranges = rangesOf(size, step, slots.firstStagger(), o.after === undefined ? undefined : { connections: slots.connections, after: o.after });
  const n = ranges.length;
  const rank = o.shared?.rank ?? 0;
  const inFlight: Promise<Uint8Array>[] = [];
  let next = 0;
  const one = async (r: { start: number; end?: number }) => {
    const buf = await slots.take(rank);
    try {
      return await fetchRange(store, key, r, size, name, o, buf);
    } catch (err) {
      slots.give(buf);
      throw err;
    } finally {
      slots.connectionDone();
    }
  };
  const launch = () => {
    while (next < n && inFlight.length < slots.depth) {
      const p = one(ranges[next++]!);
      p.catch(() => {}); // awaited in order below; a later range's failure is not unhandled meanwhile
      inFlight.push(p);
    }
  };
  try {
    launch();
    while (inFlight.length > 0) {
      const buf = await inFlight.shift()!;
      launch();
      try {
        yield buf;
      } finally {
        slots.give(buf);
      }
    }
  } finally {
    // Left early (a failure): the ranges still in flight give their slot back when they end.
    for (const p of inFlight) p.then((b) => slots.give(b), () => {});
  }
}

/** The part's bytes as one GET streams them. */
async function* wholeBody(store: ObjectStore, key: string, size: number, name: string, o: FetchOptions): AsyncGenerator<Uint8Array> {
  let got = 0;
  for await (const chunk of (await store.getStream(key)) as unknown as AsyncIterable<Uint8Array>) {
    checkInterrupted(o.signal);
    if (got + chunk.length > size) throw integrityError(`${name} is larger than the ${size} bytes its manifest records`);
    got += chunk.length;
    o.onBytes?.(chunk.length);
    yield chunk;
  }
  if (got < size) throw storeError(`${name}: the store returned ${got} of ${size} bytes; check the object (zrb verify) and the network`);
}

/**
 * Download one part to `path` (created exclusively, never through a planted link); on return
 * it holds exactly the manifest's bytes. The file worker writes and SHA-256s it;
 * `o.onBytes` hears of every piece downloaded (progress). A part zrb rekey rewrapped is checked
 * against its original SHA-256 through the sealed original header (rekey/origin.ts), which
 * takes `o.identities`; without them only its new header is checked here.
 */
export async function downloadPart(store: ObjectStore, m: Manifest, p: ManifestPart, path: string, threads: Threads, o: FetchOptions = {}): Promise<void> {
  const name = partName(m, p, store.urlOf(p.key));
  for (let round = 0; ; round++) {
    const file = threads.files.create(path);
    const fill = new SlotFiller(threads, (slot, len) => file.write(slot, len), o.signal);
    let written: Written;
    try {
      const ranged = (o.connections ?? 1) > 1 && p.cipherSize > (o.rangeBytes ?? RANGE_BYTES);
      const body = (ranged ? rangedBody : wholeBody)(store, p.key, p.cipherSize, name, o);
      try {
        for await (const chunk of body) await fill.push(chunk);
      } catch (err) {
        if (isStoreError(err, "not-found")) throw storeError(`${name} is missing from the store; run zrb list to see which backups are still intact`, err);
        throw err;
      }
      fill.flush();
      written = await file.close();
    } catch (err) {
      fill.release();
      file.drop();
      throw scratchError(err, path);
    }
    const why = p.rewrap ? await rewrappedProblem(path, p, o.identities) : written.sha256 === p.sha256 ? undefined : `ciphertext SHA-256 is ${written.sha256}, manifest says ${p.sha256}`;
    if (!why) return;
    if (round === 0) {
      log.warn(`${name}: SHA-256 mismatch, downloading it again`);
      continue;
    }
    rmSync(path, { force: true });
    throw integrityError(`${name}: ${why}; the object in the store is damaged or was replaced`);
  }
}

/**
 * Downloads the parts of one backup in order, at most `ahead` of them on disk at once (a slot
 * is freed when the consumer has used and deleted a file). Each resolved file has already passed
 * its SHA-256 check. Scratch file names derive from the part index only, never from a key.
 */
export class PartFetcher {
  private readonly slots: Semaphore;
  private readonly done: { promise: Promise<string>; resolve: (p: string) => void; reject: (e: unknown) => void }[];
  private readonly ac = new AbortController();
  private stopped = false;
  /** Parts whose download has not begun yet. */
  private unstarted: number;
  /** The run's connections and range buffers, shared by the parts downloading at once (range-slots.ts). */
  private readonly ranges: RangeSlots;

  constructor(
    private store: ObjectStore,
    private m: Manifest,
    private dir: string,
    ahead: number,
    private threads: Threads,
    signal?: AbortSignal,
    private fetch: { connections?: number; onPartBytes?: (n: number, p: ManifestPart) => void; identities?: string[] } = {},
  ) {
    this.slots = new Semaphore(Math.max(1, ahead));
    this.unstarted = m.parts.length;
    this.ranges = new RangeSlots(fetch.connections ?? 1, RANGE_BYTES);
    this.done = m.parts.map(() => {
      let resolve!: (p: string) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<string>((a, b) => ((resolve = a), (reject = b)));
      promise.catch(() => {});
      return { promise, resolve, reject };
    });
    const onAbort = () => this.ac.abort(signal!.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    void this.pump();
  }

  pathOf(index: number): string {
    return join(this.dir, partFileName(index));
  }

  private async pump(): Promise<void> {
    let after = this.m.parts.reduce((a, q) => a + q.cipherSize, 0);
    for (const p of this.m.parts) {
      after -= p.cipherSize;
      await this.slots.acquire();
      if (this.stopped) return;
      this.unstarted--;
      const path = this.pathOf(p.index);
      const onBytes = this.fetch.onPartBytes && ((n: number) => this.fetch.onPartBytes!(n, p));
      downloadPart(this.store, this.m, p, path, this.threads, {
        connections: this.fetch.connections,
        onBytes,
        signal: this.ac.signal,
        identities: this.fetch.identities,
        shared: { slots: this.ranges, rank: p.index },
        // A backup's last part is often a small remainder: the step's end lies in the part before it too.
        after,
      }).then(
        () => this.done[p.index]!.resolve(path),
        (e) => {
          rmSync(path, { force: true });
          this.done[p.index]!.reject(e);
        },
      );
    }
  }

  take(index: number): Promise<string> {
    return this.done[index]!.promise;
  }

  /**
   * The consumer is finished with part `index`: its slot is free, and its file is kept for the
   * next part's download to overwrite (FileWriter.recycle) while a part is still to be
   * downloaded — that download takes this slot, so the scratch never holds more than `ahead`
   * part files — and deleted once none is, or once the downloads were stopped.
   */
  release(index: number): void {
    this.threads.files.recycle(this.pathOf(index), this.unstarted > 0 && !this.stopped);
    this.slots.release();
  }

  stop(): void {
    this.stopped = true;
    this.ac.abort(new ZrbError("stopped", ExitCode.FAILURE));
    for (let i = 0; i < 64; i++) this.slots.release();
  }
}
