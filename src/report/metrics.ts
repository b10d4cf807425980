/**
 * Prometheus textfile-collector metrics (monitoring.metrics_file), so that an alert fires when
 * backups stop. After every backup, restore, verify and prune, `recordRun` reads the file,
 * replaces the series of that command and dataset, and rewrites the file atomically (temp file,
 * fsync, rename: node_exporter never reads half a file), under a lock so that runs of other
 * datasets writing the same file at the same time do not lose each other's series.
 *
 * Per command C (backup, restore, verify, prune, cleanup, drill) and labels {task, pool, dataset[, level][, store]}:
 *   zrb_C_last_run_timestamp_seconds      when the last run ended (Unix seconds)
 *   zrb_C_last_success_timestamp_seconds  when the last successful run ended (kept through failures)
 *   zrb_C_last_duration_seconds, zrb_C_last_bytes, zrb_C_last_exit_code   of the last run
 *   zrb_drill_duration_seconds, zrb_drill_restore_seconds, zrb_drill_files_compared,
 *   zrb_drill_files_differ                                                    of the last drill
 * docs/monitoring.md has an alert rule on them. Writing the file never fails a run: a problem is
 * one warning line.
 *
 * zrb runs as root and the textfile directory is often shared with other services, so nothing
 * in it is trusted (issue 20: root followed symlinks planted there, overwrote a root-only file
 * and copied its lines into the world-readable .prom):
 *   - a directory that users other than its owner can write without the sticky bit is refused
 *     before the run starts (exit 9, naming it; `zrb check` too): anyone could swap its entries;
 *   - the new file is written through an O_EXCL | O_NOFOLLOW temp file and renamed over the old
 *     one (state/atomic.ts), which replaces a planted link instead of following it;
 *   - the old file is read (its other series kept) only when it is what zrb wrote: a regular
 *     file of this user with one link, opened O_NOFOLLOW; anything else is replaced unread;
 *   - the lock file is opened O_NOFOLLOW and must be a regular file.
 */
import { closeSync, constants as C, existsSync, fstatSync, openSync, readFileSync, statSync, type Stats } from "node:fs";
import { dirname } from "node:path";
import { writeFileAtomic } from "../state/atomic.ts";
import { flockExclusive, flockRelease } from "../state/flock.ts";
import { now } from "../util/clock.ts";
import { ioError } from "../util/errors.ts";
import { log } from "../util/log.ts";

export type MetricsCommand = "backup" | "prune" | "cleanup" | "verify" | "restore" | "drill";

export interface RunRecord {
  command: MetricsCommand;
  task: string;
  pool: string;
  dataset: string;
  level?: number;
  /** The store of a task with several (absent for the one store of an s3 section: its series keep their labels). */
  store?: string;
  ok: boolean;
  exitCode: number;
  seconds: number;
  bytes: number;
  /**
   * The command's own gauges, written as zrb_<command>_<name> (drill: duration_seconds,
   * restore_seconds, files_compared, files_differ); kept, like the success time, from the last run that had them.
   */
  extra?: Record<string, number>;
  /** When the run ended (default: now()). */
  at?: Date;
}

interface Sample {
  name: string;
  labels: [string, string][];
  value: string;
}

const HELP: Record<string, string> = {
  last_run_timestamp_seconds: "when the last run ended, in Unix seconds",
  last_success_timestamp_seconds: "when the last successful run ended, in Unix seconds",
  last_duration_seconds: "how long the last run took",
  last_bytes: "bytes the last run moved (backup: the send stream; restore: received; verify: checked; prune and cleanup: deleted)",
  last_exit_code: "exit code of the last run (0 = ok; see zrb --help)",
  duration_seconds: "how long the last drill took, restore and comparison",
  restore_seconds: "how long the last drill's restore took, without the comparison (zrb plan's restore rate)",
  files_compared: "paths the last drill compared with the source snapshot (0: no source on this host)",
  files_differ: "paths of the last drill that differ from the source snapshot",
};

const NAME_RE = /^zrb_(backup|restore|verify|prune|drill)_(last_[a-z_]+|duration_seconds|restore_seconds|files_compared|files_differ)$/;
const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

const unescape = (v: string) => v.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    const m = SAMPLE_RE.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(LABEL_RE)].map((x) => [x[1]!, unescape(x[2]!)] as [string, string]);
    out.push({ name: m[1]!, labels, value: m[3]! });
  }
  return out;
}

