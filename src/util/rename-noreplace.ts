/**
 * Moving an entry to a name only if nothing is there, atomically: libc's renameat2 with
 * RENAME_NOREPLACE through bun:ffi.
 *
 * Why: `restore --path` moves what it restored into a directory where, between its check and
 * the move, something may appear (made by a user, or another run). rename(2) replaces a file
 * and an empty directory without a word; the check before it leaves a window. With
 * RENAME_NOREPLACE the kernel refuses (EEXIST) in the same step.
 *
 * Linux with glibc only (the targets zrb is built for). Where libc cannot be loaded, or the file
 * system does not know the flag (EINVAL, as some FUSE and network file systems), it says
 * "unsupported" and the caller falls back (drill/stage.ts: a hard link for a file; for a
 * directory a check right before rename, which leaves the window).
 */
import { constants as osConstants } from "node:os";

const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;

/** errno number → its name (the runtime's own table); one it does not know is reported as E<number>. */
const NAMES = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));
/**
 * What a file system that does not know the flag answers (EINVAL, EOPNOTSUPP), a kernel or libc
 * without the call (ENOSYS), or a seccomp filter that forbids it (EPERM). A real EPERM (an
 * immutable file, another user's entry in a sticky directory) comes back from the fallback.
 */
const UNSUPPORTED = new Set(["EINVAL", "ENOSYS", "EOPNOTSUPP", "EPERM"]);

interface Libc {
  /** 0, or the errno of the failure (-1 when the failure left errno at 0). */
  renameat2(src: string, dest: string): number;
  strerror(errno: number): string;
}

let libc: Libc | null | undefined;

function load(): Libc | null {
  try {
    const { dlopen, FFIType: T, ptr, read, CString } = require("bun:ffi") as typeof import("bun:ffi");
    const lib = dlopen("libc.so.6", {
      renameat2: { args: [T.i32, T.ptr, T.i32, T.ptr, T.u32], returns: T.i32 },
      __errno_location: { args: [], returns: T.ptr },
      strerror: { args: [T.i32], returns: T.ptr },
    });
    const s = lib.symbols;
    const cstr = (p: string) => Buffer.from(`${p}\0`, "utf8");
    return {
      renameat2: (src, dest) => {
        const a = cstr(src);
        const b = cstr(dest);
        // errno is read right after the call, before anything else runs on this thread.
        if (s.renameat2(AT_FDCWD, ptr(a), AT_FDCWD, ptr(b), RENAME_NOREPLACE) === 0) return 0;
        return read.i32(s.__errno_location()!, 0) || -1;
      },
      strerror: (errno) => {
        const p = s.strerror(errno);
        return errno > 0 && p ? new CString(p).toString() : `errno ${errno}`;
      },
    };
  } catch {
    return null;
  }
}

/**
 * Rename `src` to `dest` only if nothing is at `dest`. "done", or "unsupported" (nothing was
 * moved: no libc, or a file system without the flag). Throws an Error with `code` (EEXIST when
 * something is at `dest`, EXDEV across file systems, and whatever else rename fails with).
 */
export function renameNoReplace(src: string, dest: string): "done" | "unsupported" {
  if (libc === undefined) libc = load();
  if (!libc) return "unsupported";
  const errno = libc.renameat2(src, dest);
  if (errno === 0) return "done";
  // A failure whose errno reads as 0 is still a failure: never reported as "done".
  const code = errno < 0 ? "EUNKNOWN" : (NAMES.get(errno) ?? `E${errno}`);
  if (UNSUPPORTED.has(code)) return "unsupported";
  throw Object.assign(new Error(`${code}: ${libc.strerror(errno)}, rename '${src}' -> '${dest}'`), { code, errno: -errno, path: src, dest });
}
