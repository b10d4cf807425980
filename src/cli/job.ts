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
import { parseSchedule, ScheduleProblem, type BandwidthSchedule, type ScheduledLimiter } from "../util/bandwidth-schedule.ts";
import { warnNoSigningKey } from "./trust.ts";
import { log } from "../util/log.ts";
import { applyOutput, interruptSignal, loadConfigLogged, outputArgs, requireTask, sharedLimiter, storeFor } from "./common.ts";
import { SendHub, type SendShare } from "../pipeline/backup/shared-send.ts";
import { spawnSend } from "../zfs/zfs.ts";
import { forEachStore, selectStores, storeArg, storeLabel, storeResult, storesError, viewOf } from "./stores.ts";

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
  ...storeArg,
} as const;

export interface JobArgs {
  config: string;
  task?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  "progress-interval"?: string;
  bwlimit?: string;
  store?: string;
}

export interface JobContext {
  config: Config;
  task: Task;
  store: ObjectStore;
  reporter: Reporter;
  signal: AbortSignal;
  /** A backup to several stores: the senders the stores share (pipeline/backup/shared-send.ts). */
  sends?: SendShare;
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
  /**
   * Several stores run side by side and share each `zfs send` they all need (backup), instead
   * of one after the other.
   */
  shareSends?: boolean;
  /** Without --store, pick the one store to work on (restore) instead of going store by store. */
  pickStore?: (config: Config, task: Task, stores: string[], signal: AbortSignal) => Promise<string>;
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
  const pingsOn = spec.ping ?? spec.command === "backup";
  const run: RunSetup = { intervalMs: parseInterval(args["progress-interval"]), bandwidth: parseBwlimit(args.bwlimit), intr: interruptSignal(), t0: performance.now() };
  try {
    const config = await loadConfigLogged(args.config);
    const task = findTask(config, requireTask(args.task), { allowDisabled: spec.command !== "backup" });
    if (spec.record !== false) assertSafeMetricsFile(config.monitoring.metricsFile); // before the run, not after its work
    if (spec.command === "backup") warnNoSigningKey(config, "zrb backup");
    let names = selectStores(config, task, args.store);
    if (names.length > 1 && spec.pickStore) names = [await spec.pickStore(config, task, names, run.intr.signal)];
    if (names.length === 1) {
      await runStore(run, config, task, names[0]!, true);
      return;
    }
    await runStores(run, config, task, names);
  } finally {
    run.intr.dispose();
  }

  /** One store's run: the reporter, the work, its metrics; the pings when it is the run's only store. */
  async function runStore(r: RunSetup, whole: Config, wholeTask: Task, name: string, pings: boolean, sends?: SendShare): Promise<unknown> {
    // The run's only store counts from the start of the run; one of several from its own start.
    const t0 = pings ? r.t0 : performance.now();
    const seconds = () => Math.round(((performance.now() - t0) / 1000) * 10) / 10;
    const { config, task } = viewOf(whole, wholeTask, name);
    const store = storeLabel(name);
    const reporter = new Reporter({
      job: { command: spec.command, task: task.name, dataset: task.fullName, level: spec.level, ...(store ? { store } : {}) },
      // Stores side by side on a terminal: whole lines (each names its store), not one line redrawn by two.
      mode: reportMode(!!args.json, !!process.stderr.isTTY && !sends),
      progress: !args.quiet,
      intervalMs: r.intervalMs,
    });
    const loaded = { config, task, reporter, store };
    let out: JobResult | undefined;
    try {
      const objects = storeFor(config, r.intr.signal, { reporter, bandwidth: r.bandwidth, shared: r.sharedLimit });
      if (pings && pingsOn) await ping(config.monitoring.pingUrl, "start");
      out = await work({ config, task, store: objects, reporter, signal: r.intr.signal, sends });
      if (out.error) throw out.error;
      reporter.finish(out.result, seconds(), out.bytes);
      monitor(loaded, spec, { ok: true, exitCode: ExitCode.OK, seconds: seconds(), bytes: out.bytes ?? reporter.bytesDone, extra: out.extra }, out.runs);
      if (pings && pingsOn) await ping(config.monitoring.pingUrl, "success");
      return out.result;
    } catch (err) {
      const e = cause(err, r.intr.signal);
      const exitCode = e instanceof ZrbError ? e.exitCode : ExitCode.FAILURE;
      reporter.fail(e, seconds(), out?.result, out?.bytes);
      monitor(loaded, spec, { ok: false, exitCode, seconds: seconds(), bytes: out?.bytes ?? reporter.bytesDone, extra: out?.extra }, out?.runs);
      if (pings && pingsOn) await ping(config.monitoring.pingUrl, "fail");
      throw e;
    }
  }

