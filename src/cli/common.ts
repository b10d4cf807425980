/** Shared pieces of the commands: common flags, loading config + task + store, output. */
import { loadConfig, findTask, type Config, type Task } from "../config/config.ts";
import { openStore } from "../store/open.ts";
import type { ObjectStore } from "../store/store.ts";
import { usageError } from "../util/errors.ts";
import { log, setQuiet, setVerbose } from "../util/log.ts";

export const configArg = {
  config: { type: "string", alias: "c", description: "Path to the YAML config file", valueHint: "FILE", default: "/etc/zrb/config.yaml" },
} as const;
export const taskArg = {
  task: { type: "string", alias: "t", description: "Task name (tasks[].name in the config)", valueHint: "NAME" },
} as const;
export const outputArgs = {
  json: { type: "boolean", description: "Print the result as JSON on stdout (for scripts)", default: false },
  verbose: { type: "boolean", alias: "v", description: "More detail on stderr", default: false },
  quiet: { type: "boolean", alias: "q", description: "Only errors on stderr", default: false },
} as const;

export function applyOutput(args: { verbose?: boolean; quiet?: boolean; json?: boolean }): void {
  setVerbose(!!args.verbose);
  setQuiet(!!args.quiet);
}

export function parseLevel(v: unknown, flag = "--level"): number {
  if (v === undefined || v === null || v === "") throw usageError(`${flag} is required (0 for a full backup, 1–9 for incrementals)`);
  const s = String(v);
  if (!/^\d+$/.test(s)) throw usageError(`${flag} must be a whole number 0–99, got ${JSON.stringify(s)}`);
  const n = Number(s);
  if (n > 99) throw usageError(`${flag} must be 0–99, got ${n}`);
  return n;
}

export async function loadConfigLogged(path: string): Promise<Config> {
  const { config, warnings } = await loadConfig(path);
  for (const w of warnings) log.warn(w);
  return config;
}

export function requireTask(v: unknown): string {
  if (typeof v !== "string" || v === "") throw usageError("--task NAME is required (one of tasks[].name in the config)");
  return v;
}

export async function loadAll(args: { config: string; task?: string }, opts: { allowDisabled?: boolean } = {}): Promise<{
  config: Config;
  task: Task;
  store: ObjectStore;
}> {
  const config = await loadConfigLogged(args.config);
  const task = findTask(config, requireTask(args.task), opts);
  const store = storeFor(config);
  return { config, task, store };
}

export function storeFor(config: Config): ObjectStore {
  return openStore({ s3: config.s3, localStoreDir: config.localStore });
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + "\n");
}

/** An AbortSignal fired by SIGINT/SIGTERM, so long runs stop cleanly (state saved, holds and lock released). */
export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const on = (sig: "SIGINT" | "SIGTERM") => () => {
    log.warn(`${sig} received: stopping, saving state, releasing holds and lock`);
    ac.abort(sig);
  };
  const onInt = on("SIGINT");
  const onTerm = on("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  return {
    signal: ac.signal,
    dispose() {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    },
  };
}
