/**
 * A kernel pipe made by zrb itself (libc's pipe2 through bun:ffi), for a child whose stdout
 * zrb reads as fast as it can: `zfs send`.
 *
 * Why: the runtime's own pipe hands each read over in a new buffer (≈ 13,000 per GiB of a
 * send stream), whose pages the kernel faults in and the collector frees again; reading the
 * pipe ourselves into one buffer costs only the kernel's copy (pipe-reader.ts). The pipe is
 * also made 1 MiB deep (F_SETPIPE_SZ, best effort) where the default is 64 KiB, so one read
 * takes up to a MiB when the sender is ahead.
 *
 * Linux with glibc only (the targets zrb is built for); where libc cannot be loaded, or with
 * `ZRB_NO_OS_PIPE=1`, openPipe() says null and the caller uses the runtime's pipe as before.
 */
const O_CLOEXEC = 0o2000000;
const F_SETPIPE_SZ = 1031;
const POLLIN = 0x1;
const POLLHUP = 0x10;
const POLLERR = 0x8;

interface Libc {
  pipe2(fds: Int32Array, flags: number): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  poll(fd: number, events: number, timeoutMs: number): number;
}

let libc: Libc | null | undefined;
let whyNot: string | undefined;

function load(): Libc | null {
  const off = process.env.ZRB_NO_OS_PIPE;
  if (off !== undefined && off !== "" && off !== "0") return (whyNot = "ZRB_NO_OS_PIPE is set"), null;
  try {
    const { dlopen, FFIType: T, ptr } = require("bun:ffi") as typeof import("bun:ffi");
    const lib = dlopen("libc.so.6", {
      pipe2: { args: [T.ptr, T.i32], returns: T.i32 },
      fcntl: { args: [T.i32, T.i32, T.i32], returns: T.i32 },
      poll: { args: [T.ptr, T.u64, T.i32], returns: T.i32 },
    });
    const s = lib.symbols;
    return {
      // Pointers are taken right at the call: a typed array's memory may move between calls.
      pipe2: (fds, flags) => s.pipe2(ptr(fds), flags),
      fcntl: (fd, cmd, arg) => s.fcntl(fd, cmd, arg),
      poll: (fd, events, timeoutMs) => {
        // struct pollfd { int fd; short events; short revents; }
        const pfd = new Int32Array(2);
        pfd[0] = fd;
        pfd[1] = events;
        const n = s.poll(ptr(pfd), 1, timeoutMs);
        return n > 0 ? pfd[1]! >>> 16 : n;
      },
    };
  } catch (err) {
    return (whyNot = (err as Error).message.split("\n")[0]), null;
  }
}

function os(): Libc | null {
  if (libc === undefined) libc = load();
  return libc;
}

export interface OsPipe {
  /** The read end (close-on-exec). */
  read: number;
  /** The write end (close-on-exec: a child gets it only as the stdio it is given as). */
  write: number;
}

/** A new pipe, `depth` bytes deep where the kernel allows it; null where zrb cannot make its own (see above). Throws when pipe2 fails (out of file descriptors). */
export function openPipe(depth = 1 << 20): OsPipe | null {
  const c = os();
  if (!c) return null;
  const fds = new Int32Array(2);
  if (c.pipe2(fds, O_CLOEXEC) !== 0) throw new Error("pipe2 failed (too many open files?)");
  // A smaller pipe (the kernel's limit for this user) works the same, in smaller reads.
  c.fcntl(fds[0]!, F_SETPIPE_SZ, depth);
  return { read: fds[0]!, write: fds[1]! };
}

/** True when a read of `fd` returns at once: bytes are waiting, or the writers are gone (end of file or an error). */
export function readyToRead(fd: number): boolean {
  const revents = os()!.poll(fd, POLLIN, 0);
  return revents > 0 && (revents & (POLLIN | POLLHUP | POLLERR)) !== 0;
}

/** How `zfs send` is read, for `zrb --version --verbose`. */
export function pipeDescription(): string {
  return os() ? "zrb's own pipe (pipe2 from libc.so.6, 1 MiB deep)" : `the runtime's pipe (zrb's own not used: ${whyNot ?? "unknown"})`;
}