  /**
   * Every store (cli/stores.ts), in turn or side by side (spec.shareSends): one failing does not
   * stop the others; the pings and the last event are the whole run's.
   */
  async function runStores(r: RunSetup, config: Config, task: Task, names: string[]): Promise<void> {
    if (pingsOn) await ping(config.monitoring.pingUrl, "start");
    const hub = spec.shareSends ? new SendHub(names, { spawn: spawnSend, waitMs: SHARE_WAIT_MS }) : undefined;
    // Side by side, --bwlimit caps the stores' sum (a store's own s3.bandwidth_limit stays its own).
    if (hub && r.bandwidth) r = { ...r, sharedLimit: sharedLimiter(r.bandwidth) };
    const outcomes = await forEachStore(
      names,
      async (name) => {
        const member = hub?.member(name);
        try {
          return { status: "ok", result: await runStore(r, config, task, name, false, member) };
        } catch (error) {
          if (r.intr.signal.aborted) throw error;
          return { status: "failed", error };
        } finally {
          member?.leave();
        }
      },
      r.intr.signal,
      { together: !!hub },
    );
    if (hub) for (const s of hub.started) if (s.stores.length > 1) log.info(`one zfs send of ${sendLabel(s.key)} fed stores ${s.stores.join(", ")}`);
    const err = storesError(`${spec.command} of task ${task.name}`, outcomes);
    const whole = new Reporter({ job: { command: spec.command, task: task.name, dataset: task.fullName, level: spec.level }, mode: reportMode(!!args.json, false), progress: false, intervalMs: r.intervalMs });
    const result = { stores: outcomes.map(storeResult) };
    const secs = Math.round(((performance.now() - r.t0) / 1000) * 10) / 10;
    if (pingsOn) await ping(config.monitoring.pingUrl, err ? "fail" : "success");
    if (!err) return whole.finish(result, secs, 0);
    whole.fail(err, secs, result, 0);
    throw err;
  }
}

/**
 * How long a store's backup waits for the other stores before its `zfs send` starts without
 * them: long enough for the others to read their heads and plan, short enough that a store
 * whose endpoint hangs does not hold the rest back for long.
 */
const SHARE_WAIT_MS = 60_000;

const sendLabel = (key: string) => {
  const [snapshot, from] = JSON.parse(key) as [string, string | null];
  return from ? `${snapshot} (from ${from})` : snapshot;
};

interface RunSetup {
  intervalMs: number;
  bandwidth: BandwidthSchedule | undefined;
  intr: { signal: AbortSignal; dispose(): void };
  t0: number;
  /** --bwlimit's one limiter for several stores side by side. */
  sharedLimit?: ScheduledLimiter;
}

function monitor(l: { config: Config; task: Task; store?: string }, spec: JobSpec, r: { ok: boolean; exitCode: number; seconds: number; bytes: number; extra?: Record<string, number> }, runs?: ChildRun[]): void {
  if (spec.record === false) return;
  const file = l.config.monitoring.metricsFile;
  const store = l.store ? { store: l.store } : {};
  if (!runs) return recordRun(file, { command: spec.command, task: l.task.name, pool: l.task.pool, dataset: l.task.dataset, level: spec.level, ...store, ...r });
  const { pool, name: task } = l.task;
  recordRuns(
    file,
    runs.map((c) => ({ ...c, command: spec.command, task, pool, dataset: c.dataset.slice(pool.length + 1), level: c.level ?? spec.level, ...store })),
  );
}
