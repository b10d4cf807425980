/**
 * flock(2) through Bun's FFI: Node's fs has no advisory locks, and a lock the kernel drops when
 * its process dies is the only stale-lock rule that cannot race. glibc only (as zrb's binary).
 */
import { dlopen, FFIType, read } from "bun:ffi";
import { ioError } from "../util/errors.ts";

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EINTR = 4;
const EWOULDBLOCK = 11;

type Libc = { flock(fd: number, op: number): number; errno(): number };
let libc: Libc | undefined;

function open(): Libc {
  if (libc) return libc;
  try {
    const l = dlopen("libc.so.6", {
      flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      __errno_location: { args: [], returns: FFIType.ptr },
    });
    libc = {
      flock: (fd, op) => l.symbols.flock(fd, op) as number,
      errno: () => read.i32(l.symbols.__errno_location()!, 0),
    };
    return libc;
  } catch (err) {
    throw ioError(`cannot load libc.so.6 for file locking: ${(err as Error).message}; zrb needs a glibc system`, err);
  }
}

/** Try to take an exclusive lock on fd without waiting: true if taken, false if someone holds it. */
export function flockExclusive(fd: number): boolean {
  const c = open();
  for (;;) {
    if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const e = c.errno();
    if (e === EINTR) continue;
    if (e === EWOULDBLOCK) return false;
    throw ioError(`flock failed on a lock file (errno ${e}); is base_dir on a file system without locking?`);
  }
}

/**
 * Whether anyone holds an exclusive lock on fd: a shared lock is tried without waiting and, when
 * it is granted, dropped at once. The question `zrb status` asks; it never takes the lock a
 * holder has, and holds its own for the instant between the two calls.
 */
export function flockHeldByOther(fd: number): boolean {
  const c = open();
  for (;;) {
    if (c.flock(fd, LOCK_SH | LOCK_NB) === 0) {
      c.flock(fd, LOCK_UN);
      return false;
    }
    const e = c.errno();
    if (e === EINTR) continue;
    if (e === EWOULDBLOCK) return true;
    throw ioError(`flock failed on a lock file (errno ${e}); is base_dir on a file system without locking?`);
  }
}

export function flockRelease(fd: number): void {
  open().flock(fd, LOCK_UN);
}
