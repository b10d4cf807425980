/**
 * `restore --path`'s copy, all or nothing (extract.ts checks the paths and conflicts first).
 *
 * The paths are first copied into a stage (0700; named below) in the deepest directory of DIR
 * on their way that exists, and only when every one is there are they moved into
 * DIR by rename — same file system, no second copy of the bytes. A copy that fails (a full disk,
 * an I/O error, an interrupt) leaves DIR as it was, not a half directory that looks whole; the
 * stage is removed either way. Moving in does what `cp -a` would: what DIR lacks is moved whole,
 * an existing directory at or below a path is merged and then given the snapshot's attributes,
 * an existing parent of a path keeps its own, a file is replaced (--force). What appeared in DIR
 * meanwhile is never replaced without --force, a directory never: each entry is moved with
 * renameat2's RENAME_NOREPLACE where the file system knows it (util/rename-noreplace.ts), else
 * by hard link (a file) or a check right before rename (a directory, or a file without hard
 * links: that leaves a window); a directory that appeared where one goes is merged, with the same
 * owner checks, going by one look at it (gone or swapped for a link by then: refused). Across a mount
 * point inside a directory being merged, where rename cannot go, an entry is copied with `cp -a`
 * into a stage made on that side, then moved the same way (a file --force replaces is copied
 * over it).
 *
 * A stage is named after the drill pool's id, `.zrb-restore-<id>-<n>`, and its real path is
 * written to `<drill.dir>/zrbdrill<id>.stages` before it is made. After a kill -9 the next drill,
 * `restore --path` or `zrb cleanup` removes it (removeStaleStages, called by stale.ts once no live
 * run holds the id's lock) — only a directory at a recorded path, with that name, zrb's owner and
 * mode 0700, reached by no symbolic link, and never across a mount point inside it.
 */
import { appendFileSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmdirSync, rmSync, unlinkSync } from "node:fs";
import { basename, dirname, isAbsolute, join } from "node:path";
import { checkInterrupted } from "../../util/abort.ts";
import { fsError, ioError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";
import { othersCanReplaceIn } from "../../state/basedir.ts";
import { renameNoReplace } from "../../util/rename-noreplace.ts";

/** lstat, or null when nothing is there; any other failure is an error naming the path. */
export const lstatOrNull = (p: string) => {
  try {
    return lstatSync(p);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return null;
    throw fsError(err, "checking", p);
  }
};

/** Runs a tool (cp, touch; killed when `signal` aborts: then its reason is thrown); its first stderr line in the error. */
async function tool(args: string[], cwd: string | undefined, what: string, signal?: AbortSignal): Promise<void> {
  checkInterrupted(signal);
  const p = Bun.spawn(args, { cwd, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const stop = () => p.kill();
  signal?.addEventListener("abort", stop);
  try {
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    checkInterrupted(signal);
    if (code !== 0) throw ioError(`${what}: ${err.trim().split("\n")[0] || `${args[0]} exit ${code}`}`);
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}

/** What names a run's stages and records them (pool.ts's drillNames). */
export interface StageRecord {
  id: string;
  /** The file listing the stages, one JSON string a line. */
  stages: string;
}

const STAGE_PREFIX = ".zrb-restore-";
const stageName = (id: string, n: number) => `${STAGE_PREFIX}${id}-${n}`;

/** Where one group of paths is staged: a directory of DIR that exists, and the paths below it. */
interface Stage {
  /** Relative to DIR ("": DIR itself). */
  base: string;
  /** The paths, relative to `base`. */
  paths: string[];
  dir?: string;
}

/**
 * The deepest directory on `rel`'s way into `to` that exists now (a proper ancestor of `rel`;
 * "" for `to` itself): staged there, a path lands on the file system it will stay on, so moving
 * it in is a rename and the bytes need room only once.
 */
function baseOf(to: string, rel: string): string {
  const parts = rel.split("/");
  let base = "";
  for (let i = 1; i < parts.length; i++) {
    const p = parts.slice(0, i).join("/");
    // conflict() refused a parent that is not a directory; a missing one ends the way.
    if (!lstatOrNull(join(to, p))?.isDirectory()) break;
    base = p;
  }
  return base;
}

/**
 * Move a stage's tree into `to` (see the header): `rel` is where we are below both, `snap` the
 * same place in the restored snapshot, `paths` the restored paths (a directory at or below one of
 * them takes the snapshot's attributes).
 */
async function moveIn(stage: string, to: string, snap: string, rel: string, paths: string[], m: Mover): Promise<void> {
  for (const name of readdirSync(join(stage, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const src = join(stage, r);
    const dest = join(to, r);
    const srcIsDir = lstatSync(src).isDirectory();
    let have = lstatOrNull(dest);
    if (!(have?.isDirectory() && srcIsDir)) {
      // New, or a file replaced (--force): conflict() refused everything else before the copy.
      // Something may have appeared there since: never replaced without --force, a directory
      // never (placeNew). A directory that appeared where one goes is merged as below.
      const placed = await place(src, dest, r, to, m, srcIsDir);
      if (placed) continue;
      // Looked at once more, and this look is what the merge goes by: gone, or no longer a
      // directory (a link swapped in), it is refused — never merged into unchecked.
      have = lstatOrNull(dest);
      if (!have?.isDirectory()) throw ioError(`${dest} changed while the paths were copied (it is no longer a directory); nothing more was moved there`);
    }
    // Checked before the copy (extract.ts conflict), and again now: one made meanwhile in a
    // directory others may write in (a sticky one) is theirs, and they could swap what is in it.
    // One that passes (root's or ours) cannot be swapped by another user afterwards either.
    const other = m.guard ? othersCanReplaceIn(dest, have!, dest, "the restored files") : undefined;
    if (other) throw ioError(`${other}; it was made or changed while the paths were copied`);
    await moveIn(stage, to, snap, r, paths, m);
    if (paths.some((p) => r === p || r.startsWith(`${p}/`))) {
      // Its entries are moved: the stage's copy is empty and has the snapshot's mode, owner and
      // extended attributes; its times changed as entries left it, so they come from the snapshot.
      await tool(["cp", "-a", "--attributes-only", "--no-target-directory", "--", src, dest], undefined, `setting the attributes of ${dest}`);
      await tool(["touch", "-h", "-r", join(snap, r), "--", dest], undefined, `setting the times of ${dest}`);
    }
    rmdirSync(src);
  }
}

/** How moveIn places entries: --force, the owner checks (guard), and a recorded stage made in a directory (for a mount point on the way). */
interface Mover {
  force: boolean;
  guard: boolean;
  stageIn(dir: string): string;
}

/**
 * Move `src` (staged) to `dest`; false when a directory appeared at `dest` meanwhile for the
 * directory `src` (the caller merges). Throws an I/O error when something else is in the way.
 */
async function place(src: string, dest: string, r: string, to: string, m: Mover, srcIsDir: boolean): Promise<boolean> {
  /** What now stands at `dest`: merged into (a directory where one goes: false), else refused. */
  const inTheWay = (): false => {
    const now = lstatOrNull(dest);
    if (srcIsDir && now?.isDirectory()) return false;
    const why = now?.isDirectory()
      ? "a directory is never replaced, not even with --force: move it away"
      : srcIsDir
        ? "a restored directory never replaces it: move it away"
        : "it is not overwritten without --force";
    throw ioError(`${dest} appeared while the paths were copied; ${why}`);
  };
  /** Something is at `dest` (EISDIR/ENOTDIR: a directory where a file goes, or the reverse). */
  const taken = (err: unknown) => ["EEXIST", "ENOTEMPTY", "EISDIR", "ENOTDIR"].includes((err as { code?: string }).code ?? "");
  try {
    if (m.force && !srcIsDir) renameSync(src, dest);
    else placeNew(src, dest, srcIsDir);
    return true;
  } catch (err) {
    if (taken(err)) return inTheWay();
    if ((err as { code?: string }).code !== "EXDEV") throw fsError(err, "moving a restored entry into place", dest);
  }
  // A mount point inside DIR: rename cannot cross it. A file --force replaces is copied over it;
  // anything else is copied into a stage of ours on that side first, then placed as above.
  if (m.force && !srcIsDir) {
    if (lstatOrNull(dest)?.isDirectory()) return inTheWay();
    await tool(["cp", "-a", "--remove-destination", "--no-target-directory", "--", src, dest], undefined, `copying ${r} into ${to}`);
  } else {
    const stage = m.stageIn(dirname(dest));
    try {
      const near = join(stage, basename(dest));
      await tool(["cp", "-a", "--no-target-directory", "--", src, near], undefined, `copying ${r} into ${to}`);
      try {
        placeNew(near, dest, srcIsDir);
      } catch (err) {
        if (taken(err)) return inTheWay();
        throw fsError(err, "moving a restored entry into place", dest);
      }
    } finally {
      // Gone before its directory takes the snapshot's times (moveIn). If it cannot be removed
      // now, copyAll tries again and says so; the error that brought us here is the one reported.
      try {
        rmSync(stage, { recursive: true, force: true });
      } catch {}
    }
  }
  rmSync(src, { recursive: true, force: true });
  return true;
}

/**
 * Move `src` to `dest` only if nothing is at `dest` (EEXIST otherwise): atomically where the
 * kernel and file system can (renameat2 RENAME_NOREPLACE); else a file by hard link (EEXIST
 * where rename would replace), then unlinked here; else (no hard links either, or a directory)
 * it checks, then renames — that leaves a window. Throws what rename, link and unlink throw.
 */
function placeNew(src: string, dest: string, isDir: boolean): void {
  if (renameNoReplace(src, dest) === "done") return;
  if (!isDir) {
    try {
      linkSync(src, dest);
      unlinkSync(src);
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") throw err;
    }
  }
  if (lstatOrNull(dest)) throw Object.assign(new Error(`${dest} exists`), { code: "EEXIST" });
  renameSync(src, dest);
}

/**
 * Copy every path (from the restored snapshot at `root`) into a stage in `to`, then move them in;
 * nothing lands in `to` unless all were copied. Paths are staged in the deepest directory of `to`
 * on their way that exists (baseOf). An interrupt stops the copy (nothing moved in); once moving
 * in has begun it finishes.
 */
export async function copyAll(root: string, paths: string[], to: string, record: StageRecord, signal?: AbortSignal, force = false, guard = true): Promise<void> {
  const stages = new Map<string, Stage>();
  for (const rel of paths) {
    const base = baseOf(to, rel);
    const st = stages.get(base) ?? stages.set(base, { base, paths: [] }).get(base)!;
    st.paths.push(base ? rel.slice(base.length + 1) : rel);
  }
  // Every stage made (the paths' and, for a mount point on the way, one beside an entry), removed at the end.
  const made: string[] = [];
  const stageIn = (at: string): string => {
    // Recorded first: a kill -9 between the two leaves a line and no directory, never the reverse.
    const dir = join(realpathSync(at), stageName(record.id, made.length));
    appendFileSync(record.stages, `${JSON.stringify(dir)}\n`, { mode: 0o600 });
    mkdirSync(dir, { mode: 0o700 });
    made.push(dir);
    return dir;
  };
  try {
    try {
      for (const st of stages.values()) {
        const at = join(to, st.base);
        try {
          st.dir = stageIn(at);
        } catch (err) {
          throw fsError(err, "making the staging directory for restore --path", at);
        }
        for (const rel of st.paths) await tool(["cp", "-a", "--parents", "--", rel, st.dir], join(root, st.base), `copying ${join(st.base, rel)} into ${to} failed`, signal);
      }
    } catch (err) {
      if (signal?.aborted) throw err;
      throw ioError(`${(err as Error).message}; nothing was copied into ${to}`, err);
    }
    const mover: Mover = {
      force,
      guard,
      stageIn: (at) => {
        try {
          return stageIn(at);
        } catch (err) {
          throw fsError(err, "making a staging directory for restore --path", at);
        }
      },
    };
    try {
      for (const st of stages.values()) await moveIn(st.dir!, join(to, st.base), join(root, st.base), "", st.paths, mover);
    } catch (err) {
      throw ioError(`${(err as Error).message}; moving the copied paths into ${to} stopped there: what was moved before stays`, err);
    }
  } finally {
    let left = false;
    for (const dir of made) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch (err) {
        left = true;
        log.warn(`could not remove the staging directory ${dir}: ${(err as Error).message}; zrb cleanup removes it later`);
      }
    }
    if (!left) rmSync(record.stages, { force: true });
  }
}

/**
 * The stages a killed `restore --path` left (see the header): removed, or with `dryRun` only
 * named. Returns the stages removed (or to be) and whether the record may go (false when one
 * could not be removed: the next run retries). A recorded path that is not such a stage is left
 * alone with a warning saying why.
 */
export async function removeStaleStages(record: StageRecord, dryRun = false): Promise<{ stages: string[]; done: boolean }> {
  const out = { stages: [] as string[], done: true };
  let lines: string[];
  try {
    lines = readFileSync(record.stages, "utf8").split("\n").filter((l) => l !== "");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return out;
    throw fsError(err, "reading the record of restore --path's staging directories", record.stages);
  }
  const uid = process.geteuid?.() ?? 0;
  const name = new RegExp(`^${STAGE_PREFIX.replace(".", "\\.")}${record.id}-\\d+$`);
  for (const line of lines) {
    let p: unknown;
    try {
      p = JSON.parse(line);
    } catch {
      p = undefined;
    }
    if (typeof p !== "string" || !isAbsolute(p) || !name.test(basename(p))) {
      log.warn(`${record.stages} has a line that names no staging directory of drill ${record.id}; it is ignored`);
      continue;
    }
    const st = lstatOrNull(p);
    if (!st) continue; // never made (killed in between), or removed by hand
    let real: string | null = null;
    try {
      real = join(realpathSync(dirname(p)), basename(p));
    } catch {}
    const not = !st.isDirectory()
      ? "it is not a directory"
      : st.uid !== uid
        ? `it is owned by uid ${st.uid}, not ${uid}`
        : (st.mode & 0o777) !== 0o700
          ? `its mode is 0${(st.mode & 0o777).toString(8)}, not 0700`
          : real !== p
            ? "a symbolic link now leads to it"
            : undefined;
    if (not) {
      log.warn(`left alone: ${p} is recorded as a staging directory of a killed restore --path, but ${not}; check it and remove it by hand`);
      continue;
    }
    if (!dryRun) {
      try {
        await tool(["rm", "-rf", "--one-file-system", "--", p], undefined, `removing the stale staging directory ${p}`);
      } catch (err) {
        out.done = false;
        log.warn(`${(err as Error).message}; the next drill or zrb cleanup tries again`);
        continue;
      }
    }
    out.stages.push(p);
  }
  return out;
}

