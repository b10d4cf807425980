/**
 * Run the zrb CLI the way users do: the COMPILED binary dist/zrb-linux-x64, so Workers,
 * wasm and native addons are proven inside it. It is (re)built with build.ts when missing
 * or older than its sources (the rule in scripts/stale.ts, shared with build.ts --if-stale).
 * ZRB_TEST_FROM_SOURCE=1 runs `bun src/main.ts` instead (quicker while developing; CI never
 * sets it).
 */
import { join } from "node:path";
import { stringify } from "yaml";
import { binaryStale, ROOT } from "../../scripts/stale.ts";
import { run, type RunResult, type S3Rig } from "./rig.ts";

export const ZRB_BIN = join(ROOT, "dist", "zrb-linux-x64");
const BUN = process.execPath;

/** Build the named targets (linux-x64, linux-x64-baseline, linux-arm64) that are missing or stale. */
export async function ensureTargets(targets: string[]): Promise<void> {
  if (!targets.some((t) => binaryStale(join(ROOT, "dist", `zrb-${t}`)))) return;
  await run([BUN, "run", join(ROOT, "build.ts"), "--if-stale", ...targets.flatMap((t) => ["--target", t])], { cwd: ROOT });
}

let built: Promise<void> | undefined;
export function ensureBinary(): Promise<void> {
  built ??= process.env.ZRB_TEST_FROM_SOURCE === "1" ? Promise.resolve() : ensureTargets(["linux-x64"]);
  return built;
}

export function zrbCommand(): string[] {
  return process.env.ZRB_TEST_FROM_SOURCE === "1" ? [BUN, join(ROOT, "src", "main.ts")] : [ZRB_BIN];
}

/** Second in which the last `zrb snapshot` of this test process started. */
let lastSnapshotSecond = 0;

/**
 * Snapshot names carry the time to the second, so two `zrb snapshot`s of one level in one second
 * would name the same snapshot ("dataset already exists"): a fast machine ran two tests' snapshots
 * that close. Each `zrb snapshot` run through here starts in a later second than the one before.
 */
async function nextSnapshotSecond(): Promise<void> {
  const sec = () => Math.floor(Date.now() / 1000);
  if (sec() <= lastSnapshotSecond) await Bun.sleep((lastSnapshotSecond + 1) * 1000 - Date.now() + 20);
  lastSnapshotSecond = sec();
}

export async function zrb(args: string[], opts: { env?: Record<string, string>; allowFail?: boolean; stdin?: string } = {}): Promise<RunResult> {
  await ensureBinary();
  if (args[0] === "snapshot") await nextSnapshotSecond();
  try {
    return await run([...zrbCommand(), ...args], { ...opts, allowFail: opts.allowFail ?? false });
  } finally {
    if (args[0] === "snapshot") lastSnapshotSecond = Math.floor(Date.now() / 1000);
  }
}

/**
 * SIGTERM a spawned zrb and check it stopped the graceful way: exit 143 with one
 * "interrupted by SIGTERM" line — not by its grace timeout (which would mean it waited on
 * something the signal should have stopped), no internal error. Returns stderr.
 */
export async function sigtermGracefully(p: Awaited<ReturnType<typeof spawnZrb>>): Promise<string> {
  p.kill("SIGTERM");
  const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  const lines = stderr.split("\n").filter((l) => l.startsWith("zrb: "));
  if (code !== 143 || lines.length !== 1 || !lines[0]!.startsWith("zrb: error: interrupted by SIGTERM"))
    throw new Error(`expected a graceful SIGTERM stop (exit 143, one 'zrb: error: interrupted by SIGTERM' line), got exit ${code}:\n${stderr}`);
  return stderr;
}

/** Spawn zrb without waiting (for kill/lock tests). */
export async function spawnZrb(args: string[], env: Record<string, string> = {}) {
  await ensureBinary();
  return Bun.spawn([...zrbCommand(), ...args], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
}

export function s3Env(s3: S3Rig): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region };
}

