/**
 * The crypto workers (workers/crypto.worker.ts) seen from the main thread: each run goes to
 * the worker with the fewest runs outstanding, so every worker is busy whenever there is work,
 * whatever the part size. Results come back out of order; callers keep their own order.
 * A failed run's slot goes straight back to the free slots. BLAKE3 hashing (hash, digest)
 * always goes to the first worker, which keeps it in the order it is asked for; the slot of a
 * hash stays the caller's (it may read it meanwhile) and is never taken back here.
 */
import type { FromCrypto, Layout, ToCrypto } from "../../workers/protocol.ts";
import { ExitCode, ZrbError, integrityError } from "../../util/errors.ts";
import type { RunBuffers } from "./buffers.ts";
import { HostWorker } from "./host.ts";

/** A run handed back: `len` bytes from the start of `slot` (which belongs to the caller again). */
export interface Run {
  slot: number;
  len: number;
}

interface Pending {
  resolve(m: Extract<FromCrypto, { type: "done" | "digest" }>): void;
  reject(e: Error): void;
  lane: Lane;
  /** The slot came with the job (seal, open): a failure hands it back to the free slots. */
  ownsSlot: boolean;
}

interface Lane {
  host: HostWorker<ToCrypto, FromCrypto>;
  outstanding: number;
  /** Runs this worker has sealed or opened (for the tests and the bench). */
  finished: number;
}

type Job =
  | { type: "seal"; slot: number; len: number; counter: number; final: boolean; key: Uint8Array }
  | { type: "open"; slot: number; path: string; offset: number; len: number; counter: number; final: boolean; key: Uint8Array }
  | { type: "hash"; slot: number; len: number; layout: Layout; into: number[] }
  | { type: "digest"; hasher: number };

const asRun = (m: Extract<FromCrypto, { type: "done" | "digest" }>): Run => {
  const d = m as Extract<FromCrypto, { type: "done" }>;
  return { slot: d.slot, len: d.len };
};

export class CryptoPool {
  private readonly lanes: Lane[];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private hashers = 0;

  constructor(
    count: number,
    private readonly buffers: RunBuffers,
    onFatal: (e: Error) => void,
  ) {
    this.lanes = Array.from({ length: Math.max(1, count) }, () => {
      const lane: Lane = {
        host: new HostWorker<ToCrypto, FromCrypto>("crypto", { type: "init", arena: buffers.arena, slotSize: buffers.slotSize }, (m) => this.receive(m), (e) => {
          this.failLane(lane, e);
          onFatal(e);
        }),
        outstanding: 0,
        finished: 0,
      };
      return lane;
    });
  }

  get size(): number {
    return this.lanes.length;
  }

  /** No job outstanding on any worker. */
  get idle(): boolean {
    return this.pending.size === 0;
  }

  /** Runs each worker has finished so far. */
  finishedPerWorker(): number[] {
    return this.lanes.map((l) => l.finished);
  }

  get ready(): Promise<void> {
    return Promise.all(this.lanes.map((l) => l.host.ready)).then(() => {});
  }

  /** Seal the run of plaintext in `slot` (run layout, crypto/age-stream.ts sealRun). */
  seal(slot: number, len: number, counter: number, final: boolean, key: Uint8Array): Promise<Run> {
    return this.dispatch({ type: "seal", slot, len, counter, final, key }).then(asRun);
  }

  /** Read `len` sealed bytes of `path` at `offset` into `slot` and open them (openRun). Rejects with exit 7 when a block does not authenticate. */
  open(slot: number, path: string, offset: number, len: number, counter: number, final: boolean, key: Uint8Array): Promise<Run> {
    return this.dispatch({ type: "open", slot, path, offset, len, counter, final, key }).then(asRun);
  }

  /** A new BLAKE3 hasher (on the hashing worker), fed by hash() and ended by digest(). */
  newHasher(): number {
    return this.hashers++;
  }

  /** BLAKE3 the `len` plaintext bytes of `slot` into each hasher of `into`, after everything hashed before. The slot stays the caller's. */
  hash(slot: number, len: number, layout: Layout, into: number[]): Promise<void> {
    return this.dispatch({ type: "hash", slot, len, layout, into }).then(() => {});
  }

  /** The hex BLAKE3 of everything hashed into `hasher` before this call; the hasher is then gone. */
  digest(hasher: number): Promise<string> {
    return this.dispatch({ type: "digest", hasher }).then((m) => (m as { hex: string }).hex);
  }

  private dispatch(job: Job): Promise<Extract<FromCrypto, { type: "done" | "digest" }>> {
    const ownsSlot = job.type === "seal" || job.type === "open";
    const alive = this.lanes.filter((l) => !l.host.crashed);
    const hashing = job.type === "hash" || job.type === "digest";
    if (alive.length === 0 || (hashing && this.lanes[0]!.host.crashed)) {
      if (ownsSlot) this.buffers.put(job.slot);
      return Promise.reject(this.lanes.find((l) => l.host.crashed)!.host.crashed);
    }
    const lane = hashing ? this.lanes[0]! : this.leastBusy(alive);
    const seq = this.seq++;
    lane.outstanding++;
    const done = new Promise<Extract<FromCrypto, { type: "done" | "digest" }>>((resolve, reject) => this.pending.set(seq, { resolve, reject, lane, ownsSlot }));
    lane.host.send({ ...job, seq } as ToCrypto);
    return done;
  }

  /** The worker with the fewest jobs outstanding; ties go round the workers in turn. */
  private leastBusy(alive: Lane[]): Lane {
    const from = this.seq % alive.length;
    let lane = alive[from]!;
    for (let i = 1; i < alive.length; i++) {
      const l = alive[(from + i) % alive.length]!;
      if (l.outstanding < lane.outstanding) lane = l;
    }
    return lane;
  }

  private receive(m: FromCrypto): void {
    if (m.type === "ready") return;
    const p = this.pending.get(m.seq);
    if (!p) return;
    this.pending.delete(m.seq);
    p.lane.outstanding--;
    if (p.ownsSlot) p.lane.finished++;
    if (m.type !== "error") return p.resolve(m);
    if (p.ownsSlot) this.buffers.put(m.slot);
    if (m.integrity) p.reject(integrityError(m.message));
    else p.reject(Object.assign(new ZrbError(m.message, ExitCode.FAILURE), { code: m.code }));
  }

  private failLane(lane: Lane, e: Error): void {
    for (const [seq, p] of this.pending) {
      if (p.lane !== lane) continue;
      this.pending.delete(seq);
      p.reject(e);
    }
  }

  terminate(): void {
    for (const l of this.lanes) l.host.terminate();
  }
}
