/**
 * The end-to-end rows (`--e2e`): a zfs-fuse dataset holding `--e2e-size` bytes of
 * incompressible files, backed up to the loopback radosgw three ways, one after the other:
 * - `zrb backup` (the compiled binary, `--chunk-size` and `--workers` of the bench);
 * - what a user without zrb would script: `zfs send | age -r R > file`, then `aws s3 cp`;
 * - the same streamed: `zfs send | age -r R | aws s3 cp - s3://…`;
 * and then `zrb rekey` of zrb's backup to a new recipient (headers rewritten in the store:
 * MB/s is the bytes stored over the wall time; the note gives parts/s and the bytes moved).
 * MB/s is otherwise the send stream's size over the wall time. zfs-fuse, radosgw (with its in-memory
 * OSD) and the backup all share the machine's cores, so these rows measure the whole system.
 * Needs root, the test rig (test/rig/zfs-fuse.sh, rgw.sh) and the `aws` CLI (Debian's awscli:
 * `bash test/rig/install-deps.sh bench`).
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configYaml, ensureBinary, jsonResult, s3Env, ZRB_BIN } from "../helpers/zrb.ts";
import { emptyAndDeleteBucket, makeBucket, makePool, run as rigRun, s3Rig, type TestPool } from "../helpers/rig.ts";
import type { Opts } from "./options.ts";
import { failed, firstLine, MB, MiB, q, run, type Sample } from "./proc.ts";
import { BEST_NATIVE_E2E, type Row } from "./table.ts";

const POOL_DIR = "/var/tmp/zrb-test-pools";

/** Free bytes on the file system holding `dir` (or its nearest existing parent). */
async function freeBytes(dir: string): Promise<number> {
  const r = await rigRun(["df", "-B1", "--output=avail", dir.split("/").slice(0, 3).join("/") || "/"]);
  return Number(r.stdout.trim().split("\n").pop());
}

interface Setup {
  pool: TestPool;
  snapshot: string;
  streamBytes: number;
  bucket: string;
  env: Record<string, string>;
  endpoint: string;
}

