/**
 * `zrb restore --path REL… --to DIR`: one file or directory back without a whole dataset by
 * hand. The chain is restored, verified as always, into a throwaway pool (pool.ts, as `zrb
 * drill`), then each path is copied with GNU `cp -a --parents` (modes, owners, atime and mtime to
 * the nanosecond, symlinks copied as links, never followed; missing parents made with their own
 * attributes), and the pool destroyed.
 *
 * All or nothing: the copying and moving in are stage.ts's (copyAll).
 *
 * Before anything is copied, every path is checked: it exists in the snapshot, none of its
 * parents is a symlink there (a link to /etc must not copy the host's /etc), and nothing in DIR
 * is in the way — an existing file (or link) where one would land is refused unless --force
 * (which replaces files, never a directory), naming the first conflict; one that appears while
 * the paths are copied is not replaced either (stage.ts). A directory that exists on both sides
 * is merged. DIR, the directories above it and every existing directory the paths go through or
 * merge into must be ones no other user can change (owned by root or by zrb's user, not
 * writable by group or others without the sticky bit): zrb, often root, writes there, and a
 * link another user swapped in would make it write, rename or delete elsewhere.
 */
import { lstatSync, realpathSync } from "node:fs";
import { join } from "node:path";
import type { Config, Task } from "../../config/config.ts";
import type { ObjectStore } from "../../store/store.ts";
import { fsError, ioError, usageError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";
import { othersCanReplaceIn, replaceableProblem } from "../../state/basedir.ts";
import { loadCatalog } from "../catalog.ts";
import { selectBackup, shortSnap } from "../restore/select.ts";
import { listEntries, type Entry } from "./compare.ts";
import { restoreIntoPool, type DrillOptions } from "./index.ts";
import { missingPathHint } from "./missing-path.ts";
import { withDrillPool } from "./pool.ts";
import { copyAll, lstatOrNull } from "./stage.ts";
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
export function conflict(to: string, rel: string, entries: Map<string, Entry>, force: boolean, closed = false): string | undefined {
  const parts = rel.split("/");
  for (let i = 1; i < parts.length; i++) {
    const p = join(to, ...parts.slice(0, i));
    const st = lstatOrNull(p);
    if (st && !st.isDirectory()) return `${p} exists and is not a directory`;
    // The stage is made, and entries moved, in existing directories: no other user may swap them
    // (unless DIR is `closed`: no other user can reach anything in it).
    const other = st && !closed && othersCanReplaceIn(p, st, p, "the restored files");
    if (other) return other;
  }
  for (const [r, e] of entries) {
    const p = join(to, r);
    const st = lstatOrNull(p);
    if (!st) continue;
    if (st.isDirectory() && e.type === "dir") {
      const other = !closed && othersCanReplaceIn(p, st, p, "the restored files");
      if (other) return other;
      continue;
    }
    if (st.isDirectory() || e.type === "dir") return `${p} exists as a ${st.isDirectory() ? "directory" : "file"} where the backup has a ${e.type === "dir" ? "directory" : e.type}; move it away (--force never replaces a directory)`;
    if (!force) return `${p} exists; rerun with --force to overwrite it, or choose another --to`;
  }
  return undefined;
}

/**
 * --to, checked before anything runs: its real path, and whether it is `closed` (see conflict).
 * zrb (often root) writes in it: another user who could swap a directory on the way would make
 * it write, rename or delete through a link of theirs (conflict() checks those inside). Checked
 * on the real path: a link on the way would hide the directories above its target. Throws a
 * usage error (not a directory) or an I/O error (exit 9) naming the directory and the fix.
 */
export function checkTo(dir: string): { to: string; closed: boolean } {
  const st = lstatOrNull(dir);
  if (!st || !st.isDirectory()) throw usageError(`--to ${dir} is not a directory; create it first`);
  const to = realpathSync(dir);
  const unsafe = replaceableProblem(to, "the restored files");
  if (unsafe) throw ioError(`restore --path --to ${dir}: ${unsafe}; or run zrb as that user; nothing was restored`);
  // No search right for group or others (0700): nobody else reaches anything inside it,
  // whoever owns what is there (a user's directory restored before, with its owner).
  return { to, closed: (st.mode & 0o011) === 0 };
}

export async function restorePaths(cfg: Config, task: Task, store: ObjectStore, opts: PathRestoreOptions): Promise<PathRestoreResult> {
  const { to, closed } = checkTo(opts.to);
  // A path inside another one is copied with it (once: a second stage would go through what the first moved in).
  const paths = opts.paths.filter((p, i) => !opts.paths.some((q, j) => (q === p ? j < i : p.startsWith(`${q}/`))));
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
    for (const rel of paths) {
      const missing = async (): Promise<never> => {
        throw usageError(`${rel} is not in ${point}${await missingPathHint(task, store, rel, m, opts.identities, opts.trust)}; check the path (relative to the dataset's root) or choose another point with --snapshot/--level/--backup-id`);
      };
      plans.set(rel, await plan(got.path, rel, missing));
    }
    for (const [rel, entries] of plans) {
      const why = conflict(to, rel, entries, opts.force, closed);
      if (why) throw ioError(`restore --path ${rel}: ${why}; nothing was copied`);
    }
    const r: PathRestoreResult = { dataset: task.fullName, backupId: m.backupId, snapshot: m.snapshot.name, to: opts.to, paths: opts.paths, files: 0, dirs: 0, links: 0, fileBytes: 0, bytes, restoreSeconds: Math.round(got.seconds * 10) / 10 };
    await copyAll(got.path, paths, to, pool, opts.signal, opts.force, !closed);
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
