/**
 * The stall rules of one S3 request (store/watchdog.ts) on an injected clock: no byte for the
 * timeout, no headers for the timeout after the body was sent, less than 1 KiB per window (a
 * drip), and paused time not counted. The real stalls (servers that never answer or drip) are
 * in test/e2e/stall.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { Watchdog } from "../../../src/store/watchdog.ts";

function rig(timeoutMs = 10_000) {
  let t = 0;
  const wd = new Watchdog({ timeoutMs, clock: () => t });
  return { wd, at: (ms: number) => ((t = ms), wd.check()) };
}

describe("Watchdog", () => {
  test("nothing sent and nothing received for the timeout: no-data", () => {
    const { at } = rig();
    expect(at(9_999)).toBeNull();
    expect(at(10_000)).toMatchObject({ kind: "no-data", timeoutMs: 10_000 });
  });

  test("headers missing the timeout after the body was sent: no-response, not a trickle", () => {
    const { wd, at } = rig();
    at(1_000);
    wd.moved(500); // a small body: less than 1 KiB in the window
    wd.bodySent();
    expect(at(10_500)).toBeNull(); // the window rule does not apply while the server owes headers
    expect(at(11_000)).toMatchObject({ kind: "no-response" });
  });

  test("a byte a second never looks idle but is a trickle at the end of the window", () => {
    const { wd, at } = rig();
    wd.bodySent();
    wd.headersArrived();
    for (let s = 1; s < 10; s++) {
      expect(at(s * 1000)).toBeNull();
      wd.moved(1);
    }
    expect(at(10_000)).toMatchObject({ kind: "trickle", bytes: 9 });
  });

  test("1 KiB per window is enough, and a new window starts after each full one", () => {
    const { wd, at } = rig();
    wd.bodySent();
    wd.headersArrived();
    for (let w = 0; w < 5; w++) {
      for (let s = 1; s <= 10; s++) {
        wd.moved(110);
        expect(at(w * 10_000 + s * 1000)).toBeNull();
      }
    }
  });

  test("a body that stops after moving plenty: no-data after the timeout", () => {
    const { wd, at } = rig();
    wd.bodySent();
    wd.headersArrived();
    at(500);
    wd.moved(10 << 20);
    expect(at(10_499)).toBeNull();
    expect(at(10_500)).toMatchObject({ kind: "no-data" });
  });

  test("paused time (bandwidth limit, nobody reading) does not count", () => {
    const { wd, at } = rig();
    wd.bodySent();
    wd.headersArrived();
    at(5_000);
    wd.pause();
    wd.pause(); // nested
    expect(at(500_000)).toBeNull();
    wd.resume();
    expect(at(600_000)).toBeNull();
    wd.resume();
    expect(at(604_999)).toBeNull();
    expect(at(605_000)).toMatchObject({ kind: "no-data" });
  });

  test("once stalled, always the same stall", () => {
    const { wd, at } = rig();
    const s = at(10_000);
    wd.moved(1 << 20);
    expect(at(10_001)).toBe(s!);
  });

  test("the timer calls onStall once and stops", async () => {
    let calls = 0;
    const wd = new Watchdog({ timeoutMs: 30, tickMs: 5, onStall: () => calls++ });
    await Bun.sleep(120);
    wd.stop();
    expect(calls).toBe(1);
  });
});
