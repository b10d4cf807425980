/**
 * The parts rows (`--parts N`): `zrb backup` and `zrb restore` of a stream cut into about N
 * parts of 64 KiB (chunk_size 64KiB), to the loopback radosgw. The bytes are few (N × 64 KiB),
 * so what they measure is zrb's cost per part — its header and key, the state recorded after
 * it is sealed and after it is stored, its PutObject, and on restore its GET, checks and
 * decryption — as milliseconds per part. The restore's files are compared with the source's.
 * `ZRB_BENCH_PARTS_BIN` runs another zrb binary instead of dist/zrb-linux-x64 (a before/after).
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { emptyAndDeleteBucket, hashTree, makeBucket, makePool, mountpointOf, run as rigRun, s3Rig, writeRandomFile } from "../helpers/rig.ts";
import { configYaml, ensureBinary, jsonResult, s3Env, ZRB_BIN } from "../helpers/zrb.ts";
import type { Opts } from "./options.ts";
import { failed, firstLine, MB, run, type Sample } from "./proc.ts";
import type { Row } from "./table.ts";

export const PARTS_ROWS = ["parts: zrb backup, 64 KiB parts", "parts: zrb restore, 64 KiB parts"] as const;
const PART = 64 * 1024;

function sampleOf(r: Awaited<ReturnType<typeof run>>, bytes: number, parts: number, what: string): Sample {
  if (r.code !== 0) return failed(`exit ${r.code}: ${firstLine(r.err)}`);
  const ms = (r.seconds * 1000) / parts;
  return { mbs: bytes / MB / r.seconds, seconds: r.seconds, cpu: r.cpu, rssMiB: r.maxRssMiB, check: "ok", note: `${parts} parts: ${ms.toFixed(1)} ms and ${((r.cpu * 1000) / parts).toFixed(1)} CPU ms per part ${what}` };
}

async function samples(o: Opts, scratch: string, recipient: string, keyFile: string): Promise<[Sample, Sample]> {
  const bin = process.env.ZRB_BENCH_PARTS_BIN || ZRB_BIN;
  if (bin === ZRB_BIN) await ensureBinary();
  const pool = await makePool({ sizeMiB: Math.max(256, Math.ceil((o.parts * PART * 3) / (1 << 20)) + 128) });
  const s3 = await s3Rig();
  const bucket = await makeBucket(s3);
  const base = join(scratch, "parts-zrb");
  try {
    const fs = `${pool.pool}/data`;
    await rigRun(["zfs", "create", fs]);
    const mnt = await mountpointOf(fs);
    // The stream is a little longer than the file (its records): about N parts, a few more.
    await writeRandomFile(join(mnt, "data.bin"), o.parts * PART, 22);
    mkdirSync(base, { recursive: true, mode: 0o700 });
    const cfg = join(scratch, "parts.yaml");
    writeFileSync(cfg, configYaml({ baseDir: base, recipients: [recipient], bucket, s3, chunkSize: "64KiB", workers: o.workers, tasks: [{ name: "parts", pool: pool.pool, dataset: "data" }] }));
    const env = { ...s3Env(s3), ZRB_LOG_LEVEL: "1" };
    const snap = await run([bin, "snapshot", "--config", cfg, "--task", "parts", "--level", "0"], { env });
    if (snap.code !== 0) return [failed(`zrb snapshot: ${firstLine(snap.err)}`), failed("no backup")];
    const b = await run([bin, "backup", "--config", cfg, "--task", "parts", "--level", "0", "--json"], { stdout: "pipe", measure: true, env });
    if (b.code !== 0) return [sampleOf(b, 0, 1, ""), failed("no backup")];
    const j = jsonResult(b.out) as { streamBytes: number; parts: number };
    const who = bin === ZRB_BIN ? "" : `; ${bin}`;
    const backup = sampleOf(b, j.streamBytes, j.parts, `(sealed, recorded, uploaded)${who}`);
    const target = `${pool.pool}/restored`;
    const r = await run([bin, "restore", "--config", cfg, "--task", "parts", "--target", target, "--private-key", keyFile, "--json"], { stdout: "pipe", measure: true, env });
    const restore = sampleOf(r, j.streamBytes, j.parts, `(fetched, checked, decrypted, received)${who}`);
    if (r.code === 0) {
      await rigRun(["zfs", "mount", target]).catch(() => {});
      const [want, got] = await Promise.all([hashTree(mnt), mountpointOf(target).then(hashTree)]);
      const sums = (t: Record<string, string>) => JSON.stringify(Object.entries(t).map(([k, v]) => [k, v.split(" ").pop()]));
      if (sums(want) !== sums(got)) restore.check = "MISMATCH: restored files differ";
    }
    return [backup, restore];
  } finally {
    rmSync(base, { recursive: true, force: true });
    await emptyAndDeleteBucket(s3, bucket).catch(() => {});
    await pool.destroy().catch(() => {});
  }
}

export async function partsRows(o: Opts, scratch: string, recipient: string, keyFile: string): Promise<Row[]> {
  const rows: Row[] = PARTS_ROWS.map((label) => ({ label, kind: "parts" as Row["kind"], samples: [] }));
  const fail = (why: string) => rows.forEach((r) => r.samples.push(failed(why)));
  if (process.getuid?.() !== 0 || !Bun.which("zfs")) {
    fail("needs root and zfs (the test rig)");
    return rows;
  }
  try {
    const [b, r] = await samples(o, scratch, recipient, keyFile);
    rows[0]!.samples.push(b);
    rows[1]!.samples.push(r);
  } catch (err) {
    fail(`setup: ${(err as Error).message}`);
  }
  return rows;
}
