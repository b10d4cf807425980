/**
 * `zrb verify` of a recursive task (without --child): every child verified as a dataset of its
 * own (verify-dataset.ts) — its backup of one run, the run restore would take (pipeline/tree/point.ts),
 * or with --rotate every child's rotation, gone children too (their backups are still kept and
 * may still be restored). A child failing does not stop the others.
 */
import { loadCatalog, type Catalog } from "../pipeline/catalog.ts";
import { childLabel, childTask } from "../pipeline/tree/children.ts";
import { bucketChildren } from "../pipeline/tree/known.ts";
import { failed, treeError, type ChildOutcome } from "../pipeline/tree/outcome.ts";
import { choosePoint, inRun, type RunPoint } from "../pipeline/tree/point.ts";
import { checkInterrupted } from "../util/abort.ts";
import { storeError } from "../util/errors.ts";
import { log } from "../util/log.ts";
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
  const outcomes: ChildOutcome[] = [];
  for (const c of children) {
    checkInterrupted(signal);
    const t0 = performance.now();
    const seconds = () => Math.round(((performance.now() - t0) / 1000) * 10) / 10;
    const cat = cats.get(c.rel)!;
    const has = point ? inRun(c, cat, point) : ({ kind: "yes" } as const);
    let out: ChildOutcome;
    if (has.kind === "skip") out = { rel: c.rel, dataset: c.fs, status: "skipped", message: has.why, exitCode: 0, seconds: 0 };
    else if (has.kind === "missing") out = failed(c.rel, c.fs, has.error);
    else {
      reporter.child({ rel: c.rel, dataset: c.fs });
      if (!o.json) process.stdout.write(`== ${childLabel(c.rel)} (${c.fs})\n`);
      const selector = point ? { snapshot: point.snapshot } : o.selector;
      try {
        const r = await verifyDataset(job, childTask(task, c.rel), { ...o, selector }, cat);
        const bytes = reporter.bytesDone;
        out = r.error ? { ...failed(c.rel, c.fs, r.error, seconds()), result: r.result, bytes } : { rel: c.rel, dataset: c.fs, status: "ok", exitCode: 0, seconds: seconds(), result: r.result, bytes };
      } catch (err) {
        if (signal.aborted) throw err;
        out = failed(c.rel, c.fs, err, seconds());
      }
    }
    if (out.status === "failed") log.error(`${c.fs}: ${out.message}`);
    outcomes.push(out);
    reporter.childDone(out);
  }
  const what = point ? `as of @${point.snapshot}` : `rotation of ${o.rotate} days`;
  if (!o.json) printChildren(`verify of ${task.fullName} (${what}) in ${store.location}:`, outcomes, () => "verified");
  const result = { tree: task.fullName, ...(point ? { snapshot: point.snapshot } : { rotate: o.rotate }), children: outcomes.map(({ rel, ...x }) => ({ child: rel, ...x })) };
  const error = treeError(`verify of ${task.fullName}`, outcomes);
  return { result, runs: childRuns(outcomes, () => o.selector.level), ...(error ? { error } : {}) };
}
