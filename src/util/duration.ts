/**
 * Durations as users write them, in the config (timeouts, retention windows) and on the command
 * line (`cleanup --older-than`): a whole number and one unit, `s`, `m`, `h`, `d` (24 h) or `w`
 * (7 d) — "30s", "15m", "24h", "7d", "2w". No fractions, no sums ("1d12h": write 36h), and no
 * months or years, which have no fixed length: a retention window that is silently a day off
 * is worse than an error asking for "365d".
 */
import { quote } from "./redact.ts";

const UNITS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
type Unit = keyof typeof UNITS;

/** Milliseconds, or the problem as the rest of a sentence that starts with what was parsed. */
export type DurationParse = { ms: number } | { problem: string };

export function parseDuration(text: string): DurationParse {
  const form = "must be a duration like 30m, 24h or 7d";
  const m = /^(\d+)([a-z]+)$/.exec(text.trim());
  const unit = m?.[2];
  if (unit !== undefined && /^(y|yr|years?|mo|mon|months?)$/.test(unit)) {
    return { problem: `${form}, got ${quote(text)}; months and years vary in length, so write days or weeks (30d, 365d, 52w)` };
  }
  if (!m || unit === undefined || !Object.hasOwn(UNITS, unit)) return { problem: `${form}, got ${quote(text)}` };
  const ms = Number(m[1]) * UNITS[unit as Unit];
  if (!Number.isSafeInteger(ms)) return { problem: `is too long, got ${quote(text)}` };
  return { ms };
}

/** The shortest exact spelling of `ms` in the largest unit that divides it: 60000 → "1m". */
export function formatDuration(ms: number): string {
  const units = Object.entries(UNITS).reverse() as [Unit, number][];
  for (const [u, size] of units) if (ms !== 0 && ms % size === 0) return `${ms / size}${u}`;
  return `${Math.round(ms / 1000)}s`;
}

/** An age for people: 42s, 17m, 5h, 3d (rounded down; a negative age is 0s). */
export function roughAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86400 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86400)}d`;
}
