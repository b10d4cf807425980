/**
 * `zrb verify` of a recursive task (without --child): every child verified as a dataset of its
 * own (verify-dataset.ts) — its backup of one run, the run restore would take (pipeline/tree/point.ts),
 * or with --rotate every child's rotation, gone children too (their backups are still kept and
 * may still be restored). The loop is the tree driver's (pipeline/tree/drive.ts); this file says
 * what one child's verify is and formats the summary.
 */
import { loadCatalog, type Catalog } from "../pipeline/catalog.ts";
import { childLabel, childTask } from "../pipeline/tree/children.ts";
import { bucketChildren } from "../pipeline/tree/known.ts";
import { treeError } from "../pipeline/tree/outcome.ts";
import { driveChildren, type Step } from "../pipeline/tree/drive.ts";
import { choosePoint, inRun, type RunPoint } from "../pipeline/tree/point.ts";
import { storeError } from "../util/errors.ts";
import type { JobContext, JobResult } from "./job.ts";
import { childRuns, printChildren } from "./tree.ts";
import { verifyDataset, type VerifyAsk } from "./verify-dataset.ts";

export async function verifyTree(job: JobContext, o: VerifyAsk): Promise<JobResult> {
  const { task, store, reporter, signal } = job;
  const { children } = await bucketChildren(store, task, o.trust);
  if (children.length === 0) throw storeError(`no backups of ${task.fullName} or its children in ${store.location}`);
  const cats = new Map<string, Catalog>();
  for (const c of children) cats.set(c.rel, await loadCatalog(store, task.pool, childTask(task, c.rel).dataset, o.trust));
  const point: RunPoint | undefined = o.rotate === undefined ? choosePoint(task, cats, o.selector, store.location) : undefined;
  const outcomes = await driveChildren(
    children,
    async (c): Promise<Step<unknown>> => {
      const cat = cats.get(c.rel)!;
      const has = point ? inRun(c, cat, point) : ({ kind: "yes" } as const);
      if (has.kind === "skip") return { status: "skipped", message: has.why };
      if (has.kind === "missing") return { status: "failed", error: has.error };
      reporter.child({ rel: c.rel, dataset: c.fs });
      if (!o.json) process.stdout.write(`== ${childLabel(c.rel)} (${c.fs})\n`);
      const selector = point ? { snapshot: point.snapshot } : o.selector;
      const before = reporter.bytesDone;
      const r = await verifyDataset(job, childTask(task, c.rel), { ...o, selector }, cat);
      const bytes = reporter.bytesDone - before;
      return r.error ? { status: "failed", error: r.error, result: r.result, bytes } : { status: "ok", result: r.result, bytes };
    },
    { signal, progress: reporter },
  );
  const what = point ? `as of @${point.snapshot}` : `rotation of ${o.rotate} days`;
  if (!o.json) printChildren(`verify of ${task.fullName} (${what}) in ${store.location}:`, outcomes, () => "verified");
  const result = { tree: task.fullName, ...(point ? { snapshot: point.snapshot } : { rotate: o.rotate }), children: outcomes.map(({ rel, ...x }) => ({ child: rel, ...x })) };
  const error = treeError(`verify of ${task.fullName}`, outcomes);
  return { result, runs: childRuns(outcomes, () => o.selector.level), ...(error ? { error } : {}) };
}
