/**
 * The token bucket's arithmetic (util/token-bucket.ts) on an injected clock: no test waits or
 * measures time. The rate against radosgw is measured in test/e2e/monitoring.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { defaultBurst, TokenBucket } from "../../../src/util/token-bucket.ts";

function clock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("TokenBucket", () => {
  test("a full bucket lets its burst through at once, then bytes wait rate-long", () => {
    const c = clock();
    const b = new TokenBucket(1000, 500, c.now);
    expect(b.reserve(500)).toBe(0);
    expect(b.reserve(100)).toBe(100); // 100 bytes at 1000 B/s
    expect(b.reserve(1000)).toBe(1100); // queued behind the first debt
  });

  test("time refills the bucket, never beyond its burst", () => {
    const c = clock();
    const b = new TokenBucket(2000, 1000, c.now);
    expect(b.reserve(1000)).toBe(0);
    c.advance(250); // +500 tokens
    expect(b.reserve(500)).toBe(0);
    c.advance(10_000); // would be +20,000: capped at 1000
    expect(b.reserve(1000)).toBe(0);
    expect(b.reserve(1)).toBe(0.5);
  });

  test("concurrent takers share the rate: the debt grows by what each reserved", () => {
    const c = clock();
    const b = new TokenBucket(1024 * 1024, 64 * 1024, c.now);
    const waits = [0, 1, 2, 3].map(() => b.reserve(256 * 1024));
    // 1 MiB asked of a 64 KiB bucket at 1 MiB/s: the last one waits (1 MiB − 64 KiB)/rate.
    expect(waits.at(-1)).toBeCloseTo(((1024 - 64) / 1024) * 1000, 6);
    expect(waits).toEqual([...waits].sort((a, b) => a - b));
  });

  test("over a long run the bytes let through never exceed burst + rate × time", () => {
    const c = clock();
    const rate = 20 * 1024 * 1024;
    const b = new TokenBucket(rate, defaultBurst(rate), c.now);
    let sent = 0;
    let t = 0;
    for (let i = 0; i < 10_000; i++) {
      const piece = 1 + ((i * 7919) % (64 * 1024));
      const wait = b.reserve(piece);
      // the piece moves once its wait is over: on our clock, at t + wait
      c.advance(wait);
      t += wait;
      sent += piece;
      expect(sent).toBeLessThanOrEqual(defaultBurst(rate) + (rate * t) / 1000 + 1e-6);
    }
    // and the limit is reached, not just respected: within 1 % after the burst
    expect(sent / (t / 1000)).toBeGreaterThan(rate * 0.99);
  });

  test("the default burst is a tenth of a second, within 64 KiB … 8 MiB", () => {
    expect(defaultBurst(1024)).toBe(64 * 1024);
    expect(defaultBurst(20 * 1024 * 1024)).toBe(2 * 1024 * 1024);
    expect(defaultBurst(1024 ** 3)).toBe(8 * 1024 * 1024);
  });

  test("a rate that is not positive is refused", () => {
    expect(() => new TokenBucket(0)).toThrow(RangeError);
    expect(() => new TokenBucket(Number.NaN)).toThrow(RangeError);
  });

  test("take() waits and stops at once when its signal aborts", async () => {
    const b = new TokenBucket(1, 1);
    b.reserve(1);
    const ac = new AbortController();
    const p = b.take(1000, ac.signal);
    ac.abort(new Error("stop"));
    await expect(p).rejects.toThrow("stop");
  });
});
