/**
 * The run's download connections and their range buffers: a ranged GET takes a buffer of a
 * range's size and then a connection; the connection is free again as soon as the range's
 * bytes are in (or its GET failed), the buffer once its bytes were handed on. Shared by every
 * part downloading at once (fetch.ts PartFetcher), so memory holds at most `depth` ranges
 * however many parts are ahead, and the buffers are reused rather than left for the garbage
 * collector (fresh buffers per range let a restore's RSS grow with every range fetched).
 *
 * A few more buffers than connections (`spare`): a range waiting only for a connection starts
 * the moment another one's bytes are in, instead of after those bytes were written out in
 * order — on a link 20–100 ms away each such wait left a connection idle. An earlier part (a
 * lower rank) gets a free buffer or connection first, so the part the restore needs next is
 * never starved by the ones after it.
 */
import { Semaphore } from "../../util/semaphore.ts";

export class RangeSlots {
  private readonly conns: Semaphore;
  private readonly bufs: Semaphore;
  private readonly free: Uint8Array[] = [];
  /** Buffers in all: the connections and the spare ones (the most ranges asked for and not yet handed on). */
  readonly depth: number;

  constructor(
    readonly connections: number,
    /** Bytes of each buffer: the largest range asked. */
    readonly bytes: number,
    spare = Math.ceil(Math.max(1, connections) / 4),
  ) {
    const n = Math.max(1, connections);
    this.depth = n + Math.max(0, spare);
    this.conns = new Semaphore(n);
    this.bufs = new Semaphore(this.depth);
  }

  private staggered = false;

  /** How many ranges the first part to start staggers (fetch.ts rangesOf): the connections once, then none. */
  firstStagger(): number {
    if (this.staggered) return 0;
    this.staggered = true;
    return this.connections;
  }

  /** A buffer of `bytes` and a connection (waits for each; lower ranks first). */
  async take(rank: number): Promise<Uint8Array> {
    await this.bufs.acquire(rank);
    await this.conns.acquire(rank);
    return this.free.pop() ?? new Uint8Array(this.bytes);
  }

  /** The range's GET ended (its bytes are in the buffer, or it failed): its connection is free. */
  connectionDone(): void {
    this.conns.release();
  }

  /** Give back the buffer take() returned (or any view of it). */
  give(buf: Uint8Array): void {
    this.free.push(new Uint8Array(buf.buffer, 0, this.bytes));
    this.bufs.release();
  }
}
