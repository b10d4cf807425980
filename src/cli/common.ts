/** Shared pieces of the commands: common flags, loading config + task + store, output. */
import { loadConfig, findTask, type Config, type Task } from "../config/config.ts";
import { openStore } from "../store/open.ts";
import { logRetry, type Reporter } from "../report/reporter.ts";
import type { ObjectStore } from "../store/store.ts";
import { ExitCode, ZrbError, usageError } from "../util/errors.ts";
import { log, setQuiet, setVerbose } from "../util/log.ts";
import { STOP_GRACE_SECONDS } from "../util/abort.ts";
import { ScheduledLimiter, formatLimit, type BandwidthSchedule } from "../util/bandwidth-schedule.ts";
import { now } from "../util/clock.ts";
import { selectStores, viewOf } from "./stores.ts";

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

/**
 * A string option that may be given without a value (`--rotate` alone means `--rotate 90`):
 * main.ts inserts `value` when the option is followed by nothing or by another option.
 */
export function optionalValue<T extends { type: "string"; description: string; valueHint?: string }>(def: T, value: string): T {
  return Object.assign({}, def, { optionalValue: value });
}

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

/**
 * The config, the task and one store as that store sees them (cli/stores.ts): the one --store
 * names, else the task's first (config order).
 */
export async function loadAll(args: { config: string; task?: string; store?: string }, opts: { allowDisabled?: boolean; signal?: AbortSignal } = {}): Promise<{
  config: Config;
  task: Task;
  store: ObjectStore;
}> {
  return (await loadStores(args, opts))[0]!;
}

/** Every store of the task (config order) or the one --store names: config, task and store as each sees them. */
export async function loadStores(args: { config: string; task?: string; store?: string }, opts: { allowDisabled?: boolean; signal?: AbortSignal } = {}) {
  const whole = await loadConfigLogged(args.config);
  const wholeTask = findTask(whole, requireTask(args.task), opts);
  return selectStores(whole, wholeTask, args.store).map((name) => {
    const { config, task } = viewOf(whole, wholeTask, name);
    return { name, config, task, store: storeFor(config, opts.signal) };
  });
}

/**
 * The configured store; with the run's interrupt signal, a SIGTERM aborts requests in flight.
 * Every retry prints one line (through the run's reporter, which also emits a --json event).
 */
export function storeFor(config: Config, signal?: AbortSignal, o: { reporter?: Reporter; bandwidth?: BandwidthSchedule; shared?: ScheduledLimiter } = {}): ObjectStore {
  const onRetry = o.reporter ? o.reporter.retry.bind(o.reporter) : logRetry;
  return openStore({ s3: config.s3, localStoreDir: config.localStore }, { signal, onRetry, limiter: limiterFor(config, o.reporter, o.bandwidth, o.shared) });
}

/** One limiter for --bwlimit over several stores side by side: the flag caps their sum. */
export function sharedLimiter(flag: BandwidthSchedule): ScheduledLimiter {
  return new ScheduledLimiter(flag, now, undefined, undefined, (r) => log.info(`bandwidth limit now ${formatLimit(r)} (by the schedule)`));
}

/**
 * The run's bandwidth limiter: --bwlimit's schedule, else s3.bandwidth_schedule, else
 * s3.bandwidth_limit (a one-entry schedule); none for a local store. The reporter shows the limit
 * in force in progress lines and says when the schedule moves it.
 */
function limiterFor(config: Config, reporter: Reporter | undefined, flag: BandwidthSchedule | undefined, shared?: ScheduledLimiter): ScheduledLimiter | undefined {
  if (!config.s3.enabled) return undefined;
  if (shared) {
    reporter?.setLimit(shared);
    return shared;
  }
  const schedule = flag ?? config.s3.bandwidthSchedule ?? (config.s3.bandwidthLimit ? [{ at: 0, rate: config.s3.bandwidthLimit }] : undefined);
  if (!schedule) return undefined;
  const l = new ScheduledLimiter(schedule, now, undefined, undefined, reporter ? (r) => reporter.limitChanged(r) : undefined);
  reporter?.setLimit(l);
  return l;
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + "\n");
}

/**
 * An AbortSignal fired by SIGINT/SIGTERM, so long runs stop cleanly: workers and `zfs send`
 * stopped, state saved, holds and lock released, exit 130 (SIGINT) or 143 (SIGTERM).
 * The abort reason is a ZrbError carrying that exit code. A second signal, or a stop that
 * takes longer than STOP_GRACE_SECONDS, exits at once: the saved state is still consistent
 * (every state write is atomic) and the next run resumes and releases what was left held.
 */
export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const on = (sig: "SIGINT" | "SIGTERM") => () => {
    const code = sig === "SIGINT" ? ExitCode.SIGINT : ExitCode.SIGTERM;
    if (ac.signal.aborted) {
      process.stderr.write(`zrb: error: ${sig} received again: exiting now; the next run resumes and releases what is left held\n`);
      process.exit(code);
    }
    log.warn(`${sig} received: stopping, saving state, releasing holds and lock`);
    ac.abort(new ZrbError(`interrupted by ${sig}; state saved, the next run resumes`, code));
    timer = setTimeout(() => {
      process.stderr.write(`zrb: error: interrupted by ${sig} and could not stop within ${STOP_GRACE_SECONDS} s; exiting now, the next run resumes\n`);
      process.exit(code);
    }, STOP_GRACE_SECONDS * 1000);
    timer.unref?.();
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

/** --sample N (verify: parts, drill: files): a whole number ≥ 1, or undefined when not given. */
export function parseSample(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw usageError(`--sample must be a whole number ≥ 1, got ${JSON.stringify(v)}`);
  return n;
}

/** Every value of a repeatable string flag as given on the command line (citty keeps only the last). */
export function repeatedFlag(name: string, last: string | undefined, argv: string[] = process.argv): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (a === `--${name}` && i + 1 < argv.length) out.push(argv[++i]!);
    else if (a.startsWith(`--${name}=`)) out.push(a.slice(name.length + 3));
  }
  if (out.length === 0 && last !== undefined) out.push(last);
  return out;
}
