/**
 * Byte sizes as users write them in the config ("3GiB", "512 MiB", 1048576) and as zrb prints them.
 *
 * Units are binary (1024-based). K/M/G/T are accepted as short forms of KiB/MiB/GiB/TiB.
 * KB/MB/GB/TB are refused: half the world reads them as powers of 1000, the other half as
 * powers of 1024, and a chunk size that is silently 7% off is worse than an error.
 */
import { configError } from "./errors.ts";

const KiB = 1024;
const UNITS: Record<string, number> = {
  b: 1,
  k: KiB,
  kib: KiB,
  m: KiB ** 2,
  mib: KiB ** 2,
  g: KiB ** 3,
  gib: KiB ** 3,
  t: KiB ** 4,
  tib: KiB ** 4,
  p: KiB ** 5,
  pib: KiB ** 5,
};
const AMBIGUOUS: Record<string, string> = { kb: "KiB", mb: "MiB", gb: "GiB", tb: "TiB", pb: "PiB" };

/** Quote what was given, short; a long run of key-like characters (an AWS secret in the wrong place?) is not echoed. */
function show(s: string): string {
  if (/[A-Za-z0-9/+]{32}/.test(s) && !/^[\d.\s]+$/.test(s)) return "(a long value, not shown)";
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

/**
 * Parse a size: a whole number of bytes, or a string such as "3GiB", "1.5 GiB", "512K", "4096".
 * `key` names the thing being parsed in error messages (e.g. "chunk_size").
 * Throws a one-line ZrbError (exit code CONFIG) on anything else.
 */
export function parseSize(v: string | number, key: string): number {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw configError(`${key} must be a whole number of bytes or a size such as 3GiB, got ${v}`);
    }
    return v;
  }
  if (typeof v !== "string") {
    throw configError(`${key} must be a size such as 3GiB or a whole number of bytes, got ${typeof v}`);
  }
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*$/.exec(v);
  if (!m) {
    throw configError(`${key} must be a size such as 3GiB, 512MiB or a whole number of bytes, got ${show(v)}`);
  }
  const [, num = "", unitRaw = ""] = m;
  const unit = unitRaw.toLowerCase();
  const alt = AMBIGUOUS[unit];
  if (alt !== undefined) {
    throw configError(
      `${key} uses the ambiguous unit ${unitRaw} in ${show(v)}; write ${num}${alt} (sizes are 1024-based: B, KiB, MiB, GiB, TiB)`,
    );
  }
  const mult = unit === "" ? 1 : UNITS[unit];
  if (mult === undefined) {
    throw configError(`${key} has an unknown unit ${show(unitRaw)} in ${show(v)}; use B, KiB, MiB, GiB or TiB`);
  }
  const bytes = Number(num) * mult;
  if (!Number.isSafeInteger(bytes)) {
    if (Number.isFinite(bytes) && bytes < Number.MAX_SAFE_INTEGER) {
      throw configError(`${key} must be a whole number of bytes, got ${show(v)} (${bytes} bytes)`);
    }
    throw configError(`${key} is too large, got ${show(v)}`);
  }
  return bytes;
}

/**
 * Parse a rate: a size per second such as "20MiB/s" or "512 KiB/s" (bytes per second).
 * Same units and errors as parseSize; the "/s" is required, so a size is never taken for a rate.
 */
export function parseRate(v: string | number, key: string): number {
  const m = typeof v === "string" ? /^(.*?)\s*\/\s*s\s*$/i.exec(v) : null;
  if (!m) throw configError(`${key} must be a rate such as 20MiB/s, got ${typeof v === "string" ? show(v) : String(v)}`);
  return parseSize(m[1]!, key);
}

const NAMES = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** Format a byte count for people: "512 B", "8.5 MiB", "3 GiB" (at most two decimals, no trailing zeros). */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return `${bytes} B`;
  const sign = bytes < 0 ? "-" : "";
  let v = Math.abs(bytes);
  let i = 0;
  while (v >= KiB && i < NAMES.length - 1) {
    v /= KiB;
    i++;
  }
  let r = Math.round(v * 100) / 100;
  if (r >= KiB && i < NAMES.length - 1) {
    // 1023.999 MiB rounds to 1024 MiB: say 1 GiB instead.
    r = 1;
    i++;
  }
  const text = i === 0 ? String(Math.round(v)) : String(r);
  return `${sign}${text} ${NAMES[i]}`;
}
