/**
 * Property test of the command line, through the compiled binary: random argument vectors
 * (random subsets of the real flags of every command, read from the command definitions,
 * plus typos, missing values, aliases, `--flag=value`, garbage and unknown commands) and
 * random YAML config files (a valid config mutated: keys dropped, retyped, misspelt, values
 * out of range, raw garbage, empty files, directories). Every run must end with exit code
 * 0..9, 130 or 143, and either succeed or print exactly one `zrb: error:` line — never an
 * "internal error", never a stack trace.
 *
 *   ZRB_FUZZ_RUNS  argument vectors (default 120); configs are half as many. ZRB_FUZZ_SEED.
 *
 * Nothing here can touch real data: pools are random names that do not exist, the S3
 * endpoint is a local server that answers 403 to everything, files go to a temp dir (cwd).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import type { Server } from "bun";
import { run, tmpDir } from "../helpers/rig.ts";
import { ensureBinary, zrbCommand } from "../helpers/zrb.ts";
import { prng } from "../helpers/faultproxy.ts";

const RUNS = Number(process.env.ZRB_FUZZ_RUNS || 120);
const SEED = Number(process.env.ZRB_FUZZ_SEED || 7);
const ALLOWED = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130, 143]);

let work: string;
let recipient: string;
let s3: Server<unknown>;
let configs: string[] = [];
type Flags = Record<string, { type?: string; alias?: string | string[] }>;
let commands: Record<string, Flags> = {};

const FORBIDDEN = /zrb: internal error|^\s+at .+[(:]\d+|\bat (async )?[A-Za-z_$.<>]+ \(|TypeError|ReferenceError|RangeError|SyntaxError: |undefined is not|Cannot read propert/m;

beforeAll(async () => {
  await ensureBinary();
  work = tmpDir("zrb-cli-fuzz-");
  const key = join(work, "key.txt");
  await run(["age-keygen", "-o", key]);
  recipient = (await run(["age-keygen", "-y", key])).stdout.trim();
  s3 = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () =>
      new Response(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`, {
        status: 403,
        headers: { "content-type": "application/xml" },
      }),
  });
  // The real flags of every command, from the command definitions the binary is built from.
  const mods: Record<string, string> = {
    genkey: "genkey",
    snapshot: "snapshot",
    backup: "backup",
    restore: "restore",
    verify: "verify",
    drill: "drill",
    list: "list",
    find: "find",
    check: "check",
    cleanup: "cleanup",
    prune: "prune",
  };
  for (const [name, file] of Object.entries(mods)) {
    const def = (await import(`../../src/cli/${file}.ts`)).default;
    commands[name] = ((typeof def.args === "function" ? await def.args() : def.args) ?? {}) as Flags;
  }
  configs = Array.from({ length: Math.max(8, Math.floor(RUNS / 2)) }, (_, i) => makeConfig(prng(SEED * 7919 + i), i));
}, 120_000);

afterAll(() => {
  s3?.stop(true);
  if (work) rmSync(work, { recursive: true, force: true });
}, 30_000);

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

function garbage(r: () => number): string {
  return pick(r, [
    "",
    " ",
    "-",
    "--",
    "---",
    "-1",
    "1.5",
    "1e3",
    "0x10",
    "NaN",
    "99999999999999999999",
    "∞",
    "é\u0301",
    "\u0001\u007f",
    "a b",
    "'",
    '"',
    "${HOME}",
    "$(id)",
    "../../..",
    "%s%n",
    "{}",
    "[1,2]",
    "null",
    "true",
    "x".repeat(5000),
    "zrb_level1_",
    "nopool/ds@snap",
  ]);
}

function typo(r: () => number, s: string): string {
  if (s.length < 2) return s + "x";
  const i = Math.floor(r() * (s.length - 1));
  switch (Math.floor(r() * 3)) {
    case 0:
      return s.slice(0, i) + s.slice(i + 1);
    case 1:
      return s.slice(0, i) + s[i + 1] + s[i] + s.slice(i + 2);
    default:
      return s.slice(0, i) + "q" + s.slice(i);
  }
}

/** A valid config, then mutated (or replaced by garbage): returns its path. */
function makeConfig(r: () => number, i: number): string {
  const path = join(work, `cfg-${i}.yaml`);
  const roll = r();
  if (roll < 0.04) {
    mkdirSync(path, { recursive: true }); // a directory
    return path;
  }
  if (roll < 0.08) {
    writeFileSync(path, "");
    return path;
  }
  if (roll < 0.14) {
    const bytes = new Uint8Array(Math.floor(r() * 400));
    for (let k = 0; k < bytes.length; k++) bytes[k] = Math.floor(r() * 256);
    writeFileSync(path, bytes);
    return path;
  }
  const doc: any = {
    base_dir: join(work, `base-${i}`),
    age_public_key: recipient,
    chunk_size: "1MiB",
    workers: 2,
    s3: {
      enabled: r() < 0.7,
      bucket: "fuzz",
      prefix: "zrb/",
      region: "us-east-1",
      endpoint: `http://127.0.0.1:${s3.port}`,
      storage_class: { manifest: "STANDARD", backup_data: ["STANDARD"] },
      retry: { max_attempts: 1 + Math.floor(r() * 3) },
    },
    local_store: join(work, `store-${i}`),
    tasks: [{ name: "t", pool: `nopool${i}`, dataset: "ds", enabled: r() < 0.8 }],
  };
  const paths: string[][] = [
    ["base_dir"], ["age_public_key"], ["chunk_size"], ["workers"], ["s3"], ["s3", "enabled"], ["s3", "bucket"], ["s3", "prefix"],
    ["s3", "region"], ["s3", "storage_class"], ["s3", "storage_class", "backup_data"], ["s3", "retry"], ["s3", "retry", "max_attempts"],
    ["tasks"], ["tasks", "0"], ["tasks", "0", "name"], ["tasks", "0", "pool"], ["tasks", "0", "dataset"], ["tasks", "0", "enabled"], ["local_store"],
  ];
  const values = () =>
    pick(r, [null, -1, 0, 1.5, 2 ** 60, "", "abc", "-5GiB", "3 GiB", "0B", "1KiB", true, [], ["x"], {}, { a: 1 }, garbage(r), "age1qqqq", "AGE-SECRET-KEY-1XYZ", "s3"]);
  const n = r() < 0.25 ? 0 : 1 + Math.floor(r() * 3); // a quarter stay valid: runs get past config loading
  for (let k = 0; k < n; k++) {
    const p = pick(r, paths);
    let o = doc;
    for (const seg of p.slice(0, -1)) o = o?.[seg];
    if (!o || typeof o !== "object") continue;
    const last = p[p.length - 1]!;
    const op = r();
    if (op < 0.3) delete o[last];
    else if (op < 0.75) o[last] = values();
    else {
      o[typo(r, last)] = o[last]; // a misspelt key
      delete o[last];
    }
  }
  if (r() < 0.2) doc[pick(r, ["aws_secret_access_key", "bucket", "retries", "task", "x-extra"])] = "whatever";
  let text = YAML.stringify(doc);
  if (r() < 0.1) text = text.slice(0, Math.floor(r() * text.length)); // truncated
  if (r() < 0.05) text = text.replace(/: /, ":\t[");
  writeFileSync(path, text);
  return path;
}

