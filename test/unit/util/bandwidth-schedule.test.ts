/**
 * Bandwidth by the clock (util/bandwidth-schedule.ts): the schedule's forms and its errors (by
 * position), the rate at each hour, and a run that crosses an entry's time — on fake clocks, so
 * the change is checked in the limiter's own arithmetic, never by timing.
 */
import { describe, expect, test } from "bun:test";
import { formatSchedule, parseSchedule, rateAt, ScheduledLimiter, ScheduleProblem } from "../../../src/util/bandwidth-schedule.ts";
import { defaultBurst } from "../../../src/util/token-bucket.ts";
import { parseConfig } from "../../../src/config/config.ts";
import { parseBwlimit } from "../../../src/cli/job.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
/** A local time today at hh:mm:ss. */
const at = (hh: number, mm: number, ss = 0) => new Date(2027, 2, 1, hh, mm, ss);

describe("parsing", () => {
  test("rclone's one-string form, the list form and a bare rate", () => {
    const s = parseSchedule("08:00,5MiB/s 23:00,off");
    expect(s).toEqual([
      { at: 8 * 60, rate: 5 * MiB },
      { at: 23 * 60, rate: null },
    ]);
    expect(parseSchedule(["08:00,5MiB/s", " 23:00, off"])).toEqual(s);
    expect(parseSchedule("20MiB/s")).toEqual([{ at: 0, rate: 20 * MiB }]);
    expect(parseSchedule("off")).toEqual([{ at: 0, rate: null }]);
    // The edges that are still valid: the last minute of the day, exactly the 1 KiB/s floor, OFF in capitals.
    expect(parseSchedule("00:00,1KiB/s 23:59,OFF")).toEqual([
      { at: 0, rate: KiB },
      { at: 23 * 60 + 59, rate: null },
    ]);
    expect(formatSchedule(s)).toBe("08:00,5MiB/s 23:00,off");
    expect(formatSchedule(parseSchedule("7:30,512KiB/s"))).toBe("07:30,512KiB/s");
  });

  test("a wrong entry is named by its position", () => {
    const cases: [string | string[], number, RegExp][] = [
      ["08:00,5MiB/s 23:0,off", 2, /time that is not HH:MM/],
      ["08:00,5MiB/s 24:00,off", 2, /time that is not HH:MM/],
      ["08:00,fast", 1, /neither a rate such as 5MiB\/s nor off/],
      ["08:00,100B/s", 1, /under 1KiB\/s/],
      ["08:00,5MiB/s 20MiB/s", 2, /must be HH:MM,RATE/],
      ["23:00,off 08:00,5MiB/s", 2, /not later than the entry before/],
      [["08:00,1MiB/s", "09:00,2MiB/s", "x"], 3, /must be HH:MM,RATE/],
      ["", 1, /must be HH:MM,RATE/],
      ["08:00,5MiB/s 23:60,off", 2, /time that is not HH:MM/],
      ["08:00,5MiB/s 08:00,off", 2, /not later than the entry before/],
      ["08:00,1023B/s", 1, /under 1KiB\/s/],
    ];
    for (const [v, position, why] of cases) {
      let e: unknown;
      try {
        parseSchedule(v);
      } catch (err) {
        e = err;
      }
      expect(e).toBeInstanceOf(ScheduleProblem);
      expect({ v, position: (e as ScheduleProblem).position }).toEqual({ v, position });
      expect((e as ScheduleProblem).message).toMatch(why);
    }
  });

  test("--bwlimit: a rate or a schedule; a bad one is a usage error (exit 2) naming the entry", () => {
    expect(parseBwlimit("2MiB/s")).toEqual([{ at: 0, rate: 2 * MiB }]);
    expect(parseBwlimit("08:00,5MiB/s 23:00,off")).toHaveLength(2);
    for (const [v, msg] of [
      ["08:00,5MiB/s 23:61,off", '--bwlimit entry 2 ("23:61,off") has a time that is not HH:MM'],
      ["fast", "--bwlimit must be a rate of at least 1KiB/s"],
      ["100B/s", "--bwlimit must be a rate of at least 1KiB/s"],
    ]) {
      try {
        parseBwlimit(v);
        throw new Error(`${v} was accepted`);
      } catch (e) {
        expect(e).toBeInstanceOf(ZrbError);
        expect((e as ZrbError).exitCode).toBe(ExitCode.USAGE);
        expect((e as Error).message).toStartWith(msg!);
      }
    }
  });

  test("s3.bandwidth_schedule in the config: a string or a list; errors (exit 3) at the file, line and entry", () => {
    const base = `base_dir: /var/lib/zrb\nage_public_key: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\ns3:\n  enabled: true\n  bucket: bkt\n`;
    const tasks = "tasks:\n  - {name: t, pool: tank, dataset: d}\n";
    const cfg = (s3: string) => parseConfig(base + s3 + tasks, "/c.yaml");
    const load = (s3: string) => {
      try {
        return cfg(s3);
      } catch (e) {
        expect((e as ZrbError).exitCode).toBe(ExitCode.CONFIG);
        return (e as Error).message;
      }
    };
    expect((cfg('  bandwidth_schedule: "08:00,5MiB/s 23:00,off"\n').config.s3 as any).bandwidthSchedule).toHaveLength(2);
    expect((cfg("  bandwidth_schedule:\n    - 08:00,5MiB/s\n    - 23:00,off\n").config.s3 as any).bandwidthSchedule).toEqual(parseSchedule("08:00,5MiB/s 23:00,off"));
    expect(load('  bandwidth_schedule: "08:00,5MiB/s 25:00,off"\n')).toMatch(/^\/c\.yaml:6:\d+: s3\.bandwidth_schedule entry 2 \("25:00,off"\) has a time that is not HH:MM/);
    expect(load("  bandwidth_schedule:\n    - 08:00,5MiB/s\n    - 23:00,slow\n")).toMatch(/^\/c\.yaml:8:\d+: s3\.bandwidth_schedule\[1\] \("23:00,slow"\) has a rate that is neither/);
    expect(load('  bandwidth_limit: 1MiB/s\n  bandwidth_schedule: "08:00,5MiB/s"\n')).toContain("sets both bandwidth_limit and bandwidth_schedule");
  });
});

