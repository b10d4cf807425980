/**
 * Where one restore step keeps the ciphertext parts it downloads: base_dir/restore-scratch/<backup
 * id>, emptied first (a killed run's parts of that backup) and removed after. Two runs may restore
 * the same backup at once — a drill on its timer and a `zrb restore` to another target (the lock
 * is per target) — and each empties, writes and removes that directory: so each run claims one
 * under a lock of its own, `<dir>.lock`, and takes `<backup id>.1`, `.2`, … while another live run
 * holds the one before. A killed run's lock is held by no process: the next run of that backup
 * takes the directory over and empties it, and `zrb cleanup` removes it (removeStaleScratch) —
 * the next backup restored is another one, and a killed drill's parts would stay for ever.
 * `zrb verify` claims `verify`, `verify.1`, … the same way, for the parts it downloads.
 */
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { acquireLock, lockHeld, type Lock } from "../../state/lock.ts";
import { namedDirs } from "../../state/basedir.ts";
import { isNewBackupId } from "../../store/layout.ts";
import { log } from "../../util/log.ts";
import { ExitCode, ZrbError, fsError } from "../../util/errors.ts";

/** A claimed scratch directory; `release` removes it and drops the claim (never throws). */
export interface Scratch {
  dir: string;
  release(): void;
}

/** How many runs of one backup may restore side by side before the next is refused. */
const MAX_SIDE_BY_SIDE = 16;

/** The verify runs' name (claimScratch); a restore's is the id of the backup it restores. */
export const VERIFY_SCRATCH = "verify";

/**
 * Claim an empty scratch directory named `name` (a backup id, or VERIFY_SCRATCH) under `root`.
 * Throws a ZrbError: LOCKED when MAX_SIDE_BY_SIDE runs hold one already, I/O (exit 9) when it
 * cannot be made or emptied.
 */
export function claimScratch(root: string, name: string): Scratch {
  for (let n = 0; n < MAX_SIDE_BY_SIDE; n++) {
    const dir = join(root, n === 0 ? name : `${name}.${n}`);
    let lock: Lock;
    try {
      lock = acquireLock(`${dir}.lock`, `restore scratch ${dir}`, "zrb restore");
    } catch (err) {
      if (err instanceof ZrbError && err.exitCode === ExitCode.LOCKED) continue; // another live run's
      throw err;
    }
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true, recursive: true });
    } catch (err) {
      lock.release();
      throw fsError(err, "preparing restore scratch directory", dir);
    }
    return {
      dir,
      release() {
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch (err) {
          // Left for the next run of this name (it empties it) or zrb cleanup; the claim goes either way.
          log.warn(`cannot remove the restore scratch directory ${dir}: ${(err as Error).message}; the next run or zrb cleanup removes it`);
        } finally {
          lock.release();
        }
      },
    };
  }
  const what = name === VERIFY_SCRATCH ? "zrb verify runs are downloading parts" : `runs are restoring backup ${name}`;
  throw new ZrbError(`${MAX_SIDE_BY_SIDE} ${what} on this host already; wait for one to finish`, ExitCode.LOCKED);
}

/** Whether `name` is one claimScratch gives: a backup id or VERIFY_SCRATCH, then maybe `.N`. */
function isScratchName(name: string): boolean {
  const m = /^(.+?)(\.\d{1,2})?$/.exec(name)!;
  return m[1] === VERIFY_SCRATCH || isNewBackupId(m[1]!);
}

/**
 * Remove the scratch directories of restores that are gone: only real directories (no link)
 * named as claimScratch names them whose lock no live run holds — taken first, so that no run
 * claims one meanwhile. Returns those removed (with `dryRun`: those that would be). Never throws:
 * what cannot be removed is a warning.
 */
export function removeStaleScratch(root: string, dryRun = false): string[] {
  const out: string[] = [];
  for (const dir of namedDirs(root, isScratchName)) {
    try {
      if (lockHeld(`${dir}.lock`)) continue;
      if (dryRun) {
        out.push(dir);
        continue;
      }
      const lock = acquireLock(`${dir}.lock`, `restore scratch ${dir}`, "zrb cleanup");
      try {
        rmSync(dir, { recursive: true, force: true });
      } finally {
        lock.release();
      }
      out.push(dir);
    } catch (err) {
      if (err instanceof ZrbError && err.exitCode === ExitCode.LOCKED) continue; // a run claimed it just now
      log.warn(`cannot remove the stale restore scratch directory ${dir}: ${(err as Error).message}; zrb cleanup retries`);
    }
  }
  return out;
}
