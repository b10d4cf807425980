/**
 * Bandwidth by the clock: a home uplink is shared, so the limit is a timetable in local time —
 * rclone's form, `"08:00,5MiB/s 23:00,off"`: from 08:00 at most 5 MiB/s, from 23:00 no limit,
 * and before the first entry of the day the last one still holds (23:00 yesterday). One entry
 * without a time ("20MiB/s") is a constant limit, so --bwlimit keeps its old meaning.
 *
 * The limiter (ScheduledLimiter) asks the schedule for the rate at the wall clock's time on
 * every piece it lets through, so a run that crosses 23:00 speeds up at 23:00. Both clocks are
 * injected: the schedule's change is tested with a fake clock, never by timing.
 */
import { parseRate, formatSize } from "./size.ts";
import { sleep } from "./abort.ts";
import { TokenBucket, type Clock } from "./token-bucket.ts";
import { now } from "./clock.ts";

/** From `at` (minutes after local midnight) on, at most `rate` bytes per second; null: no limit. */
export interface BandwidthEntry {
  at: number;
  rate: number | null;
}

/** Entries sorted by time, at least one. */
export type BandwidthSchedule = BandwidthEntry[];

/** Below this a limit is a typo (1k instead of 1MiB/s) rather than a wish. */
export const MIN_RATE = 1024;

/** What is wrong with one entry: its 1-based position and the rest of the message. */
export class ScheduleProblem extends Error {
  constructor(
    readonly position: number,
    readonly entry: string,
    readonly why: string,
  ) {
    super(`entry ${position} (${JSON.stringify(entry.slice(0, 40))}) ${why}`);
  }
}

const FORM = "must be HH:MM,RATE or HH:MM,off (e.g. 08:00,5MiB/s)";

function parseRateOrOff(text: string, position: number, entry: string): number | null {
  if (/^off$/i.test(text.trim())) return null;
  let n: number;
  try {
    n = parseRate(text, "rate");
  } catch {
    throw new ScheduleProblem(position, entry, `has a rate that is neither a rate such as 5MiB/s nor off`);
  }
  if (n < MIN_RATE) throw new ScheduleProblem(position, entry, `has a rate under 1KiB/s; write off for no limit`);
  return n;
}

/** One "HH:MM,RATE" entry (or, alone, a bare "RATE"). */
function parseEntry(entry: string, position: number, alone: boolean): BandwidthEntry {
  const comma = entry.indexOf(",");
  if (comma < 0) {
    if (alone) return { at: 0, rate: parseRateOrOff(entry, position, entry) };
    throw new ScheduleProblem(position, entry, FORM);
  }
  const m = /^(\d{1,2}):(\d{2})$/.exec(entry.slice(0, comma).trim());
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) throw new ScheduleProblem(position, entry, `has a time that is not HH:MM from 00:00 to 23:59`);
  return { at: Number(m[1]) * 60 + Number(m[2]), rate: parseRateOrOff(entry.slice(comma + 1), position, entry) };
}

/**
 * Entries as given: one string of space-separated entries, or a list of entries (YAML). Throws
 * ScheduleProblem naming the entry's position; times must increase.
 */
export function parseSchedule(v: string | string[]): BandwidthSchedule {
  const entries = (Array.isArray(v) ? v.map((e) => e.trim()) : v.trim().split(/\s+/)).filter((e, i, all) => e !== "" || all.length === 1);
  if (entries.length === 0 || entries[0] === "") throw new ScheduleProblem(1, "", FORM);
  const out = entries.map((e, i) => parseEntry(e, i + 1, entries.length === 1));
  for (let i = 1; i < out.length; i++)
    if (out[i]!.at <= out[i - 1]!.at) throw new ScheduleProblem(i + 1, entries[i]!, `is not later than the entry before it (times must increase through the day)`);
  return out;
}

/** The rate in force at `t` (local time): the last entry at or before it, else the day's last entry (from yesterday). */
export function rateAt(s: BandwidthSchedule, t: Date): number | null {
  const m = t.getHours() * 60 + t.getMinutes();
  let cur = s[s.length - 1]!;
  for (const e of s) if (e.at <= m) cur = e;
  return cur.rate;
}

/** "5 MiB/s", "off". */
export function formatLimit(rate: number | null): string {
  return rate === null ? "off" : `${formatSize(rate)}/s`;
}

/** "08:00,5MiB/s 23:00,off" — the schedule written back, for messages and docs. */
export function formatSchedule(s: BandwidthSchedule): string {
  if (s.length === 1 && s[0]!.at === 0) return formatLimit(s[0]!.rate).replace(" ", "");
  const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
  return s.map((e) => `${hhmm(e.at)},${formatLimit(e.rate).replace(" ", "")}`).join(" ");
}

/** What the transport holds every piece of a body through (util/token-bucket.ts, ScheduledLimiter). */
export interface Limiter {
  take(n: number, signal?: AbortSignal): Promise<void>;
}

/** The run's limit in force now (for progress lines); undefined: no limiter at all. */
export interface LimitView {
  current(): number | null;
}

/**
 * A token bucket whose rate follows the schedule: before each piece it reads the wall clock
 * (`wall`, util/clock.ts's now(), which ZRB_NOW moves) and, at an entry's time, carries on at the
 * new rate (or without a limit). `mono` and `wait` are the bucket's clock and sleep.
 */
export class ScheduledLimiter implements Limiter, LimitView {
  private bucket: TokenBucket | null = null;
  private rate: number | null | undefined = undefined;

  constructor(
    readonly schedule: BandwidthSchedule,
    private readonly wall: () => Date = now,
    private readonly mono?: Clock,
    private readonly wait: (ms: number, signal?: AbortSignal) => Promise<void> = sleep,
    /** Told of every change of the limit during the run (the reporter prints it). */
    private readonly onChange?: (rate: number | null) => void,
  ) {
    this.current();
  }

  /** The limit in force now; a change starts a fresh bucket at the new rate. */
  current(): number | null {
    const r = rateAt(this.schedule, this.wall());
    if (r !== this.rate) {
      const first = this.rate === undefined;
      this.rate = r;
      this.bucket = r === null ? null : new TokenBucket(r, undefined, this.mono);
      if (!first) this.onChange?.(r);
    }
    return r;
  }

  /** Milliseconds to wait before moving `n` bytes now (0 without a limit). */
  reserve(n: number): number {
    this.current();
    return this.bucket ? this.bucket.reserve(n) : 0;
  }

  async take(n: number, signal?: AbortSignal): Promise<void> {
    const ms = this.reserve(n);
    if (ms > 0) await this.wait(ms, signal);
  }
}
