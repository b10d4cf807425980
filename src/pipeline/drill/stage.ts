/**
 * `restore --path`'s copy, all or nothing (extract.ts checks the paths and conflicts first).
 *
 * The paths are first copied into a stage, `.zrb-restore-XXXXXX` (0700) in the deepest
 * directory of DIR on their way that exists, and only when every one is there are they moved into
 * DIR by rename — same file system, no second copy of the bytes. A copy that fails (a full disk,
 * an I/O error, an interrupt) leaves DIR as it was, not a half directory that looks whole; the
 * stage is removed either way. Moving in does what `cp -a` would: what DIR lacks is moved whole,
 * an existing directory at or below a path is merged and then given the snapshot's attributes,
 * an existing parent of a path keeps its own, a file is replaced (--force). Across a mount point
 * inside a directory being merged, where rename cannot go, that entry is copied with `cp -a`.
 */
import { lstatSync, mkdtempSync, readdirSync, renameSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { checkInterrupted } from "../../util/abort.ts";
import { fsError, ioError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";

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
async function moveIn(stage: string, to: string, snap: string, rel: string, paths: string[]): Promise<void> {
  for (const name of readdirSync(join(stage, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const src = join(stage, r);
    const dest = join(to, r);
    const have = lstatOrNull(dest);
    if (have?.isDirectory() && lstatSync(src).isDirectory()) {
      await moveIn(stage, to, snap, r, paths);
      if (paths.some((p) => r === p || r.startsWith(`${p}/`))) {
        // Its entries are moved: the stage's copy is empty and has the snapshot's mode, owner and
        // extended attributes; its times changed as entries left it, so they come from the snapshot.
        await tool(["cp", "-a", "--attributes-only", "--no-target-directory", "--", src, dest], undefined, `setting the attributes of ${dest}`);
        await tool(["touch", "-h", "-r", join(snap, r), "--", dest], undefined, `setting the times of ${dest}`);
      }
      rmdirSync(src);
      continue;
    }
    try {
      // New, or a file replaced (--force): conflict() refused everything else before the copy.
      renameSync(src, dest);
    } catch (err) {
      if ((err as { code?: string }).code !== "EXDEV") throw fsError(err, "moving a restored entry into place", dest);
      // A mount point inside DIR: rename cannot cross it.
      await tool(["cp", "-a", "--remove-destination", "--no-target-directory", "--", src, dest], undefined, `copying ${r} into ${to}`);
      rmSync(src, { recursive: true, force: true });
    }
  }
}

/**
 * Copy every path (from the restored snapshot at `root`) into a stage in `to`, then move them in;
 * nothing lands in `to` unless all were copied. Paths are staged in the deepest directory of `to`
 * on their way that exists (baseOf). An interrupt stops the copy (nothing moved in); once moving
 * in has begun it finishes.
 */
export async function copyAll(root: string, paths: string[], to: string, signal?: AbortSignal): Promise<void> {
  const stages = new Map<string, Stage>();
  for (const rel of paths) {
    const base = baseOf(to, rel);
    const st = stages.get(base) ?? stages.set(base, { base, paths: [] }).get(base)!;
    st.paths.push(base ? rel.slice(base.length + 1) : rel);
  }
  try {
    try {
      for (const st of stages.values()) {
        const at = join(to, st.base);
        try {
          st.dir = mkdtempSync(join(at, ".zrb-restore-"));
        } catch (err) {
          throw fsError(err, "making the staging directory for restore --path", at);
        }
        for (const rel of st.paths) await tool(["cp", "-a", "--parents", "--", rel, st.dir], join(root, st.base), `copying ${join(st.base, rel)} into ${to} failed`, signal);
      }
    } catch (err) {
      if (signal?.aborted) throw err;
      throw ioError(`${(err as Error).message}; nothing was copied into ${to}`, err);
    }
    try {
      for (const st of stages.values()) await moveIn(st.dir!, join(to, st.base), join(root, st.base), "", st.paths);
    } catch (err) {
      throw ioError(`${(err as Error).message}; moving the copied paths into ${to} stopped there: what was moved before stays`, err);
    }
  } finally {
    for (const st of stages.values()) {
      try {
        if (st.dir) rmSync(st.dir, { recursive: true, force: true });
      } catch (err) {
        log.warn(`could not remove the staging directory ${st.dir}: ${(err as Error).message}; delete it by hand`);
      }
    }
  }
}

