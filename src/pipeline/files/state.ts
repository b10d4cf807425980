/**
 * The files at a restore point, rebuilt from catalogs: the chain's level-0 catalog is the full
 * listing, each higher level's catalog changes it (new and modified entries replace, a deleted
 * path removes itself and everything below it). Only the paths a question is about are kept
 * (`keep`): `zrb find` asks about a pattern, so a million-file dataset rebuilds a few entries.
 */
import type { FileCatalog, FileEntry } from "../../records/file-catalog.ts";

export type PointFiles = Map<string, FileEntry>;

/** The point's files: `cat` applied to its parent's (`prev`, null for a full catalog). */
export function applyCatalog(prev: PointFiles | null, cat: FileCatalog, keep: (path: string) => boolean): PointFiles {
  if (cat.kind === "full") return new Map(cat.entries.filter((e) => e.type !== "-" && keep(e.path)).map((e) => [e.path, e]));
  if (!prev) throw new Error("applyCatalog: a change list needs its parent's files");
  const next = new Map(prev);
  // Deletions first: a path replaced within one backup (a file where a directory was) is deleted, then added.
  for (const e of cat.entries) {
    if (e.type !== "-") continue;
    next.delete(e.path);
    const below = `${e.path}/`;
    for (const k of next.keys()) if (k.startsWith(below)) next.delete(k);
  }
  for (const e of cat.entries) if (e.type !== "-" && keep(e.path)) next.set(e.path, e);
  return next;
}
