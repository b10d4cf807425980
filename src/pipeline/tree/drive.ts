/**
 * The one loop over a recursive task's children, for every command that works on a tree
 * (backup, restore, verify, prune, cleanup) — zrepl's per-filesystem driver with one report
 * type. The command gives one step per child; the driver owns what every command must do the
 * same way: check for an interrupt before each child, time it, turn what the step threw into
 * that child's failed outcome (an interrupt stops the whole run instead), say a failure once,
 * and tell the progress reporter. The outcomes (outcome.ts) come back in the children's order.
 * `withTreeLock` is the tree's lock around a whole run.
 */
import type { Config, Task } from "../../config/config.ts";
import { assertSafeBaseDir } from "../../state/basedir.ts";
import { acquireLock } from "../../state/lock.ts";
import { treeLockPath } from "../../state/rundir.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { log } from "../../util/log.ts";
import { failed, type ChildOutcome } from "./outcome.ts";

/** What one child's step did: done (with its result), skipped (why), or failed (with what went wrong). */
export type Step<R> =
  | { status: "ok"; result?: R; message?: string; bytes?: number }
  | { status: "skipped"; message: string }
  | { status: "failed"; error: unknown; result?: R; bytes?: number };

export interface DriveHooks {
  signal?: AbortSignal;
  /** Told when a child's step ends, whatever its outcome. */
  progress?: { childDone(o: ChildOutcome): void };
}

const since = (t0: number) => Math.round(((performance.now() - t0) / 1000) * 10) / 10;

/** Run `step` for each child in order; `done` holds the outcomes so far (a child may depend on its parent's). */
export async function driveChildren<C extends { rel: string; fs: string }, R>(
  children: C[],
  step: (c: C, done: ChildOutcome<R>[]) => Promise<Step<R>>,
  hooks: DriveHooks = {},
): Promise<ChildOutcome<R>[]> {
  const out: ChildOutcome<R>[] = [];
  for (const c of children) {
    checkInterrupted(hooks.signal);
    const t0 = performance.now();
    let o: ChildOutcome<R>;
    try {
      o = outcome(c, await step(c, out), since(t0));
    } catch (err) {
      if (hooks.signal?.aborted) throw err; // SIGINT/SIGTERM: the run stops, every child's state saved
      o = failed(c.rel, c.fs, err, since(t0));
    }
    if (o.status === "failed") log.error(`${c.fs}: ${o.message}`);
    else if (o.status === "skipped") log.info(`${c.fs}: ${o.message}`);
    out.push(o);
    hooks.progress?.childDone(o);
  }
  return out;
}

function outcome<R>(c: { rel: string; fs: string }, s: Step<R>, seconds: number): ChildOutcome<R> {
  if (s.status === "skipped") return { rel: c.rel, dataset: c.fs, status: "skipped", message: s.message, exitCode: 0, seconds: 0 };
  if (s.status === "failed") return { ...failed<R>(c.rel, c.fs, s.error, seconds), ...(s.result !== undefined ? { result: s.result } : {}), ...(s.bytes !== undefined ? { bytes: s.bytes } : {}) };
  return {
    rel: c.rel,
    dataset: c.fs,
    status: "ok",
    exitCode: 0,
    seconds,
    ...(s.result !== undefined ? { result: s.result } : {}),
    ...(s.message !== undefined ? { message: s.message } : {}),
    ...(s.bytes !== undefined ? { bytes: s.bytes } : {}),
  };
}

/** `fn` under the tree's lock (base_dir/run/<pool>/<dataset>/…): one tree command at a time on this host. */
export async function withTreeLock<T>(cfg: Config, task: Task, command: string, fn: () => Promise<T>): Promise<T> {
  assertSafeBaseDir(cfg.baseDir, { create: true });
  const lock = acquireLock(treeLockPath(cfg.baseDir, task.pool, task.dataset), `tree ${task.fullName}`, command);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