const keyOf = (s: Pick<Sample, "name" | "labels">) => `${s.name}{${s.labels.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")}}`;

function render(samples: Sample[]): string {
  const byName = new Map<string, Sample[]>();
  for (const s of samples) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
  const lines: string[] = [];
  for (const name of [...byName.keys()].sort()) {
    const m = NAME_RE.exec(name);
    const help = m && HELP[m[2]!];
    if (help) lines.push(`# HELP ${name} zrb ${m![1]}: ${help}.`, `# TYPE ${name} gauge`);
    for (const s of byName.get(name)!.sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1)))
      lines.push(`${name}${s.labels.length ? `{${s.labels.map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}` : ""} ${s.value}`);
  }
  return lines.join("\n") + "\n";
}

/** The file's text with this run's series replaced (the success time kept when the run failed). */
export function updateMetrics(existing: string, r: RunRecord): string {
  const labels: [string, string][] = [
    ["task", r.task],
    ["pool", r.pool],
    ["dataset", r.dataset],
    ...(r.level !== undefined ? [["level", String(r.level)] as [string, string]] : []),
    ...(r.store !== undefined ? [["store", r.store] as [string, string]] : []),
  ];
  const at = (r.at ?? now()).getTime() / 1000;
  const values: Record<string, string> = {
    last_run_timestamp_seconds: at.toFixed(3),
    last_duration_seconds: r.seconds.toFixed(3),
    last_bytes: String(Math.round(r.bytes)),
    last_exit_code: String(r.exitCode),
    ...(r.ok ? { last_success_timestamp_seconds: at.toFixed(3) } : {}),
    ...Object.fromEntries(Object.entries(r.extra ?? {}).map(([k, v]) => [k, Number.isInteger(v) ? String(v) : v.toFixed(3)])),
  };
  const samples = new Map(parseSamples(existing).map((s) => [keyOf(s), s]));
  for (const [suffix, value] of Object.entries(values)) {
    const s = { name: `zrb_${r.command}_${suffix}`, labels, value };
    samples.set(keyOf(s), s);
  }
  return render([...samples.values()]);
}

const uid = () => process.geteuid?.() ?? 0;
const fmtMode = (m: number) => "0" + (m & 0o7777).toString(8);

/** Why the metrics file's directory is not safe to write as root, or undefined (also when it does not exist: a warning later). */
export function metricsDirProblem(file: string): string | undefined {
  const dir = dirname(file);
  let st: Stats;
  try {
    st = statSync(dir);
  } catch {
    return undefined;
  }
  if (!st.isDirectory()) return `${dir} is not a directory`;
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0)
    return `directory ${dir} is writable by other users (mode ${fmtMode(st.mode)}) without the sticky bit, so they could replace or plant the files zrb writes there; run: chmod go-w ${dir} (or chmod +t ${dir})`;
  return undefined;
}

/** Refuse (exit 9) a run whose monitoring.metrics_file lies in a directory others can tamper with. */
export function assertSafeMetricsFile(file: string | undefined): void {
  const why = file && metricsDirProblem(file);
  if (why) throw ioError(`monitoring.metrics_file ${file}: ${why}`);
}

