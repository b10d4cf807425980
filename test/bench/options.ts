/**
 * `bun run bench` options, from the command line or the environment (ZRB_BENCH_*).
 * Sizes: KiB/MiB/GiB are powers of 1024, KB/MB/GB powers of 1000 (as MB/s in the table).
 */
import { MIN_STREAM } from "./source.ts";

export interface Opts {
  size: number;
  chunkSize: number;
  workers: number;
  runs: number;
  /** Untimed runs of each data-path row right before its timed one (every row alike). */
  warmup: number;
  dir: string;
  /** Only the rows whose label matches (the rows of the final line always run). */
  only?: RegExp;
  /** Also the end-to-end rows: a zfs-fuse dataset backed up to the loopback radosgw. */
  e2e: boolean;
  /** Size of the e2e dataset's data. */
  e2eSize: number;
  /** Also the WAN rows (wan.ts): zrb and aws s3 cp through the WAN emulator. */
  wan: boolean;
  /** Bytes of files in the WAN rows' dataset, and zrb's chunk size there. */
  wanSize: number;
  wanChunkSize: number;
  /** The emulator: one-way delay, cap per connection, cap of the link (bytes/s). */
  wanDelayMs: number;
  wanConnBps: number;
  wanLinkBps: number;
  /** s3.concurrency for the WAN rows (0: zrb's default). */
  wanConcurrency: number;
  /** The tree row (tree.ts): a recursive backup of this many small children (0: none). */
  tree: number;
  /** The parts rows (parts.ts): a backup and restore of about this many 64 KiB parts (0: none). */
  parts: number;
}

export const USAGE =
  "usage: bun run bench [--size 1GiB] [--chunk-size 256MiB] [--workers 2] [--runs 1] [--warmup 0] [--dir /var/tmp] [--only REGEX]\n" +
  "                     [--e2e] [--e2e-size 2GiB] [--tree 200] [--parts 1000]\n" +
  "                     [--wan] [--wan-size 512MiB] [--wan-chunk-size 64MiB] [--wan-delay 20] [--wan-link 24MB] [--wan-conn LINK/6] [--wan-concurrency N]\n" +
  "env: ZRB_BENCH_SIZE ZRB_BENCH_CHUNK_SIZE ZRB_BENCH_WORKERS ZRB_BENCH_RUNS ZRB_BENCH_WARMUP ZRB_BENCH_DIR ZRB_BENCH_E2E=1 ZRB_BENCH_E2E_SIZE ZRB_BENCH_TREE ZRB_BENCH_PARTS\n" +
  "     ZRB_BENCH_WAN=1 ZRB_BENCH_WAN_SIZE ZRB_BENCH_WAN_CHUNK_SIZE ZRB_BENCH_WAN_DELAY ZRB_BENCH_WAN_LINK ZRB_BENCH_WAN_CONN ZRB_BENCH_WAN_CONCURRENCY\n" +
  "See docs/bench.md.";