export interface TestConfigOpts {
  baseDir: string;
  recipients: string[];
  bucket?: string;
  s3?: S3Rig;
  prefix?: string;
  chunkSize?: string;
  workers?: number;
  tasks: { name: string; pool: string; dataset: string; enabled?: boolean }[];
  backupData?: string[];
}

/** A config file as a user writes it. */
export function configYaml(o: TestConfigOpts): string {
  const doc: Record<string, unknown> = {
    base_dir: o.baseDir,
    age_public_key: o.recipients[0],
    ...(o.recipients.length > 1 ? { age_recipients: o.recipients.slice(1) } : {}),
    chunk_size: o.chunkSize ?? "1MiB",
    workers: o.workers ?? 2,
    s3: o.bucket
      ? {
          enabled: true,
          bucket: o.bucket,
          prefix: o.prefix ?? "zrb/",
          region: o.s3!.region,
          endpoint: o.s3!.endpoint,
          storage_class: { manifest: "STANDARD", backup_data: o.backupData ?? ["STANDARD"] },
          retry: { max_attempts: 3 },
        }
      : { enabled: false },
    tasks: o.tasks.map((t) => ({ name: t.name, pool: t.pool, dataset: t.dataset, enabled: t.enabled ?? true })),
  };
  return stringify(doc);
}

/**
 * Run zrb expecting failure: the exit code, exactly one `zrb: ` line on stderr, and each needle
 * in it. Returns that line.
 */
export async function expectZrbFail(args: string[], env: Record<string, string>, code: number, ...needles: string[]): Promise<string> {
  return expectFailed(await zrb(args, { env, allowFail: true }), code, ...needles);
}

/** A finished run failed as expected: the exit code, exactly one `zrb: ` line, each needle in it. Returns that line. */
export async function expectFailed(r: { code: number; stderr: string }, code: number, ...needles: string[]): Promise<string> {
  const { expect } = await import("bun:test");
  if (r.code !== code) console.error(r.stderr);
  expect(r.code).toBe(code);
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("zrb: "));
  expect(lines.length).toBe(1);
  for (const n of needles) expect(lines[0]).toContain(n);
  return lines[0]!;
}

/**
 * The result of a backup, restore or verify run with --json: its stdout is JSON lines (start,
 * progress, part, retry, …) ending with a `done` event (or `error`) that carries the result.
 * Every line must be a JSON object with an `event`; exactly one `done`/`error`, and it is last.
 */
export function jsonResult(stdout: string): any {
  const events = jsonEvents(stdout);
  const last = events.at(-1);
  const ends = events.filter((e) => e.event === "done" || e.event === "error");
  if (!last || ends.length !== 1 || ends[0] !== last) throw new Error(`expected JSON-lines events ending with one done/error event, got:\n${stdout}`);
  return last.result;
}

/** Bytes per second between the start and the done event of a --json run (its done event's `bytes`), and that as a share of `limit`. */
export function measuredRate(stdout: string, limit: number): { rate: number; share: number; bytes: number; seconds: number } {
  const ev = jsonEvents(stdout);
  const start = ev.find((e) => e.event === "start");
  const done = ev.at(-1);
  if (!start || done?.event !== "done") throw new Error(`expected a start and a done event, got:\n${stdout}`);
  const seconds = (Date.parse(done.time) - Date.parse(start.time)) / 1000;
  return { rate: done.bytes / seconds, share: done.bytes / seconds / limit, bytes: done.bytes, seconds };
}

/** The JSON-lines events of a --json run, each checked to be an object with an `event` name and a `time`. */
export function jsonEvents(stdout: string): any[] {
  return stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const e = JSON.parse(l);
      if (typeof e !== "object" || e === null || typeof e.event !== "string" || typeof e.time !== "string") throw new Error(`not an event line: ${l}`);
      return e;
    });
}
