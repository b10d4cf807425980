/**
 * Chaos: the compiled binary against zfs-fuse + radosgw, attacked for N seeded iterations.
 * Each iteration changes files, takes a snapshot (levels cycling 0..3, tiny chunks), starts
 * `zrb backup`, and either SIGKILLs it at a random instant (reruns may be killed too) or
 * routes it through the loopback fault proxy (503 SlowDown, 500, connection resets,
 * requests cut mid-body, delays). It reruns until a run succeeds, then audits: no leaked
 * holds, no stale lock or state, no incomplete multipart upload, no orphan object. At the end
 * every manifest's parts must be in the bucket, and the newest backup is restored with
 * `zrb restore` and compared file by file with the snapshot it was taken from. A quarter of the
 * kills are a graceful SIGTERM instead, after which no lock and no send hold may remain.
 *
 *   ZRB_CHAOS_RUNS  iterations (default 20; a benchmark run uses 100+)
 *   ZRB_CHAOS_SEED  seed (default 1; printed, so a failure can be replayed)
 *
 * Prints one line: `chaos: N runs, K kills, F faults, 0 lost`.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { ageKeyPair, hashTree, makeBucket, makePool, run, s3Client, s3Rig, tmpDir, writeRandomFile, zfsRig, type S3Rig, type TestPool } from "../helpers/rig.ts";
import { configYaml, s3Env, spawnZrb, zrb } from "../helpers/zrb.ts";
import { forward, internalError, prng, slowDown, startFaultProxy, type FaultProxy, type ProxyAction } from "../helpers/faultproxy.ts";
import { audit, cleanAudit, manifests, userrefsOf } from "../helpers/audit.ts";

const RUNS = Number(process.env.ZRB_CHAOS_RUNS || 20);
const SEED = Number(process.env.ZRB_CHAOS_SEED || 1);
const PREFIX = "zrb/";

let s3: S3Rig;
let client: S3Client;
let pool: TestPool;
let bucket: string;
let work: string;
let keyFile: string;
let env: Record<string, string>;
let proxy: FaultProxy;
let fs: string;
let mnt: string;
let cfg: string;
let runDir: string;

beforeAll(async () => {
  await zfsRig();
  s3 = await s3Rig();
  client = await s3Client(s3);
  pool = await makePool({ sizeMiB: 512 });
  bucket = await makeBucket(s3);
  work = tmpDir("zrb-e2e-chaos-");
  const { recipient } = await ageKeyPair((keyFile = join(work, "key.txt")));
  env = s3Env(s3);
  proxy = startFaultProxy({ upstreamPort: Number(new URL(s3.endpoint).port) });
  fs = `${pool.pool}/chaos`;
  await run(["zfs", "create", fs]);
  mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fs])).stdout.trim();
  const base = join(work, "base");
  runDir = join(base, "run", pool.pool, "chaos");
  const doc = YAML.parse(
    configYaml({
      baseDir: base,
      recipients: [recipient],
      bucket,
      s3: { ...s3, endpoint: proxy.endpoint },
      prefix: PREFIX,
      chunkSize: "256KiB",
      workers: 2,
      tasks: [{ name: "c", pool: pool.pool, dataset: "chaos" }],
    }),
  );
  doc.s3.retry.max_attempts = 4;
  cfg = join(work, "chaos.yaml");
  writeFileSync(cfg, YAML.stringify(doc));
}, 300_000);

afterAll(async () => {
  proxy?.stop();
  await pool?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

/** Random edits: new files, rewrites, deletions, renames; a few MiB in all. */
async function mutate(rand: () => number, i: number): Promise<void> {
  mkdirSync(join(mnt, "d"), { recursive: true });
  const files = readdirSync(join(mnt, "d"));
  const n = 1 + Math.floor(rand() * 3);
  for (let k = 0; k < n; k++) {
    const size = Math.floor(rand() * (i % 4 === 0 ? 1_500_000 : 600_000));
    await writeRandomFile(join(mnt, "d", `f${i}-${k}.bin`), size, Math.floor(rand() * 2 ** 31));
  }
  if (files.length > 6 && rand() < 0.6) rmSync(join(mnt, "d", files[Math.floor(rand() * files.length)]!), { force: true });
  if (files.length > 2 && rand() < 0.4) {
    const f = files[Math.floor(rand() * files.length)]!;
    if (existsSync(join(mnt, "d", f))) renameSync(join(mnt, "d", f), join(mnt, "d", `r${i}-${f}`));
  }
  if (files.length > 0 && rand() < 0.3) {
    const f = files[Math.floor(rand() * files.length)]!;
    if (existsSync(join(mnt, "d", f))) await writeRandomFile(join(mnt, "d", f), Math.floor(rand() * 400_000), i);
  }
}

