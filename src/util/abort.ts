/**
 * The one translation of an interrupt into the error a run ends with. cli/common.ts aborts the
 * run's signal with a ZrbError carrying exit code 130 (SIGINT) or 143 (SIGTERM); everything
 * that stops because of that signal throws `interrupted(signal)`.
 */
import { ExitCode, ZrbError } from "./errors.ts";

export function interrupted(signal?: AbortSignal): ZrbError {
  const reason = signal?.reason;
  if (reason instanceof ZrbError) return reason;
  if (reason === "SIGTERM") return new ZrbError("interrupted by SIGTERM; state saved, the next run resumes", ExitCode.SIGTERM);
  return new ZrbError("interrupted by SIGINT; state saved, the next run resumes", ExitCode.SIGINT);
}

/** Throw `interrupted(signal)` if the signal has fired. */
export function checkInterrupted(signal?: AbortSignal): void {
  if (signal?.aborted) throw interrupted(signal);
}
