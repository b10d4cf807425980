/**
 * A point in time of a recursive task is one run: one snapshot name, taken on every child at
 * once by `zfs snapshot -r`. Restore and verify take each child's backup of that name. A child
 * without one either was not part of the tree then — created later, gone (destroyed or
 * excluded) before the run, or excluded now — and is skipped with the reason, or was part of it
 * and its backup is missing (its backup failed in that run, or was pruned): that child fails,
 * never silently restored from another point.
 */
import type { Manifest } from "../../state/manifest.ts";
import { shortSnap } from "../restore/select.ts";
import type { KnownChild } from "./known.ts";

export interface RunPoint {
  /** The snapshot name (after '@'). */
  snapshot: string;
  /** When the run's first backup of it started (ISO): the run's time. */
  startedAt: string;
}

/** The point of snapshot `name` among the children's manifests; null when no child has a backup of it. */
export function runPoint(name: string, manifests: Iterable<Manifest>): RunPoint | null {
  let first: string | null = null;
  for (const m of manifests) if (shortSnap(m.snapshot.name) === name && (first === null || m.startedAt < first)) first = m.startedAt;
  return first === null ? null : { snapshot: name, startedAt: first };
}

/** Why a child without a backup of the point was not part of that run, or undefined when it was (then its backup is missing). */
export function notInRun(child: KnownChild, manifests: Manifest[], point: RunPoint): string | undefined {
  const r = child.record;
  if (!manifests.some((m) => m.startedAt < point.startedAt)) return "not in the tree at that run: its first backup is newer";
  if (r?.gone !== undefined && r.gone <= point.startedAt) return `not in the tree at that run: ${r.reason === "excluded" ? "excluded" : "gone from the pool"} since ${r.gone}`;
  if (r && r.since > point.startedAt) return `not in the tree at that run: backed up (again) only since ${r.since}`;
  if (child.excluded) return "excluded by the task now, and no backup of that run";
  return undefined;
}
