/**
 * The crypto workers (workers/crypto.worker.ts) seen from the main thread: each run goes to
 * the worker with the fewest runs outstanding, so every worker is busy whenever there is work,
 * whatever the part size. Results come back out of order; callers keep their own order.
 * A failed run's slot goes straight back to the free slots.
 */
import type { FromCrypto, ToCrypto } from "../../workers/protocol.ts";
import { ExitCode, ZrbError, integrityError } from "../../util/errors.ts";
import type { RunBuffers } from "./buffers.ts";
import { HostWorker } from "./host.ts";

/** A run handed back: `len` bytes from the start of `slot` (which belongs to the caller again). */
export interface Run {
  slot: number;
  len: number;
}

interface Pending {
  resolve(r: Run): void;
  reject(e: Error): void;
  lane: Lane;
}

interface Lane {
  host: HostWorker<ToCrypto, FromCrypto>;
  outstanding: number;
  /** Runs this worker has finished (for the tests and the bench). */
  finished: number;
}

type Job =
  | { type: "seal"; slot: number; len: number; counter: number; final: boolean; key: Uint8Array }
  | { type: "open"; slot: number; path: string; offset: number; len: number; counter: number; final: boolean; key: Uint8Array };

export class CryptoPool {
  private readonly lanes: Lane[];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;

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

  /** Runs each worker has finished so far. */
  finishedPerWorker(): number[] {
    return this.lanes.map((l) => l.finished);
  }

  get ready(): Promise<void> {
    return Promise.all(this.lanes.map((l) => l.host.ready)).then(() => {});
  }

  /** Seal the run of plaintext in `slot` (run layout, crypto/age-stream.ts sealRun). */
  seal(slot: number, len: number, counter: number, final: boolean, key: Uint8Array): Promise<Run> {
    return this.dispatch({ type: "seal", slot, len, counter, final, key });
  }

  /** Read `len` sealed bytes of `path` at `offset` into `slot` and open them (openRun). Rejects with exit 7 when a block does not authenticate. */
  open(slot: number, path: string, offset: number, len: number, counter: number, final: boolean, key: Uint8Array): Promise<Run> {
    return this.dispatch({ type: "open", slot, path, offset, len, counter, final, key });
  }

  private dispatch(job: Job): Promise<Run> {
    const alive = this.lanes.filter((l) => !l.host.crashed);
    if (alive.length === 0) {
      this.buffers.put(job.slot);
      return Promise.reject(this.lanes[0]!.host.crashed);
    }
    // The least busy worker; ties go round the workers in turn.
    const from = this.seq % alive.length;
    let lane = alive[from]!;
    for (let i = 1; i < alive.length; i++) {
      const l = alive[(from + i) % alive.length]!;
      if (l.outstanding < lane.outstanding) lane = l;
    }
    const seq = this.seq++;
    lane.outstanding++;
    const done = new Promise<Run>((resolve, reject) => this.pending.set(seq, { resolve, reject, lane }));
    lane.host.send({ ...job, seq } as ToCrypto);
    return done;
  }

  private receive(m: FromCrypto): void {
    if (m.type === "ready") return;
    const p = this.pending.get(m.seq);
    if (!p) return this.buffers.put(m.slot);
    this.pending.delete(m.seq);
    p.lane.outstanding--;
    p.lane.finished++;
    if (m.type === "done") return p.resolve({ slot: m.slot, len: m.len });
    this.buffers.put(m.slot);
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
