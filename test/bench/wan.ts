/**
 * The WAN rows (`--wan`): zrb backup and restore through the project's own WAN emulator
 * (test/helpers/wan.ts: a loopback TCP proxy in front of radosgw adding a one-way delay each way,
 * a cap per connection and a cap for the link), next to `aws s3 cp` up and down through the same
 * emulator, on the same `--wan-size` bytes of incompressible files in a zfs-fuse dataset. Also the
 * emulator's own ceiling (one unthrottled stream, no delay: it must be far above the link so it
 * is not what is measured) and the link as measured (12 streams into a local sink).
 * The restore goes into a new dataset of the same pool and is checked file by file (sha256).
 * Prints `bench: wan backup N MB/s, restore M MB/s, aws up A, aws down B, link L MB/s` and the
 * emulator's settings. Needs root, the test rig and the `aws` CLI, like the e2e rows.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import YAML from "yaml";
import { emptyAndDeleteBucket, hashTree, makeBucket, makePool, mountpointOf, run as rigRun, s3Rig, type TestPool } from "../helpers/rig.ts";
import { startWan, type Wan } from "../helpers/wan.ts";
import { configYaml, ensureBinary, jsonResult, s3Env, ZRB_BIN } from "../helpers/zrb.ts";
import type { Opts } from "./options.ts";
import { failed, firstLine, MB, MiB, q, run, type Sample } from "./proc.ts";
import { fmt, type Agg, type Row } from "./table.ts";

export const WAN_ROWS = ["wan: emulator raw, 1 stream", "wan: link, 12 streams", "wan: zrb backup", "wan: zrb restore", "wan: aws s3 cp up", "wan: aws s3 cp down"] as const;

/** Push `bytes` through `port` on `streams` connections into a sink; MB/s over the wall time. */
async function pushThrough(port: number, bytes: number, streams: number): Promise<Sample> {
  const t0 = performance.now();
  const one = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const c = connect(port, "127.0.0.1");
      const buf = Buffer.alloc(MiB, 1);
      let sent = 0;
      const go = () => {
        while (sent < n) {
          sent += buf.length;
          if (!c.write(buf)) return void c.once("drain", go);
        }
        c.end();
      };
      c.on("connect", go).on("data", () => {}).on("error", reject).on("close", () => resolve());
    });
  await Promise.all(Array.from({ length: streams }, () => one(Math.ceil(bytes / streams / MiB) * MiB)));
  const seconds = (performance.now() - t0) / 1000;
  return { mbs: bytes / MB / seconds, seconds, cpu: NaN, rssMiB: NaN, check: "ok" };
}

/** A local sink: counts what it gets, answers nothing. */
async function sink(): Promise<{ port: number; close(): void }> {
  const s = createServer({ allowHalfOpen: true }, (c) => c.on("data", () => {}).on("end", () => c.end()));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  return { port: (s.address() as { port: number }).port, close: () => s.close() };
}

interface Setup {
  pool: TestPool;
  fs: string;
  mnt: string;
  bucket: string;
  env: Record<string, string>;
}

async function prepare(o: Opts, write: (path: string, bytes: number) => void): Promise<Setup> {
  const pool = await makePool({ sizeMiB: Math.ceil((o.wanSize * 2.5) / MiB) + 256 });
  try {
    const fs = `${pool.pool}/data`;
    await rigRun(["zfs", "create", fs]);
    const mnt = await mountpointOf(fs);
    const FILE = 32 * MiB;
    for (let done = 0, i = 0; done < o.wanSize; i++, done += FILE) write(join(mnt, `f${i}.bin`), Math.min(FILE, o.wanSize - done));
    const s3 = await s3Rig();
    return { pool, fs, mnt, bucket: await makeBucket(s3), env: s3Env(s3) };
  } catch (err) {
    await pool.destroy();
    throw err;
  }
}

/**
 * Watch one direction of the emulator during a row: MB/s from its first byte to its last
 * (sampled every 50 ms) — the link's share of the row, without start-up and closing round trips.
 */
function wire(wan: Wan, dir: "up" | "down"): () => string {
  const at0 = wan.bytes()[dir];
  let first = NaN;
  let last = NaN;
  let seen = at0;
  const t = setInterval(() => {
    const b = wan.bytes()[dir];
    if (b === seen) return;
    if (Number.isNaN(first)) first = performance.now() - 50;
    last = performance.now();
    seen = b;
  }, 50);
  return () => {
    clearInterval(t);
    return `on the wire ${fmt((seen - at0) / MB / ((last - first) / 1000), 1)} MB/s (${((last - first) / 1000).toFixed(1)} s, first to last byte)`;
  };
}

