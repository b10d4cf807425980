/**
 * `zrb drill` of a recursive task: every child as of one run (tree/point.ts: the run of the
 * task's own newest backup, or --snapshot/--level/--backup-id), each drilled alone in its own
 * throwaway pool (index.ts), through the one loop over children (tree/drive.ts). A child that
 * was not in that run is skipped with the reason; a child whose files differ fails (exit 7)
 * and the others still run.
 */
import type { Config, Task } from "../../config/config.ts";
import type { ObjectStore } from "../../store/store.ts";
import { storeError } from "../../util/errors.ts";
import { loadCatalog, type Catalog } from "../catalog.ts";
import { childTask } from "../tree/children.ts";
import type { TreeProgress } from "../tree/backup.ts";
import { driveChildren, type Step } from "../tree/drive.ts";
import { bucketChildren, type KnownChild } from "../tree/known.ts";
import type { ChildOutcome } from "../tree/outcome.ts";
import { choosePoint, inRun, type RunPoint } from "../tree/point.ts";
import { drill, drillError, type DrillOptions, type DrillResult } from "./index.ts";

export interface TreeDrillResult {
  point: RunPoint;
  children: ChildOutcome<DrillResult>[];
}

export async function drillTree(cfg: Config, task: Task, store: ObjectStore, opts: Omit<DrillOptions, "progress" | "catalog"> & { progress?: TreeProgress }): Promise<TreeDrillResult> {
  const { children } = await bucketChildren(store, task, opts.trust);
  if (children.length === 0) throw storeError(`no backups of ${task.fullName} or its children in ${store.location}; check s3.bucket, s3.prefix and the task's pool/dataset`);
  const cats = new Map<string, Catalog>();
  for (const c of children) cats.set(c.rel, await loadCatalog(store, task.pool, childTask(task, c.rel).dataset, opts.trust));
  const point = choosePoint(task, cats, opts.selector, store.location);
  const step = async (c: KnownChild): Promise<Step<DrillResult>> => {
    const cat = cats.get(c.rel)!;
    const has = inRun(c, cat, point);
    if (has.kind === "skip") return { status: "skipped", message: has.why };
    if (has.kind === "missing") return { status: "failed", error: has.error };
    opts.progress?.child({ rel: c.rel, dataset: c.fs });
    const r = await drill(cfg, childTask(task, c.rel), store, { ...opts, selector: { snapshot: point.snapshot }, catalog: cat, progress: opts.progress });
    const error = drillError(r);
    return error ? { status: "failed", error, result: r, bytes: r.bytes } : { status: "ok", result: r, bytes: r.bytes };
  };
  return { point, children: await driveChildren<KnownChild, DrillResult>(children, step, { signal: opts.signal, progress: opts.progress }) };
}
