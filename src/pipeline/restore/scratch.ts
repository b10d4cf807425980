/**
 * Where one restore step keeps the ciphertext parts it downloads: base_dir/restore-scratch/<backup
 * id>, emptied first (a killed run's parts of that backup) and removed after. Two runs may restore
 * the same backup at once — a drill on its timer and a `zrb restore` to another target (the lock
 * is per target) — and each empties, writes and removes that directory: so each run claims one
 * under a lock of its own, `<dir>.lock`, and takes `<backup id>.1`, `.2`, … while another live run
 * holds the one before. A killed run's lock is held by no process: the next run of that backup
 * takes the directory over and empties it, and `zrb cleanup` removes it (removeStaleScratch) —
 * the next backup restored is another one, and a killed drill's parts would stay for ever.
 */
import { lstatSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { acquireLock, lockHeld, type Lock } from "../../state/lock.ts";
import { log } from "../../util/log.ts";
import { ExitCode, ZrbError, fsError } from "../../util/errors.ts";

/** A claimed scratch directory; `release` removes it and drops the claim (never throws). */
export interface Scratch {
  dir: string;
  release(): void;
}

/** How many runs of one backup may restore side by side before the next is refused. */
const MAX_SIDE_BY_SIDE = 16;

/**
 * Claim an empty scratch directory for backup `backupId` under `root`. Throws a ZrbError: LOCKED
 * when MAX_SIDE_BY_SIDE runs hold one already, I/O (exit 9) when it cannot be made or emptied.
 */
export function claimScratch(root: string, backupId: string): Scratch {
  for (let n = 0; n < MAX_SIDE_BY_SIDE; n++) {
    const dir = join(root, n === 0 ? backupId : `${backupId}.${n}`);
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
        rmSync(dir, { recursive: true, force: true });
        lock.release();
      },
    };
  }
  throw new ZrbError(`${MAX_SIDE_BY_SIDE} runs are restoring backup ${backupId} on this host already; wait for one to finish`, ExitCode.LOCKED);
}

/** What claimScratch names a directory: a backup id (store/layout.ts newBackupId), then `.N`. */
const SCRATCH_DIR = /^\d{8}T\d{6}Z-L\d{1,2}-[0-9a-f]{6}(\.\d{1,2})?$/;

/**
 * Remove the scratch directories of restores that are gone: only real directories (no link)
 * named as claimScratch names them whose lock no live run holds — taken first, so that no run
 * claims one meanwhile. Returns those removed (with `dryRun`: those that would be). Never throws:
 * what cannot be removed is a warning.
 */
export function removeStaleScratch(root: string, dryRun = false): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    const dir = join(root, n);
    try {
      if (!SCRATCH_DIR.test(n) || !lstatSync(dir).isDirectory() || lockHeld(`${dir}.lock`)) continue;
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