function measured(r: Awaited<ReturnType<typeof run>>, bytes: number, note: string): Sample {
  if (r.code !== 0) return failed(`exit ${r.code}: ${firstLine(r.err)}`);
  return { mbs: bytes / MB / r.seconds, seconds: r.seconds, cpu: r.cpu, rssMiB: r.maxRssMiB, check: "ok", note };
}

/**
 * ZRB_BENCH_WAN_TRACE=1: every request line through the emulator on stderr, with the ms since
 * the bench started (where a row's time goes: start-up, the parts, the closing requests).
 */
function traceTo(): ((line: string) => void) | undefined {
  if (!process.env.ZRB_BENCH_WAN_TRACE) return undefined;
  return (line) => console.error(`wan trace ${performance.now().toFixed(0)} ${line}`);
}

/** zrb backup, then restore, through the emulator; the restore's files compared with the source's. */
async function zrbRows(o: Opts, s: Setup, wan: Wan, scratch: string, recipient: string, keyFile: string): Promise<[Sample, Sample]> {
  await ensureBinary();
  const base = join(scratch, "wan-zrb");
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const cfg = join(scratch, "wan.yaml");
  const doc = YAML.parse(
    configYaml({ baseDir: base, recipients: [recipient], bucket: s.bucket, s3: { ...(await s3Rig()), endpoint: wan.endpoint }, chunkSize: `${o.wanChunkSize}B`, workers: o.workers, tasks: [{ name: "wan", pool: s.pool.pool, dataset: "data" }] }),
  );
  if (o.wanConcurrency) doc.s3.concurrency = o.wanConcurrency;
  writeFileSync(cfg, YAML.stringify(doc));
  const env = { ...s.env, ZRB_LOG_LEVEL: "1" };
  const snap = await run([ZRB_BIN, "snapshot", "--config", cfg, "--task", "wan", "--level", "0"], { env });
  if (snap.code !== 0) return [failed(`zrb snapshot: ${firstLine(snap.err)}`), failed("no backup")];
  let w = wire(wan, "up");
  traceTo()?.("zrb backup starts");
  const b = await run([ZRB_BIN, "backup", "--config", cfg, "--task", "wan", "--level", "0", "--json"], { stdout: "pipe", measure: true, env });
  const upWire = w();
  if (b.code !== 0) return [measured(b, 0, ""), failed("no backup")];
  const j = jsonResult(b.out) as { streamBytes: number; parts: number };
  const parts = `${j.parts} part(s) of ${o.wanChunkSize / MiB} MiB`;
  const backup = measured(b, j.streamBytes, `${parts}, ${j.streamBytes} B stream; ${upWire}`);
  const target = `${s.pool.pool}/restored`;
  w = wire(wan, "down");
  const r = await run([ZRB_BIN, "restore", "--config", cfg, "--task", "wan", "--target", target, "--private-key", keyFile, "--json"], { stdout: "pipe", measure: true, env });
  const restore = measured(r, j.streamBytes, `${parts}, into ${target}; ${w()}`);
  if (r.code === 0) {
    await rigRun(["zfs", "mount", target]).catch(() => {});
    const [want, got] = await Promise.all([hashTree(s.mnt), mountpointOf(target).then(hashTree)]);
    const same = JSON.stringify(Object.entries(want).map(([k, v]) => [k, v.split(" ").pop()])) === JSON.stringify(Object.entries(got).map(([k, v]) => [k, v.split(" ").pop()]));
    restore.check = same ? "ok" : "MISMATCH: restored files differ";
  }
  rmSync(base, { recursive: true, force: true });
  return [backup, restore];
}

/** aws s3 cp of the same snapshot's stream (as a file) up, then down, through the emulator. */
async function awsRows(s: Setup, wan: Wan, scratch: string): Promise<[Sample, Sample]> {
  const file = join(scratch, "wan-stream.bin");
  const back = join(scratch, "wan-back.bin");
  const snap = (await rigRun(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "createtxg", "-r", s.fs])).stdout.trim().split("\n").pop()!;
  await rigRun(["bash", "-c", `zfs send ${q(snap)} > ${q(file)}`]);
  const bytes = Bun.file(file).size;
  const url = `s3://${s.bucket}/aws/stream.bin`;
  const aws = ["aws", "--endpoint-url", wan.endpoint, "s3", "cp", "--only-show-errors"];
  let w = wire(wan, "up");
  const rUp = await run([...aws, file, url], { measure: true, env: s.env });
  const up = measured(rUp, bytes, `default settings (10 requests at once, 8 MiB parts); ${w()}`);
  w = wire(wan, "down");
  const rDown = await run([...aws, url, back], { measure: true, env: s.env });
  const down = measured(rDown, bytes, `into a file; ${w()}`);
  if (!down.error) {
    const [a, b] = await Promise.all([rigRun(["sha256sum", file]), rigRun(["sha256sum", back])]);
    down.check = a.stdout.split(" ")[0] === b.stdout.split(" ")[0] ? "ok" : "MISMATCH";
  }
  rmSync(file, { force: true });
  rmSync(back, { force: true });
  return [up, down];
}

