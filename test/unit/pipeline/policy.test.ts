/**
 * The retention policy engine (src/pipeline/prune/policy.ts) alone: calendar boundaries in UTC
 * whatever the process time zone, ISO 8601 weeks across year ends, ties, periods without a
 * point, keep-within counted from now (never from a date the bucket claims), rules ORed, policies that keep nothing —
 * and a brute-force oracle over random histories.
 */
import { describe, expect, test } from "bun:test";
import { prng } from "../../helpers/faultproxy.ts";
import { applyPolicy, describePolicy, isoWeek, newestFirst, periodOf, policyProblem, type Point, type Policy } from "../../../src/pipeline/prune/policy.ts";
import { parseZrbSnapshotName } from "../../../src/zfs/zfs.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const pt = (id: string, iso: string): Point => ({ id, time: new Date(iso) });
/** "now" for the tests that do not care: after every point below. */
const LATER = new Date("2030-01-01T00:00:00Z");
const kept = (points: Point[], p: Policy, now = LATER) =>
  [...applyPolicy(points, p, now)]
    .filter(([, why]) => why.length > 0)
    .map(([id]) => id)
    .sort();

describe("calendar periods", () => {
  test("day, hour, month and year boundaries are UTC's, one second apart", () => {
    const before = new Date("2026-12-31T23:59:59Z");
    const after = new Date("2027-01-01T00:00:00Z");
    expect(periodOf("hourly", before)).toBe("2026-12-31T23");
    expect(periodOf("hourly", after)).toBe("2027-01-01T00");
    expect(periodOf("daily", before)).toBe("2026-12-31");
    expect(periodOf("daily", after)).toBe("2027-01-01");
    expect(periodOf("monthly", before)).toBe("2026-12");
    expect(periodOf("monthly", after)).toBe("2027-01");
    expect(periodOf("yearly", before)).toBe("2026");
    expect(periodOf("yearly", after)).toBe("2027");
    expect(periodOf("monthly", new Date("2028-02-29T12:00:00Z"))).toBe("2028-02");
  });

  test("an instant written with an offset falls into its UTC day, whatever TZ the process runs in", () => {
    const d = new Date("2026-03-01T23:30:00-02:00"); // 2026-03-02T01:30Z
    const saved = process.env.TZ;
    try {
      for (const tz of ["UTC", "America/Los_Angeles", "Pacific/Kiritimati", "Asia/Kolkata"]) {
        process.env.TZ = tz;
        // The zone really changed for this process (a local-time implementation would differ here).
        if (tz !== "UTC") expect(d.getHours()).not.toBe(1);
        expect(periodOf("daily", d)).toBe("2026-03-02");
        expect(periodOf("hourly", d)).toBe("2026-03-02T01");
        expect(isoWeek(new Date("2027-01-03T23:00:00Z"))).toBe("2026-W53");
      }
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  test("ISO 8601 weeks: Monday starts them, the Thursday decides the year (53-week years, week 1 in December)", () => {
    const cases: [string, string][] = [
      ["2026-01-01", "2026-W01"], // a Thursday: 2026 has 53 weeks
      ["2026-12-31", "2026-W53"],
      ["2027-01-01", "2026-W53"],
      ["2027-01-03", "2026-W53"], // Sunday ends the week
      ["2027-01-04", "2027-W01"], // Monday starts the next
      ["2024-12-29", "2024-W52"],
      ["2024-12-30", "2025-W01"], // week 1 of 2025 starts in 2024
      ["2021-01-03", "2020-W53"],
      ["2021-01-04", "2021-W01"],
    ];
    for (const [day, week] of cases) expect({ day, week: isoWeek(new Date(`${day}T12:00:00Z`)) }).toEqual({ day, week });
  });
});

describe("the rules", () => {
  test("keep-last keeps the N newest; ties at one instant go to the later id", () => {
    const points = [pt("a", "2026-01-01T00:00:00Z"), pt("c", "2026-01-02T00:00:00Z"), pt("b", "2026-01-02T00:00:00Z")];
    expect(kept(points, { last: 1 })).toEqual(["c"]);
    expect(kept(points, { last: 2 })).toEqual(["b", "c"]);
    expect(newestFirst(points).map((p) => p.id)).toEqual(["c", "b", "a"]);
    expect(applyPolicy(points, { last: 2 }, LATER).get("b")).toEqual([{ rule: "last", n: 2, of: 2 }]);
  });

  test("keep-daily: the newest point of each day; days without a point do not count", () => {
    const points = [
      pt("d1-early", "2026-03-01T01:00:00Z"),
      pt("d1-late", "2026-03-01T23:59:59Z"),
      pt("d2", "2026-03-02T00:00:00Z"),
      pt("d5", "2026-03-05T10:00:00Z"),
      pt("d10", "2026-03-10T10:00:00Z"),
    ];
    expect(kept(points, { daily: 3 })).toEqual(["d10", "d2", "d5"]);
    expect(kept(points, { daily: 4 })).toEqual(["d1-late", "d10", "d2", "d5"]);
    expect(applyPolicy(points, { daily: 4 }, LATER).get("d1-late")).toEqual([{ rule: "daily", period: "2026-03-01" }]);
    // A tie inside one day: the later id is the day's point.
    expect(kept([pt("x", "2026-03-01T05:00:00Z"), pt("y", "2026-03-01T05:00:00Z")], { daily: 1 })).toEqual(["y"]);
  });

  test("keep-weekly across a year end uses ISO weeks", () => {
    const points = [pt("mon", "2024-12-30T08:00:00Z"), pt("sun", "2024-12-29T08:00:00Z"), pt("sat", "2024-12-28T08:00:00Z"), pt("wed", "2025-01-01T08:00:00Z")];
    // 2025-W01 runs Mon 2024-12-30 .. Sun 2025-01-05: "wed" is its newest; "sun" is 2024-W52's.
    expect(kept(points, { weekly: 2 })).toEqual(["sun", "wed"]);
  });

  test("keep-monthly and keep-yearly; keep-hourly", () => {
    const points = [pt("jan31", "2026-01-31T23:00:00Z"), pt("feb1", "2026-02-01T00:00:00Z"), pt("dec", "2025-12-31T23:59:59Z"), pt("h1", "2026-02-01T00:59:59Z")];
    expect(kept(points, { monthly: 2 })).toEqual(["h1", "jan31"]);
    expect(kept(points, { yearly: 5 })).toEqual(["dec", "h1"]);
    expect(kept(points, { hourly: 2 })).toEqual(["h1", "jan31"]); // 00:xx holds h1 and feb1; h1 is newer
  });

  test("keep-within counts back from now, not from the newest point; the boundary itself is out", () => {
    const now = new Date("2026-06-30T00:00:00Z");
    const points = [0, 1, 6, 7, 8, 30].map((d) => ({ id: `minus${d}d`, time: new Date(now.getTime() - d * DAY) }));
    expect(kept(points, { within: 7 * DAY }, now)).toEqual(["minus0d", "minus1d", "minus6d"]);
    expect(applyPolicy(points, { within: 7 * DAY }, now).get("minus6d")).toEqual([{ rule: "within", ms: 7 * DAY }]);
    // A day later the window has moved with the clock, though no backup was added.
    expect(kept(points, { within: 7 * DAY }, new Date(now.getTime() + DAY))).toEqual(["minus0d", "minus1d"]);
    // A point claiming a date far ahead does not drag the window with it.
    expect(kept([...points, { id: "y2099", time: new Date("2099-01-01T00:00:00Z") }], { within: 7 * DAY }, now)).toEqual(["minus0d", "minus1d", "minus6d", "y2099"]);
  });

  test("rules are ORed, and a point kept by several says so", () => {
    const points = Array.from({ length: 40 }, (_, i) => ({ id: `p${String(i).padStart(2, "0")}`, time: new Date(Date.UTC(2026, 0, 1 + i, 3)) }));
    const policy = { last: 2, daily: 3, weekly: 2, within: 5 * DAY };
    const at = new Date(Date.UTC(2026, 0, 40, 4)); // an hour after p39
    // 2026-01-01 is p00; p39 is Monday 2026-02-09 (ISO week 07), p38 Sunday 2026-02-08 (week 06).
    // last 2 = p38, p39; daily 3 = p37..p39; weekly 2 = p39, p38; within 5d = p35..p39.
    expect(kept(points, policy, at)).toEqual(["p35", "p36", "p37", "p38", "p39"]);
    expect(applyPolicy(points, policy, at).get("p38")!.map((r) => r.rule)).toEqual(["last", "daily", "weekly", "within"]);
    expect(applyPolicy(points, policy, at).get("p36")!.map((r) => r.rule)).toEqual(["within"]);
  });

  test("an empty history keeps nothing and does not fail", () => {
    expect(applyPolicy([], { daily: 7, within: DAY }, LATER).size).toBe(0);
  });
});

describe("bad policies", () => {
  test("every rule off, negative or fractional values are refused; a describe line names the rules", () => {
    expect(policyProblem({})).toContain("keeps nothing");
    expect(policyProblem({ last: 0, daily: 0, within: 0 })).toContain("keeps nothing");
    expect(policyProblem({ daily: -1 })).toContain("keep-daily must be a whole number ≥ 0, got -1");
    expect(policyProblem({ weekly: 1.5 })).toContain("keep-weekly must be a whole number ≥ 0");
    expect(policyProblem({ yearly: 1 })).toBeUndefined();
    // keep-within alone is a policy (retention.local's default is one).
    expect(policyProblem({ within: 7 * DAY })).toBeUndefined();
    expect(policyProblem({ last: 0, daily: 0, within: DAY })).toBeUndefined();
    expect(describePolicy({ last: 3, daily: 7, within: 30 * DAY })).toBe("keep-last 3, keep-daily 7, keep-within 30d");
  });
});

describe("zrb snapshot names", () => {
  test("only the exact form zrb writes has a time", () => {
    expect(parseZrbSnapshotName("zrb_level2_20270301T020000Z")).toEqual({ level: 2, time: new Date("2027-03-01T02:00:00Z") });
    for (const bad of ["zrb_level2_manual", "zrb_level1_20260101T00000001Z", "zrb_level1_20260231T000000Z", "zrb_level1_20260101T250000Z", "xzrb_level1_20260101T000000Z", "zrb_level100_20260101T000000Z"])
      expect({ bad, t: parseZrbSnapshotName(bad) }).toEqual({ bad, t: null });
  });
});

/** A brute-force oracle: the newest point of each of the N most recent periods that have one. */
function oracle(points: Point[], p: Policy, now: Date): string[] {
  const out = new Set<string>();
  const sorted = newestFirst(points);
  sorted.slice(0, p.last ?? 0).forEach((x) => out.add(x.id));
  for (const r of ["hourly", "daily", "weekly", "monthly", "yearly"] as const) {
    const n = p[r] ?? 0;
    const periods = [...new Set(sorted.map((x) => periodOf(r, x.time)))].slice(0, n);
    for (const per of periods) out.add(sorted.find((x) => periodOf(r, x.time) === per)!.id);
  }
  if (p.within) for (const x of sorted) if (x.time.getTime() > now.getTime() - p.within) out.add(x.id);
  return [...out].sort();
}

test("random histories agree with a brute-force oracle", () => {
  const next = prng(12345);
  const rnd = (n: number) => Math.floor(next() * n);
  for (let trial = 0; trial < 300; trial++) {
    const start = Date.UTC(2024, 11, 20);
    const points = Array.from({ length: 1 + rnd(60) }, (_, i) => ({ id: `p${i}`, time: new Date(start + rnd(500) * DAY + rnd(24) * HOUR + (rnd(3) === 0 ? 0 : rnd(3600) * 1000)) }));
    const policy: Policy = { last: rnd(4), hourly: rnd(3), daily: rnd(8), weekly: rnd(5), monthly: rnd(7), yearly: rnd(3), within: rnd(3) * rnd(20) * DAY };
    const now = new Date(Math.max(...points.map((x) => x.time.getTime())) + rnd(3) * DAY + rnd(24) * HOUR);
    expect({ trial, keep: kept(points, policy, now) }).toEqual({ trial, keep: oracle(points, policy, now) });
  }
});
