/**
 * The one translation of an interrupt into the error a run ends with. cli/common.ts aborts the
 * run's signal with a ZrbError carrying exit code 130 (SIGINT) or 143 (SIGTERM); everything
 * that stops because of that signal throws `interrupted(signal)`. Also the abortable sleep that
 * retries, backoffs and the bandwidth limit wait in.
 */
import { ExitCode, ZrbError, isInterruptError } from "./errors.ts";

/** Seconds a graceful stop may take before zrb exits anyway (systemd's TimeoutStopSec defaults to 90). */
export const STOP_GRACE_SECONDS = 20;

export function interrupted(signal?: AbortSignal): ZrbError {
  const reason = signal?.reason;
  if (reason instanceof ZrbError) return reason;
  if (reason === "SIGTERM") return new ZrbError("interrupted by SIGTERM; state saved, the next run resumes", ExitCode.SIGTERM);
  return new ZrbError("interrupted by SIGINT; state saved, the next run resumes", ExitCode.SIGINT);
}

/** Whether `err` is the error an interrupt ends a run with (exit 130 or 143): never a finding about data. */
export function isInterrupt(err: unknown): boolean {
  return isInterruptError(err);
}

/** Throw `interrupted(signal)` if the signal has fired. */
export function checkInterrupted(signal?: AbortSignal): void {
  if (signal?.aborted) throw interrupted(signal);
}

/** The error to throw when `signal` is aborted. */
export function abortReason(signal: AbortSignal): unknown {
  const r = signal.reason;
  if (r instanceof Error) return r;
  return new DOMException("The operation was aborted", "AbortError");
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortReason(signal!));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
