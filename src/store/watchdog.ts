/**
 * The stall watchdog of one S3 request (s3.request_timeout). A socket inactivity timer is not
 * enough: a server that drips a valid response a byte a second never trips it. So every request
 * is watched for three things, all measured against the same timeout T:
 *   - no byte moved (up or down) for T               → "no-data"
 *   - no response headers T after the body was sent  → "no-response"
 *   - less than 1 KiB moved in a window of T         → "trickle" (a drip)
 * Time the request is not waiting on the network does not count: while the bandwidth limit
 * holds a body back, or nobody reads a response body yet, the watchdog is paused.
 *
 * The watchdog only decides; s3.ts aborts the request with a transient StoreError, which the
 * retry wrapper retries. The clock is injected so the rules are tested without waiting.
 */
import type { Clock } from "../util/token-bucket.ts";

export type StallKind = "no-data" | "no-response" | "trickle";

export interface Stall {
  kind: StallKind;
  /** The timeout the request exceeded (s3.request_timeout), in ms. */
  timeoutMs: number;
  /** Bytes moved in the last window (for a trickle). */
  bytes: number;
}

/** A request that moves less than this per timeout window is stalled. */
export const TRICKLE_BYTES = 1024;

export interface WatchdogOptions {
  timeoutMs: number;
  minBytes?: number;
  clock?: Clock;
  /** Called once, from a timer, when the request stalls. Without it nothing runs by itself: call check(). */
  onStall?: (s: Stall) => void;
  /** How often the timer checks (default: a quarter of the timeout, at most 1 s). */
  tickMs?: number;
}

export class Watchdog {
  private readonly clock: Clock;
  private readonly minBytes: number;
  private pauses = 0;
  private pausedAt = 0;
  private pausedTotal = 0;
  private lastMove: number;
  private windowStart: number;
  private windowBytes = 0;
  private sent = false;
  private answered = false;
  private fired: Stall | null = null;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly o: WatchdogOptions) {
    this.clock = o.clock ?? (() => performance.now());
    this.minBytes = o.minBytes ?? TRICKLE_BYTES;
    this.lastMove = this.windowStart = this.armed();
    if (o.onStall) {
      const tick = o.tickMs ?? Math.max(10, Math.min(1000, o.timeoutMs / 4));
      this.timer = setInterval(() => {
        const s = this.check();
        if (s) {
          this.stop();
          o.onStall!(s);
        }
      }, tick);
      this.timer.unref?.();
    }
  }

  /** The clock with the paused time taken out. */
  private armed(): number {
    const t = this.clock();
    return t - this.pausedTotal - (this.pauses > 0 ? t - this.pausedAt : 0);
  }

  /** `n` bytes moved (sent or received). */
  moved(n: number): void {
    if (n <= 0) return;
    this.lastMove = this.armed();
    this.windowBytes += n;
  }

  /** The request body is sent: from now on the server owes the response headers. */
  bodySent(): void {
    this.sent = true;
    this.lastMove = this.armed();
  }

  /** The response headers arrived. */
  headersArrived(): void {
    this.answered = true;
    this.lastMove = this.windowStart = this.armed();
    this.windowBytes = 0;
  }

  /** Stop counting time (the bandwidth limit holds a body, or nobody reads the response yet). Nests. */
  pause(): void {
    if (this.pauses++ === 0) this.pausedAt = this.clock();
  }

  resume(): void {
    if (this.pauses === 0) return;
    if (--this.pauses === 0) this.pausedTotal += this.clock() - this.pausedAt;
  }

  /** The stall, if the request is stalled now (then always the same one). */
  check(): Stall | null {
    if (this.fired) return this.fired;
    if (this.pauses > 0) return null;
    const t = this.armed();
    const T = this.o.timeoutMs;
    const awaitingHeaders = this.sent && !this.answered;
    if (t - this.lastMove >= T) return (this.fired = { kind: awaitingHeaders ? "no-response" : "no-data", timeoutMs: T, bytes: 0 });
    // While the server owes the headers no byte is expected to move: only the rule above applies.
    if (awaitingHeaders) return null;
    if (t - this.windowStart >= T) {
      if (this.windowBytes < this.minBytes) return (this.fired = { kind: "trickle", timeoutMs: T, bytes: this.windowBytes });
      this.windowStart = t;
      this.windowBytes = 0;
    }
    return null;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