function argv(r: () => number): string[] {
  const roll = r();
  if (roll < 0.05) return [];
  if (roll < 0.1) return [garbage(r)];
  if (roll < 0.15) return [typo(r, pick(r, Object.keys(commands)))];
  if (roll < 0.18) return [pick(r, ["--help", "-h", "help", "--version", "-V", "version"])];
  const name = pick(r, Object.keys(commands));
  const flags = commands[name]!;
  const out: string[] = [name];
  const value = (flag: string): string => {
    if (flag === "config") return r() < 0.8 ? pick(r, configs) : pick(r, [join(work, "nope.yaml"), garbage(r), "/"]);
    if (flag === "task") return r() < 0.7 ? "t" : pick(r, ["T", "tt", garbage(r)]);
    if (flag === "level") return pick(r, ["0", "1", "2", "9", "10", "99", "100", "-1", "1.5", "one", ""]);
    if (flag === "out-dir") return pick(r, ["keys", "k/sub", ""]); // relative: inside the temp cwd
    if (flag === "private-key") return pick(r, [join(work, "key.txt"), join(work, "nope"), "", "/"]);
    if (flag === "target") return pick(r, ["nopool/restored", "bad@name", "", "nopool"]);
    if (flag === "older-than") return pick(r, ["24h", "7d", "0s", "soon", "-1h", ""]);
    return r() < 0.6 ? String(Math.floor(r() * 5)) : garbage(r);
  };
  const names = Object.keys(flags);
  const count = Math.floor(r() * (names.length + 2));
  for (let k = 0; k < count; k++) {
    const f = pick(r, names);
    const def = flags[f]!;
    const alias = [def.alias ?? []].flat()[0];
    const form = r();
    const spelled = form < 0.1 ? typo(r, f) : f;
    const flag = alias && form > 0.85 ? `-${alias}` : `--${spelled}`;
    if (def.type === "boolean") out.push(r() < 0.1 ? `--no-${f}` : r() < 0.05 ? `${flag}=${pick(r, ["true", "false", "x"])}` : flag);
    else if (r() < 0.08) out.push(flag); // missing value
    else if (r() < 0.25) out.push(`${flag}=${value(f)}`);
    else out.push(flag, value(f));
  }
  if (r() < 0.1) out.splice(1 + Math.floor(r() * out.length), 0, garbage(r)); // stray positional
  // Mostly well-formed: a config and a task, so runs get past the flag parser.
  if (r() < 0.6 && !out.includes("--config") && "config" in flags) out.push("--config", pick(r, configs));
  if (r() < 0.6 && !out.includes("--task") && "task" in flags) out.push("--task", "t");
  if (name === "genkey" && !out.some((a) => a.startsWith("--out-dir"))) out.push("--out-dir", `keys-${Math.floor(r() * 1e9)}`);
  return out;
}

