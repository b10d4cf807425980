/**
 * The one reporter of a backup, restore or verify run: what it says while bytes move, so that a
 * run is never silent. Three ways to say it:
 *   - tty:   stderr is a terminal — one line with the facts, redrawn in place every second;
 *   - lines: stderr is a journal or a file — one line every --progress-interval (30 s) with the
 *            same facts and the word ETA;
 *   - json:  --json — JSON-lines events on stdout: start, progress, part, retry, done, error
 *            (docs/monitoring.md has the schema); human lines still go to stderr.
 * --quiet silences progress (the events start … done still come with --json). Retries print one
 * line each in every mode (logRetry: the one place their wording lives).
 */
import type { RetryOptions } from "../store/retry.ts";
import { now } from "../util/clock.ts";
import { ExitCode, ZrbError } from "../util/errors.ts";
import { log, setLiveLine } from "../util/log.ts";
import { formatSize } from "../util/size.ts";
import { formatLimit, type LimitView } from "../util/bandwidth-schedule.ts";
import { printable } from "../util/text.ts";
import { etaSeconds, progressLine, RateWindow, type PartDone, type ProgressFacts, type TransferProgress, type TransferStart } from "./progress.ts";

export type JobCommand = "backup" | "restore" | "verify" | "prune" | "cleanup" | "drill";
export type ReportMode = "tty" | "lines" | "json";
export type RetryInfo = Parameters<NonNullable<RetryOptions["onRetry"]>>[0];

export interface Job {
  command: JobCommand;
  task: string;
  dataset: string;
  level?: number;
  /** The store of a task with several (config/stores.ts): events carry it, lines name it. */
  store?: string;
}

export interface ReporterOptions {
  job: Job;
  mode: ReportMode;
  /** false with --quiet: no progress lines or events. */
  progress: boolean;
  /** Between two progress lines (lines) or events (json). */
  intervalMs: number;
  /** Monotonic milliseconds (tests inject one). */
  clock?: () => number;
  stdout?: (s: string) => void;
  stderr?: (s: string) => void;
}

/** One line per retry: what, why, attempt k of n, when the next try comes. */
export function retryLine(i: RetryInfo): string {
  return `${i.what}: attempt ${i.attempt} of ${i.maxAttempts} failed: ${i.error}; next try in ${(i.delayMs / 1000).toFixed(1)} s`;
}

export function logRetry(i: RetryInfo): void {
  log.warn(retryLine(i));
}

const VERB: Record<JobCommand, string> = { backup: "to send", restore: "to receive", verify: "to check", prune: "to delete", cleanup: "to delete", drill: "to receive" };

/** The mode for these flags and this stderr. */
export function reportMode(json: boolean, stderrIsTTY: boolean): ReportMode {
  return json ? "json" : stderrIsTTY ? "tty" : "lines";
}

export class Reporter implements TransferProgress {
  private readonly clock: () => number;
  private readonly out: (s: string) => void;
  private readonly err: (s: string) => void;
  private readonly t0: number;
  private rate = new RateWindow();
  private start_: TransferStart | null = null;
  private done = 0;
  private partsDone = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastPrint = 0;
  private shown = false;
  /** The child of a recursive task being worked on: events carry its dataset, lines its name. */
  private current: { rel: string; dataset: string } | null = null;

  constructor(private readonly o: ReporterOptions) {
    this.clock = o.clock ?? (() => performance.now());
    this.out = o.stdout ?? ((s) => process.stdout.write(s));
    this.err = o.stderr ?? ((s) => process.stderr.write(s));
    this.t0 = this.clock();
  }

  /** Bytes done in the current transfer (for metrics). */
  get bytesDone(): number {
    return this.done;
  }

  private label(): string {
    const j = this.o.job;
    const level = this.start_?.level ?? j.level;
    const child = this.current ? ` ${this.current.rel === "" ? "." : this.current.rel}` : "";
    return `${j.command} ${j.task}${child}${level !== undefined ? ` level ${level}` : ""}${j.store ? ` (store ${j.store})` : ""}`;
  }

  private event(name: string, fields: Record<string, unknown>): void {
    if (this.o.mode !== "json") return;
    const j = this.o.job;
    const dataset = this.current?.dataset ?? j.dataset;
    this.out(JSON.stringify({ event: name, time: now().toISOString(), command: j.command, task: j.task, dataset, ...(j.store ? { store: j.store } : {}), ...fields }) + "\n");
  }

  facts(): ProgressFacts {
    const s = this.start_;
    const rate = this.rate.rate();
    const expected = s?.bytesExpected ?? null;
    return {
      bytesDone: this.done,
      bytesExpected: expected,
      estimated: !!s?.estimate,
      rate,
      etaSeconds: etaSeconds(this.done, expected, rate),
      partsDone: this.partsDone,
      parts: s?.parts ?? null,
      elapsedSeconds: (this.clock() - this.t0) / 1000,
      ...(this.limit ? { limit: this.limit.current() } : {}),
    };
  }

  private limit: LimitView | undefined;
  /** The run's bandwidth limiter (cli/common.ts): progress lines and events show the limit in force. */
  setLimit(l: LimitView): void {
    this.limit = l;
  }