/** Keep the pool small: drop snapshots nobody holds, except the newest. */
async function prune(keep: string): Promise<void> {
  for (const [snap, n] of await userrefsOf(fs)) if (n === 0 && snap !== keep) await run(["zfs", "destroy", snap], { allowFail: true });
}

const backupArgs = (level: number) => ["backup", "--config", cfg, "--task", "c", "--level", String(level), "--json"];

function checkOutput(stderr: string, code: number, ctx: string): void {
  const errLines = stderr.split("\n").filter((l) => l.startsWith("zrb: "));
  if (stderr.includes("zrb: internal error") || /^\s+at /m.test(stderr) || errLines.length > 1 || (code !== 0 && errLines.length !== 1))
    throw new Error(`${ctx}: exit ${code}, unexpected output:\n${stderr}`);
}

test(`chaos: ${RUNS} seeded iterations of kill -9 / S3 faults, then restore`, async () => {
  const rand = prng(SEED);
  let kills = 0;
  let terms = 0;
  let killIters = 0;
  let early = 0; // runs that finished before their kill instant
  let typical = 1200; // ms a clean backup run takes, moving average
  let faults = 0;
  const trees = new Map<string, Record<string, string>>(); // snapshot -> files
  let newest: { backupId: string; snapshot: string } | null = null;
  const t0 = Date.now();

  for (let i = 0; i < RUNS; i++) {
    const level = i % 4;
    await mutate(rand, i);
    const snap = `${fs}@zrb_level${level}_20260101T${String(i).padStart(6, "0")}Z`;
    await run(["zfs", "snapshot", snap]);
    trees.set(snap, await hashTree(mnt));
    const mode = rand() < 0.6 ? "kill" : "fault";
    if (mode === "kill") killIters++;
    let done: any = null;
    for (let attempt = 0; !done; attempt++) {
      if (attempt > 12) throw new Error(`iteration ${i}: no success after ${attempt} attempts`);
      const ctx = `iteration ${i} (seed ${SEED}, level ${level}, ${mode}, attempt ${attempt})`;
      if (mode === "kill" && (attempt === 0 || (attempt < 4 && rand() < 0.35))) {
        proxy.setDecide(() => forward);
        const p = await spawnZrb(backupArgs(level), env);
        const outP = new Response(p.stdout).text();
        const errP = new Response(p.stderr).text();
        // A random instant within how long a backup takes here (measured on the clean runs).
        const at = 20 + Math.floor(rand() * typical * 0.85);
        const raced = await Promise.race([p.exited.then(() => true), Bun.sleep(at).then(() => false)]);
        // Mostly SIGKILL; sometimes a graceful SIGTERM, which must leave no lock and no send hold.
        const sig = rand() < 0.25 ? "SIGTERM" : "SIGKILL";
        if (raced) early++;
        else {
          p.kill(sig);
          if (sig === "SIGKILL") kills++;
          else terms++;
        }
        const code = await p.exited;
        const [out, err] = await Promise.all([outP, errP]);
        if (code === 0) done = JSON.parse(out);
        else if (code === 143 && sig === "SIGTERM") {
          // Silent only if the signal came before zrb installed its handler (start-up: nothing held yet).
          if (err.trim() !== "") checkOutput(err, code, ctx);
          // The lock is an flock the kernel drops with the process; a lock FILE may remain from an
          // earlier SIGKILLed attempt (when this SIGTERM came before zrb's handler). This run's own
          // lock file must be gone.
          const lockPath = join(runDir, "zrb.lock");
          if (existsSync(lockPath) && readFileSync(lockPath, "utf8").includes(`"pid":${p.pid},`)) throw new Error(`${ctx}: SIGTERM left the lock`);
          const a = await audit({ client, bucket, prefix: PREFIX, fs, runDir });
          if (Object.keys(a.badHolds).length) throw new Error(`${ctx}: SIGTERM left holds: ${JSON.stringify(a.badHolds)}`);
        } else if (code !== 137) {
          checkOutput(err, code, ctx);
          throw new Error(`${ctx}: exit ${code}: ${err}`);
        }
        continue;
      }
      // Fault mode (and killed runs' clean reruns): faults on for the first attempts, then off.
      const r2 = prng(SEED * 1000 + i * 17 + attempt);
      const faulty = mode === "fault" && attempt < 3;
      proxy.setDecide((): ProxyAction => {
        if (!faulty) return forward;
        const x = r2();
        if (x < 0.1) return (faults++, { kind: "reply", response: slowDown() });
        if (x < 0.16) return (faults++, { kind: "reply", response: internalError() });
        if (x < 0.22) return (faults++, { kind: "reset" });
        if (x < 0.26) return (faults++, { kind: "cut", afterBytes: Math.floor(r2() * 100_000) });
        if (x < 0.4) return (faults++, { kind: "forward", delayMs: Math.floor(r2() * 300) });
        return forward;
      });
      const started = performance.now();
      const r = await zrb(backupArgs(level), { env, allowFail: true });
      if (!faulty && r.code === 0) typical = Math.max(300, Math.round(0.5 * typical + 0.5 * (performance.now() - started)));
      checkOutput(r.stderr, r.code, ctx);
      if (r.code === 0) done = JSON.parse(r.stdout);
      else if (!(faulty && r.code === 6)) throw new Error(`${ctx}: exit ${r.code}: ${r.stderr}`);
    }
    proxy.setDecide(() => forward);
    expect(done.snapshot).toBe(snap);
    expect(done.level).toBe(level);
    newest = { backupId: done.backupId, snapshot: snap };
    const a = await audit({ client, bucket, prefix: PREFIX, fs, runDir });
    if (JSON.stringify(a) !== JSON.stringify(cleanAudit)) throw new Error(`iteration ${i} (seed ${SEED}): audit not clean: ${JSON.stringify(a)}`);
    await prune(snap);
  }

  // Nothing lost: every manifest's parts are in the bucket with the recorded size…
  let lost = 0;
  const ms = await manifests(client, bucket, PREFIX, fs);
  for (const m of ms) {
    for (const p of m.parts) {
      const h = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: PREFIX + p.key })).catch(() => null);
      if (!h || h.ContentLength !== p.cipherSize) {
        lost++;
        break;
      }
    }
  }
  // …and the newest backup restores (its whole chain) to exactly the files of its snapshot.
  const target = `${pool.pool}/restored`;
  await zrb(["restore", "--config", cfg, "--task", "c", "--target", target, "--private-key", keyFile, "--backup-id", newest!.backupId], { env });
  await run(["zfs", "mount", target]);
  const rmnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", target])).stdout.trim();
  const got = await hashTree(rmnt);
  if (JSON.stringify(got) !== JSON.stringify(trees.get(newest!.snapshot))) lost++;
  await run(["zfs", "unmount", target], { allowFail: true });
  expect(ms.length).toBe(RUNS);
  console.log(`chaos: ${RUNS} runs, ${kills} kills, ${faults} faults, ${lost} lost (seed ${SEED}, ${terms} SIGTERMs, ${killIters} kill iterations, ${early} finished before the kill, ${Math.round((Date.now() - t0) / 1000)} s)`);
  expect(lost).toBe(0);
}, 3_600_000);