async function runOne(args: string[]): Promise<{ args: string[]; code: number | null; stderr: string; problem?: string }> {
  const p = Bun.spawn([...zrbCommand(), ...args], {
    cwd: work,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, AWS_ACCESS_KEY_ID: "FUZZ", AWS_SECRET_ACCESS_KEY: "FUZZ", AWS_EC2_METADATA_DISABLED: "true", ZRB_DEBUG: "" },
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const [, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  const errLines = stderr.split("\n").filter((l) => l.startsWith("zrb: "));
  let problem: string | undefined;
  if (!ALLOWED.has(code)) problem = `exit code ${code}`;
  else if (FORBIDDEN.test(stderr)) problem = "internal error or stack trace";
  else if (code !== 0 && (errLines.length !== 1 || !errLines[0]!.startsWith("zrb: error: "))) problem = `${errLines.length} zrb: lines on failure`;
  else if (code === 0 && errLines.some((l) => l.startsWith("zrb: error"))) problem = "an error line on success";
  return { args, code, stderr, problem };
}

async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

test(`random argument vectors (${RUNS}) and random configs: a clean error or success, never a stack trace`, async () => {
  const r = prng(SEED);
  const vectors: string[][] = [];
  for (let i = 0; i < RUNS; i++) vectors.push(argv(r));
  // Every config through the commands that read it.
  for (const c of configs) {
    vectors.push(["check", "--config", c]);
    const cmd = pick(r, ["backup", "cleanup", "list", "prune"]);
    vectors.push([cmd, "--config", c, "--task", "t", ...(r() < 0.7 ? (cmd === "prune" ? ["--keep-last", "1"] : ["--level", "0"]) : [])]);
  }
  const results = await pool(vectors, 4, runOne);
  const bad = results.filter((x) => x.problem).map((x) => `${x.problem}: zrb ${x.args.map((a) => JSON.stringify(a)).join(" ")}\n${x.stderr}`);
  const codes: Record<string, number> = {};
  for (const x of results) codes[String(x.code)] = (codes[String(x.code)] ?? 0) + 1;
  if (process.env.ZRB_FUZZ_SHOW) for (const m of new Set(results.map((x) => x.stderr.split("\n").find((l) => l.startsWith("zrb: ")) ?? ""))) console.log(m.slice(0, 240));
  console.log(`cli-fuzz: ${results.length} runs (seed ${SEED}), exit codes ${JSON.stringify(codes)}, ${bad.length} bad`);
  expect(bad).toEqual([]);
  // The runs reached beyond the flag parser: configs loaded, commands ran.
  expect(Object.keys(codes).length).toBeGreaterThan(3);
}, 600_000);
