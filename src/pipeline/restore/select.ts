/**
 * Which backup to restore or verify, and its chain. Without a selector the newest backup is
 * the point: if it cannot be restored, refuse (exit 7) and name the newest restorable point —
 * never fall back to an older one silently.
 */
import type { ObjectStore } from "../../store/store.ts";
import type { Manifest } from "../../records/manifest.ts";
import { isMissing, newestPoint, resolveChain, type Catalog, type CatalogEntry } from "../catalog.ts";
import { ExitCode, ZrbError, integrityError, storeError, usageError } from "../../util/errors.ts";

export interface Selector {
  backupId?: string;
  snapshot?: string;
  level?: number;
}

/** What selection needs of a store: its name, and where a key lives. */
type Where = Pick<ObjectStore, "location" | "urlOf">;

export interface Selection {
  manifest: Manifest;
  chain: Manifest[];
}

export function shortSnap(name: string): string {
  const at = name.indexOf("@");
  return at >= 0 ? name.slice(at + 1) : name;
}

function point(e: CatalogEntry): string {
  return `${e.backupId} (level ${e.level}, ${shortSnap(e.snapshot)})`;
}

/** Where to go when a point cannot be restored: the newest intact one, or a new full. */
function intactHint(cat: Catalog): string {
  const intact = cat.entries.filter((e) => e.restorable).at(-1);
  return intact
    ? `the newest restorable point is ${point(intact)}: restore it with --backup-id ${intact.backupId}, or run a new level-0 backup`
    : "no backup of this dataset is restorable; run a new level-0 backup";
}

function notRestorable(entry: CatalogEntry, cat: Catalog, store: Where): ZrbError {
  const problem = entry.problem!;
  const affected = cat.entries.filter((e) => e.backupId === problem.at || e.chain.includes(problem.at)).map((e) => `${e.backupId} (level ${e.level})`);
  const message = problem.message.replace(/\((data\/[^)]+)\)/, (_, key: string) => `(${store.urlOf(key)})`);
  return new ZrbError(
    `backup ${entry.backupId} cannot be restored: ${message}; backups affected: ${affected.length ? affected.join(", ") : entry.backupId}; ${intactHint(cat)}`,
    isMissing(problem) ? ExitCode.STORE : ExitCode.INTEGRITY,
  );
}

/** No selector: the newest backup, restorable or not (a newer unreadable manifest counts). */
function newest(cat: Catalog, fs: string, store: Where): CatalogEntry {
  const n = newestPoint(cat);
  if (!n) throw storeError(`no backups of ${fs} in ${store.location}; check s3.bucket, s3.prefix and the task's pool/dataset in the config`);
  if ("corrupt" in n) throw integrityError(`the newest backup ${n.corrupt.backupId} cannot be restored: ${n.corrupt.message}; ${intactHint(cat)}`);
  return n.entry;
}

/**
 * The backup a selector names, restorable or not (verify looks at broken ones too):
 * --backup-id exactly; --snapshot the newest backup of it (a restorable one first);
 * --level the newest at that level; no selector the newest backup.
 */
export function findBackup(cat: Catalog, sel: Selector, fs: string, store: Where): CatalogEntry {
  const all = cat.entries;
  const location = store.location;
  const list = "run zrb list to see the backups";
  if (sel.backupId !== undefined) {
    const pick = all.find((e) => e.backupId === sel.backupId);
    const bad = cat.corrupt.find((c) => c.backupId === sel.backupId);
    if (!pick && bad) throw integrityError(bad.message);
    if (!pick) throw usageError(`no backup ${sel.backupId} of ${fs} in ${location}; ${list}`);
    return pick;
  }
  if (sel.snapshot !== undefined) {
    const want = shortSnap(sel.snapshot);
    const c = all.filter((e) => shortSnap(e.snapshot) === want);
    if (c.length === 0) throw usageError(`no backup of snapshot ${want} of ${fs} in ${location}; ${list}`);
    return c.filter((e) => e.restorable).at(-1) ?? c.at(-1)!;
  }
  if (sel.level !== undefined) {
    const c = all.filter((e) => e.level === sel.level);
    if (c.length === 0) throw usageError(`no level-${sel.level} backup of ${fs} in ${location}; ${list}`);
    return c.at(-1)!;
  }
  return newest(cat, fs, store);
}

/**
 * The backup to restore and its chain. Without a selector the newest backup is the point: when
 * it cannot be restored, refuse (exit 7) naming the broken link and the newest restorable point —
 * never fall back to an older one silently.
 */
export function selectBackup(cat: Catalog, sel: Selector, fs: string, store: Where): Selection {
  const pick = findBackup(cat, sel, fs, store);
  const explicit = sel.backupId !== undefined || sel.snapshot !== undefined || sel.level !== undefined;
  if (!pick.restorable) {
    if (explicit) throw notRestorable(pick, cat, store);
    throw integrityError(`the newest backup ${point(pick)} cannot be restored: ${pick.problem!.message}; ${intactHint(cat)}`);
  }
  const manifest = cat.manifests.get(pick.backupId)!;
  return { manifest, chain: resolveChain(manifest, cat.manifests) };
}
