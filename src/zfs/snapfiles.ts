/**
 * The files of a snapshot, for the file catalog (records/file-catalog.ts): where to read them,
 * and what changed between two snapshots.
 *
 * Where: `<mountpoint>/.zfs/snapshot/<snap>` when the dataset is mounted and the directory is
 * there (OpenZFS); else a temporary clone of the snapshot, read-only, mounted under zrb's own
 * directory (zfs-fuse has no .zfs directory). The clone is named `<pool>/zrb-catalog-<hash of
 * the dataset>` and carries the property zrb:catalog-clone=<dataset>: zrb destroys a dataset of
 * that name only when it carries that property and is a clone of one of the dataset's
 * snapshots — one of its own, left by a killed run (removed by the next backup or zrb cleanup).
 * A clone also names its maker's lock file (zrb:catalog-lock): while a live zrb holds that lock
 * the clone is in use, and another run waits for it instead of taking it for a killed run's.
 *
 * What changed: `zfs diff -H -F` where the pool answers it (tried, not guessed from a version),
 * else nothing here: the caller walks both snapshots and compares (pipeline/files/listing.ts).
 */
import { createHash } from "node:crypto";
import { lstat, mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { zfsRun, firstLine, mountInfo } from "./zfs.ts";
import { whileBusy } from "./zpool.ts";
import { zfsError } from "../util/errors.ts";
import { log } from "../util/log.ts";

export const CLONE_PROPERTY = "zrb:catalog-clone";
export const CLONE_LOCK_PROPERTY = "zrb:catalog-lock";

/**
 * Who makes a clone: the lock file it holds while the clone exists, and how to tell whether a
 * lock named by a clone is held by a live process (state/lock.ts: this layer has no locks).
 */
export interface CloneOwner {
  lockPath: string;
  isHeld(lockPath: string): boolean;
}

/** How long a run waits for another run's clone of the same dataset before it makes no catalog. */
const CLONE_WAIT_MS = 10 * 60_000;

/** One entry of a listing (records/file-catalog.ts stores these). */
export interface FileEntry {
  /** Relative to the dataset's root, no leading '/'. */
  path: string;
  /** f file, d directory, l symlink, o other, - deleted. */
  type: "f" | "d" | "l" | "o" | "-";
  size: number;
  /** Whole seconds since the epoch. */
  mtime: number;
}

/** The name of the dataset's catalog clone: in its pool, fixed per dataset, unlike a user's. */
export function cloneName(fs: string): string {
  const pool = fs.split("/")[0]!;
  return `${pool}/zrb-catalog-${createHash("sha256").update(fs).digest("hex").slice(0, 12)}`;
}

async function prop(name: string, p: string): Promise<string | null> {
  const r = await zfsRun(["get", "-H", "-o", "value", p, name]);
  return r.code === 0 ? r.stdout.trim() : null;
}

/**
 * Remove the catalog clone a killed run left for `fs`: only if it carries our property naming
 * `fs`, is a clone of a snapshot of `fs`, and no live process holds the lock it names ("busy"
 * then). Returns what it did (for cleanup's report).
 */
export async function removeStaleClone(fs: string, isHeld: (lockPath: string) => boolean): Promise<"none" | "removed" | "not-ours" | "busy"> {
  const name = cloneName(fs);
  const origin = await prop(name, "origin");
  if (origin === null) return "none";
  if ((await prop(name, CLONE_PROPERTY)) !== fs || !origin.startsWith(`${fs}@`)) return "not-ours";
  const lock = await prop(name, CLONE_LOCK_PROPERTY);
  if (lock?.startsWith("/") && isHeld(lock)) return "busy";
  // Another process (a backup to another store: its own lock file) may have replaced the stale
  // clone by one of its own since: looked at again right before. (A run whose clone goes under
  // it fails its walk, and its backup has no catalog rather than a short one: walk.)
  const again = await prop(name, CLONE_LOCK_PROPERTY);
  if (again !== lock || (again?.startsWith("/") && isHeld(again))) return "busy";
  await destroyClone(name);
  return "removed";
}

/**
 * The catalog clones among `names` (a `zfs list -r` of a tree): a recursive task must not take a
 * clone a killed run left for a child's catalog as a child of its own.
 */
export async function catalogClonesIn(names: string[]): Promise<Set<string>> {
  const listed = new Set(names);
  const out = new Set<string>();
  for (const fs of names) {
    const c = cloneName(fs);
    if (listed.has(c) && (await prop(c, CLONE_PROPERTY)) === fs) out.add(c);
  }
  return out;
}

async function destroyClone(name: string): Promise<void> {
  await zfsRun(["unmount", name]);
  // -r: a `zfs snapshot -r` of a tree may have taken a snapshot of a stale clone; it is ours too.
  // zfs-fuse counts the walk's files open for a while after they were closed: retry while busy.
  const why = await whileBusy(async () => {
    const r = await zfsRun(["destroy", "-r", name]);
    return r.code === 0 ? r : zfsRun(["destroy", "-r", "-f", name]);
  }, /does not exist|could not find/i);
  if (why !== undefined) throw zfsError(`cannot destroy zrb's catalog clone ${name}: ${why}; zrb cleanup retries, or zfs destroy ${name}`);
}

const isDir = async (p: string) => (await lstat(p).catch(() => null))?.isDirectory() ?? false;

/**
 * Run `fn` with a directory holding the snapshot's files: its .zfs/snapshot directory, or a
 * clone mounted under `workDir` (destroyed afterwards, whatever `fn` did).
 */
export async function withSnapshotFiles<T>(snapshot: string, workDir: string, owner: CloneOwner, fn: (dir: string) => Promise<T>, mounted?: string | null): Promise<T> {
  const [fs, short] = snapshot.split("@") as [string, string];
  const mp = mounted === undefined ? await mountpointOf(fs) : mounted;
  if (mp !== null) {
    const dir = join(mp, ".zfs", "snapshot", short);
    if (await isDir(dir)) {
      log.info(`file catalog: reading ${snapshot} through ${dir}`);
      return fn(dir);
    }
  }
  return oneCloneAtATime(fs, () => throughClone(fs, snapshot, workDir, owner, fn));
}

/**
 * The clone's name is fixed per dataset, so the stores of one run (side by side: cli/job.ts)
 * take turns with it: another store's clone must not be taken for a killed run's and destroyed.
 */
const cloneTurns = new Map<string, Promise<unknown>>();
async function oneCloneAtATime<T>(fs: string, fn: () => Promise<T>): Promise<T> {
  const before = cloneTurns.get(fs) ?? Promise.resolve();
  const mine = before.catch(() => {}).then(fn);
  cloneTurns.set(fs, mine);
  try {
    return await mine;
  } finally {
    if (cloneTurns.get(fs) === mine) cloneTurns.delete(fs);
  }
}

async function throughClone<T>(fs: string, snapshot: string, workDir: string, owner: CloneOwner, fn: (dir: string) => Promise<T>): Promise<T> {
  const name = cloneName(fs);
  for (let waited = 0; ; waited += 2000) {
    const r = await removeStaleClone(fs, owner.isHeld);
    if (r === "not-ours") throw zfsError(`${name} exists and is not zrb's catalog clone of ${fs}; zrb leaves it alone and makes no catalog`);
    if (r !== "busy") break;
    if (waited >= CLONE_WAIT_MS) throw zfsError(`${name} is in use by another zrb run for ${CLONE_WAIT_MS / 60_000} min; no catalog this time`);
    if (waited === 0) log.info(`file catalog: ${name} is in use by another zrb run; waiting for it`);
    await Bun.sleep(2000);
  }
  const dir = join(workDir, "catalog-clone");
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const r = await zfsRun(["clone", "-o", `mountpoint=${dir}`, "-o", "readonly=on", "-o", `${CLONE_PROPERTY}=${fs}`, "-o", `${CLONE_LOCK_PROPERTY}=${owner.lockPath}`, snapshot, name]);
  if (r.code !== 0) throw zfsError(`cannot clone ${snapshot} to list its files: ${firstLine(r.stderr) || `exit ${r.code}`}`);
  log.info(`file catalog: reading ${snapshot} through the temporary clone ${name}`);
  try {
    return await fn(dir);
  } finally {
    await destroyClone(name);
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

const typeOf = (s: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): FileEntry["type"] =>
  s.isFile() ? "f" : s.isDirectory() ? "d" : s.isSymbolicLink() ? "l" : "o";

/** One path's entry under `root` (lstat: a symlink is itself), or null when it is not there. */
export async function statEntry(root: string, rel: string): Promise<FileEntry | null> {
  const s = await lstat(join(root, rel)).catch(() => null);
  return s ? { path: rel, type: typeOf(s), size: s.isDirectory() ? 0 : s.size, mtime: Math.floor(s.mtimeMs / 1000) } : null;
}

/**
 * Every entry below `root` (`under` limits it to one subtree), never crossing into another
 * file system (a child dataset mounted inside) nor into `.zfs` at the root. `root` is a
 * snapshot's view, which does not change. An entry that cannot be read is left out and counted,
 * with one warning naming the first: a name that is not valid UTF-8 (read back, it names
 * nothing), a path longer than the system allows, an I/O error — one such file must not cost
 * every backup of the dataset its catalog. But when the view itself went away under the walk
 * (the catalog clone destroyed, unmounted: `root` is no longer the file system it was) the walk
 * fails, so that no catalog silently lacking whole subtrees is stored: a ZrbError (exit 5).
 */
export async function walk(root: string, under = ""): Promise<FileEntry[]> {
  const dev = (await lstat(root)).dev;
  const out: FileEntry[] = [];
  const stack = [under];
  let skipped = 0;
  let first = "";
  const failed = (p: string) => async (err: unknown): Promise<null> => {
    const now = await lstat(root).catch(() => null);
    if (!now || now.dev !== dev) throw zfsError(`reading ${join(root, p)} in the snapshot's files failed: ${(err as Error).message} (the snapshot's view went away under the walk)`);
    if (skipped++ === 0) first = `${p || "."}: ${(err as Error).message}`;
    return null;
  };
  while (stack.length > 0) {
    const rel = stack.pop()!;
    const names = (await readdir(join(root, rel)).catch(failed(rel))) ?? [];
    for (const n of names) {
      if (rel === "" && n === ".zfs") continue;
      const p = rel ? `${rel}/${n}` : n;
      const s = await lstat(join(root, p)).catch(failed(p));
      if (!s) continue;
      out.push({ path: p, type: typeOf(s), size: s.isDirectory() ? 0 : s.size, mtime: Math.floor(s.mtimeMs / 1000) });
      if (s.isDirectory() && s.dev === dev) stack.push(p);
    }
  }
  if (skipped > 0) log.warn(`${skipped} entr${skipped === 1 ? "y" : "ies"} of the snapshot could not be read and ${skipped === 1 ? "is" : "are"} not in its file catalog (the first: ${first}); zrb find will not find ${skipped === 1 ? "it" : "them"}`);
  return out;
}

/** zfs diff's escapes: \ooo octal bytes (non-printable, space, backslash). */
function unescapeDiff(p: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(p, "utf8");
  for (let i = 0; i < raw.length; i++) {
    const m = raw[i] === 0x5c ? /^[0-7]{3,4}/.exec(raw.subarray(i + 1, i + 5).toString("latin1")) : null;
    if (m) {
      bytes.push(parseInt(m[0], 8) & 0xff);
      i += m[0].length;
    } else bytes.push(raw[i]!);
  }
  return Buffer.from(bytes).toString("utf8");
}

export interface DiffChange {
  change: "-" | "+" | "M" | "R";
  path: string;
  /** For R: the new path. */
  to?: string;
}

/**
 * `zfs diff -H -F from to`, paths made relative to the dataset's mountpoint `mp`; null when this
 * zfs has no diff (or it fails: the caller walks instead).
 */
export async function zfsDiff(from: string, to: string, mp: string): Promise<DiffChange[] | null> {
  const r = await zfsRun(["diff", "-H", "-F", from, to]);
  if (r.code !== 0) return null;
  const rel = (p: string) => {
    const u = unescapeDiff(p);
    return u === mp ? "" : u.startsWith(`${mp}/`) ? u.slice(mp.length + 1) : null;
  };
  const out: DiffChange[] = [];
  for (const line of r.stdout.split("\n")) {
    const f = line.split("\t");
    if (f.length < 3) continue;
    const path = rel(f[2]!);
    if (path === null || path === "") continue;
    const change = f[0] as DiffChange["change"];
    if (change === "R") {
      const to = f[3] === undefined ? null : rel(f[3]);
      if (to) out.push({ change, path, to });
    } else if (change === "-" || change === "+" || change === "M") out.push({ change, path });
  }
  return out;
}

/** The mountpoint of a mounted filesystem, or null. */
export async function mountpointOf(fs: string): Promise<string | null> {
  return (await mountInfo(fs))?.mountpoint ?? null;
}
