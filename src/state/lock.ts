/**
 * Per-dataset (and per-restore-target) lock: an flock(2) on the lock file, held for the whole
 * run. The kernel releases it when the process dies however it dies (kill -9, OOM, power loss
 * of the process tree), so a stale lock needs no takeover logic at all — the read → rename →
 * create window of a pid-file takeover, in which two contenders could both win, does not exist.
 *
 * The file also carries the holder's pid, process start time, host, command and start time so
 * that a contender (and `zrb status`) can say who holds it. Its content is only information:
 * ownership is the flock alone — whatever host name the file records (a host renamed after a
 * kill -9 left its lock file behind, issue 20; a base_dir on NFS, where Linux makes flock a
 * lock the server keeps for every client) — with one compatibility rule: a live process
 * recorded by a zrb that predates flock (same host, same pid and start time, not us) counts
 * as live too. `zrb status` asks the kernel the same way (lockHeld).
 * Release unlinks the file while still holding the flock, then closes it. A contender that
 * opened the old file before the unlink and gets its flock afterwards sees that the path no
 * longer names the inode it locked, and starts over on the new file.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, rmSync, statSync, writeSync, constants as C } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { ExitCode, ZrbError, fsError } from "../util/errors.ts";
import { ensureDir } from "./atomic.ts";
import { flockExclusive, flockHeldByOther, flockRelease } from "./flock.ts";
import { log } from "../util/log.ts";

export interface LockInfo {
  pid: number;
  start: string;
  host: string;
  command: string;
  since: string;
}

export interface Lock {
  path: string;
  release(): void;
}

/** Process start time in clock ticks since boot (field 22 of /proc/PID/stat), or null if gone. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19] ?? null; // field 22 overall; fields after "comm" start at 3
  } catch {
    return null;
  }
}

/** What the lock file says (null when missing or unreadable). Information only: see the header. */
export function readLockInfo(path: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(path, "utf8"));
    if (!v || typeof v !== "object" || !Number.isInteger(v.pid) || typeof v.host !== "string") return null;
    return { pid: v.pid, start: String(v.start ?? ""), host: v.host, command: String(v.command ?? "?"), since: String(v.since ?? "?") };
  } catch {
    return null;
  }
}

/** Whether the process recorded in a lock file is a live process of this host (false for any other host). */
export function holderAlive(info: LockInfo): boolean {
  if (info.host !== hostname()) return false;
  return info.start !== "" && processStart(info.pid) === info.start;
}

/**
 * Whether a zrb run holds the lock file at `path`: its flock is held (the kernel's word, on any
 * host), or it records a live process of this host from a zrb that predates flock. False when
 * the file is missing.
 */
export function lockHeld(path: string): boolean {
  const info = readLockInfo(path);
  let fd: number;
  try {
    fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return false;
    return info !== null && holderAlive(info); // not ours to open (another user's status): what the file says
  }
  try {
    if (flockHeldByOther(fd)) return true;
  } finally {
    closeSync(fd);
  }
  return info !== null && holderAlive(info);
}

/** Locks this process holds: released on every exit path, including process.exit after a grace period. */
const held = new Set<{ release(): void }>();
process.on("exit", () => {
  for (const l of [...held]) l.release();
});

function lockedError(what: string, path: string, holder: LockInfo | null): ZrbError {
  const who = holder ? `'${holder.command}' (pid ${holder.pid} on ${holder.host}, since ${holder.since})` : "another zrb run";
  return new ZrbError(`${what} is locked by ${who}; wait for it to finish (zrb status shows it)`, ExitCode.LOCKED);
}

export function acquireLock(path: string, what: string, command: string): Lock {
  ensureDir(dirname(path));
  const me: LockInfo = { pid: process.pid, start: processStart(process.pid) ?? "", host: hostname(), command, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 20; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, C.O_RDWR | C.O_CREAT | C.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw fsError(err, "opening lock", path);
    }
    let mine = false;
    try {
      if (!flockExclusive(fd)) throw lockedError(what, path, readLockInfo(path));
      // Released and unlinked by its holder between our open and our flock: the path now names
      // another file (or none). Start over on whatever is there now.
      let same = false;
      try {
        const a = fstatSync(fd);
        const b = statSync(path);
        same = a.ino === b.ino && a.dev === b.dev;
      } catch {}
      if (!same) continue;
      const prior = readLockInfo(path);
      if (prior && !(prior.pid === me.pid && prior.start === me.start) && holderAlive(prior))
        throw lockedError(what, path, prior); // a live holder from a zrb without flock
      // The flock is ours, so its recorded holder is gone, on whatever host it ran.
      if (prior && prior.host !== me.host) log.info(`${what}: the lock left by pid ${prior.pid} on ${prior.host} (since ${prior.since}) is held by no process; taking it over`);
      const text = Buffer.from(JSON.stringify(me));
      ftruncateSync(fd, 0);
      let off = 0;
      while (off < text.length) off += writeSync(fd, text, off, text.length - off, off);
      mine = true;
    } finally {
      if (!mine) closeSync(fd);
    }
    let released = false;
    const lock = {
      path,
      release() {
        if (released) return;
        released = true;
        held.delete(lock);
        // Unlink first, while the flock is still ours: see the header.
        rmSync(path, { force: true });
        flockRelease(fd);
        closeSync(fd);
      },
    };
    held.add(lock);
    return lock;
  }
  throw new ZrbError(`could not take the lock ${path}; other zrb runs keep replacing it`, ExitCode.LOCKED);
}
