/**
 * base_dir is where zrb, usually as root, writes lock, resume state, spill and scratch files.
 * If another user can write there (or replace a directory on the way to it), they can plant a
 * symlink where zrb is about to write and make root overwrite any file. So every run that
 * writes into base_dir, and `zrb check`, refuse a base_dir that is not a directory owned by
 * this user and closed to group and others, or that sits under a directory owned by another
 * user, or one that group or others can write without the sticky bit: each of those lets
 * someone else rename base_dir away and put their own in its place (ssh's StrictModes rule).
 */
import { closeSync, constants as C, lstatSync, mkdirSync, openSync, readdirSync, rmdirSync, rmSync, statSync, type Stats } from "node:fs";
import { dirname, join } from "node:path";
import { ioError } from "../util/errors.ts";

const uid = () => process.geteuid?.() ?? 0;

function fmtMode(m: number): string {
  return "0" + (m & 0o7777).toString(8);
}

/**
 * Why a directory on the way to `what` (a parent, `self` false) or `what` itself is unsafe, or
 * undefined. Throws what statSync throws (a missing path: ENOENT).
 */
function unsafe(path: string, self: boolean, what = "base_dir"): string | undefined {
  const st = statSync(path);
  if (!st.isDirectory()) return `${path} is not a directory`;
  if (self && st.uid !== uid() && st.uid !== 0) return `${path} is owned by uid ${st.uid}, not by this user (uid ${uid()}) or root; run: chown ${uid()} ${path}`;
  if (self && (st.mode & 0o022) !== 0) return `base_dir ${path} is writable by other users (mode ${fmtMode(st.mode)}), who could plant files zrb writes; run: chmod 700 ${path}`;
  if (self) return undefined;
  return othersCanReplaceIn(path, st, `${path} (a parent of ${what})`, what);
}

/**
 * Why a user other than this one (and root) could rename or replace what is in directory `path`
 * (`st`, its stat): it is owned by another user, or writable by its group or by everyone without
 * the sticky bit; or undefined. `label` names it in the message, `what` names what is at stake.
 */
export function othersCanReplaceIn(path: string, st: Stats, label: string, what: string): string | undefined {
  // The owner of a directory can rename what is in it, sticky bit or not.
  if (st.uid !== uid() && st.uid !== 0) return `${label} is owned by uid ${st.uid}, who could replace ${what}; move ${what} under directories owned by root or by this user (uid ${uid()})`;
  if ((st.mode & 0o1000) === 0) {
    if ((st.mode & 0o002) !== 0) return `${label} is writable by every user without the sticky bit (mode ${fmtMode(st.mode)}); run: chmod o-w ${path}, or move ${what}`;
    if ((st.mode & 0o020) !== 0) return `${label} is writable by its group (gid ${st.gid}) without the sticky bit (mode ${fmtMode(st.mode)}); run: chmod g-w ${path} (or chmod +t), or move ${what}`;
  }
  return undefined;
}

/** Why another user could replace what is in directory `dir`, or `dir` itself (parentsProblem), or undefined. Throws what statSync throws. */
export function replaceableProblem(dir: string, what: string): string | undefined {
  return othersCanReplaceIn(dir, statSync(dir), dir, what) ?? parentsProblem(dir, what);
}

/**
 * Why a directory above `path` lets another user replace `path` (owned by someone else, or
 * writable by group or others without the sticky bit), or undefined. `what` names `path` in the
 * message ("drill.dir"). Throws what statSync throws.
 */
export function parentsProblem(path: string, what: string): string | undefined {
  for (let p = dirname(path); ; p = dirname(p)) {
    const why = unsafe(p, false, what);
    if (why) return why;
    if (dirname(p) === p) return undefined;
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Check base_dir (creating it 0700 when `create` and missing). With create=false a missing
 * base_dir is checked by creating and removing a probe directory in its nearest existing parent.
 * Throws an I/O ZrbError (exit 9) naming the problem and the fix.
 */
export function assertSafeBaseDir(baseDir: string, opts: { create: boolean }): void {
  let probe = baseDir;
  while (!exists(probe) && dirname(probe) !== probe) probe = dirname(probe);
  const above = parentsProblem(probe, "base_dir");
  if (above) throw ioError(`base_dir ${baseDir} is not safe: ${above}`);
  if (probe !== baseDir) {
    const why = unsafe(probe, false);
    if (why) throw ioError(`base_dir ${baseDir} is not safe: ${why}`);
    if (opts.create) {
      try {
        mkdirSync(baseDir, { recursive: true, mode: 0o700 });
      } catch (err) {
        throw ioError(`base_dir ${baseDir} cannot be created: ${(err as Error).message}; choose a directory on a writable local disk`, err);
      }
    } else {
      const test = join(probe, `.zrb-check-${process.pid}`);
      try {
        mkdirSync(test, { mode: 0o700 });
        rmdirSync(test);
      } catch (err) {
        throw ioError(`base_dir ${baseDir} cannot be created under ${probe}: ${(err as Error).message}; choose a directory on a writable local disk`, err);
      }
      return;
    }
  }
  const why = unsafe(baseDir, true);
  if (why) throw ioError(why.startsWith("base_dir") ? why : `base_dir ${baseDir} is not safe: ${why}`);
  // A real, writable directory (not /proc, not read-only): create and remove a probe file.
  const test = join(baseDir, `.zrb-check-${process.pid}`);
  try {
    closeSync(openSync(test, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600));
    rmSync(test, { force: true });
  } catch (err) {
    throw ioError(`base_dir ${baseDir} is not writable: ${(err as Error).message}; make it writable or change base_dir`, err);
  }
}

/**
 * The real directories (no link, no file) directly in `root` whose names `accept` takes, as
 * paths; none when `root` cannot be read. What cleanup removes from base_dir (stale spill and
 * scratch directories) is found through this: anything else there is not zrb's and stays.
 */
export function namedDirs(root: string, accept: (name: string) => boolean): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names
    .filter(accept)
    .map((n) => join(root, n))
    .filter((p) => {
      try {
        return lstatSync(p).isDirectory();
      } catch {
        return false;
      }
    });
}
