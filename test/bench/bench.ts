/**
 * `bun run bench`: throughput and peak memory of zrb's backup data path on this machine,
 * next to the stock tools measured in the same run on the same bytes. A benchmark, not a
 * test: it prints figures and exits 0 even when a stage fails (the failure is printed).
 *
 *   bun run bench [--size 1GiB] [--chunk-size 256MiB] [--workers 2] [--runs 1] [--dir /var/tmp]
 *   (or ZRB_BENCH_SIZE, ZRB_BENCH_CHUNK_SIZE, ZRB_BENCH_WORKERS, ZRB_BENCH_RUNS, ZRB_BENCH_DIR)
 *
 * The source is a file of incompressible bytes in a scratch directory (removed at the end,
 * also on Ctrl-C), warm in the page cache; the `zfs send`-like stream is `cat <file>`'s stdout.
 * Every zrb stage runs in its own child process (this file with `--stage`), so its peak RSS is
 * the child's own VmHWM. See docs/bench.md for what each line means.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";

const BUF = 1 << 20;
const MB = 1e6;
const MiB = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Options

interface Opts {
  size: number;
  chunkSize: number;
  workers: number;
  runs: number;
  dir: string;
  /** Only the rows whose label matches (the final line needs the pipeline and native rows). */
  only?: RegExp;
}

