/**
 * The children of a recursive task as the bucket knows them — what list, restore, verify,
 * prune and cleanup work on, with no pool needed (a rebuilt NAS has only the bucket): every
 * dataset below the task's dataset with a manifest of its own (one listing of the manifests
 * prefix, so nothing tree.yaml might have missed is left out), together with what tree.yaml says
 * of each (since when, gone since when) and whether the task's exclude names it now (its backups
 * may predate the exclude, or be another task's: they are only ever restored by name).
 */
import type { Task } from "../../config/config.ts";
import { isManifestKey, manifestDir } from "../../store/layout.ts";
import type { ObjectStore } from "../../store/store.ts";
import { readTree, type TreeChild, type TreeRecord } from "../../state/tree.ts";
import type { Trust } from "../../state/trust.ts";
import { usageError } from "../../util/errors.ts";
import { compileExclude } from "./exclude.ts";
import { childNameProblem, treeOrder } from "./children.ts";

export interface KnownChild {
  rel: string;
  fs: string;
  /** What tree.yaml records of it (absent when it has no entry, or tree.yaml is not usable). */
  record?: TreeChild;
  /** The task's exclude names it now. */
  excluded: boolean;
}

export async function bucketChildren(store: ObjectStore, task: Task, trust: Trust): Promise<{ record: TreeRecord | null; children: KnownChild[] }> {
  const dir = manifestDir(task.pool, task.dataset);
  const rels = new Set<string>();
  for (const o of await store.list(dir)) {
    const slash = o.key.lastIndexOf("/");
    const sub = o.key.slice(dir.length, slash + 1); // "" or "alice/cache/"
    if (!isManifestKey(dir + sub, o.key)) continue;
    rels.add(sub.replace(/\/$/, ""));
  }
  const record = await readTree(store, task.pool, task.dataset, trust);
  for (const c of record?.children ?? []) rels.add(c.name);
  const ex = compileExclude(task.exclude ?? []);
  const children = [...rels]
    .filter((rel) => childNameProblem(rel) === undefined)
    .sort(treeOrder)
    .map((rel) => {
      const r = record?.children.find((c) => c.name === rel);
      return { rel, fs: rel === "" ? task.fullName : `${task.fullName}/${rel}`, excluded: ex.excludes(rel), ...(r ? { record: r } : {}) };
    });
  return { record, children };
}

/** The one child `only` names, or a usage error listing the known ones. */
export function onlyChild(children: KnownChild[], only: string | undefined, task: Task, location: string): KnownChild[] {
  if (only === undefined) return children;
  const c = children.filter((k) => k.rel === only);
  if (c.length) return c;
  const names = children.map((k) => (k.rel === "" ? "." : k.rel));
  const shown = names.length > 20 ? `${names.slice(0, 20).join(", ")}, … (${names.length} in all)` : names.join(", ");
  throw usageError(`--child ${only === "" ? "." : only}: no child of ${task.fullName} with backups in ${location} by that name (children: ${shown || "none"})`);
}