export function parseBytes(v: string, what: string): number {
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

function usage(msg: string): never {
  console.error(`bench: ${msg} (see --help)`);
  process.exit(2);
}

export function parseOpts(argv: string[]): Opts {
  const env = process.env;
  const o: Opts = {
    size: parseBytes(env.ZRB_BENCH_SIZE ?? "1GiB", "ZRB_BENCH_SIZE"),
    chunkSize: parseBytes(env.ZRB_BENCH_CHUNK_SIZE ?? "256MiB", "ZRB_BENCH_CHUNK_SIZE"),
    workers: Number(env.ZRB_BENCH_WORKERS ?? 2),
    runs: Number(env.ZRB_BENCH_RUNS ?? 1),
    warmup: Number(env.ZRB_BENCH_WARMUP ?? 0),
    dir: env.ZRB_BENCH_DIR ?? "/var/tmp",
    e2e: !!env.ZRB_BENCH_E2E && env.ZRB_BENCH_E2E !== "0",
    e2eSize: parseBytes(env.ZRB_BENCH_E2E_SIZE ?? "2GiB", "ZRB_BENCH_E2E_SIZE"),
    wan: !!env.ZRB_BENCH_WAN && env.ZRB_BENCH_WAN !== "0",
    wanSize: parseBytes(env.ZRB_BENCH_WAN_SIZE ?? "512MiB", "ZRB_BENCH_WAN_SIZE"),
    wanChunkSize: parseBytes(env.ZRB_BENCH_WAN_CHUNK_SIZE ?? "64MiB", "ZRB_BENCH_WAN_CHUNK_SIZE"),
    wanDelayMs: Number(env.ZRB_BENCH_WAN_DELAY ?? 20),
    wanLinkBps: parseBytes(env.ZRB_BENCH_WAN_LINK ?? "24MB", "ZRB_BENCH_WAN_LINK"),
    wanConnBps: env.ZRB_BENCH_WAN_CONN ? parseBytes(env.ZRB_BENCH_WAN_CONN, "ZRB_BENCH_WAN_CONN") : 0,
    wanConcurrency: Number(env.ZRB_BENCH_WAN_CONCURRENCY ?? 0),
    tree: Number(env.ZRB_BENCH_TREE ?? 0),
    parts: Number(env.ZRB_BENCH_PARTS ?? 0),
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
      case "--warmup":
        o.warmup = Number(val());
        break;
      case "--dir":
        o.dir = val();
        break;
      case "--only":
        o.only = new RegExp(val(), "i");
        break;
      case "--e2e":
        o.e2e = true;
        break;
      case "--e2e-size":
        o.e2eSize = parseBytes(val(), "--e2e-size");
        break;
      case "--wan":
        o.wan = true;
        break;
      case "--wan-size":
        o.wanSize = parseBytes(val(), "--wan-size");
        break;
      case "--wan-chunk-size":
        o.wanChunkSize = parseBytes(val(), "--wan-chunk-size");
        break;
      case "--wan-delay":
        o.wanDelayMs = Number(val());
        break;
      case "--wan-link":
        o.wanLinkBps = parseBytes(val(), "--wan-link");
        break;
      case "--wan-conn":
        o.wanConnBps = parseBytes(val(), "--wan-conn");
        break;
      case "--wan-concurrency":
        o.wanConcurrency = Number(val());
        break;
      case "--tree":
        o.tree = Number(val());
        break;
      case "--parts":
        o.parts = Number(val());
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
      default:
        usage(`unknown option ${a}`);
    }
  }
  if (o.size < MIN_STREAM) usage(`--size must be at least ${MIN_STREAM} bytes (the stream's BEGIN and END records)`);
  if (!Number.isInteger(o.workers) || o.workers < 1 || o.workers > 64) usage(`--workers must be 1..64`);
  if (!(o.wanDelayMs >= 0 && o.wanDelayMs <= 10_000)) usage(`--wan-delay must be 0..10000 (ms)`);
  if (!Number.isInteger(o.wanConcurrency) || o.wanConcurrency < 0 || o.wanConcurrency > 64) usage(`--wan-concurrency must be 0..64 (0: zrb's default)`);
  if (!Number.isInteger(o.tree) || o.tree < 0 || o.tree > 5000) usage(`--tree must be 0..5000 children`);
  if (!Number.isInteger(o.parts) || o.parts < 0 || o.parts > 20000) usage(`--parts must be 0..20000 parts`);
  // The setting: one connection carries a sixth of the link.
  if (o.wanConnBps === 0) o.wanConnBps = Math.round(o.wanLinkBps / 6);
  if (!Number.isInteger(o.runs) || o.runs < 1 || o.runs > 99) usage(`--runs must be 1..99`);
  if (!Number.isInteger(o.warmup) || o.warmup < 0 || o.warmup > 9) usage(`--warmup must be 0..9`);
  return o;
}
