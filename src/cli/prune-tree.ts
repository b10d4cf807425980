/**
 * `zrb prune` of a recursive task (without --child), under the tree's lock: every child pruned
 * as a dataset of its own (pipeline/prune) with the task's policy. A child gone from the pool
 * keeps its backups — they may be the only copy of what it held — and the run says so, with the
 * command that prunes them by name (--child). A child excluded now is not touched at all: not
 * its backups, not its local snapshots (still taken by zfs snapshot -r) — another task may back
 * it up with a retention of its own, and the tree's policy destroyed the snapshots that task
 * keeps, its incremental bases among them (issue 20); a tree touches only the snapshots of the
 * children it backs up. One child failing does not stop the others; the exit code is the worst
 * child's.
 */
import { otherTaskOf, type Config, type Task } from "../config/config.ts";
import { prune, type PruneOptions, type PruneResult } from "../pipeline/prune/index.ts";
import { childLabel, childTask } from "../pipeline/tree/children.ts";
import { allChildren, type LocalChild } from "../pipeline/tree/known.ts";
import { treeError } from "../pipeline/tree/outcome.ts";
import { driveChildren, withTreeLock, type Step } from "../pipeline/tree/drive.ts";
import { isManifestKey, manifestDir } from "../store/layout.ts";
import type { ObjectStore } from "../store/store.ts";
import { log } from "../util/log.ts";
import type { JobResult } from "./job.ts";
import { printPlan, refusals, summaryLine } from "./prune-report.ts";
import { childRuns, printChildren } from "./tree.ts";

/** Why this child's backups are not pruned by the tree's run (gone or excluded), or undefined. */
function keptWhy(c: LocalChild, poolHere: boolean): string | undefined {
  if (c.record?.gone !== undefined && !c.onPool) return `gone (${c.record.reason ?? "destroyed"}) since ${c.record.gone}`;
  if (poolHere && !c.onPool) return "no longer on the pool";
  return undefined;
}

export async function pruneTree(config: Config, task: Task, store: ObjectStore, opts: PruneOptions, json: boolean): Promise<JobResult> {
  const outcomes = await withTreeLock(config, task, "zrb prune", async () => {
    const { children, poolHere } = await allChildren(store, task, opts.trust);
    return driveChildren(
      children,
      async (c): Promise<Step<PruneResult>> => {
        const ct = childTask(task, c.rel);
        const gone = keptWhy(c, poolHere);
        if (gone) {
          const n = (await store.list(manifestDir(ct.pool, ct.dataset))).filter((o) => isManifestKey(manifestDir(ct.pool, ct.dataset), o.key)).length;
          // A task of its own decides for it (refuseChildOfOtherTask): name that one.
          const owner = otherTaskOf(config, task, ct.fullName);
          const how = owner ? `zrb prune --task ${owner.name} (its own task)` : `zrb prune --task ${task.name} --child ${childLabel(c.rel)}`;
          return { status: "skipped", message: `${gone}: its ${n} backup(s) are kept; prune them by name: ${how}` };
        }
        if (c.excluded)
          return { status: "skipped", message: `excluded: its snapshots and backups are left alone (the tree's snapshots still include it; a task of its own prunes them)` };
        const r = await prune(config, ct, store, opts);
        if (!json) printPlan(r);
        const refused = refusals(r);
        const bytes = r.dryRun ? 0 : r.summary.bytes;
        return refused ? { status: "failed", error: refused, result: r, bytes } : { status: "ok", result: r, bytes };
      },
      { signal: opts.signal },
    );
  });
  const result = { tree: task.fullName, dryRun: opts.dryRun, children: outcomes.map(({ rel, ...o }) => ({ child: rel, ...o })) };
  if (!json) printChildren(`prune of ${task.fullName} in ${store.location}${opts.dryRun ? " (dry run)" : ""}:`, outcomes, (o) => summaryLine(o.result as PruneResult).replace(/^prune of [^:]*: /, "") + (o.message ? ` (${o.message})` : ""));
  const error = treeError(`prune of ${task.fullName}`, outcomes);
  if (!error && !json) log.success(`prune of ${task.fullName}: ${outcomes.filter((o) => o.status === "ok").length} of ${outcomes.length} children pruned`);
  // Each child's own metrics series (cli/job.ts), as if it were a task of its own.
  const runs = childRuns(outcomes, () => undefined);
  return { result, bytes: outcomes.reduce((a, o) => a + (o.bytes ?? 0), 0), runs, ...(error ? { error } : {}) };
}
