/**
 * `zrb list` of a recursive task: one line per child (hundreds of children stay one screen per
 * page of the terminal, not thousands of backup lines): its backups, the newest and whether it
 * can be restored, and whether the child is gone or excluded. `--child` lists one child's
 * backups in full, as for a single dataset; --json has every child's backups.
 */
import type { Task } from "../config/config.ts";
import { loadCatalog, newestPoint, type CatalogEntry } from "../pipeline/catalog.ts";
import { childLabel, childTask } from "../pipeline/tree/children.ts";
import { bucketChildren, type KnownChild } from "../pipeline/tree/known.ts";
import type { Trust } from "../records/trust.ts";
import type { ObjectStore } from "../store/store.ts";
import { printable } from "../util/text.ts";
import { printJson } from "./common.ts";
import { formatTable } from "./table.ts";

/** What a child is now, from tree.yaml and the task's exclude. */
export function childState(c: KnownChild): string {
  if (c.record?.gone) return `gone (${c.record.reason ?? "destroyed"}) since ${c.record.gone.slice(0, 19)}Z`;
  if (c.excluded) return "excluded";
  return "backed up";
}

export async function listTree(task: Task, store: ObjectStore, trust: Trust, json: boolean): Promise<void> {
  const { children } = await bucketChildren(store, task, trust);
  const rows: { c: KnownChild; entries: CatalogEntry[]; newest: CatalogEntry | null }[] = [];
  for (const c of children) {
    const cat = await loadCatalog(store, task.pool, childTask(task, c.rel).dataset, trust);
    const n = newestPoint(cat);
    rows.push({ c, entries: cat.entries, newest: n && "entry" in n ? n.entry : null });
  }
  if (json) {
    printJson({
      tree: task.fullName,
      children: rows.map(({ c, entries }) => ({ child: c.rel, dataset: c.fs, state: childState(c), ...(c.record ? { since: c.record.since, gone: c.record.gone ?? null } : {}), entries })),
    });
    return;
  }
  if (rows.length === 0) {
    process.stdout.write(`no backups of ${task.fullName} or its children in ${store.location}\n`);
    return;
  }
  const table = rows.map(({ c, entries, newest }) => [
    childLabel(c.rel),
    childState(c),
    String(entries.length),
    newest ? `${newest.backupId} L${newest.level} ${newest.snapshot.split("@")[1] ?? ""}` : "-",
    newest ? (newest.restorable ? "yes" : "NO: " + newest.problem!.message) : "-",
  ]);
  const head = ["CHILD", "STATE", "BACKUPS", "NEWEST", "RESTORABLE"];
  process.stdout.write([`${task.fullName}: ${rows.length} child dataset(s) in ${store.location} (zrb list --child NAME lists one child's backups)`, ...formatTable(head, table)].map(printable).join("\n") + "\n");
}
