/** `zrb restore` of a recursive task (without --child): pipeline/tree/restore.ts, its summary and result. */
import type { Config, Task } from "../config/config.ts";
import type { RestoreResult } from "../pipeline/restore/index.ts";
import { childLabel } from "../pipeline/tree/children.ts";
import { treeError, type ChildOutcome } from "../pipeline/tree/outcome.ts";
import { restoreTree, type TreeRestoreOptions, type TreeRestoreResult } from "../pipeline/tree/restore.ts";
import type { ObjectStore } from "../store/store.ts";
import { log } from "../util/log.ts";
import { formatPlan } from "./restore-plan.ts";
import type { JobResult } from "./job.ts";
import { childRuns, printChildren } from "./tree.ts";

type Restored = RestoreResult & { target: string };

function childJson(o: ChildOutcome<Restored>): Record<string, unknown> {
  const r = o.result;
  return {
    child: o.rel,
    dataset: o.dataset,
    status: o.status,
    exitCode: o.exitCode,
    seconds: o.seconds,
    ...(o.message ? { message: o.message } : {}),
    ...(r ? { target: r.target, restored: r.restored ?? null, applied: r.applied, plan: r.plan } : {}),
  };
}

function detail(o: ChildOutcome): string {
  const r = (o as ChildOutcome<Restored>).result!;
  if (r.applied.length === 0) return `${r.restored ?? r.target}: already there`;
  return `${r.restored}: ${r.applied.length} step(s), ${r.applied.map((a) => `level ${a.level}`).join(" → ")}`;
}

function summary(task: Task, r: TreeRestoreResult): Record<string, unknown> {
  return { tree: task.fullName, target: r.target, snapshot: r.point.snapshot, runStartedAt: r.point.startedAt, children: r.children.map(childJson) };
}

export async function runTreeRestore(config: Config, task: Task, store: ObjectStore, target: string, opts: TreeRestoreOptions & { json: boolean }): Promise<JobResult> {
  const r = await restoreTree(config, task, store, target, opts);
  if (!opts.json) printChildren(`restore of ${task.fullName} as of @${r.point.snapshot} into ${target} from ${store.location}:`, r.children, detail);
  const error = treeError(`restore of ${task.fullName} into ${target}`, r.children);
  if (!error && !opts.json) log.success(`restored ${r.children.filter((c) => c.status === "ok").length} of ${r.children.length} children of ${task.fullName} into ${target}`);
  const bytes = (o: ChildOutcome) => (o as ChildOutcome<Restored>).result?.plan.steps.filter((s) => s.action === "receive").reduce((a, s) => a + s.streamBytes, 0) ?? 0;
  for (const c of r.children) c.bytes = bytes(c);
  return { result: summary(task, r), runs: childRuns(r.children, () => undefined), ...(error ? { error } : {}) };
}

/** --plan of a tree: every child's plan, in tree order. */
export async function printTreePlan(config: Config, task: Task, store: ObjectStore, target: string, opts: TreeRestoreOptions, json: boolean): Promise<void> {
  const r = await restoreTree(config, task, store, target, { ...opts, planOnly: true });
  if (json) {
    process.stdout.write(JSON.stringify(summary(task, r), null, 2) + "\n");
    return;
  }
  process.stdout.write(`restore plan of the tree ${task.fullName} as of @${r.point.snapshot} into ${target}:\n`);
  for (const c of r.children) {
    const res = (c as ChildOutcome<Restored>).result;
    if (res) process.stdout.write(formatPlan(res.plan));
    else process.stdout.write(`${childLabel(c.rel)}: ${c.status}${c.message ? `: ${c.message}` : ""}\n`);
  }
}