/** The emulator's settings, for the table's note and the summary. */
export const wanSettings = (o: Opts) => `delay ${o.wanDelayMs} ms each way, ${fmt(o.wanConnBps / MB, 1)} MB/s per connection, link ${fmt(o.wanLinkBps / MB, 1)} MB/s`;

export async function wanRows(o: Opts, scratch: string, recipient: string, keyFile: string, write: (path: string, bytes: number) => void): Promise<Row[]> {
  const rows: Row[] = WAN_ROWS.map((label) => ({ label, kind: "wan" as Row["kind"], ref: label.includes("zrb backup") ? WAN_ROWS[4] : label.includes("zrb restore") ? WAN_ROWS[5] : undefined, samples: [] }));
  const fail = (why: string) => rows.forEach((r) => r.samples.length === 0 && r.samples.push(failed(why)));
  const local = await sink();
  try {
    const raw = await startWan({ targetHost: "127.0.0.1", targetPort: local.port, delayMs: 0, idleMs: 60_000 });
    rows[0]!.samples.push({ ...(await pushThrough(raw.port, 512 * MiB, 1)), note: "no delay, no caps: the proxy's own ceiling" });
    await raw.close();
    const shaped = await startWan({ targetHost: "127.0.0.1", targetPort: local.port, delayMs: o.wanDelayMs, connBps: o.wanConnBps, linkBps: o.wanLinkBps, idleMs: 60_000 });
    rows[1]!.samples.push({ ...(await pushThrough(shaped.port, Math.min(o.wanSize, 256 * MiB), 12)), note: wanSettings(o) });
    await shaped.close();
  } finally {
    local.close();
  }
  const missing = ["zfs", "aws"].filter((t) => !Bun.which(t));
  if (process.getuid?.() !== 0 || missing.length) {
    fail(missing.length ? `${missing.join(", ")} not installed (bash test/rig/install-deps.sh bench)` : "needs root (zfs, the test rig)");
    return rows;
  }
  let s: Setup;
  try {
    s = await prepare(o, write);
  } catch (err) {
    fail(`setup: ${(err as Error).message}`);
    return rows;
  }
  const rgw = new URL((await s3Rig()).endpoint);
  const wan = await startWan({ targetHost: rgw.hostname, targetPort: Number(rgw.port || 80), delayMs: o.wanDelayMs, connBps: o.wanConnBps, linkBps: o.wanLinkBps, idleMs: 600_000, trace: traceTo() });
  try {
    const [b, r] = await zrbRows(o, s, wan, scratch, recipient, keyFile);
    rows[2]!.samples.push(b);
    rows[3]!.samples.push(r);
    const [up, down] = await awsRows(s, wan, scratch);
    rows[4]!.samples.push(up);
    rows[5]!.samples.push(down);
  } catch (err) {
    fail(`${(err as Error).message}`);
  } finally {
    await wan.close();
    await emptyAndDeleteBucket(await s3Rig(), s.bucket).catch(() => {});
    await s.pool.destroy().catch(() => {});
  }
  return rows;
}

/** The wan summary line and the emulator's settings. */
export function wanLine(o: Opts, agg: Map<string, Agg>): string {
  const m = (l: string) => fmt(agg.get(l)?.mbs ?? NaN);
  const rss = Math.max(agg.get(WAN_ROWS[2])?.rss ?? NaN, agg.get(WAN_ROWS[3])?.rss ?? NaN);
  return (
    `bench: wan backup ${m(WAN_ROWS[2])} MB/s, restore ${m(WAN_ROWS[3])} MB/s, aws up ${m(WAN_ROWS[4])}, aws down ${m(WAN_ROWS[5])}, link ${m(WAN_ROWS[1])} MB/s\n` +
    `  emulator: ${wanSettings(o)}; raw ceiling ${m(WAN_ROWS[0])} MB/s (1 stream); zrb peak RSS ${fmt(rss)} MiB; ${fmt(o.wanSize / MiB)} MiB of files, ${fmt(o.wanChunkSize / MiB)} MiB chunks`
  );
}
