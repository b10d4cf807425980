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
