/**
 * Per-dataset lock: created atomically with O_EXCL, holding the owner's pid and its
 * process start time (so a reused pid is not mistaken for the owner). A lock whose
 * owner is gone is stale and is taken over.
 */
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { ExitCode, ZrbError, fsError } from "../util/errors.ts";
import { ensureDir } from "./atomic.ts";
import { dirname } from "node:path";

interface LockInfo {
  pid: number;
  start: string;
  host: string;
  command: string;
  since: string;
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

export interface Lock {
  path: string;
  release(): void;
}

function readLock(path: string): LockInfo | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as LockInfo;
  } catch {
    return null;
  }
}

export function acquireLock(path: string, what: string, command: string): Lock {
  ensureDir(dirname(path));
  const me: LockInfo = {
    pid: process.pid,
    start: processStart(process.pid) ?? "",
    host: hostname(),
    command,
    since: new Date().toISOString(),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, "wx", 0o600);
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw fsError(err, "creating lock", path);
      const holder = readLock(path);
      const alive = holder && holder.host === me.host && processStart(holder.pid) === holder.start && holder.start !== "";
      if (holder && (alive || holder.host !== me.host)) {
        throw new ZrbError(
          `${what} is locked by '${holder.command}' (pid ${holder.pid} on ${holder.host}, since ${holder.since}); wait for it to finish, or remove ${path} if that process is gone`,
          ExitCode.LOCKED,
        );
      }
      if (!holder) {
        // Unreadable: either being written right now or corrupt. Give a writer a moment.
        Bun.sleepSync(50);
        if (readLock(path) === null && attempt < 2) {
          try {
            renameSync(path, `${path}.stale-${process.pid}`);
            rmSync(`${path}.stale-${process.pid}`, { force: true });
          } catch {}
        }
        continue;
      }
      // Stale: its owner is gone. Move it aside atomically (only one contender wins the rename).
      try {
        renameSync(path, `${path}.stale-${process.pid}`);
        rmSync(`${path}.stale-${process.pid}`, { force: true });
      } catch {}
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(me));
    } finally {
      closeSync(fd);
    }
    let released = false;
    return {
      path,
      release() {
        if (released) return;
        released = true;
        const cur = readLock(path);
        if (cur && cur.pid === me.pid && cur.start === me.start) rmSync(path, { force: true });
      },
    };
  }
  throw new ZrbError(`could not take the lock ${path}; another zrb run is contending for it`, ExitCode.LOCKED);
}
