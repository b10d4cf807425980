/**
 * A point in time of a recursive task is one run: one snapshot name, taken on every child at
 * once by `zfs snapshot -r`. Restore and verify take each child's backup of that name. A child
 * without one either was not part of the tree then — created later, gone (destroyed or
 * excluded) before the run, or excluded now — and is skipped with the reason, or was part of it
 * and its backup is missing (its backup failed in that run, or was pruned): that child fails,
 * never silently restored from another point.
 */
import type { Task } from "../../config/config.ts";
import type { Manifest } from "../../records/manifest.ts";
import { integrityError, storeError, usageError, type ZrbError } from "../../util/errors.ts";
import type { Catalog } from "../catalog.ts";
import { findBackup, shortSnap, type Selector } from "../restore/select.ts";
import { childLabel } from "./children.ts";
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

/** The run to restore or verify: --snapshot as given, else the run of the task's own dataset's selected backup (its newest without a selector). */
export function choosePoint(task: Task, cats: Map<string, Catalog>, sel: Selector, location: string): RunPoint {
  const all = [...cats.values()].flatMap((c) => [...c.manifests.values()]);
  let name = sel.snapshot !== undefined ? shortSnap(sel.snapshot) : undefined;
  if (name === undefined) {
    const root = cats.get("");
    if (!root || root.entries.length === 0)
      throw storeError(`no backups of ${task.fullName} itself in ${location}, only of its children; name a run with --snapshot, or take one child with --child`);
    name = shortSnap(findBackup(root, sel, task.fullName, { location, urlOf: (k) => k }).snapshot);
  }
  const p = runPoint(name, all);
  if (!p) throw usageError(`no child of ${task.fullName} has a backup of snapshot ${name} in ${location}; zrb list shows the runs`);
  return p;
}

/** Whether the child has a backup of the run; when not, either why it was not in that run (skip) or the error (it was). */
export function inRun(child: KnownChild, cat: Catalog, point: RunPoint): { kind: "yes" } | { kind: "skip"; why: string } | { kind: "missing"; error: ZrbError } {
  const manifests = [...cat.manifests.values()];
  if (manifests.some((m) => shortSnap(m.snapshot.name) === point.snapshot)) return { kind: "yes" };
  const why = notInRun(child, manifests, point);
  if (why) return { kind: "skip", why };
  return {
    kind: "missing",
    error: integrityError(
      `${child.fs} has no backup of @${point.snapshot}, although it was in the tree at that run (its backup failed then, or was pruned); ` +
        `take it from another point alone: --child ${childLabel(child.rel)} --snapshot NAME (zrb list --child ${childLabel(child.rel)} shows its backups)`,
    ),
  };
}
