/**
 * The run's download connections and their range buffers, together: a ranged GET takes a slot
 * (one connection and one buffer of a range's size) and gives it back once its bytes were
 * handed on. Shared by every part downloading at once (fetch.ts PartFetcher), so memory holds
 * at most `count` ranges however many parts are ahead, and the buffers are reused rather than
 * left for the garbage collector (fresh buffers per range let a restore's RSS grow with
 * every range fetched). An earlier part (a lower rank) gets a free slot first, so the part
 * the restore needs next is never starved by the ones after it.
 */
import { Semaphore } from "../../util/semaphore.ts";

export class RangeSlots {
  private readonly sem: Semaphore;
  private readonly free: Uint8Array[] = [];

  constructor(
    count: number,
    /** Bytes of each buffer: the largest range asked. */
    readonly bytes: number,
  ) {
    this.sem = new Semaphore(Math.max(1, count));
  }

  /** A connection and a buffer of `bytes` (waits for one; lower ranks first). */
  async take(rank: number): Promise<Uint8Array> {
    await this.sem.acquire(rank);
    return this.free.pop() ?? new Uint8Array(this.bytes);
  }

  /** Give back what take() returned (or any view of it). */
  give(buf: Uint8Array): void {
    this.free.push(new Uint8Array(buf.buffer, 0, this.bytes));
    this.sem.release();
  }
}