function parseBytes(v: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$/i.exec(v);
  if (!m) throw new Error(`${what}: cannot parse ${JSON.stringify(v)} (e.g. 512MiB, 2GiB, 1000000)`);
  const unit = (m[2] ?? "B").toUpperCase();
  const pow = { B: 0, K: 1, M: 2, G: 3, T: 4 }[unit[0] as "B" | "K" | "M" | "G" | "T"];
  // KiB/K = 1024, KB = 1000 (as MB/s in the table).
  const base = unit.length === 2 && unit[1] === "B" ? 1000 : 1024;
  const n = Math.round(Number(m[1]) * base ** pow);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${what}: ${v} is not a positive size`);
  return n;
}

function parseOpts(argv: string[]): Opts {
  const env = process.env;
  const o: Opts = {
    size: parseBytes(env.ZRB_BENCH_SIZE ?? "1GiB", "ZRB_BENCH_SIZE"),
    chunkSize: parseBytes(env.ZRB_BENCH_CHUNK_SIZE ?? "256MiB", "ZRB_BENCH_CHUNK_SIZE"),
    workers: Number(env.ZRB_BENCH_WORKERS ?? 2),
    runs: Number(env.ZRB_BENCH_RUNS ?? 1),
    dir: env.ZRB_BENCH_DIR ?? "/var/tmp",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf("=");
    const key = eq > 0 ? a.slice(0, eq) : a;
    const val = () => (eq > 0 ? a.slice(eq + 1) : argv[++i]) ?? usage(`${key} needs a value`);
    switch (key) {
      case "--size":
        o.size = parseBytes(val(), "--size");
        break;
      case "--chunk-size":
      case "--chunk":
        o.chunkSize = parseBytes(val(), "--chunk-size");
        break;
      case "--workers":
        o.workers = Number(val());
        break;
      case "--runs":
        o.runs = Number(val());
        break;
      case "--dir":
        o.dir = val();
        break;
      case "--only":
        o.only = new RegExp(val(), "i");
        break;
      case "-h":
      case "--help":
        console.log(
          "usage: bun run bench [--size 1GiB] [--chunk-size 256MiB] [--workers 2] [--runs 1] [--dir /var/tmp] [--only REGEX]\n" +
            "env: ZRB_BENCH_SIZE ZRB_BENCH_CHUNK_SIZE ZRB_BENCH_WORKERS ZRB_BENCH_RUNS ZRB_BENCH_DIR\n" +
            "See docs/bench.md.",
        );
        process.exit(0);
      default:
        usage(`unknown option ${a}`);
    }
  }
  if (!Number.isInteger(o.workers) || o.workers < 1 || o.workers > 64) usage(`--workers must be 1..64`);
  if (!Number.isInteger(o.runs) || o.runs < 1 || o.runs > 99) usage(`--runs must be 1..99`);
  return o;
}

function usage(msg: string): never {
  console.error(`bench: ${msg} (see --help)`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Child stages: `bun bench.ts --stage <name> <json args>`; the last stdout line is the result.

interface StageArgs {
  src: string;
  chunkFile: string;
  size: number;
  chunkSize: number;
  workers: number;
  recipient: string;
  expectB3: string;
  scratch: string;
}

interface StageResult {
  bytes: number;
  seconds: number;
  hwmKiB: number;
  check?: string;
  note?: string;
}

function vmHWMKiB(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : 0;
}

/** Read the `cat` source's stdout the way the pipeline does (Bun.spawn + a stream reader). */
async function readSource(src: string, each: (b: Uint8Array) => void): Promise<number> {
  const p = Bun.spawn(["cat", src], { stdout: "pipe", stderr: "inherit" });
  let n = 0;
  const reader = p.stdout.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    each(value);
    n += value.length;
  }
  if ((await p.exited) !== 0) throw new Error(`cat ${src} failed`);
  return n;
}

/** age-encrypt a file on this thread, SHA-256 the ciphertext; optionally write it to a spill file and fsync, as a worker does. */
async function encryptOne(a: StageArgs, spill: string | null): Promise<{ bytes: number; note: string }> {
  const { AgeEncryptStream } = await import("../../src/crypto/age.ts");
  const enc = await AgeEncryptStream.create([a.recipient]);
  const sha = new Bun.CryptoHasher("sha256");
  const inFd = openSync(a.chunkFile, "r");
  const outFd = spill ? openSync(spill, "w", 0o600) : -1;
  const buf = new Uint8Array(BUF);
  let plain = 0;
  let cipher = 0;
  const out = (b: Uint8Array) => {
    if (b.length === 0) return;
    sha.update(b);
    cipher += b.length;
    if (outFd >= 0) for (let off = 0; off < b.length; ) off += writeSync(outFd, b, off, b.length - off);
  };
  try {
    for (;;) {
      const n = readSync(inFd, buf, 0, BUF, null);
      if (n === 0) break;
      plain += n;
      out(enc.push(buf.subarray(0, n)));
    }
    out(enc.finish());
    if (outFd >= 0) fsyncSync(outFd);
  } finally {
    closeSync(inFd);
    if (outFd >= 0) closeSync(outFd);
    if (spill) rmSync(spill, { force: true });
  }
  return { bytes: plain, note: `${cipher} B out, sha256 ${sha.digest("hex").slice(0, 12)}…` };
}

/**
 * CPU time per thread of this process, sampled from /proc (Workers are threads; a terminated
 * one disappears, so the last sample counts). Shows whether the Workers run in parallel.
 */
class ThreadCpu {
  private last = new Map<string, { name: string; ticks: number }>();
  private t = performance.now();
  /** Sampled time (ms) with 0, 1, 2, … Worker threads busy (≥ half of the interval on a CPU). */
  private busy: number[] = [];
  sample(): void {
    const now = performance.now();
    const dt = now - this.t;
    this.t = now;
    let tids: string[];
    try {
      tids = readdirSync("/proc/self/task");
    } catch {
      return;
    }
    let workers = 0;
    for (const tid of tids) {
      try {
        const st = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
        const close = st.lastIndexOf(")");
        const name = st.slice(st.indexOf("(") + 1, close);
        const f = st.slice(close + 2).split(" ");
        const ticks = Number(f[11]) + Number(f[12]);
        const prev = this.last.get(tid)?.ticks ?? ticks;
        if (name === "Worker" && (ticks - prev) * 10 >= dt / 2) workers++;
        this.last.set(tid, { name, ticks });
      } catch {}
    }
    this.busy[workers] = (this.busy[workers] ?? 0) + dt;
  }
  summary(): string {
    const hz = 100;
    const total = this.busy.reduce((s, x) => s + (x ?? 0), 0);
    const cpu = [...this.last.values()]
      .filter((t) => t.ticks >= 5)
      .sort((x, y) => y.ticks - x.ticks)
      .map((t) => `${t.name} ${(t.ticks / hz).toFixed(2)}`)
      .join(", ");
    const pct = Array.from(this.busy, (x) => `${Math.round(((x ?? 0) / total) * 100)}%`).join("/");
    return `thread CPU s: ${cpu}; time with 0/1/2… Workers busy: ${pct}`;
  }
}

async function runPipeline(a: StageArgs): Promise<{ bytes: number; check: string; note: string }> {
  const { streamBackup } = await import("../../src/pipeline/backup/send.ts");
  const { RunDir } = await import("../../src/state/rundir.ts");
  type Config = import("../../src/config/config.ts").Config;
  type ObjectStore = import("../../src/store/store.ts").ObjectStore;
  type BackupState = import("../../src/state/rundir.ts").BackupState;

  const dir = join(a.scratch, "pipeline");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cfg: Config = {
    path: "(bench)",
    baseDir: dir,
    recipients: [a.recipient],
    chunkSize: a.chunkSize,
    workers: a.workers,
    localStore: join(dir, "store"),
    s3: {
      enabled: false,
      bucket: "",
      prefix: "",
      region: "us-east-1",
      checksumMode: "WHEN_REQUIRED",
      storageClass: { manifest: "STANDARD", backupData: ["STANDARD"] },
      retry: { maxAttempts: 1 },
      requestTimeout: 60_000,
    },
    monitoring: {},
    zfs: { stallTimeout: 3_600_000 },
    tasks: [],
  };
  // The network is excluded: "uploading" a part only deletes the encrypted file.
  const parts: { key: string; size: number }[] = [];
  const unused = (what: string) => () => Promise.reject(new Error(`bench store: ${what} is not used by the data path`));
  const store: ObjectStore = {
    location: "(bench: discard)",
    urlOf: (key) => `(bench: discard)/${key}`,
    async putFile(key, path, o) {
      parts.push({ key, size: o.size });
      rmSync(path, { force: true });
    },
    put: unused("put"),
    get: unused("get"),
    getStream: unused("getStream"),
    head: unused("head"),
    list: unused("list"),
    delete: unused("delete"),
    listUploads: unused("listUploads"),
    abortUpload: unused("abortUpload"),
    thaw: unused("thaw"),
    retain: unused("retain"),
    checkAccess: unused("checkAccess"),
  };
  const state: BackupState = {
    format: "zrb-state/1",
    backupId: "bench-L0",
    level: 0,
    pool: "bench",
    dataset: "",
    snapshot: { name: "bench@zrb_level0_bench", guid: "1", createtxg: "1" },
    parent: null,
    sendFlags: [],
    chunkSize: a.chunkSize,
    recipients: [a.recipient],
    startedAt: new Date().toISOString(),
    chunks: [],
  };
  const threads = new ThreadCpu();
  const timer = setInterval(() => threads.sample(), 50);
  const source = Bun.spawn(["cat", a.src], { stdout: "pipe", stderr: "pipe" });
  const r = await streamBackup({ cfg, store, state, rundir: new RunDir(dir, "bench", ""), source });
  if (r.kind !== "done") throw new Error("bench: the stream cannot differ from itself");
  clearInterval(timer);
  threads.sample();
  const want = Math.ceil(a.size / a.chunkSize);
  const problems: string[] = [];
  if (r.blake3 !== a.expectB3) problems.push(`BLAKE3 ${r.blake3} ≠ b3sum ${a.expectB3}`);
  if (r.streamSize !== a.size) problems.push(`stream ${r.streamSize} B ≠ ${a.size} B`);
  if (parts.length !== want) problems.push(`${parts.length} parts ≠ ${want}`);
  const cipher = parts.reduce((s, p) => s + p.size, 0);
  return {
    bytes: r.streamSize,
    check: problems.length ? `MISMATCH: ${problems.join("; ")}` : "ok",
    note: `${parts.length} parts, ${cipher} B encrypted; ${threads.summary()}`,
  };
}

const STAGE_MODULES: Record<string, string[]> = {
  read: [],
  blake3: ["../../src/crypto/blake3.ts"],
  age: ["../../src/crypto/age.ts"],
  "age-spill": ["../../src/crypto/age.ts"],
  pipeline: ["../../src/pipeline/backup/send.ts"],
};

async function stageMain(name: string, a: StageArgs): Promise<void> {
  // Modules load before the clock starts (the later imports hit the cache): the figures are
  // the data path's, not Bun's start-up. Per-run costs (age header, Workers) are timed.
  for (const m of STAGE_MODULES[name] ?? []) await import(m);
  const t0 = performance.now();
  let r: Omit<StageResult, "seconds" | "hwmKiB">;
  switch (name) {
    case "read":
      r = { bytes: await readSource(a.src, () => {}) };
      break;
    case "blake3": {
      const { createBlake3, blake3Backend } = await import("../../src/crypto/blake3.ts");
      const h = await createBlake3();
      const bytes = await readSource(a.src, (b) => h.update(b));
      const d = h.digestHex();
      r = { bytes, check: d === a.expectB3 ? "ok" : `MISMATCH: ${d}`, note: `${blake3Backend()} BLAKE3` };
      break;
    }
    case "age":
      r = await encryptOne(a, null);
      break;
    case "age-spill":
      r = await encryptOne(a, join(a.scratch, "spill-test.age"));
      break;
    case "pipeline":
      r = await runPipeline(a);
      break;
    default:
      throw new Error(`unknown stage ${name}`);
  }
  const res: StageResult = { ...r, seconds: (performance.now() - t0) / 1000, hwmKiB: vmHWMKiB() };
  process.stdout.write(`\nRESULT ${JSON.stringify(res)}\n`);
}

// ---------------------------------------------------------------------------------------------
// Parent

interface Sample {
  mbs: number;
  seconds: number;
  cpu: number;
  rssMiB: number;
  check?: string;
  note?: string;
  error?: string;
}

interface Row {
  label: string;
  /** Label of the reference row this one is compared with. */
  ref?: string;
  samples: Sample[];
  kind: "ref" | "zrb";
}

/** Process groups (setsid) of the commands running now. */
const live = new Set<number>();
let scratch = "";
let cleaned = false;

function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const pgid of live) {
    try {
      process.kill(-pgid, "SIGTERM");
    } catch {}
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}

const GNU_TIME = "/usr/bin/time";
const haveTime = existsSync(GNU_TIME);

async function run(cmd: string[], opts: { stdout?: "pipe" | "ignore"; measure?: boolean; env?: Record<string, string> } = {}) {
  // setsid: the command and everything it starts form one process group, killed together on Ctrl-C.
  // GNU time forks the command from its own small process: wait4's max RSS is then the command's own
  // (a process Bun spawns directly inherits Bun's RSS as its ru_maxrss through vfork + exec).
  const rssFile = join(scratch, `rss-${process.pid}-${live.size}.txt`);
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
  if (timed) {
    const kib = Number(/(\d+)\s*$/.exec(readFileSync(rssFile, "utf8"))?.[1]);
    rmSync(rssFile, { force: true });
    maxRssMiB = kib / 1024;
  }
  return {
    code,
    out,
    err,
    seconds,
    // wait4's rusage: CPU of the process and of every descendant it reaped.
    cpu: ru ? Number(ru.cpuTime.total) / 1e6 : NaN,
    // The largest single process of the command (not a sum); NaN without GNU time.
    maxRssMiB,
  };
}

async function sh(script: string, bytes: number, env: Record<string, string> = {}): Promise<Sample> {
  const r = await run(["bash", "-c", `set -euo pipefail; ${script}`], { measure: true, env });
  if (r.code !== 0) return failed(`exit ${r.code}: ${firstLine(r.err)}`);
  return { mbs: bytes / MB / r.seconds, seconds: r.seconds, cpu: r.cpu, rssMiB: r.maxRssMiB };
}

async function stage(name: string, a: StageArgs): Promise<Sample> {
  const r = await run([process.execPath, import.meta.path, "--stage", name, JSON.stringify(a)], {
    stdout: "pipe",
    env: { ZRB_LOG_LEVEL: "1" },
  });
  const line = r.out.split("\n").findLast((l) => l.startsWith("RESULT "));
  if (r.code !== 0 || !line) return failed(`exit ${r.code}: ${firstLine(r.err) || "no result"}`);
  const s = JSON.parse(line.slice(7)) as StageResult;
  return { mbs: s.bytes / MB / s.seconds, seconds: s.seconds, cpu: r.cpu, rssMiB: s.hwmKiB / 1024, check: s.check, note: s.note };
}

function failed(error: string): Sample {
  return { mbs: NaN, seconds: NaN, cpu: NaN, rssMiB: NaN, error };
}

function firstLine(s: string): string {
  const lines = s.split("\n").map((l) => l.trim()).filter(Boolean);
  return (lines.find((l) => /error|Error|cannot|failed/.test(l)) ?? lines[0] ?? "").slice(0, 200);
}

function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Incompressible bytes, no two MiB alike: a random 16 MiB block, XORed with a different word per repetition. */
function generate(path: string, chunkPath: string | null, size: number, chunkSize: number): void {
  const BLOCK = 16 * MiB;
  const base = new Uint8Array(BLOCK);
  for (let off = 0; off < BLOCK; off += 65536) crypto.getRandomValues(base.subarray(off, off + 65536));
  const base32 = new Uint32Array(base.buffer);
  const block = new Uint8Array(BLOCK);
  const block32 = new Uint32Array(block.buffer);
  const seed = new Uint32Array(1);
  const fd = openSync(path, "w", 0o600);
  const cfd = chunkPath ? openSync(chunkPath, "w", 0o600) : -1;
  try {
    for (let done = 0, k = 0; done < size; k++) {
      crypto.getRandomValues(seed);
      const x = (seed[0]! ^ Math.imul(k + 1, 0x9e3779b1)) >>> 0 || 1;
      for (let i = 0; i < block32.length; i++) block32[i] = base32[i]! ^ x;
      const n = Math.min(BLOCK, size - done);
      for (let off = 0; off < n; ) off += writeSync(fd, block, off, n - off);
      if (cfd >= 0 && done < chunkSize) {
        const m = Math.min(n, chunkSize - done);
        for (let off = 0; off < m; ) off += writeSync(cfd, block, off, m - off);
      }
      done += n;
    }
  } finally {
    closeSync(fd);
    if (cfd >= 0) closeSync(cfd);
  }
}

const loadAvg = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];
const fmt = (x: number, d = 0) => (Number.isNaN(x) ? "—" : x.toFixed(d));
const fmtSize = (n: number) =>
  n % 1024 ** 3 === 0 ? `${n / 1024 ** 3} GiB` : n % MiB === 0 ? `${n / MiB} MiB` : `${(n / MB).toFixed(1)} MB`;

async function main(): Promise<void> {
  const o = parseOpts(process.argv.slice(2));
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.on(sig, () => {
      console.error(`\nbench: ${sig}, cleaning up ${scratch || "nothing"}`);
      cleanup();
      process.exit(130);
    });
  process.on("exit", cleanup);

  mkdirSync(o.dir, { recursive: true });
  scratch = mkdtempSync(join(o.dir, "zrb-bench-"));
  const src = join(scratch, "stream.bin");
  const chunkFile = o.chunkSize < o.size ? join(scratch, "chunk.bin") : src;
  const chunkBytes = Math.min(o.size, o.chunkSize);

  const { blake3Backend } = await import("../../src/crypto/blake3.ts");
  const { aeadBackend } = await import("../../src/crypto/sodium.ts");
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?";
  console.log(
    `zrb bench: ${fmtSize(o.size)} stream, ${fmtSize(o.chunkSize)} chunks, ${o.workers} worker(s), ${o.runs} run(s), ` +
      `scratch ${scratch}\n  Bun ${Bun.version}, ${availableParallelism()} CPUs (${cpuModel}), BLAKE3 ${blake3Backend()}, ChaCha20-Poly1305 ${aeadBackend()}`,
  );

  const loadStart = loadAvg();
  const keyFile = join(scratch, "key.txt");
  const kg = await run(["age-keygen", "-o", keyFile]);
  if (kg.code !== 0) throw new Error(`age-keygen failed: ${kg.err.trim()}`);
  const recipient = /public key: (age1[0-9a-z]+)/.exec(readFileSync(keyFile, "utf8"))?.[1];
  if (!recipient) throw new Error("age-keygen wrote no public key");

  let t0 = performance.now();
  generate(src, chunkFile === src ? null : chunkFile, o.size, o.chunkSize);
  // Warm the page cache: every reader below gets the bytes from RAM.
  await run(["cat", src, ...(chunkFile === src ? [] : [chunkFile])]);
  const b3 = await run(["b3sum", "--no-names", src], { stdout: "pipe" });
  const expectB3 = b3.out.trim();
  if (b3.code !== 0 || !/^[0-9a-f]{64}$/.test(expectB3)) throw new Error(`b3sum failed: ${b3.err.trim()}`);
  console.log(`  source generated and cached in ${((performance.now() - t0) / 1000).toFixed(1)} s; b3sum ${expectB3}\n`);

  const a: StageArgs = { src, chunkFile, size: o.size, chunkSize: o.chunkSize, workers: o.workers, recipient, expectB3, scratch };
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const nativeSh = join(import.meta.dir, "native.sh");
  const nativeDir = join(scratch, "native");
  const native = async (shaTool: string): Promise<Sample> => {
    rmSync(nativeDir, { recursive: true, force: true });
    const s = await sh(`bash ${q(nativeSh)} ${q(nativeDir)} ${q(src)} ${o.chunkSize} ${o.workers} ${q(recipient)} ${q(shaTool)}`, o.size);
    if (!s.error) {
      const got = readFileSync(join(nativeDir, "stream.b3"), "utf8").split(/\s/)[0];
      const parts = new Bun.Glob("part-*.sha256").scanSync(nativeDir);
      const n = [...parts].length;
      const want = Math.ceil(o.size / o.chunkSize);
      s.check = got === expectB3 && n === want ? "ok" : `MISMATCH: b3 ${got}, ${n}/${want} parts`;
    }
    rmSync(nativeDir, { recursive: true, force: true });
    return s;
  };

  const W = o.workers;
  const plan: { label: string; kind: Row["kind"]; ref?: string; go: () => Promise<Sample> }[] = [
    { label: "cat file >/dev/null", kind: "ref", go: () => sh(`cat ${q(src)} >/dev/null`, o.size) },
    { label: "cat file | cat >/dev/null", kind: "ref", go: () => sh(`cat ${q(src)} | cat >/dev/null`, o.size) },
    { label: "b3sum --num-threads 1", kind: "ref", go: () => sh(`b3sum --num-threads 1 ${q(src)} >/dev/null`, o.size) },
    { label: "b3sum (default threads)", kind: "ref", go: () => sh(`b3sum ${q(src)} >/dev/null`, o.size) },
    { label: "sha256sum", kind: "ref", go: () => sh(`sha256sum ${q(src)} >/dev/null`, o.size) },
    { label: "openssl sha256", kind: "ref", go: () => sh(`openssl sha256 ${q(src)} >/dev/null`, o.size) },
    { label: "age -r R -o /dev/null", kind: "ref", go: () => sh(`age -r ${recipient} -o /dev/null ${q(src)}`, o.size) },
    { label: "age -r R | sha256sum", kind: "ref", go: () => sh(`age -r ${recipient} ${q(src)} | sha256sum >/dev/null`, o.size) },
    { label: `native, ${W}× age|sha256sum`, kind: "ref", go: () => native("sha256sum") },
    { label: `native, ${W}× age|openssl`, kind: "ref", go: () => native("openssl sha256") },
    { label: "zrb (a) read cat stdout", kind: "zrb", ref: "cat file | cat >/dev/null", go: () => stage("read", a) },
    { label: "zrb (b) read + BLAKE3", kind: "zrb", ref: "b3sum --num-threads 1", go: () => stage("blake3", a) },
    { label: `zrb (c) age+SHA-256 1 chunk`, kind: "zrb", ref: "age -r R -o /dev/null", go: () => stage("age", a) },
    { label: `zrb (c') (c) + spill+fsync`, kind: "zrb", ref: "age -r R -o /dev/null", go: () => stage("age-spill", a) },
    { label: `zrb (d) pipeline, ${W} worker(s)`, kind: "zrb", ref: `native, ${W}× age|sha256sum`, go: () => stage("pipeline", a) },
  ];
  if (o.only) plan.splice(0, plan.length, ...plan.filter((p) => o.only!.test(p.label) || /^(zrb \(d\)|native, \d+× age\|sha256sum)/.test(p.label)));
  const rows: Row[] = plan.map((p) => ({ label: p.label, kind: p.kind, ref: p.ref, samples: [] }));
  for (let r = 0; r < o.runs; r++) {
    t0 = performance.now();
    for (let i = 0; i < plan.length; i++) rows[i]!.samples.push(await plan[i]!.go());
    if (o.runs > 1) console.error(`  run ${r + 1}/${o.runs} done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }

  // Medians of the runs; peak RSS is the largest of the runs.
  const agg = new Map(
    rows.map((row) => {
      const s = row.samples;
      const errs = s.map((x) => x.error).filter(Boolean);
      const checks = [...new Set(s.map((x) => x.check).filter(Boolean))];
      return [
        row.label,
        {
          mbs: median(s.map((x) => x.mbs)),
          seconds: median(s.map((x) => x.seconds)),
          cpu: median(s.map((x) => x.cpu)),
          rss: Math.max(...s.map((x) => (Number.isNaN(x.rssMiB) ? -1 : x.rssMiB))),
          check: checks.length === 1 ? checks[0] : checks.find((c) => c !== "ok"),
          note: [errs.length ? `FAILED (${errs.length}/${s.length}): ${errs[0]}` : "", s.at(-1)?.note ?? ""].filter(Boolean).join("; "),
        },
      ];
    }),
  );

  const head = ["stage", "MB/s", "s", "cpu s", "peak RSS MiB", "ratio", "check", "vs / note"];
  const body = rows.map((row) => {
    const g = agg.get(row.label)!;
    const ref = row.ref ? agg.get(row.ref) : undefined;
    const ratio = ref ? g.mbs / ref.mbs : NaN;
    return [
      row.label,
      fmt(g.mbs),
      fmt(g.seconds, 2),
      fmt(g.cpu, 2),
      g.rss < 0 ? "—" : fmt(g.rss, 1),
      row.ref ? fmt(ratio, 2) : "",
      g.check ?? "",
      [row.ref ? `vs ${row.ref}` : "", g.note].filter(Boolean).join("; "),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 || i >= 6 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const b of body) {
    if (b[0] === rows.find((r) => r.kind === "zrb")?.label) console.log("");
    console.log(line(b));
  }

  console.log(`\n  load average (1 min): ${loadStart} at start, ${loadAvg()} at end; other work on the machine skews every figure`);
  const pipe = agg.get(`zrb (d) pipeline, ${W} worker(s)`)!;
  const nat = agg.get(`native, ${W}× age|sha256sum`)!;
  console.log(
    `\nbench: pipeline ${fmt(pipe.mbs)} MB/s, native ${fmt(nat.mbs)} MB/s, ratio ${fmt(pipe.mbs / nat.mbs, 2)}, peak RSS ${pipe.rss < 0 ? "—" : fmt(pipe.rss)} MiB`,
  );
}

if (process.argv[2] === "--stage") {
  try {
    await stageMain(process.argv[3]!, JSON.parse(process.argv[4]!) as StageArgs);
    process.exit(0);
  } catch (err) {
    console.error(`stage ${process.argv[3]}: ${(err as Error)?.stack ?? err}`);
    process.exit(1);
  }
} else {
  try {
    await main();
  } catch (err) {
    console.error(`bench: ${(err as Error)?.message ?? err}`);
    cleanup();
    process.exit(1);
  }
  cleanup();
}
