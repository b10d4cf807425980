/**
 * The progress arithmetic (report/progress.ts): the rate over a sliding window, the ETA, the
 * percentage and the one line of facts. Numbers and an injected clock only: nothing waits.
 */
import { describe, expect, test } from "bun:test";
import { etaSeconds, formatEta, formatRate, percent, progressLine, RateWindow } from "../../../src/report/progress.ts";

const MiB = 1024 * 1024;

describe("RateWindow", () => {
  test("no rate until the samples span a second", () => {
    const w = new RateWindow(30_000, 1_000);
    expect(w.rate()).toBeNull();
    w.add(0, 0);
    w.add(999, 10 * MiB);
    expect(w.rate()).toBeNull();
    w.add(1000, 10 * MiB);
    expect(w.rate()).toBe(10 * MiB);
  });

  test("the rate is that of the last window, not of the whole run", () => {
    const w = new RateWindow(10_000);
    // 60 s at 1 MiB/s, then 10 s at 4 MiB/s
    let bytes = 0;
    for (let t = 0; t <= 60_000; t += 1000) w.add(t, (bytes = (t / 1000) * MiB));
    for (let t = 61_000; t <= 70_000; t += 1000) w.add(t, (bytes += 4 * MiB));
    expect(w.rate()).toBe(4 * MiB);
  });

  test("bytes that step back (a part re-sent) never make a negative rate", () => {
    const w = new RateWindow(5_000);
    w.add(0, 5 * MiB);
    w.add(2000, 1 * MiB);
    expect(w.rate()).toBe(0);
  });
});

describe("ETA", () => {
  test("the bytes left at the current rate", () => {
    expect(etaSeconds(25 * MiB, 100 * MiB, 5 * MiB)).toBe(15);
    expect(etaSeconds(100 * MiB, 100 * MiB, 5 * MiB)).toBe(0);
  });

  test("unknown without a total, without a rate, at rate 0, or past an estimate", () => {
    expect(etaSeconds(1, null, 5)).toBeNull();
    expect(etaSeconds(1, 10, null)).toBeNull();
    expect(etaSeconds(1, 10, 0)).toBeNull();
    expect(etaSeconds(11, 10, 5)).toBeNull();
  });

  test.each([
    [null, "unknown"],
    [0, "0s"],
    [0.2, "1s"],
    [59, "59s"],
    [60, "1m 00s"],
    [200, "3m 20s"],
    [3599, "59m 59s"],
    [3600, "1h 00m"],
    [7500, "2h 05m"],
    [86_400 * 3 + 3600 * 4 + 59, "3d 4h"],
  ] as const)("formatEta(%p) = %p", (s, want) => {
    expect(formatEta(s)).toBe(want);
  });
});

describe("the progress line", () => {
  test("percent is whole, capped at 99 before the end, unknown without a total", () => {
    expect(percent(1, 3)).toBe(33);
    expect(percent(5, 5)).toBe(99);
    expect(percent(7, 5)).toBe(99);
    expect(percent(1, null)).toBeNull();
    expect(percent(1, 0)).toBeNull();
  });

  test("an estimated backup: ~ on the total and the parts, the rate, the word ETA", () => {
    const line = progressLine({ bytesDone: 512 * MiB, bytesExpected: 2048 * MiB, estimated: true, rate: 64 * MiB, etaSeconds: 24, partsDone: 1, parts: 4, elapsedSeconds: 8 });
    expect(line).toBe("512 MiB of ~2 GiB (25%), 64 MiB/s, ETA 24s, parts 1/~4");
  });

  test("with a bandwidth limit the line ends with the limit in force (off at this hour: 'limit off')", () => {
    const f = { bytesDone: 3 * MiB, bytesExpected: 12 * MiB, estimated: false, rate: MiB, etaSeconds: 9, partsDone: 3, parts: 12, elapsedSeconds: 3 };
    expect(progressLine({ ...f, limit: 5 * MiB })).toBe("3 MiB of 12 MiB (25%), 1 MiB/s, ETA 9s, parts 3/12, limit 5 MiB/s");
    expect(progressLine({ ...f, limit: null })).toBe("3 MiB of 12 MiB (25%), 1 MiB/s, ETA 9s, parts 3/12, limit off");
  });

  test("an exact total (restore, verify), and nothing known yet", () => {
    expect(progressLine({ bytesDone: 3 * MiB, bytesExpected: 12 * MiB, estimated: false, rate: MiB, etaSeconds: 9, partsDone: 3, parts: 12, elapsedSeconds: 3 })).toBe(
      "3 MiB of 12 MiB (25%), 1 MiB/s, ETA 9s, parts 3/12",
    );
    expect(progressLine({ bytesDone: 0, bytesExpected: null, estimated: false, rate: null, etaSeconds: null, partsDone: 0, parts: null, elapsedSeconds: 0 })).toBe(
      "0 B, ? B/s, ETA unknown, parts 0/?",
    );
    expect(formatRate(1536)).toBe("1.5 KiB/s");
  });
});
