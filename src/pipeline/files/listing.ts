/**
 * What a backup's file catalog says: the snapshot's files at level 0 ("full"), what changed
 * since the parent's snapshot above it ("changes").
 *
 * Changes come from `zfs diff` where the pool answers it (OpenZFS), each changed path statted in
 * the snapshot; otherwise (zfs-fuse: no diff, no .zfs directory) both snapshots are walked (the
 * parent is held by the backup, so it is there) and compared. Walking the parent again costs a
 * second listing but keeps no local state that could drift from the bucket: the catalog is a
 * function of the two snapshots alone. (docs/restore.md, "find a file".)
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { FileCatalog, FileEntry } from "../../records/file-catalog.ts";
import { log } from "../../util/log.ts";
import { mountpointOf, statEntry, walk, withSnapshotFiles, zfsDiff, type CloneOwner, type DiffChange } from "../../zfs/snapfiles.ts";
import { acquireLock, lockHeld } from "../../state/lock.ts";

/** Where the clones of `fs`'s snapshots are mounted: zrb's own directory under base_dir. */
export function cloneDir(baseDir: string, fs: string): string {
  return join(baseDir, "catalog-clones", createHash("sha256").update(fs).digest("hex").slice(0, 16));
}

/**
 * The catalog of `snapshot` (a full one when `parent` is null). `mounted`: where its dataset is
 * mounted (null: not mounted) when the caller has read it already; looked up when undefined.
 */
export async function listSnapshot(snapshot: string, parent: string | null, baseDir: string, mounted?: string | null): Promise<FileCatalog> {
  const fs = snapshot.split("@")[0]!;
  const work = cloneDir(baseDir, fs);
  // Held while a clone of ours may exist: another run (another store's, on its own timer) waits for it.
  const lockPath = join(work, "clone.lock");
  const lock = acquireLock(lockPath, `the catalog clone of ${fs}`, "zrb backup (file catalog)");
  // A clone naming this very lock, which this run now holds, was left by a run that is gone (it
  // is the same path for every run of the dataset): without this, lockHeld() saw our own lock
  // held and the run waited 10 min for itself, then made no catalog — every run after a kill.
  const owner = { lockPath, isHeld: (p: string) => p !== lockPath && lockHeld(p) };
  try {
    return await list(snapshot, parent, work, owner, mounted === undefined ? await mountpointOf(snapshot.split("@")[0]!) : mounted);
  } finally {
    lock.release();
  }
}

async function list(snapshot: string, parent: string | null, work: string, owner: CloneOwner, mp: string | null): Promise<FileCatalog> {
  if (parent === null) return { kind: "full", entries: await withSnapshotFiles(snapshot, work, owner, (d) => walk(d), mp) };
  const diff = mp ? await zfsDiff(parent, snapshot, mp) : null;
  if (diff) {
    log.info(`file catalog: ${diff.length} change(s) since ${parent} from zfs diff`);
    return { kind: "changes", entries: await withSnapshotFiles(snapshot, work, owner, (d) => fromDiff(d, diff), mp) };
  }
  log.info(`file catalog: no zfs diff here; comparing walks of ${parent} and ${snapshot}`);
  const before = await withSnapshotFiles(parent, work, owner, (d) => walk(d), mp);
  const after = await withSnapshotFiles(snapshot, work, owner, (d) => walk(d), mp);
  return { kind: "changes", entries: compare(before, after) };
}

const same = (a: FileEntry, b: FileEntry) => a.type === b.type && a.size === b.size && a.mtime === b.mtime;

/** What `after` changed against `before`: new and modified entries, and deleted paths. */
export function compare(before: FileEntry[], after: FileEntry[]): FileEntry[] {
  const old = new Map(before.map((e) => [e.path, e]));
  const out: FileEntry[] = [];
  for (const e of after) {
    const o = old.get(e.path);
    if (!o || !same(o, e)) out.push(e);
    old.delete(e.path);
  }
  // A deleted directory's entry covers everything below it (state.ts applies it so).
  const gone = [...old.keys()].sort();
  let last: string | null = null;
  for (const p of gone) {
    if (last !== null && p.startsWith(`${last}/`)) continue;
    out.push({ path: p, type: "-", size: 0, mtime: 0 });
    last = p;
  }
  return out;
}

/**
 * zfs diff's changes, statted in the snapshot at `dir`: a removed path is a deletion; a renamed
 * one a deletion of the old path and the new path with everything below it (zfs diff names a
 * renamed directory once, not its contents); a new or modified path its entry now.
 */
async function fromDiff(dir: string, diff: DiffChange[]): Promise<FileEntry[]> {
  const out = new Map<string, FileEntry>();
  const add = async (p: string, deep: boolean) => {
    const e = await statEntry(dir, p);
    if (!e) return;
    out.set(p, e);
    if (deep && e.type === "d") for (const c of await walk(dir, p)) out.set(c.path, c);
  };
  for (const c of diff) {
    if (c.change === "-") out.set(c.path, { path: c.path, type: "-", size: 0, mtime: 0 });
    else if (c.change === "R") {
      if (!out.has(c.path)) out.set(c.path, { path: c.path, type: "-", size: 0, mtime: 0 });
      await add(c.to!, true);
    } else await add(c.path, false);
  }
  return [...out.values()];
}
