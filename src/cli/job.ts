/**
 * A long run — backup, restore, verify — as every such command runs it: the interrupt signal,
 * the reporter (progress, retries, JSON events), the bandwidth limit, and around the work the
 * monitoring a timer-driven run needs: the ping at start and end (backup, drill) and the metrics file
 * after it, success or failure. The command itself only says what its work is.
 */
import type { Config, Task } from "../config/config.ts";
import { findTask } from "../config/config.ts";
import { parseDuration } from "../pipeline/cleanup.ts";
import { assertSafeMetricsFile, recordRun, recordRuns, type MetricsCommand, type RunRecord } from "../report/metrics.ts";
import { ping } from "../report/ping.ts";
import { Reporter, reportMode } from "../report/reporter.ts";
import type { ObjectStore } from "../store/store.ts";
import { ExitCode, ZrbError, usageError, isInterruptError } from "../util/errors.ts";
import { parseSchedule, ScheduleProblem, type BandwidthSchedule } from "../util/bandwidth-schedule.ts";
import { warnNoSigningKey } from "./trust.ts";
import { applyOutput, interruptSignal, loadConfigLogged, outputArgs, requireTask, storeFor } from "./common.ts";

/** The flags of a long run, besides --config/--task: progress, bandwidth and output. */
export const transferArgs = {
  "progress-interval": {
    type: "string",
    description: "Time between two progress lines when stderr is not a terminal (the journal), and between --json progress events",
    valueHint: "DURATION",
    default: "30s",
  },
  bwlimit: {
    type: "string",
    description: 'Bandwidth limit for all uploads and downloads together: a rate, e.g. 20MiB/s, or a schedule in local time, e.g. "08:00,5MiB/s 23:00,off" (overrides s3.bandwidth_limit and s3.bandwidth_schedule)',
    valueHint: "RATE|SCHEDULE",
  },
  ...outputArgs,
  json: {
    type: "boolean",
    description: "JSON-lines events on stdout: start, progress, part, retry, then done (with the result) or error; see docs/monitoring.md",
    default: false,
  },
  quiet: { type: "boolean", alias: "q", description: "Only errors on stderr: no progress", default: false },
} as const;

export interface JobArgs {
  config: string;
  task?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  "progress-interval"?: string;
  bwlimit?: string;
}

export interface JobContext {
  config: Config;
  task: Task;
  store: ObjectStore;
  reporter: Reporter;
  signal: AbortSignal;
}

export interface JobSpec {
  /** Every long command runs through here (backup, restore, verify, prune, cleanup, rekey): its metrics series, reporter and --json events. */
  command: MetricsCommand;
  /** The level the run is about, for the metrics' level label. */
  level?: number;
  /** false: the run changes nothing (a dry run) and writes no metrics. */
  record?: boolean;
  /** Ping monitoring.ping_url at start, success and failure (backup and drill: the runs a timer starts). */
  ping?: boolean;
}

/**
 * What the work returns: its result (the --json `done` event carries it), and `error` when the
 * run failed after producing a result worth reporting (verify's report): the `error` event
 * carries the result then, and the run ends with that error.
 */
export type JobResult = { result: unknown; bytes?: number; error?: ZrbError; runs?: ChildRun[]; extra?: Record<string, number> };

/**
 * A recursive task's run, child by child: each child gets its own metrics series (labels carry
 * the child's dataset), as if it had been a task of its own.
 */
export type ChildRun = Pick<RunRecord, "level" | "ok" | "exitCode" | "seconds" | "bytes" | "extra"> & {
  /** The child's full dataset name. */
  dataset: string;
};

/** --bwlimit: one rate ("20MiB/s") or a schedule in s3.bandwidth_schedule's form ("08:00,5MiB/s 23:00,off"). */
export function parseBwlimit(v: string | undefined): BandwidthSchedule | undefined {
  if (v === undefined) return undefined;
  try {
    return parseSchedule(v);
  } catch (err) {
    if (!(err instanceof ScheduleProblem)) throw err;
    const one = !/[,\s]/.test(v.trim());
    if (one) throw usageError(`--bwlimit must be a rate of at least 1KiB/s such as 20MiB/s, or a schedule such as "08:00,5MiB/s 23:00,off"; got ${JSON.stringify(v.slice(0, 60))}`);
    throw usageError(`--bwlimit ${err.message}; entries are HH:MM,RATE or HH:MM,off, e.g. "08:00,5MiB/s 23:00,off"`);
  }
}

