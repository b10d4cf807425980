/**
 * What a command did to each child of a recursive task, in one shape for every command (backup,
 * restore, verify, prune, cleanup): the child, whether it worked, and when it did not, the exit
 * code and the one-line message its own run would have ended with. One child failing never
 * stops the others; the run ends with the worst child's exit code (the highest; an interrupt,
 * 130 or 143, stops the run at once).
 */
import { ExitCode, ZrbError } from "../../util/errors.ts";
import { childLabel } from "./children.ts";

export type ChildStatus = "ok" | "skipped" | "failed";

export interface ChildOutcome<R = unknown> {
  /** Relative name ("" for the task's dataset) and full dataset name. */
  rel: string;
  dataset: string;
  status: ChildStatus;
  /** Why it was skipped or what went wrong (one line). */
  message?: string;
  exitCode: number;
  seconds: number;
  /** The command's own result for this child. */
  result?: R;
  /** Bytes it moved (sent, received, checked or deleted), for its metrics series. */
  bytes?: number;
}

export function failed<R>(rel: string, dataset: string, err: unknown, seconds = 0): ChildOutcome<R> {
  const exitCode = err instanceof ZrbError ? err.exitCode : ExitCode.FAILURE;
  const message = err instanceof ZrbError ? err.message : `internal error: ${(err as Error)?.message ?? String(err)}`;
  return { rel, dataset, status: "failed", message, exitCode, seconds };
}

/** The run's exit code: the worst (highest) of its children's. */
export function worstExit(outcomes: { exitCode: number }[]): number {
  return outcomes.reduce((a, o) => Math.max(a, o.exitCode), 0);
}

/**
 * The error a tree run ends with when a child failed: its exit code is the worst child's, and
 * its one line names every failed child (the first message in full).
 */
export function treeError(what: string, outcomes: ChildOutcome[]): ZrbError | undefined {
  const bad = outcomes.filter((o) => o.status === "failed");
  if (bad.length === 0) return undefined;
  const worst = worstExit(bad);
  const first = bad.find((o) => o.exitCode === worst)!;
  const others = bad.filter((o) => o !== first).map((o) => childLabel(o.rel));
  return new ZrbError(
    `${what}: ${bad.length} of ${outcomes.length} children failed; ${childLabel(first.rel)} (${first.dataset}): ${first.message}` +
      (others.length ? `; also failed: ${others.join(", ")}` : "") +
      `; the others are done`,
    worst as ExitCode,
  );
}
