/**
 * The throwaway pool of `zrb drill` and `zrb restore --path`: a pool on a sparse file under
 * drill.dir (default `<base_dir>/drill`), named `zrbdrill<12 hex>` — a prefix no one gives a
 * real pool plus 48 random bits — and everything named after it in that directory:
 *
 *   <dir>/zrbdrill<id>.lock   held (flock) for the whole run: taken FIRST, released LAST
 *   <dir>/zrbdrill<id>.img    the sparse file, the pool's only vdev
 *   <dir>/zrbdrill<id>/       where its datasets mount
 *   <pool>/zrbdrill<id>-src   a read-only clone of the source snapshot (source.ts), user
 *                             property zrb:drill=<id>, mounted at <dir>/zrbdrill<id>.src
 *   <dir>/zrbdrill<id>.stages `restore --path`'s staging directories in --to, one JSON string a
 *                             line, each written here before it is made (stage.ts)
 *
 * `withDrillPool` always destroys them (success, failure, interrupt). After a kill -9 they are
 * stale; the next drill or `zrb cleanup` removes what is provably a drill's and provably dead
 * (stale.ts): the name AND the marker (the pool's vdev is that .img file in drill.dir; the
 * clone's property names the id) AND no live process holds the id's lock. Nothing else is
 * touched: a pool or dataset that fails any of these is left alone.
 */
import { lstatSync, mkdirSync, openSync, closeSync, ftruncateSync, readdirSync, rmdirSync, rmSync, statfsSync, statSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Config } from "../../config/config.ts";
import { acquireLock } from "../../state/lock.ts";
import { assertSafeBaseDir, parentsProblem } from "../../state/basedir.ts";
import { ioError, fsError } from "../../util/errors.ts";
import { formatSize } from "../../util/size.ts";
import { log } from "../../util/log.ts";
import * as zpool from "../../zfs/zpool.ts";

export const DRILL_PREFIX = "zrbdrill";
/** The property on a drill's source clone naming its id, and the one naming the lock its drill holds. */
export const DRILL_PROPERTY = "zrb:drill";
export const DRILL_LOCK_PROPERTY = "zrb:drill-lock";
/** A drill's id: 12 lowercase hex digits. */
export const DRILL_ID = /^[0-9a-f]{12}$/;
/** zfs-fuse refuses vdevs under 64 MiB; pools carry metadata overhead: never smaller than this. */
const MIN_POOL = 128 * 1024 * 1024;

export function drillDir(cfg: Pick<Config, "baseDir" | "drill">): string {
  return cfg.drill.dir ?? join(cfg.baseDir, "drill");
}

/** The paths and names of drill `id` in `dir`. */
export function drillNames(dir: string, id: string) {
  const pool = `${DRILL_PREFIX}${id}`;
  return { id, pool, file: join(dir, `${pool}.img`), lock: join(dir, `${pool}.lock`), mnt: join(dir, pool), srcMnt: join(dir, `${pool}.src`), stages: join(dir, `${pool}.stages`) };
}
export type DrillNames = ReturnType<typeof drillNames>;

/** The clone of the source snapshot that drill `id` reads through, in the source's pool. */
export const cloneName = (srcPool: string, id: string) => `${srcPool}/${DRILL_PREFIX}${id}-src`;

/** The sparse file's size for streams of `bytes` in all: room for them and the pool's own metadata. */
export function poolSize(bytes: number): number {
  return Math.max(MIN_POOL, Math.ceil((bytes * 1.5 + 64 * 1024 * 1024) / (1024 * 1024)) * 1024 * 1024);
}

/** Refuse (exit 9) before anything is made when `dir` lacks the space the streams will take. */
export function checkFreeSpace(dir: string, bytes: number): void {
  const need = Math.ceil(bytes * 1.1) + 32 * 1024 * 1024;
  let free: number;
  try {
    const s = statfsSync(dir);
    free = Number(s.bavail) * Number(s.bsize);
  } catch (err) {
    throw fsError(err, "checking free space of drill.dir", dir);
  }
  if (free < need)
    throw ioError(`drill.dir ${dir} has ${formatSize(free)} free, the restore needs about ${formatSize(need)}; free space there or set drill.dir to a larger filesystem`);
}

/**
 * zrb creates pools and mounts below drill.dir as root: a directory others can write (or that
 * belongs to someone else) would let them plant what the drill then mounts over or removes.
 */
