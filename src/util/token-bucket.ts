/**
 * A token bucket: the one bandwidth limit (s3.bandwidth_limit, --bwlimit) shared by every upload
 * and download body of a run, however many run at once. Tokens are bytes; they refill at `rate`
 * per second up to `burst`. A caller takes tokens for a piece it is about to move and waits the
 * time the bucket says: the balance may go negative (a debt), so concurrent callers queue behind
 * each other in the order they asked and the long-run rate is exactly `rate`, whatever the piece
 * sizes. The clock is injected so the arithmetic is tested without sleeping.
 */
import { sleep } from "./abort.ts";

/** Milliseconds on a monotonic clock. */
export type Clock = () => number;

const monotonic: Clock = () => performance.now();

/** The default burst: a tenth of a second of traffic, at least 64 KiB, at most 8 MiB. */
export function defaultBurst(rate: number): number {
  return Math.min(8 * 1024 * 1024, Math.max(64 * 1024, Math.floor(rate / 10)));
}

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    /** Bytes per second (> 0). */
    readonly rate: number,
    readonly burst = defaultBurst(rate),
    private readonly clock: Clock = monotonic,
  ) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`token bucket rate must be a positive number, got ${rate}`);
    this.tokens = burst;
    this.last = clock();
  }

  private refill(): void {
    const t = this.clock();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
    this.last = t;
  }

  /** Take `n` bytes' worth of tokens now; returns how many milliseconds to wait before moving them. */
  reserve(n: number): number {
    this.refill();
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rate;
  }

  /** Take `n` bytes' worth of tokens and wait until they may move. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    const ms = this.reserve(n);
    if (ms > 0) await sleep(ms, signal);
  }
}
