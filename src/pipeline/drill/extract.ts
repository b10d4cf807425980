/**
 * `zrb restore --path REL… --to DIR`: one file or directory back without a whole dataset by
 * hand. The chain is restored, verified as always, into a throwaway pool (pool.ts, as `zrb
 * drill`), then each path is copied with GNU `cp -a --parents` (modes, owners, atime and mtime to
 * the nanosecond, symlinks copied as links, never followed; missing parents made with their own
 * attributes), and the pool destroyed.
 *
 * All or nothing: the paths are first copied into a stage, `.zrb-restore-XXXXXX` (0700) in the
 * deepest directory of DIR on their way that exists, and only when every one is there are they
 * moved into DIR by rename — same file system, no second copy of the bytes. A copy that fails (a full disk, an I/O error, an interrupt) leaves
 * DIR as it was, not a half directory that looks whole; the stage is removed either way. Moving
 * in does what `cp -a` would: what DIR lacks is moved whole, an existing directory at or below a
 * path is merged and then given the snapshot's attributes, an existing parent of a path keeps
 * its own, a file is replaced (--force). Across a mount point inside DIR, where rename cannot go,
 * that entry is copied with `cp -a`.
 *
 * Before anything is copied, every path is checked: it exists in the snapshot, none of its
 * parents is a symlink there (a link to /etc must not copy the host's /etc), and nothing in DIR
 * is in the way — an existing file (or link) where one would land is refused unless --force
 * (which replaces files, never a directory), naming the first conflict. A directory that
 * exists on both sides is merged.
 */
import { lstatSync, mkdtempSync, readdirSync, renameSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Config, Task } from "../../config/config.ts";
import type { ObjectStore } from "../../store/store.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { fsError, ioError, usageError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";
import { loadCatalog } from "../catalog.ts";
import { selectBackup, shortSnap } from "../restore/select.ts";
import { listEntries, type Entry } from "./compare.ts";
import { restoreIntoPool, type DrillOptions } from "./index.ts";
import { missingPathHint } from "./missing-path.ts";
import { withDrillPool } from "./pool.ts";
import { removeStaleDrills } from "./stale.ts";

export interface PathRestoreOptions extends Omit<DrillOptions, "sample"> {
  /** Relative to the dataset's root, already checked (paths.ts). */
  paths: string[];
  to: string;
  force: boolean;
}

export interface PathRestoreResult {
  dataset: string;
  backupId: string;
  snapshot: string;
  to: string;
  paths: string[];
  files: number;
  dirs: number;
  links: number;
  fileBytes: number;
  /** Bytes of streams restored, and how long that took. */
  bytes: number;
  restoreSeconds: number;
}

const lstatOrNull = (p: string) => {
  try {
    return lstatSync(p);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return null;
    throw fsError(err, "checking", p);
  }
};

/** Every entry a path brings (itself, and all below it for a directory), relative to the root. */
async function plan(root: string, rel: string, missing: () => Promise<never>): Promise<Map<string, Entry>> {
  const parts = rel.split("/");
  for (let i = 1; i <= parts.length; i++) {
    const st = lstatOrNull(join(root, ...parts.slice(0, i)));
    if (!st) return missing();
    if (i < parts.length && !st.isDirectory()) return missing();
  }
  const st = lstatSync(join(root, rel));
  const top: Entry = { type: st.isSymbolicLink() ? "link" : st.isDirectory() ? "dir" : st.isFile() ? "file" : "other", mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.isFile() ? st.size : 0 };
  const out = new Map<string, Entry>([[rel, top]]);
  if (top.type === "dir") for (const [r, e] of await listEntries(join(root, rel))) out.set(`${rel}/${r}`, e);
  return out;
}

/** The first thing in DIR that an entry would overwrite (see the header), or undefined. */
function conflict(to: string, rel: string, entries: Map<string, Entry>, force: boolean): string | undefined {
  const parts = rel.split("/");
  for (let i = 1; i < parts.length; i++) {
    const p = join(to, ...parts.slice(0, i));
    const st = lstatOrNull(p);
    if (st && !st.isDirectory()) return `${p} exists and is not a directory`;
  }
  for (const [r, e] of entries) {
    const p = join(to, r);
    const st = lstatOrNull(p);
    if (!st) continue;
    if (st.isDirectory() && e.type === "dir") continue;
    if (st.isDirectory() || e.type === "dir") return `${p} exists as a ${st.isDirectory() ? "directory" : "file"} where the backup has a ${e.type === "dir" ? "directory" : e.type}; move it away (--force never replaces a directory)`;
    if (!force) return `${p} exists; rerun with --force to overwrite it, or choose another --to`;
  }
  return undefined;
}

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

export async function restorePaths(cfg: Config, task: Task, store: ObjectStore, opts: PathRestoreOptions): Promise<PathRestoreResult> {
  const toSt = lstatOrNull(opts.to);
  if (!toSt || !toSt.isDirectory()) throw usageError(`--to ${opts.to} is not a directory; create it first`);
  await removeStaleDrills(cfg, [task.pool]);
  const cat = opts.catalog ?? (await loadCatalog(store, task.pool, task.dataset, opts.trust));
  const sel = selectBackup(cat, opts.selector, task.fullName, store);
  const m = sel.manifest;
  const bytes = sel.chain.reduce((a, c) => a + c.stream.size, 0);
  const point = `${task.fullName}@${shortSnap(m.snapshot.name)} (backup ${m.backupId})`;
  return withDrillPool(cfg, bytes, `zrb restore --path --task ${task.name}`, async (pool) => {
    const got = await restoreIntoPool(cfg, task, store, pool, sel, cat, opts);
    if (got.volume) throw usageError(`${task.fullName} is a volume (zvol): it has no files to pick; restore it whole with --target`);
    if (got.encrypted)
      throw usageError(`${task.fullName} is sent raw (encrypted): its files need the dataset's own key; restore it whole with --target, then zfs load-key and mount it`);
    const plans = new Map<string, Map<string, Entry>>();
    for (const rel of opts.paths) {
      const missing = async (): Promise<never> => {
        throw usageError(`${rel} is not in ${point}${await missingPathHint(task, store, rel, m, opts.identities, opts.trust)}; check the path (relative to the dataset's root) or choose another point with --snapshot/--level/--backup-id`);
      };
      plans.set(rel, await plan(got.path, rel, missing));
    }
    for (const [rel, entries] of plans) {
      const why = conflict(opts.to, rel, entries, opts.force);
      if (why) throw ioError(`restore --path ${rel}: ${why}; nothing was copied`);
    }
    const r: PathRestoreResult = { dataset: task.fullName, backupId: m.backupId, snapshot: m.snapshot.name, to: opts.to, paths: opts.paths, files: 0, dirs: 0, links: 0, fileBytes: 0, bytes, restoreSeconds: Math.round(got.seconds * 10) / 10 };
    await copyAll(got.path, opts.paths, opts.to, opts.signal);
    for (const [rel, entries] of plans) {
      for (const e of entries.values()) {
        if (e.type === "file") (r.files++, (r.fileBytes += e.size));
        else if (e.type === "dir") r.dirs++;
        else if (e.type === "link") r.links++;
      }
      log.info(`restored ${rel} into ${join(opts.to, rel)}`);
    }
    return r;
  });
}
