/**
 * A recursive task is a tree of datasets, and every child is backed up as a task of its own:
 * the same Task with the child's dataset (`childTask`), so every per-dataset stage — lock,
 * state, holds, heads, signatures, retention — runs per child unchanged. This file finds the
 * children on the pool, in a stable order (parents before children, names compared component by
 * component), applies the excludes, and refuses a child whose name zrb cannot turn into keys
 * and run directories (with the reason).
 */
import type { Task } from "../../config/config.ts";
import { layoutNameProblem } from "../../store/layout.ts";
import { runDirNameProblem } from "../../zfs/names.ts";
import { configError } from "../../util/errors.ts";
import { datasetPathProblem } from "../../zfs/names.ts";
import * as zfs from "../../zfs/zfs.ts";
import { compileExclude } from "../../zfs/exclude.ts";
import { catalogClonesIn } from "../../zfs/snapfiles.ts";

export interface Child {
  /** The name relative to the task's dataset; "" is the task's dataset itself. */
  rel: string;
  /** The full dataset name. */
  fs: string;
  type: zfs.DatasetType;
}

/** The task of one child: the same task, its dataset the child's. */
export function childTask(task: Task, rel: string): Task {
  if (rel === "") return task;
  const dataset = task.dataset === "" ? rel : `${task.dataset}/${rel}`;
  return { ...task, dataset, fullName: `${task.pool}/${dataset}` };
}

/** How a child is named to a person: its relative name, or "." for the task's dataset itself. */
export function childLabel(rel: string): string {
  return rel === "" ? "." : rel;
}

/** Why zrb cannot back up a child of this name (its keys, its run directory), or undefined. */
export function childNameProblem(rel: string): string | undefined {
  if (rel === "") return undefined;
  const why = datasetPathProblem(rel);
  if (why) return `${why}; zrb cannot use that name in an object key or a run directory`;
  for (const part of rel.split("/")) {
    const clash = layoutNameProblem(part) ?? runDirNameProblem(part);
    if (clash) return clash;
  }
  return undefined;
}

/** Parents before children; siblings by name, compared component by component. */
export function treeOrder(a: string, b: string): number {
  const x = a === "" ? [] : a.split("/");
  const y = b === "" ? [] : b.split("/");
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  return x.length - y.length;
}

export interface PoolTree {
  /** Every dataset of the tree, in tree order (the other lists are in this order too). */
  all: Child[];
  /** Children to back up, the task's dataset first, parents before children. */
  children: Child[];
  excluded: Child[];
  /** Children zrb cannot back up, with the reason (they are not in `children`; nor is anything below them, whose name has the same component). */
  refused: (Child & { why: string })[];
  /** Exclude patterns that matched no child (a warning). */
  unmatched: string[];
}

/** The recursive task's tree as it is on the pool now. A volume cannot be the root of a tree. */
export async function poolTree(task: Task): Promise<PoolTree> {
  const tree = await zfs.listTree(task.fullName);
  // A catalog clone a killed backup left (zfs/snapfiles.ts) is zrb's scratch, not a child.
  const clones = await catalogClonesIn(tree.map((d) => d.name));
  const listed = tree.filter((d) => !clones.has(d.name));
  const root = listed.find((d) => d.name === task.fullName);
  if (root?.type === "volume")
    throw configError(`task ${task.name} is recursive, but ${task.fullName} is a volume (zvol), which has no children; set recursive: false for it`);
  const ex = compileExclude(task.exclude ?? []);
  const out: PoolTree = { all: [], children: [], excluded: [], refused: [], unmatched: [] };
  const all = listed
    .filter((d) => d.name === task.fullName || d.name.startsWith(task.fullName + "/"))
    .map((d): Child => ({ rel: d.name === task.fullName ? "" : d.name.slice(task.fullName.length + 1), fs: d.name, type: d.type }))
    .sort((a, b) => treeOrder(a.rel, b.rel));
  out.all = all;
  for (const c of all) {
    if (ex.excludes(c.rel)) {
      out.excluded.push(c);
      continue;
    }
    const why = childNameProblem(c.rel);
    if (why) out.refused.push({ ...c, why });
    else out.children.push(c);
  }
  out.unmatched = ex.unmatched();
  return out;
}