  /** The schedule moved the limit during the run (s3.bandwidth_schedule, --bwlimit): one line, one `limit` event. */
  limitChanged(rate: number | null): void {
    if (this.o.mode !== "json") log.info(`bandwidth limit now ${formatLimit(rate)} (by the schedule)`);
    this.event("limit", { limit: rate });
  }

  start(t: TransferStart): void {
    this.start_ = t;
    this.done = t.bytesDone ?? 0;
    this.partsDone = t.partsDone ?? 0;
    this.rate = new RateWindow();
    this.rate.add(this.clock(), this.done);
    const { level, backupId, snapshot, bytesExpected, estimate, parts, partsDone } = t;
    this.event("start", { level, backupId, snapshot, bytesExpected, estimate: estimate ?? null, parts, partsDone: partsDone ?? 0, bytesDone: this.done });
    if (this.o.mode !== "json" && this.o.progress) {
      const size = bytesExpected === null ? "size unknown" : `${estimate ? "about " : ""}${formatSize(bytesExpected)} ${VERB[this.o.job.command]}${estimate ? ` (estimate: ${estimate})` : ""}`;
      log.info(`${this.label()}: ${size}${parts !== null ? `, ${estimate ? "~" : ""}${parts} part(s)` : ""}${backupId ? `, backup ${backupId}` : ""}`);
    }
    this.timer ??= setInterval(() => this.tick(), 1000);
    this.timer.unref?.();
    this.lastPrint = this.clock();
    if (this.o.mode === "tty" && this.o.progress) setLiveLine({ clear: () => this.clearLine(), redraw: () => this.drawLine() });
  }

  bytes(done: number): void {
    this.done = done;
  }

  part(p: PartDone): void {
    this.partsDone++;
    this.event("part", { backupId: p.backupId, index: p.index, bytes: p.bytes, ...(p.ok !== undefined ? { ok: p.ok } : {}), partsDone: this.partsDone, parts: this.start_?.parts ?? null });
  }

  retry(i: RetryInfo): void {
    logRetry(i);
    this.event("retry", { what: i.what, error: i.error, attempt: i.attempt, maxAttempts: i.maxAttempts, delaySeconds: i.delayMs / 1000 });
  }

  /** Sample the rate; redraw the terminal line; print a line or event when the interval is over. */
  tick(): void {
    if (!this.start_) return;
    const t = this.clock();
    this.rate.add(t, this.done);
    if (!this.o.progress) return;
    if (this.o.mode === "tty") return this.drawLine();
    if (t - this.lastPrint < this.o.intervalMs) return;
    this.lastPrint = t;
    const f = this.facts();
    if (this.o.mode === "lines") log.info(`${this.label()}: ${progressLine(f)}`);
    else
      this.event("progress", {
        ...f,
        rate: f.rate === null ? null : Math.round(f.rate),
        etaSeconds: f.etaSeconds === null ? null : Math.ceil(f.etaSeconds),
        elapsedSeconds: Math.round(f.elapsedSeconds * 10) / 10,
      });
  }

  private drawLine(): void {
    if (!this.start_) return;
    const cols = process.stderr.columns || 100;
    const line = printable(`${this.label()}: ${progressLine(this.facts())}`).slice(0, cols - 1);
    this.err(`\r\x1b[K${line}`);
    this.shown = true;
  }

  private clearLine(): void {
    if (this.shown) this.err("\r\x1b[K");
    this.shown = false;
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    setLiveLine(null);
    this.clearLine();
  }

  /** A recursive task's run turns to one of its children: a `child` event, then its own start … part events. */
  child(c: { rel: string; dataset: string; level?: number; note?: string }): void {
    this.stop();
    this.start_ = null;
    this.current = { rel: c.rel, dataset: c.dataset };
    this.event("child", { child: c.rel, ...(c.level !== undefined ? { level: c.level } : {}), ...(c.note ? { note: c.note } : {}) });
  }

  /** A child is done (or skipped, or failed): a `child-done` event with its outcome; the run goes on. */
  childDone(o: { rel: string; dataset: string; status: string; exitCode: number; message?: string; seconds: number; result?: unknown }): void {
    this.stop();
    this.current = { rel: o.rel, dataset: o.dataset };
    const { rel, dataset: _d, ...rest } = o;
    this.event("child-done", { child: rel, ...rest });
    this.current = null;
    this.start_ = null;
  }

  /** The run succeeded: its result (what --json printed before events existed) ends the stream. */
  finish(result: unknown, seconds: number, bytes = this.done): void {
    this.stop();
    this.current = null;
    this.event("done", { exitCode: ExitCode.OK, seconds, bytes, result });
  }

  /** The run failed (the error line itself is main.ts's). */
  fail(err: unknown, seconds: number, result?: unknown, bytes = this.done): void {
    this.stop();
    this.current = null;
    const exitCode = err instanceof ZrbError ? err.exitCode : ExitCode.FAILURE;
    const message = printable((err as Error)?.message ?? String(err));
    this.event("error", { exitCode, message, seconds, bytes, ...(result !== undefined ? { result } : {}) });
  }
}
