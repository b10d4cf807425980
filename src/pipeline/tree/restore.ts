/**
 * `zrb restore` of a recursive task: the tree rebuilt under --target, each child with the
 * single-dataset restore (restore/index.ts) into `<target>/<child>`, parents before children,
 * every child to the same run (point.ts): the run whose snapshot the selected backup of the
 * task's own dataset has (by default its newest), or `--snapshot NAME`. A child whose parent
 * could not be restored is skipped (it would have nowhere to go); any other child failing does
 * not stop the rest. `--child` (cli) restores one child alone with the single restore.
 */
import type { Config, Task } from "../../config/config.ts";
import { assertSafeBaseDir } from "../../state/basedir.ts";
import { acquireLock } from "../../state/lock.ts";
import { restoreLockPath } from "../../state/rundir.ts";
import type { ObjectStore } from "../../store/store.ts";
import { storeError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";
import { loadCatalog, type Catalog } from "../catalog.ts";
import { restore, type RestoreOptions, type RestoreResult } from "../restore/index.ts";
import { checkTargetName } from "../restore/plan.ts";
import { childTask } from "./children.ts";
import type { TreeProgress } from "./backup.ts";
import { bucketChildren, type KnownChild } from "./known.ts";
import type { ChildOutcome } from "./outcome.ts";
import { driveChildren, type Step } from "./drive.ts";
import { withThreadPool } from "../parallel/pool.ts";
import { choosePoint, inRun, type RunPoint } from "./point.ts";

export interface TreeRestoreOptions extends Omit<RestoreOptions, "target" | "progress" | "catalog" | "parentComing"> {
  progress?: TreeProgress;
}

export interface TreeRestoreResult {
  target: string;
  point: RunPoint;
  children: ChildOutcome<RestoreResult & { target: string }>[];
}

export async function restoreTree(cfg: Config, task: Task, store: ObjectStore, target: string, opts: TreeRestoreOptions): Promise<TreeRestoreResult> {
  checkTargetName(target);
  const { children } = await bucketChildren(store, task, opts.trust);
  if (children.length === 0) throw storeError(`no backups of ${task.fullName} or its children in ${store.location}; check s3.bucket, s3.prefix and the task's pool/dataset`);
  for (const c of children) checkTargetName(targetOf(target, c.rel));
  const cats = new Map<string, Catalog>();
  for (const c of children) cats.set(c.rel, await loadCatalog(store, task.pool, childTask(task, c.rel).dataset, opts.trust));
  const point = choosePoint(task, cats, opts.selector, store.location);
  log.info(`restoring the tree ${task.fullName} as of the run @${point.snapshot} (${point.startedAt}) into ${target}`);
  const lock = opts.planOnly ? null : (assertSafeBaseDir(cfg.baseDir, { create: true }), acquireLock(restoreLockPath(cfg.baseDir, `${target}#tree`), `restore of the tree into ${target}`, `zrb restore --target ${target}`));
  try {
    // One set of Workers for every child (parallel/pool.ts), stopped when the children are done.
    const done = await withThreadPool(cfg.workers, (threads) =>
      driveChildren<KnownChild, Restored>(children, (c, before) => restoreChild(cfg, task, store, c, cats.get(c.rel)!, { target, point, opts: { ...opts, threads }, done: before }), {
        signal: opts.signal,
        progress: opts.progress,
      }),
    );
    return { target, point, children: done };
  } finally {
    lock?.release();
  }
}

function isAncestor(a: string, rel: string): boolean {
  return a !== rel && (a === "" || rel.startsWith(a + "/"));
}

export function targetOf(target: string, rel: string): string {
  return rel === "" ? target : `${target}/${rel}`;
}

type Restored = RestoreResult & { target: string };

async function restoreChild(
  cfg: Config,
  task: Task,
  store: ObjectStore,
  c: KnownChild,
  cat: Catalog,
  x: { target: string; point: RunPoint; opts: TreeRestoreOptions; done: ChildOutcome[] },
): Promise<Step<Restored>> {
  const target = targetOf(x.target, c.rel);
  const parent = x.done.find((d) => d.status !== "ok" && isAncestor(d.rel, c.rel));
  if (parent) return { status: "skipped", message: `not restored: ${parent.dataset} above it was not restored, so it has nowhere to go` };
  const has = inRun(c, cat, x.point);
  if (has.kind === "skip") return { status: "skipped", message: has.why };
  if (has.kind === "missing") return { status: "failed", error: has.error };
  x.opts.progress?.child({ rel: c.rel, dataset: c.fs });
  const r = await restore(cfg, childTask(task, c.rel), store, { ...x.opts, target, selector: { snapshot: x.point.snapshot }, catalog: cat, parentComing: c.rel !== "", progress: x.opts.progress });
  return { status: "ok", result: { ...r, target } };
}