/** The old file's text, if it is one zrb wrote (see the header); "" when missing or not ours (then replaced unread). */
function readOwn(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ENOENT") return "";
    if (code === "ELOOP") {
      log.warn(`metrics: ${file} is a symbolic link, not the file zrb wrote: replaced, not followed`);
      return "";
    }
    throw err;
  }
  try {
    const st = fstatSync(fd);
    const why = !st.isFile() ? "not a regular file" : st.uid !== uid() ? `owned by uid ${st.uid}, not ${uid()}` : st.nlink !== 1 ? `a file with ${st.nlink} links` : undefined;
    if (why) {
      log.warn(`metrics: ${file} is ${why}, not the file zrb wrote: replaced unread`);
      return "";
    }
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

/** Run `fn` holding an exclusive flock on `<file>.lock` (waiting up to 10 s for another run). */
function locked<T>(file: string, fn: () => T): T {
  let fd: number;
  try {
    fd = openSync(`${file}.lock`, C.O_RDWR | C.O_CREAT | C.O_NOFOLLOW | C.O_NONBLOCK, 0o600);
  } catch (err) {
    if ((err as { code?: string }).code === "ELOOP") throw ioError(`${file}.lock is a symbolic link, which zrb does not follow; remove it`);
    throw err;
  }
  try {
    if (!fstatSync(fd).isFile()) throw ioError(`${file}.lock is not a regular file; remove it`);
    for (const until = Date.now() + 10_000; !flockExclusive(fd); ) {
      if (Date.now() > until) throw ioError(`${file}.lock is held by another run for more than 10 s`);
      Bun.sleepSync(50);
    }
    try {
      return fn();
    } finally {
      flockRelease(fd);
    }
  } finally {
    closeSync(fd);
  }
}

/** Record one run in the metrics file, if there is one. Never throws: a problem is one warning. */
export function recordRun(file: string | undefined, r: RunRecord): void {
  recordRuns(file, [r]);
}

/** Record several runs (the children of a recursive task) with one rewrite of the file. */
export function recordRuns(file: string | undefined, rs: RunRecord[]): void {
  if (!file || rs.length === 0) return;
  try {
    if (!existsSync(dirname(file))) throw ioError(`directory ${dirname(file)} does not exist; create it (node_exporter's --collector.textfile.directory)`);
    const unsafe = metricsDirProblem(file);
    if (unsafe) throw ioError(unsafe);
    locked(file, () => {
      const existing = readOwn(file);
      // 0644: node_exporter reads it as another user.
      writeFileAtomic(file, rs.reduce(updateMetrics, existing), 0o644);
    });
  } catch (err) {
    log.warn(`metrics: cannot update ${file}: ${(err as Error).message}; the run's result stands`);
  }
}

/** The rate of one past transfer, read back from the metrics file (for `zrb plan`'s restore time). */
export interface MeasuredRate {
  command: "restore" | "verify" | "drill";
  task: string;
  dataset: string;
  bytesPerSecond: number;
  /** When that run ended. */
  at: Date;
}

/**
 * The newest successful restore, verify or drill in `text` (a metrics file) that moved bytes:
 * of `task` when it has one, else of any task (the uplink is the same). A drill's rate is its
 * bytes over its restore alone (zrb_drill_restore_seconds), not over the comparison after it.
 * Null when there is none.
 */
export function lastTransferRate(text: string, task: string): MeasuredRate | null {
  type Run = { command: MeasuredRate["command"]; task: string; dataset: string; v: Record<string, number> };
  const runs = new Map<string, Run>();
  for (const s of parseSamples(text)) {
    const m = /^zrb_(restore|verify|drill)_(last_[a-z_]+|restore_seconds)$/.exec(s.name);
    if (!m) continue;
    const labels = Object.fromEntries(s.labels);
    const key = `${m[1]}|${s.labels.map(([k, v]) => `${k}=${v}`).join(",")}`;
    const r: Run = runs.get(key) ?? { command: m[1] as Run["command"], task: labels.task ?? "", dataset: `${labels.pool ?? ""}/${labels.dataset ?? ""}`.replace(/\/$/, ""), v: {} };
    r.v[m[2]!] = Number(s.value);
    runs.set(key, r);
  }
  const seconds = (r: Run) => (r.command === "drill" ? r.v.restore_seconds : r.v.last_duration_seconds) ?? 0;
  const ok = [...runs.values()]
    .filter((r) => r.v.last_exit_code === 0 && (r.v.last_bytes ?? 0) > 0 && seconds(r) > 0 && Number.isFinite(r.v.last_run_timestamp_seconds))
    .sort((a, b) => Number(a.task === task) - Number(b.task === task) || a.v.last_run_timestamp_seconds! - b.v.last_run_timestamp_seconds!);
  const r = ok.at(-1);
  if (!r) return null;
  return { command: r.command, task: r.task, dataset: r.dataset, bytesPerSecond: r.v.last_bytes! / seconds(r), at: new Date(r.v.last_run_timestamp_seconds! * 1000) };
}

/** lastTransferRate of the metrics file at `file`; null when there is no file or nothing in it. */
export function readTransferRate(file: string | undefined, task: string): MeasuredRate | null {
  if (!file || !existsSync(file)) return null;
  try {
    return lastTransferRate(readFileSync(file, "utf8"), task);
  } catch {
    return null;
  }
}
