/**
 * Running the bench's commands: each in its own process group (setsid) so Ctrl-C stops it and
 * everything it started, timed, with its CPU (wait4's rusage, children included) and, through
 * GNU time, the peak RSS of its largest single process. Also the scratch directory's cleanup.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

export const MB = 1e6;
export const MiB = 1 << 20;

/** One measurement of one row. */
export interface Sample {
  mbs: number;
  seconds: number;
  cpu: number;
  rssMiB: number;
  check?: string;
  note?: string;
  error?: string;
}

/** Process groups (setsid) of the commands running now. */
const live = new Set<number>();
const cleanups: (() => void)[] = [];
let cleaned = false;
let rssDir = "/tmp";

/** Where GNU time's small result files go (the scratch directory). */
export function setRssDir(dir: string): void {
  rssDir = dir;
}

/** Run `fn` at cleanup (after the live commands are stopped), in reverse order of registration. */
export function atCleanup(fn: () => void): void {
  cleanups.unshift(fn);
}

export function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const pgid of live) {
    try {
      process.kill(-pgid, "SIGTERM");
    } catch {}
  }
  for (const fn of cleanups) {
    try {
      fn();
    } catch {}
  }
}

const GNU_TIME = "/usr/bin/time";
const haveTime = existsSync(GNU_TIME);

export interface RunResult {
  code: number;
  out: string;
  err: string;
  seconds: number;
  cpu: number;
  maxRssMiB: number;
}

export async function run(cmd: string[], opts: { stdout?: "pipe" | "ignore"; measure?: boolean; env?: Record<string, string> } = {}): Promise<RunResult> {
  // setsid: the command and everything it starts form one process group, killed together on Ctrl-C.
  // GNU time forks the command from its own small process: wait4's max RSS is then the command's own
  // (a process Bun spawns directly inherits Bun's RSS as its ru_maxrss through vfork + exec).
  const rssFile = join(rssDir, `rss-${process.pid}-${live.size}.txt`);
  const timed = opts.measure && haveTime;
  const argv = ["setsid", ...(timed ? [GNU_TIME, "-o", rssFile, "-f", "%M"] : []), ...cmd];
  const t0 = performance.now();
  const p = Bun.spawn(argv, { stdout: opts.stdout ?? "ignore", stderr: "pipe", env: { ...process.env, ...opts.env } });
  live.add(p.pid);
  const [out, err, code] = await Promise.all([
    opts.stdout === "pipe" ? new Response(p.stdout as ReadableStream).text() : Promise.resolve(""),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  const seconds = (performance.now() - t0) / 1000;
  live.delete(p.pid);
  const ru = p.resourceUsage();
  let maxRssMiB = NaN;
  if (timed && existsSync(rssFile)) {
    const kib = Number(/(\d+)\s*$/.exec(readFileSync(rssFile, "utf8"))?.[1]);
    rmSync(rssFile, { force: true });
    maxRssMiB = kib / 1024;
  }
  // wait4's rusage: CPU of the process and of every descendant it reaped.
  return { code, out, err, seconds, cpu: ru ? Number(ru.cpuTime.total) / 1e6 : NaN, maxRssMiB };
}

/** A bash script over `bytes` bytes (set -euo pipefail), as one sample. */
export async function sh(script: string, bytes: number, env: Record<string, string> = {}): Promise<Sample> {
  const r = await run(["bash", "-c", `set -euo pipefail; ${script}`], { measure: true, env });
  if (r.code !== 0) return failed(`exit ${r.code}: ${firstLine(r.err)}`);
  return { mbs: bytes / MB / r.seconds, seconds: r.seconds, cpu: r.cpu, rssMiB: r.maxRssMiB };
}

export function failed(error: string): Sample {
  return { mbs: NaN, seconds: NaN, cpu: NaN, rssMiB: NaN, error };
}

export function firstLine(s: string): string {
  const lines = s.split("\n").map((l) => l.trim()).filter(Boolean);
  return (lines.find((l) => /error|Error|cannot|failed/.test(l)) ?? lines[0] ?? "").slice(0, 200);
}

/** Shell-quote one word. */
export const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export const loadAvg = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0]!;

/**
 * KiB of free memory this VM's kernel has handed back to its host so far (virtio free page
 * reporting), or null where the kernel does not say. Memory handed back is taken again from
 * the host when touched, and that costs the kernel several seconds per GiB (docs/bench.md,
 * "Fresh memory on this VM"): a row pays for whatever memory it needs that was not in use just
 * before it.
 */
export function reportedKiB(): number | null {
  try {
    return Number(readFileSync("/sys/module/page_reporting/parameters/reported_kib", "utf8").trim());
  } catch {
    return null;
  }
}
