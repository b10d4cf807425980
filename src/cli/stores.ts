/**
 * Which stores a command works on (issue 25), in one place for every command: `--store NAME`
 * picks one; without it, a command goes store by store through the task's stores in config
 * order (restore picks one itself: cli/restore-store.ts). The loop over stores is the tree's
 * loop over children (pipeline/tree/drive.ts) with a store in a child's place, so a store that
 * fails does not stop the others, an interrupt stops the run at once, and the outcomes have the
 * tree's shape: the run ends with the worst store's exit code.
 */
import type { Config, Task } from "../config/config.ts";
import { DEFAULT_STORE, storesOf, storeView, taskStores } from "../config/stores.ts";
import { driveChildren, type Step } from "../pipeline/tree/drive.ts";
import { worstExit, type ChildOutcome } from "../pipeline/tree/outcome.ts";
import { ExitCode, usageError, ZrbError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { didYouMean } from "../config/suggest.ts";
import { quote } from "../util/redact.ts";

export const storeArg = {
  store: {
    type: "string",
    description: "Only this store (stores[].name in the config); without it, every store of the task, one after the other",
    valueHint: "NAME",
  },
} as const;

/** The task's stores (config order), or the one `--store` names; an unknown name is a usage error listing the task's. */
export function selectStores(config: Config, task: Task, flag: string | undefined): string[] {
  const names = taskStores(config, task);
  if (flag === undefined || flag === "") return names;
  if (names.includes(flag)) return [flag];
  const all = storesOf(config).map((s) => s.name);
  if (all.includes(flag)) throw usageError(`task ${task.name} is not backed up to store ${quote(flag)} (its stores: ${names.join(", ")}; tasks[].stores in ${config.path})`);
  throw usageError(`--store ${quote(flag)} names no store in ${config.path}${didYouMean(flag, all)} (stores: ${all.join(", ")})`);
}

/** The config and task as one store sees them (config/stores.ts). */
export function viewOf(config: Config, task: Task, store: string): { config: Config; task: Task } {
  const view = storeView(config, store);
  return { config: view, task: view.tasks.find((t) => t.name === task.name)! };
}

/** The store's label in metrics and events: none for the one store of a config with one s3 section. */
export const storeLabel = (store: string): string | undefined => (store === DEFAULT_STORE ? undefined : store);

export type StoreOutcome<R> = ChildOutcome<R> & { store: string };

/**
 * Run `step` for each store in order (or all at once with `together`); a store's failure is its outcome, an interrupt stops the
 * run. With several stores, each outcome is said in one line ("store cold: failed (exit 6)").
 */
export async function forEachStore<R>(names: string[], step: (store: string) => Promise<Step<R>>, signal?: AbortSignal, o: { together?: boolean } = {}): Promise<StoreOutcome<R>[]> {
  const drive = (ns: string[]) =>
    driveChildren(
      ns.map((n) => ({ rel: n, fs: `store ${n}` })),
      (c) => step(c.rel),
      { signal },
    );
  // Side by side (a backup sharing its sends): the outcomes still in config order.
  const outs = o.together ? (await Promise.all(names.map((n) => drive([n])))).flat() : await drive(names);
  const res = outs.map((o) => ({ ...o, store: o.rel }));
  if (names.length > 1)
    for (const o of res) {
      const line = `store ${o.store}: ${o.status}${o.status === "failed" ? ` (exit ${o.exitCode})` : ""}${o.message && o.status !== "failed" ? `: ${o.message}` : ""}`;
      if (o.status === "failed") log.error(line);
      else log.success(line);
    }
  return res;
}

/** The error a run over several stores ends with when one failed: the worst exit code, every failed store named. */
export function storesError(what: string, outcomes: StoreOutcome<unknown>[]): ZrbError | undefined {
  const bad = outcomes.filter((o) => o.status === "failed");
  if (bad.length === 0) return undefined;
  const worst = worstExit(bad);
  const first = bad.find((o) => o.exitCode === worst)!;
  const others = bad.filter((o) => o !== first).map((o) => o.store);
  const done = outcomes.filter((o) => o.status !== "failed").map((o) => o.store);
  return new ZrbError(
    `${what}: ${bad.length} of ${outcomes.length} stores failed; store ${first.store}: ${first.message}` +
      (others.length ? `; also failed: ${others.join(", ")}` : "") +
      (done.length ? `; done: ${done.join(", ")}` : ""),
    worst as ExitCode,
  );
}

/** One store's outcome as --json results carry it. */
export function storeResult<R>(o: StoreOutcome<R>): Record<string, unknown> {
  return { store: o.store, status: o.status, exitCode: o.exitCode, seconds: o.seconds, ...(o.message ? { message: o.message } : {}), ...(o.result !== undefined ? { result: o.result } : {}) };
}
