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
import { readTree, type TreeChild, type TreeRecord } from "../../records/tree.ts";
import type { Trust } from "../../records/trust.ts";
import { usageError, isKind } from "../../util/errors.ts";
import { compileExclude } from "../../zfs/exclude.ts";
import { childNameProblem, poolTree, treeOrder } from "./children.ts";
import * as zfs from "../../zfs/zfs.ts";

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
export function onlyChild<C extends KnownChild>(children: C[], only: string | undefined, task: Task, location: string): C[] {
  if (only === undefined) return children;
  const c = children.filter((k) => k.rel === only);
  if (c.length) return c;
  const names = children.map((k) => (k.rel === "" ? "." : k.rel));
  const shown = names.length > 20 ? `${names.slice(0, 20).join(", ")}, … (${names.length} in all)` : names.join(", ");
  throw usageError(`--child ${only === "" ? "." : only}: no child of ${task.fullName} with backups in ${location} by that name (children: ${shown || "none"})`);
}

export interface LocalChild extends KnownChild {
  /** On this host's pool now (false: gone, or the pool is not here). */
  onPool: boolean;
}

/**
 * The children in the bucket together with those on the pool now (prune, cleanup and status run
 * on the NAS: a child whose first backup never finished has no manifest yet, but a state and
 * snapshots). Without the pool (a rebuilt host), the bucket's alone.
 */
export async function allChildren(store: ObjectStore, task: Task, trust: Trust): Promise<{ record: TreeRecord | null; children: LocalChild[]; poolHere: boolean }> {
  const { record, children } = await bucketChildren(store, task, trust);
  // A host without zfs at all (a laptop listing the bucket) has no pool here either.
  const poolHere = await zfs.datasetExists(task.fullName).catch((err) => {
    if (isKind(err, "zfs")) return false;
    throw err;
  });
  const onPool = poolHere ? await poolTree(task) : undefined;
  const here = new Set(onPool ? [...onPool.children, ...onPool.excluded].map((c) => c.rel) : []);
  const out: LocalChild[] = children.map((c) => ({ ...c, onPool: here.has(c.rel) }));
  for (const c of onPool ? [...onPool.children, ...onPool.excluded] : [])
    if (!out.some((o) => o.rel === c.rel)) out.push({ rel: c.rel, fs: c.fs, excluded: onPool!.excluded.includes(c), onPool: true });
  out.sort((a, b) => treeOrder(a.rel, b.rel));
  return { record, children: out, poolHere };
}