export function parseInterval(v: string | undefined): number {
  const ms = parseDuration(v ?? "30s", "--progress-interval");
  if (ms < 1000) throw usageError(`--progress-interval must be at least 1s, got ${JSON.stringify(v)}`);
  return ms;
}

/** An interrupted run reports the signal, whatever it tripped over on its way out. */
function cause(err: unknown, signal: AbortSignal): unknown {
  const r = signal.reason;
  if (signal.aborted && isInterruptError(r) && !isInterruptError(err)) return r;
  return err;
}

export async function runJob(args: JobArgs, spec: JobSpec, work: (c: JobContext) => Promise<JobResult>): Promise<void> {
  applyOutput(args);
  const intervalMs = parseInterval(args["progress-interval"]);
  const bandwidthLimit = parseBwlimit(args.bwlimit);
  const intr = interruptSignal();
  const t0 = performance.now();
  const seconds = () => Math.round(((performance.now() - t0) / 1000) * 10) / 10;
  let loaded: { config: Config; task: Task; reporter: Reporter } | undefined;
  let result: unknown;
  let runs: ChildRun[] | undefined;
  let bytes: number | undefined;
  let extra: Record<string, number> | undefined;
  const pings = spec.ping ?? spec.command === "backup";
  try {
    const config = await loadConfigLogged(args.config);
    const task = findTask(config, requireTask(args.task), { allowDisabled: spec.command !== "backup" });
    if (spec.record !== false) assertSafeMetricsFile(config.monitoring.metricsFile); // before the run, not after its work
    const reporter = new Reporter({
      job: { command: spec.command, task: task.name, dataset: task.fullName, level: spec.level },
      mode: reportMode(!!args.json, !!process.stderr.isTTY),
      progress: !args.quiet,
      intervalMs,
    });
    loaded = { config, task, reporter };
    if (spec.command === "backup") warnNoSigningKey(config, "zrb backup");
    const store = storeFor(config, intr.signal, { reporter, bandwidth: bandwidthLimit });
    if (pings) await ping(config.monitoring.pingUrl, "start");
    const out = await work({ config, task, store, reporter, signal: intr.signal });
    result = out.result;
    runs = out.runs;
    bytes = out.bytes;
    extra = out.extra;
    if (out.error) throw out.error;
    reporter.finish(out.result, seconds(), out.bytes);
    monitor(loaded, spec, { ok: true, exitCode: ExitCode.OK, seconds: seconds(), bytes: out.bytes ?? reporter.bytesDone, extra }, runs);
    if (pings) await ping(config.monitoring.pingUrl, "success");
  } catch (err) {
    const e = cause(err, intr.signal);
    if (loaded) {
      const exitCode = e instanceof ZrbError ? e.exitCode : ExitCode.FAILURE;
      loaded.reporter.fail(e, seconds(), result, bytes);
      monitor(loaded, spec, { ok: false, exitCode, seconds: seconds(), bytes: bytes ?? loaded.reporter.bytesDone, extra }, runs);
      if (pings) await ping(loaded.config.monitoring.pingUrl, "fail");
    }
    throw e;
  } finally {
    intr.dispose();
  }
}

function monitor(l: { config: Config; task: Task }, spec: JobSpec, r: { ok: boolean; exitCode: number; seconds: number; bytes: number; extra?: Record<string, number> }, runs?: ChildRun[]): void {
  if (spec.record === false) return;
  const file = l.config.monitoring.metricsFile;
  if (!runs) return recordRun(file, { command: spec.command, task: l.task.name, pool: l.task.pool, dataset: l.task.dataset, level: spec.level, ...r });
  const { pool, name: task } = l.task;
  recordRuns(
    file,
    runs.map((c) => ({ ...c, command: spec.command, task, pool, dataset: c.dataset.slice(pool.length + 1), level: c.level ?? spec.level })),
  );
}
