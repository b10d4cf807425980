/**
 * The time as zrb sees it: snapshot names, backup ids, manifest times, retention and freshness
 * decisions all read it here. ZRB_NOW (an ISO 8601 instant, e.g. 2027-03-01T02:00:00Z) makes a
 * run start at that instant and advance in real time from there — for simulations and tests
 * (a year of daily backups in minutes); never set it on a NAS.
 */
const base = process.env.ZRB_NOW ? Date.parse(process.env.ZRB_NOW) : NaN;
const startedAt = performance.now();

if (process.env.ZRB_NOW && Number.isNaN(base)) {
  process.stderr.write(`zrb: error: ZRB_NOW=${JSON.stringify(process.env.ZRB_NOW).slice(0, 60)} is not an ISO 8601 time such as 2027-03-01T02:00:00Z\n`);
  process.exit(2);
}

/** Now: the real time, or ZRB_NOW plus the time this process has run. */
export function now(): Date {
  return Number.isNaN(base) ? new Date() : new Date(base + (performance.now() - startedAt));
}

/**
 * Orders two times as manifests and heads hold them (UTC, `Z`, 0–9 digits of fraction):
 * negative, 0 or positive. Their text order is wrong when the fractions differ in length
 * ("…:05Z" sorts after "…:05.1Z"; zrb writes milliseconds, other writers may not).
 */
export function compareTimes(a: string, b: string): number {
  const x = timeKey(a), y = timeKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Whether `a` is a later instant than `b` (false when they are equal; any time is later than ""). */
export function laterTime(a: string, b: string): boolean {
  return compareTimes(a, b) > 0;
}

function timeKey(t: string): string {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(t);
  return m ? `${m[1]}.${(m[2] ?? "").padEnd(9, "0")}Z` : t;
}
