/**
 * A `zfs send` that stops producing bytes, or a `zfs receive` that stops taking them, would hold
 * a run forever (and, under systemd, every later timer). `within` bounds one wait on such a pipe
 * by zfs.stall_timeout; the callers stop the process and fail with a message saying which.
 */
import { formatDuration } from "../util/duration.ts";
import { zfsError } from "../util/errors.ts";

/** `p`, or the error `stalled()` makes if `p` has not settled after `ms` (the timer never keeps the process alive). */
export function within<T>(p: Promise<T>, ms: number, stalled: () => Error): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(stalled()), ms);
    t.unref?.();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** "zfs send of tank/x@s produced no data for 1h; …" (exit 5). */
export function zfsStallError(what: string, ms: number): Error {
  return zfsError(
    `${what} for ${formatDuration(ms)}, so zrb stopped it; check the pool (zpool status, a hung disk?) and rerun, or raise zfs.stall_timeout if the pool is only slow`,
  );
}
