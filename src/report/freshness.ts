/**
 * Freshness: is the newest backup of a task young enough? `zrb status --max-age` asks it for
 * every enabled task (or one) from the bucket's heads, so that Nagios, a cron job or a second
 * machine notices when backups stopped — whatever the reason, even a timer that never fired.
 * With levels given, each is checked on its own: the newest backup at that level or a lower one
 * (a full is at least as recent a restore point as an incremental, and after a new full the
 * heads drop the higher levels).
 */
import type { Heads } from "../records/heads.ts";
import { formatEta } from "./progress.ts";
import { laterTime } from "../util/clock.ts";

export interface FreshnessCheck {
  task: string;
  dataset: string;
  /** The level checked (backups at it or below count); null: any level. */
  level: number | null;
  newest: { backupId: string; level: number; finishedAt: string } | null;
  ageSeconds: number | null;
  stale: boolean;
  /** Only signed backups count (a verification key is known and --allow-unsigned not given): messages say "signed". */
  signedOnly?: boolean;
  /** The newest backup's manifest is not in the bucket (deleted by hand, a lifecycle rule): stale whatever its age. */
  gone?: true;
}

/** A head finished more than this far ahead of this host's clock does not count as fresh. */
const FUTURE_SLACK_MS = 86_400_000;

export function checkFreshness(task: string, dataset: string, heads: Heads, levels: number[] | null, maxAgeMs: number, at: Date, signedOnly = false): FreshnessCheck[] {
  return (levels ?? [null]).map((level) => {
    let newest: FreshnessCheck["newest"] = null;
    for (const [k, h] of Object.entries(heads.levels)) {
      const l = Number(k);
      if (level !== null && l > level) continue;
      if (Date.parse(h.finishedAt) > at.getTime() + FUTURE_SLACK_MS) continue; // a date from the future proves nothing
      if (!newest || Date.parse(h.finishedAt) > Date.parse(newest.finishedAt)) newest = { backupId: h.backupId, level: l, finishedAt: h.finishedAt };
    }
    const ageMs = newest ? at.getTime() - Date.parse(newest.finishedAt) : null;
    const stale = ageMs === null || Number.isNaN(ageMs) || ageMs > maxAgeMs;
    return { task, dataset, level, newest, ageSeconds: ageMs === null || Number.isNaN(ageMs) ? null : Math.round(ageMs / 1000), stale, ...(signedOnly ? { signedOnly } : {}) };
  });
}

/**
 * "task photos (tank/photos): the newest backup at level ≤ 1 (…) finished …, 3d 4h ago, more than --max-age 2d".
 * With a verification key known, unsigned backups are not restore points: "has no signed backup at all".
 */
export function describeStale(c: FreshnessCheck, maxAge: string): string {
  const kind = c.signedOnly ? "signed backup" : "backup";
  const which = c.level === null ? kind : `${kind} at level ≤ ${c.level}`;
  if (!c.newest)
    return `task ${c.task} (${c.dataset}) has no ${which} at all${c.signedOnly ? " (unsigned backups and ones signed by an unknown key are not counted: set signing_key on the NAS)" : ""}`;
  if (c.gone)
    return `task ${c.task} (${c.dataset}): the newest ${which} (${c.newest.backupId}, level ${c.newest.level}) that the heads name is not in the bucket (its manifest is gone: deleted by hand or by a lifecycle rule?); run zrb list, and a new level 0 if its chain is broken`;
  const age = c.ageSeconds === null ? "at an unreadable time" : `${formatEta(c.ageSeconds)} ago`;
  return `task ${c.task} (${c.dataset}): the newest ${which} (${c.newest.backupId}, level ${c.newest.level}) finished ${c.newest.finishedAt}, ${age}, more than --max-age ${maxAge}`;
}

/** "just now", "45 s ago", "12 min ago", "3 h ago", "4 d ago"; "in 2 h" for a time ahead of this host's clock. */
export function ageInWords(seconds: number): string {
  const s = Math.abs(seconds);
  const n = s < 60 ? `${Math.floor(s)} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86_400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86_400)} d`;
  if (s < 5) return "just now";
  return seconds < 0 ? `in ${n}` : `${n} ago`;
}

/** Without --max-age, `zrb status` marks a dataset whose newest backup is older than this (two nightly runs missed); the exit code is unchanged. */
export const DEFAULT_STALE_MS = 2 * 86_400_000;

/**
 * The newest backup among heads (any level) as `zrb status` shows it beside each task:
 * "newest backup 3 h ago (level 1)", marked STALE past `staleMs`; "no backup yet" without one.
 */
export function newestLine(heads: { level: number; finishedAt: string }[], at: Date, staleMs: number, limit: string): string {
  const newest = heads.reduce<{ level: number; finishedAt: string } | null>((a, h) => (!a || laterTime(h.finishedAt, a.finishedAt) ? h : a), null);
  if (!newest) return "no backup yet";
  const age = (at.getTime() - Date.parse(newest.finishedAt)) / 1000;
  const stale = age * 1000 > staleMs;
  return `newest backup ${ageInWords(age)} (level ${newest.level})${stale ? `  STALE: older than ${limit}` : ""}`;
}