/** Fill a new dataset with `size` bytes of incompressible files (written by `write(path, bytes)`), snapshot it. */
async function prepare(o: Opts, scratch: string, write: (path: string, bytes: number) => void): Promise<Setup> {
  const need = 2 * o.e2eSize + (o.workers + 1) * o.chunkSize + 1024 * MiB;
  const free = await freeBytes(POOL_DIR);
  if (free < need) throw new Error(`needs ${(need / 2 ** 30).toFixed(1)} GiB free under ${POOL_DIR}, has ${(free / 2 ** 30).toFixed(1)} GiB`);
  const pool = await makePool({ sizeMiB: Math.ceil((o.e2eSize * 1.25) / MiB) + 256 });
  try {
    const fs = `${pool.pool}/data`;
    await rigRun(["zfs", "create", fs]);
    const mnt = (await rigRun(["zfs", "get", "-H", "-o", "value", "mountpoint", fs])).stdout.trim();
    const t0 = performance.now();
    const FILE = 256 * MiB;
    for (let done = 0, i = 0; done < o.e2eSize; i++, done += FILE) write(join(mnt, `f${i}.bin`), Math.min(FILE, o.e2eSize - done));
    const snapshot = `${fs}@zrb_level0_bench`;
    await rigRun(["zfs", "snapshot", snapshot]);
    const sized = await rigRun(["bash", "-c", `zfs send ${q(snapshot)} | wc -c`]);
    console.error(`  e2e: ${fs} filled with ${o.e2eSize} bytes in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    const s3 = await s3Rig();
    return { pool, snapshot, streamBytes: Number(sized.stdout.trim()), bucket: await makeBucket(s3), env: s3Env(s3), endpoint: s3.endpoint };
  } catch (err) {
    await pool.destroy();
    throw err;
  }
}

function sample(r: Awaited<ReturnType<typeof run>>, bytes: number, note: string): Sample {
  if (r.code !== 0) return failed(`exit ${r.code}: ${firstLine(r.err)}`);
  return { mbs: bytes / MB / r.seconds, seconds: r.seconds, cpu: r.cpu, rssMiB: r.maxRssMiB, check: "ok", note };
}

/** The config zrbRow backs up with (rekeyRow reuses it and its base_dir). */
const e2eConfig = (scratch: string) => join(scratch, "e2e.yaml");

async function zrbRow(o: Opts, s: Setup, scratch: string, recipient: string): Promise<Sample> {
  await ensureBinary();
  const base = join(scratch, "e2e-zrb");
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const cfg = e2eConfig(scratch);
  const [pool, dataset] = s.snapshot.split("@")[0]!.split(/\/(.*)/s);
  writeFileSync(
    cfg,
    configYaml({ baseDir: base, recipients: [recipient], bucket: s.bucket, s3: await s3Rig(), chunkSize: `${o.chunkSize}B`, workers: o.workers, tasks: [{ name: "e2e", pool: pool!, dataset: dataset! }] }),
  );
  const r = await run([ZRB_BIN, "backup", "--config", cfg, "--task", "e2e", "--level", "0", "--json"], { stdout: "pipe", measure: true, env: { ...s.env, ZRB_LOG_LEVEL: "1" } });
  if (r.code !== 0) return sample(r, s.streamBytes, "");
  let j: { streamBytes: number; parts: number };
  try {
    j = jsonResult(r.out); // the done event of the JSON lines
  } catch (err) {
    return failed(`no result in zrb's --json output: ${firstLine(err instanceof Error ? err.message : String(err))}`);
  }
  const out = sample(r, j.streamBytes, `${j.parts} part(s) of ${o.chunkSize / MiB} MiB, ${o.workers} worker(s), multipart upload to radosgw`);
  if (j.streamBytes !== s.streamBytes) out.check = `MISMATCH: zrb sent ${j.streamBytes} B, zfs send gives ${s.streamBytes} B`;
  return out;
}

/** zrb rekey of the backup zrbRow made, from `keyFile` to a fresh recipient. */
async function rekeyRow(scratch: string, keyFile: string, s: Setup): Promise<Sample> {
  const next = join(scratch, "e2e-next.txt");
  const kg = await run(["age-keygen", "-o", next]);
  if (kg.code !== 0) return failed(`age-keygen: ${firstLine(kg.err)}`);
  const to = /public key: (age1[0-9a-z]+)/.exec(await Bun.file(next).text())?.[1] ?? "";
  const r = await run([ZRB_BIN, "rekey", "--config", e2eConfig(scratch), "--task", "e2e", "--private-key", keyFile, "--to-recipient", to, "--json"], {
    stdout: "pipe",
    measure: true,
    env: { ...s.env, ZRB_LOG_LEVEL: "1" },
  });
  rmSync(join(scratch, "e2e-zrb"), { recursive: true, force: true });
  if (r.code !== 0) return sample(r, 0, "");
  let j: { parts: number; downloadedBytes: number; copiedBytes: number };
  try {
    j = jsonResult(r.out);
  } catch (err) {
    return failed(`no result in zrb rekey's --json output: ${firstLine(err instanceof Error ? err.message : String(err))}`);
  }
  const stored = j.downloadedBytes + j.copiedBytes;
  const out = sample(r, stored, `${j.parts} part(s), ${(j.parts / r.seconds).toFixed(1)} parts/s; ${j.downloadedBytes} B downloaded, ${j.copiedBytes} B copied server-side`);
  if (j.parts === 0) out.check = "MISMATCH: nothing was rekeyed";
  return out;
}

async function nativeFileRow(s: Setup, scratch: string, recipient: string): Promise<Sample> {
  const file = join(scratch, "e2e-native.age");
  const url = `s3://${s.bucket}/native/stream.age`;
  const aws = `aws --endpoint-url ${q(s.endpoint)} s3`;
  const r = await run(["bash", "-c", `set -euo pipefail; zfs send ${q(s.snapshot)} | age -r ${q(recipient)} > ${q(file)}; ${aws} cp --only-show-errors ${q(file)} ${q(url)}; ${aws} rm --only-show-errors ${q(url)}`], { measure: true, env: s.env });
  rmSync(file, { force: true });
  return sample(r, s.streamBytes, "encrypt to a file, then upload it (aws s3 cp, default multipart settings; the rm after it is timed too)");
}

async function nativeStreamRow(s: Setup, recipient: string): Promise<Sample> {
  const url = `s3://${s.bucket}/native/streamed.age`;
  const aws = `aws --endpoint-url ${q(s.endpoint)} s3`;
  const r = await run(["bash", "-c", `set -euo pipefail; zfs send ${q(s.snapshot)} | age -r ${q(recipient)} | ${aws} cp --only-show-errors --expected-size ${s.streamBytes + 2 * MiB} - ${q(url)}; ${aws} rm --only-show-errors ${q(url)}`], { measure: true, env: s.env });
  return sample(r, s.streamBytes, "age's output streamed into aws s3 cp - (no file)");
}

export const E2E_ROWS = ["e2e: zrb backup → radosgw", "e2e: zfs send|age >file; aws s3 cp", "e2e: zfs send|age|aws s3 cp -", "e2e: zrb rekey (rewrap in radosgw)"] as const;

/** The e2e rows, one sample each (their setup takes minutes, so they run once whatever --runs says). */
export async function e2eRows(o: Opts, scratch: string, recipient: string, keyFile: string, write: (path: string, bytes: number) => void): Promise<Row[]> {
  // zrb backup is compared with the faster stock-tool row; rekey with zrb backup (a rewrap against a re-upload).
  const refs: Record<string, string> = { [E2E_ROWS[0]]: BEST_NATIVE_E2E, [E2E_ROWS[3]]: E2E_ROWS[0] };
  const rows: Row[] = E2E_ROWS.map((label) => ({ label, kind: "e2e", ref: refs[label], samples: [] }));
  const missing = ["zfs", "aws", "age"].filter((t) => !Bun.which(t));
  if (process.getuid?.() !== 0 || missing.length) {
    const why = missing.length ? `${missing.join(", ")} not installed (bash test/rig/install-deps.sh bench)` : "needs root (zfs, the test rig)";
    for (const r of rows) r.samples.push(failed(why));
    return rows;
  }
  let s: Setup;
  try {
    s = await prepare(o, scratch, write);
  } catch (err) {
    for (const r of rows) r.samples.push(failed(`setup: ${(err as Error).message}`));
    return rows;
  }
  try {
    rows[0]!.samples.push(await zrbRow(o, s, scratch, recipient));
    rows[1]!.samples.push(await nativeFileRow(s, scratch, recipient));
    rows[2]!.samples.push(await nativeStreamRow(s, recipient));
    rows[3]!.samples.push(await rekeyRow(scratch, keyFile, s));
  } finally {
    await emptyAndDeleteBucket(await s3Rig(), s.bucket).catch(() => {});
    await s.pool.destroy().catch(() => {});
  }
  return rows;
}
