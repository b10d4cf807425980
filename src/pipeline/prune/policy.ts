/**
 * The retention policy, pure: which restore points a restic-style policy keeps, and why. No
 * I/O and no clock of its own — the points carry their times and `now` is given — so the
 * calendar rules are tested alone.
 *
 * Semantics (restic's `forget`, in UTC):
 *   - points are ordered newest first (same time: the later id counts as newer);
 *   - keep-last N keeps the N newest points;
 *   - keep-hourly/daily/weekly/monthly/yearly N keep the newest point of each of the last N
 *     hours, days, ISO 8601 weeks, months or years *that have a point* (empty periods do not
 *     count, so a NAS that was off for a month still keeps N);
 *   - keep-within D keeps every point younger than D, counted back from now — the clock, never a
 *     date the bucket claims: one manifest dated 2099 must not cancel the window (restic counts
 *     from the newest snapshot; a job that stopped is covered here by the heads, which prune
 *     always keeps with their chains);
 *   - points dated in the future are the caller's to leave out (prune/plan.ts): they would take
 *     the newest slot of every rule;
 *   - rules are ORed; a rule of 0 is off; a policy whose every rule is off keeps nothing and is
 *     refused by `policyProblem` (never "delete everything").
 */
import { formatDuration } from "../../util/duration.ts";

export const CALENDAR_RULES = ["hourly", "daily", "weekly", "monthly", "yearly"] as const;
export type CalendarRule = (typeof CALENDAR_RULES)[number];

export interface Policy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Milliseconds. */
  within?: number;
}

export interface Point {
  id: string;
  time: Date;
}

/** Why a point is kept by the policy. */
export type PolicyReason =
  | { rule: "last"; n: number; of: number }
  | { rule: CalendarRule; period: string }
  | { rule: "within"; ms: number };

/** The policy's rules as flags: "keep-last 3, keep-daily 7, keep-within 30d". */
export function describePolicy(p: Policy): string {
  const parts: string[] = [];
  if (p.last) parts.push(`keep-last ${p.last}`);
  for (const r of CALENDAR_RULES) if (p[r]) parts.push(`keep-${r} ${p[r]}`);
  if (p.within) parts.push(`keep-within ${formatDuration(p.within)}`);
  return parts.join(", ");
}

/** Why a policy is unusable (it keeps nothing, or a value is not a whole number ≥ 0), or undefined. */
export function policyProblem(p: Policy): string | undefined {
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0) return `keep-${k} must be a whole number ≥ 0, got ${v}`;
  }
  if (!p.last && !p.within && CALENDAR_RULES.every((r) => !p[r])) return "it keeps nothing: every rule is absent or 0";
  return undefined;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** ISO 8601 week of a UTC date: "2026-W53" (the week's year can differ from the date's). */
export function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const dow = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - dow); // the Thursday of this week decides its year
  const year = t.getUTCFullYear();
  const week = Math.floor((t.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 / 7) + 1;
  return `${year}-W${pad(week)}`;
}

/** The calendar period of `d` for a rule, in UTC: "2026-03-01T14", "2026-03-01", "2026-W09", "2026-03", "2026". */
export function periodOf(rule: CalendarRule, d: Date): string {
  const y = pad(d.getUTCFullYear(), 4);
  const ymd = `${y}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  switch (rule) {
    case "hourly":
      return `${ymd}T${pad(d.getUTCHours())}`;
    case "daily":
      return ymd;
    case "weekly":
      return isoWeek(d);
    case "monthly":
      return ymd.slice(0, 7);
    case "yearly":
      return y;
  }
}

/** Newest first; the same time: the later id first. */
export function newestFirst<T extends Point>(points: T[]): T[] {
  return [...points].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** For every point id, the reasons the policy keeps it (an empty list: not kept). */
export function applyPolicy(points: Point[], p: Policy, now: Date): Map<string, PolicyReason[]> {
  const out = new Map<string, PolicyReason[]>(points.map((x) => [x.id, []]));
  const sorted = newestFirst(points);
  const left = new Map<CalendarRule, number>(CALENDAR_RULES.map((r) => [r, p[r] ?? 0]));
  const lastPeriod = new Map<CalendarRule, string>();
  sorted.forEach((pt, i) => {
    const why = out.get(pt.id)!;
    if (p.last && i < p.last) why.push({ rule: "last", n: i + 1, of: p.last });
    for (const r of CALENDAR_RULES) {
      if (left.get(r)! <= 0) continue;
      const period = periodOf(r, pt.time);
      if (period === lastPeriod.get(r)) continue;
      lastPeriod.set(r, period);
      left.set(r, left.get(r)! - 1);
      why.push({ rule: r, period });
    }
    if (p.within && pt.time.getTime() > now.getTime() - p.within) why.push({ rule: "within", ms: p.within });
  });
  return out;
}

export function policyReasonText(r: PolicyReason): string {
  if (r.rule === "last") return `keep-last (${r.n} of ${r.of})`;
  if (r.rule === "within") return `keep-within ${formatDuration(r.ms)} of now`;
  return `keep-${r.rule} ${r.period}`;
}