export function checkDirSafe(dir: string): void {
  const why = dirProblem(dir);
  if (why) throw ioError(why);
}

/**
 * Why drill.dir is not safe to make, or remove, things in as root (another owner, writable by
 * others, or under a directory that lets another user replace it: base_dir's rule), or undefined.
 * Throws what statSync throws (drill.dir missing: ENOENT).
 */
export function dirProblem(dir: string): string | undefined {
  const st = statSync(dir);
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid) return `drill.dir ${dir} is owned by uid ${st.uid}, not ${uid} (zrb's user); chown it or choose another drill.dir`;
  if ((st.mode & 0o022) !== 0) return `drill.dir ${dir} is writable by other users (mode 0${(st.mode & 0o777).toString(8)}); run: chmod go-w ${dir}`;
  const above = parentsProblem(dir, "drill.dir");
  return above ? `drill.dir ${dir} is not safe: ${above}` : undefined;
}

export interface DrillPool extends DrillNames {
  /** Where a dataset `<pool>/<name>` received into the pool mounts. */
  dataset(name: string): { fs: string; mnt: string };
}

/** Remove the pool, its file and its mount point; a problem is a warning naming what is left (the next drill or cleanup retries). */
export async function removeDrill(n: DrillNames): Promise<boolean> {
  const why = await zpool.destroyPool(n.pool);
  if (why) {
    log.warn(`cannot destroy the drill pool ${n.pool}: ${why}; zrb cleanup removes it later`);
    return false;
  }
  rmSync(n.file, { force: true });
  removeEmptyDirs(n.mnt);
  return true;
}

/**
 * Remove `path` if it is a tree of empty directories (mount points left behind). Never a file:
 * a directory that still holds one may be a mount that did not go, and is left alone. Never
 * through a symbolic link, at `path` or below it: one planted where a mount directory was would
 * otherwise lead root's removals anywhere.
 */
export function removeEmptyDirs(path: string): void {
  let names: string[];
  try {
    if (!lstatSync(path).isDirectory()) return;
    names = readdirSync(path);
  } catch {
    return;
  }
  for (const e of names) removeEmptyDirs(join(path, e));
  try {
    rmdirSync(path);
  } catch {}
}

/**
 * Run `fn` with a fresh throwaway pool sized for `bytes` of streams; the pool, its file and
 * the lock are gone afterwards, however `fn` ended.
 */
/**
 * The drill failed: remove its pool all the same. The drill's own error is the one reported; a
 * pool that cannot be removed then is one more line (the next drill or `zrb cleanup` removes it).
 */
async function removeAfterFailure(n: Parameters<typeof removeDrill>[0], err: unknown): Promise<unknown> {
  await removeDrill(n).catch((e: unknown) => log.error(`${e instanceof Error ? e.message : String(e)} (after the drill failed; the next drill or zrb cleanup removes it)`));
  return err;
}

export async function withDrillPool<T>(cfg: Config, bytes: number, command: string, fn: (p: DrillPool) => Promise<T>): Promise<T> {
  assertSafeBaseDir(cfg.baseDir, { create: true });
  const dir = drillDir(cfg);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fsError(err, "creating drill.dir", dir);
  }
  checkDirSafe(dir);
  checkFreeSpace(dir, bytes);
  const n = drillNames(dir, randomBytes(6).toString("hex"));
  const lock = acquireLock(n.lock, `drill pool ${n.pool}`, command);
  try {
    try {
      const fd = openSync(n.file, "wx", 0o600);
      try {
        ftruncateSync(fd, poolSize(bytes));
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      rmSync(n.file, { force: true });
      throw fsError(err, "creating the drill pool's sparse file", n.file);
    }
    try {
      await zpool.createFilePool(n.pool, n.file, n.mnt);
      await zpool.setProp(n.pool, "atime", "off"); // reading the restored files changes nothing
    } catch (err) {
      throw await removeAfterFailure(n, err);
    }
    log.info(`drill pool ${n.pool} on ${n.file} (${formatSize(poolSize(bytes))} sparse)`);
    let out: T;
    try {
      out = await fn({ ...n, dataset: (name) => ({ fs: `${n.pool}/${name}`, mnt: join(n.mnt, name) }) });
    } catch (err) {
      throw await removeAfterFailure(n, err);
    }
    await removeDrill(n);
    return out;
  } finally {
    lock.release();
  }
}