describe("the rate by the clock", () => {
  test("each entry holds from its time; before the first entry of the day, the last one (from yesterday)", () => {
    const s = parseSchedule("08:00,5MiB/s 12:30,1MiB/s 23:00,off");
    expect(rateAt(s, at(3, 0))).toBeNull();
    expect(rateAt(s, at(7, 59, 59))).toBeNull();
    expect(rateAt(s, at(8, 0))).toBe(5 * MiB);
    expect(rateAt(s, at(12, 29))).toBe(5 * MiB);
    expect(rateAt(s, at(12, 30))).toBe(1 * MiB);
    expect(rateAt(s, at(23, 0))).toBeNull();
  });

  test("local time, not UTC: the zone's hours count, and across a DST change the schedule follows the wall clock", () => {
    const saved = process.env.TZ;
    process.env.TZ = "America/New_York"; // Bun reads TZ again when it changes
    try {
      const s = parseSchedule("08:00,5MiB/s 23:00,off");
      expect(rateAt(s, new Date(Date.UTC(2027, 6, 1, 12, 30)))).toBe(5 * MiB); // 08:30 EDT
      expect(rateAt(s, new Date(Date.UTC(2027, 6, 1, 11, 30)))).toBeNull(); // 07:30 EDT (11:30 in UTC would be limited)
      expect(rateAt(s, new Date(Date.UTC(2027, 6, 1, 23, 30)))).toBe(5 * MiB); // 19:30 EDT (23:30 in UTC would be off)
      // Spring forward (14 March 2027, 02:00 EST → 03:00 EDT): an entry in the skipped hour holds from 03:00.
      const spring = parseSchedule("02:30,1MiB/s 08:00,off");
      expect(rateAt(spring, new Date(Date.UTC(2027, 2, 14, 6, 59)))).toBeNull(); // 01:59 EST
      expect(rateAt(spring, new Date(Date.UTC(2027, 2, 14, 7, 0)))).toBe(MiB); // 03:00 EDT
      // Fall back (7 November 2027, 02:00 EDT → 01:00 EST): 01:45 comes twice, with the same limit each time.
      const fall = parseSchedule("01:00,1MiB/s 02:00,off");
      expect(rateAt(fall, new Date(Date.UTC(2027, 10, 7, 5, 45)))).toBe(MiB); // 01:45 EDT
      expect(rateAt(fall, new Date(Date.UTC(2027, 10, 7, 6, 45)))).toBe(MiB); // 01:45 EST
      expect(rateAt(fall, new Date(Date.UTC(2027, 10, 7, 7, 0)))).toBeNull(); // 02:00 EST
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  test("a run that crosses 23:00 moves at 5 MiB/s before it and without a limit after (fake clocks, no timing)", async () => {
    // One fake clock drives both the wall time the schedule reads and the bucket's monotonic time;
    // every wait the limiter asks for advances it instead of sleeping.
    let ms = 0;
    const start = at(22, 59, 50).getTime();
    const changes: (number | null)[] = [];
    const l = new ScheduledLimiter(
      parseSchedule("08:00,5MiB/s 23:00,off"),
      () => new Date(start + ms),
      () => ms,
      async (wait) => {
        ms += wait;
      },
      (r) => changes.push(r),
    );
    expect(l.current()).toBe(5 * MiB);
    const piece = 64 * KiB;
    const moved = { before: 0, after: 0 };
    while (ms < 20_000) {
      await l.take(piece);
      if (start + ms < at(23, 0).getTime()) moved.before += piece;
      else moved.after += piece;
      ms += 1; // the network itself: 64 KiB per ms = 62.5 MiB/s unlimited
    }
    expect(changes).toEqual([null]);
    expect(l.current()).toBeNull();
    // 10 s at 5 MiB/s (plus the first burst), then 10 s at the network's own speed.
    expect(moved.before).toBeGreaterThanOrEqual(50 * MiB - piece);
    expect(moved.before).toBeLessThanOrEqual(50 * MiB + 512 * KiB + piece);
    expect(moved.after).toBeGreaterThan(500 * MiB);
  });

  test("off → a limit at 08:00: the limit starts mid-run with a fresh bucket", async () => {
    let ms = 0;
    const start = at(7, 59, 59).getTime();
    const l = new ScheduledLimiter(parseSchedule("08:00,1MiB/s 23:00,off"), () => new Date(start + ms), () => ms, async (w) => void (ms += w));
    expect(l.reserve(10 * MiB)).toBe(0); // off: nothing waits
    ms = 1000; // 08:00:00
    expect(l.current()).toBe(MiB);
    expect(l.reserve(100 * KiB)).toBe(0); // within the new bucket's burst
    // The rest of the burst, then 1 MiB/s: a megabyte waits about a second.
    expect(l.reserve(MiB)).toBeCloseTo(((MiB - (defaultBurst(MiB) - 100 * KiB)) * 1000) / MiB, 6);
  });

  test("a limit → a lower limit at 12:30: from the boundary the new rate holds, not the old slot's", async () => {
    let ms = 0;
    const start = at(12, 29, 59).getTime();
    const changes: (number | null)[] = [];
    const l = new ScheduledLimiter(
      parseSchedule("08:00,5MiB/s 12:30,1MiB/s 23:00,off"),
      () => new Date(start + ms),
      () => ms,
      async (w) => void (ms += w),
      (r) => changes.push(r),
    );
    expect(l.current()).toBe(5 * MiB);
    ms = 1000; // 12:30:00
    const piece = 64 * KiB;
    let moved = 0;
    while (ms < 11_000) {
      await l.take(piece);
      moved += piece;
    }
    expect(changes).toEqual([MiB]);
    // 10 s at 1 MiB/s after a fresh bucket's burst: about 10 MiB, not the 50 MiB of the morning's rate.
    expect(moved).toBeGreaterThanOrEqual(10 * MiB - piece);
    expect(moved).toBeLessThanOrEqual(10 * MiB + defaultBurst(MiB) + piece);
  });
});
