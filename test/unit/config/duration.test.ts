import { describe, expect, test } from "bun:test";
import { parseDuration as cleanupDuration } from "../../../src/pipeline/cleanup.ts";
import { formatDuration, parseDuration } from "../../../src/util/duration.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const S = 1000;
const FORM = "must be a duration like 30m, 24h or 7d";

describe("parseDuration", () => {
  test("a whole number and one unit: s, m, h, d, w", () => {
    const cases: [string, number][] = [
      ["0s", 0],
      ["30s", 30 * S],
      ["15m", 15 * 60 * S],
      ["24h", 24 * 3600 * S],
      ["7d", 7 * 86400 * S],
      ["2w", 14 * 86400 * S],
      [" 1h ", 3600 * S],
    ];
    for (const [text, ms] of cases) expect(parseDuration(text)).toEqual({ ms });
  });

  test("everything else is a problem that quotes what was given", () => {
    for (const text of ["", "soon", "-1h", "1.5h", "24H", "1d12h", "h", "7", "1 h"]) {
      expect(parseDuration(text)).toEqual({ problem: `${FORM}, got ${JSON.stringify(text)}` });
    }
    expect(parseDuration("1y")).toEqual({
      problem: `${FORM}, got "1y"; months and years vary in length, so write days or weeks (30d, 365d, 52w)`,
    });
    expect(parseDuration("6months")).toHaveProperty("problem");
    expect(parseDuration("99999999999999999d")).toEqual({ problem: 'is too long, got "99999999999999999d"' });
  });

  test("formatDuration picks the largest exact unit and round-trips", () => {
    expect(formatDuration(60 * S)).toBe("1m");
    expect(formatDuration(90 * S)).toBe("90s");
    expect(formatDuration(14 * 86400 * S)).toBe("2w");
    for (const t of ["30s", "15m", "23h", "6d", "2w"]) expect(formatDuration((parseDuration(t) as { ms: number }).ms)).toBe(t);
  });

  test("cleanup --older-than uses it: same messages, a usage error", () => {
    expect(cleanupDuration("2w")).toBe(14 * 86400 * S);
    let err: unknown;
    try {
      cleanupDuration("soon");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ZrbError);
    expect((err as ZrbError).exitCode).toBe(ExitCode.USAGE);
    expect((err as ZrbError).message).toBe(`--older-than ${FORM}, got "soon"`);
  });
});
