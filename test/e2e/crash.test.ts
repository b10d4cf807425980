/**
 * Crash safety on real parts (zfs-fuse, radosgw behind a loopback fault proxy, the compiled
 * binary): SIGTERM mid-upload, kill -9, a snapshot that vanished or a newer one appearing
 * before the rerun, S3 faults, a bucket or endpoint that is wrong, a full or read-only
 * base_dir, a missing zfs binary, a dataset that is gone — each ends in either a finished
 * backup or one clear line, and the next run always finishes.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { S3Client } from "@aws-sdk/client-s3";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { ageKeyPair, hashTree, makeBucket, makePool, run, s3Client, s3Rig, snapshotGuid, tmpDir, userrefs, waitFor, writeRandomFile, zfsRig, type S3Rig, type TestPool } from "../helpers/rig.ts";
import { configYaml, jsonResult, s3Env, sigtermGracefully, spawnZrb, zrb } from "../helpers/zrb.ts";
import { faultsHit, forward, internalError, slowDown, startFaultProxy, type FaultProxy, type ProxyAction, type ProxyRequest } from "../helpers/faultproxy.ts";
import { audit, cleanAudit, listKeys, listUploads, manifests } from "../helpers/audit.ts";

const PREFIX = "zrb/";
let s3: S3Rig;
let client: S3Client;
let pool: TestPool;
let bucket: string;
let work: string;
let keyFile: string;
let recipient: string;
let env: Record<string, string>;
let proxy: FaultProxy;
let snapSeq = 0;

interface Ds {
  name: string;
  fs: string;
  mnt: string;
  cfg: string;
  base: string;
  runDir: string;
}

/** A fresh dataset with its own task, config and base_dir, uploading through the proxy. */
async function dataset(name: string, o: { chunkSize?: string; workers?: number; maxAttempts?: number; baseDir?: string; endpoint?: string; bucket?: string } = {}): Promise<Ds> {
  const fs = `${pool.pool}/${name}`;
  await run(["zfs", "create", fs]);
  const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fs])).stdout.trim();
  const base = o.baseDir ?? join(work, `base-${name}`);
  const cfg = join(work, `${name}.yaml`);
  const doc = YAML.parse(
    configYaml({
      baseDir: base,
      recipients: [recipient],
      bucket: o.bucket ?? bucket,
      s3: { ...s3, endpoint: o.endpoint ?? proxy.endpoint },
      prefix: PREFIX,
      chunkSize: o.chunkSize ?? "1MiB",
      workers: o.workers ?? 2,
      tasks: [{ name: "t", pool: pool.pool, dataset: name }],
    }),
  );
  doc.s3.retry.max_attempts = o.maxAttempts ?? 6;
  doc.prune = { orphan_grace: "0s" }; // the orphans these tests make are seconds old
  writeFileSync(cfg, YAML.stringify(doc));
  return { name, fs, mnt, cfg, base, runDir: join(base, "run", pool.pool, name) };
}

async function snap(d: Ds, level: number): Promise<string> {
  const name = `${d.fs}@zrb_level${level}_20260101T0000${String(++snapSeq).padStart(4, "0")}Z`;
  await run(["zfs", "snapshot", name]);
  return name;
}

function backupArgs(d: Ds, level: number): string[] {
  return ["backup", "--config", d.cfg, "--task", "t", "--level", String(level), "--json"];
}

function readState(d: Ds): any {
  const p = join(d.runDir, "backup_state.yaml");
  return existsSync(p) ? YAML.parse(readFileSync(p, "utf8")) : null;
}

/** One `zrb: ` line on stderr, the exit code, and the message. */
async function expectFail(args: string[], code: number, extraEnv: Record<string, string> = {}): Promise<string> {
  const r = await zrb(args, { env: { ...env, ...extraEnv }, allowFail: true });
  if (r.code !== code) console.error(r.stderr);
  expect(r.code).toBe(code);
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("zrb: "));
  expect(lines.length).toBe(1);
  expect(lines[0]).toStartWith("zrb: error: ");
  expect(r.stderr).not.toContain("zrb: internal error");
  expect(r.stderr).not.toMatch(/^\s+at /m);
  return lines[0]!.slice("zrb: error: ".length);
}

/**
 * Restore the backup with zrb restore into a fresh dataset; check that the restored snapshot
 * is `source` (same guid) and return its files (content, mode, mtime, dirs, links).
 */
async function restoredTree(d: Ds, backupId: string, source: string): Promise<Record<string, string>> {
  const target = `${pool.pool}/r-${d.name}-${++snapSeq}`;
  await zrb(["restore", "--config", d.cfg, "--task", "t", "--target", target, "--private-key", keyFile, "--backup-id", backupId], { env });
  try {
    expect(await snapshotGuid(`${target}@${source.split("@")[1]}`)).toBe(await snapshotGuid(source));
    await run(["zfs", "mount", target]);
    return await hashTree((await run(["zfs", "get", "-H", "-o", "value", "mountpoint", target])).stdout.trim());
  } finally {
    for (let i = 0; i < 40; i++) {
      if ((await run(["zfs", "destroy", "-r", target], { allowFail: true })).code === 0) break;
      await Bun.sleep(250);
    }
  }
}

async function auditOf(d: Ds) {
  return audit({ client, bucket, prefix: PREFIX, fs: d.fs, runDir: d.runDir });
}

beforeAll(async () => {
  await zfsRig();
  s3 = await s3Rig();
  client = await s3Client(s3);
  pool = await makePool({ sizeMiB: 512 });
  bucket = await makeBucket(s3);
  work = tmpDir("zrb-e2e-crash-");
  ({ keyFile, recipient } = await ageKeyPair(join(work, "key.txt")));
  env = s3Env(s3);
  proxy = startFaultProxy({ upstreamPort: Number(new URL(s3.endpoint).port) });
}, 300_000);

// A fault schedule that throws is a bug in the test: fail the test that ran it.
afterEach(() => proxy?.check());

afterAll(async () => {
  proxy?.stop();
  await pool?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

const isUploadPart = (r: ProxyRequest) => r.method === "PUT" && /[?&]partNumber=\d+/.test(r.path) && /[?&]uploadId=/.test(r.path);
const partNumberOf = (r: ProxyRequest) => Number(/[?&]partNumber=(\d+)/.exec(r.path)![1]);
const uploadIdOf = (r: ProxyRequest) => decodeURIComponent(/[?&]uploadId=([^&]+)/.exec(r.path)![1]!);

describe("graceful SIGTERM / SIGINT", () => {
  test("SIGTERM mid multipart upload: in-flight parts are abandoned (exit 143, not the grace timeout), state kept, holds and lock released; the rerun finishes without re-uploading a finished part", async () => {
    const d = await dataset("sigterm", { chunkSize: "20MiB", workers: 2 });
    await writeRandomFile(join(d.mnt, "big.bin"), 56 * 1024 * 1024, 101); // chunks of 20+20+16 MiB: multipart (8 MiB parts)
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    // Part 1 of every upload and every part of chunk 0 go through at once; the others stall
    // for good: a zrb that waited for them could only stop by its 20 s grace timeout.
    proxy.setDecide((r) => (isUploadPart(r) && partNumberOf(r) > 1 && !r.path.includes("part-000000") ? { kind: "stall" } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("chunk 0 uploaded and another chunk's multipart part 1 recorded", () => {
      const st = readState(d);
      return !!st && st.chunks?.[0]?.uploaded === true && st.chunks.some((c: any) => c && !c.uploaded && c.multipart?.parts?.length >= 1);
    });
    expect(await sigtermGracefully(p)).toContain("state saved");
    expect(existsSync(join(d.runDir, "zrb.lock"))).toBe(false);
    expect(await userrefs(s)).toBe(0); // a first level 0: no base hold yet, and the send hold is gone
    const st = readState(d);
    expect(st).not.toBeNull();
    const done = st.chunks.filter((c: any) => c?.uploaded).map((c: any) => c.index);
    const partial = st.chunks.filter((c: any) => c && !c.uploaded && c.multipart);
    expect(done).toContain(0);
    expect(partial.length).toBeGreaterThan(0);
    const recordedParts = new Set<string>(partial.flatMap((c: any) => c.multipart.parts.map((x: any) => `${c.multipart.uploadId}#${x.partNumber}`)));
    expect(recordedParts.size).toBeGreaterThan(0);

    // Rerun without faults: same backup id, no PUT of a finished chunk, no finished part sent again.
    proxy.setDecide(() => forward);
    const from = proxy.log.length;
    const r = await zrb(backupArgs(d, 0), { env });
    const out = jsonResult(r.stdout);
    expect(out.backupId).toBe(st.backupId);
    expect(out.resumed).toBe(true);
    const rerunReqs = proxy.log.slice(from);
    for (const i of done) {
      const key = `part-${String(i).padStart(6, "0")}.age`;
      expect(rerunReqs.filter((q) => q.method === "PUT" && q.path.includes(key))).toEqual([]);
    }
    const resent = rerunReqs.filter(isUploadPart).filter((q) => recordedParts.has(`${uploadIdOf(q)}#${partNumberOf(q)}`));
    expect(resent).toEqual([]);
    // The partial uploads were continued, not restarted.
    for (const c of partial) expect(rerunReqs.some((q) => isUploadPart(q) && uploadIdOf(q) === c.multipart.uploadId)).toBe(true);

    expect(await auditOf(d)).toEqual(cleanAudit);
    expect(await userrefs(s)).toBe(1); // the base hold of the next incremental
    expect(await restoredTree(d, out.backupId, s)).toEqual(expected);
  }, 300_000);

  test("power loss: a spill file zeroed after its part was recorded (spill files are not fsynced) is sealed again, never uploaded or continued; its multipart upload is aborted and what the rerun stores restores", async () => {
    const d = await dataset("powerloss", { chunkSize: "20MiB", workers: 2 });
    await writeRandomFile(join(d.mnt, "big.bin"), 56 * 1024 * 1024, 131);
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    proxy.setDecide((r) => (isUploadPart(r) && partNumberOf(r) > 1 && !r.path.includes("part-000000") ? { kind: "stall" } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("a recorded chunk with a multipart piece stored", () => {
      const st = readState(d);
      return !!st && st.chunks.some((c: any) => c?.sha256 && !c.uploaded && c.multipart?.parts?.length >= 1);
    });
    expect(await sigtermGracefully(p)).toContain("state saved");
    proxy.setDecide(() => forward);
    const st = readState(d);
    const victim = st.chunks.find((c: any) => c?.sha256 && !c.uploaded && c.multipart?.parts?.length >= 1);
    const file = join(d.runDir, "spill", st.backupId, `part-${String(victim.index).padStart(6, "0")}.age`);
    // What a power loss leaves of a file whose pages were never written out: its size, zeros.
    expect(readFileSync(file).length).toBe(victim.cipherSize);
    writeFileSync(file, Buffer.alloc(victim.cipherSize));
    const from = proxy.log.length;
    const out = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(out.backupId).toBe(st.backupId);
    const old = proxy.log.slice(from).filter((q) => /[?&]uploadId=/.test(q.path) && uploadIdOf(q) === victim.multipart.uploadId);
    expect(old.map((q) => q.method)).toEqual(["DELETE"]);
    expect(readState(d)).toBeNull();
    expect(await auditOf(d)).toEqual(cleanAudit);
    expect(await restoredTree(d, out.backupId, s)).toEqual(expected);
  }, 300_000);

  test("SIGTERM as soon as the lock is taken (before zfs send starts): exits 143, nothing left held, every time", async () => {
    const d = await dataset("early", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 3 * 1024 * 1024, 110);
    const s = await snap(d, 0);
    // Every S3 request is late: the run cannot finish before the signal, so each round tests it.
    proxy.setDecide(() => ({ kind: "forward", delayMs: 1500 }));
    try {
      for (let i = 0; i < 3; i++) {
        const from = proxy.log.length;
        const p = await spawnZrb(backupArgs(d, 0), env);
        await waitFor("the lock", () => existsSync(join(d.runDir, "zrb.lock")), 20_000);
        await sigtermGracefully(p);
        expect(existsSync(join(d.runDir, "zrb.lock"))).toBe(false);
        expect(await userrefs(s)).toBe(0);
        // Nothing was uploaded: the signal came before any part.
        expect(proxy.log.slice(from).filter((q) => q.method === "PUT")).toEqual([]);
      }
    } finally {
      proxy.setDecide(() => forward);
    }
    jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 120_000);

  test("SIGINT exits 130 and the rerun finishes", async () => {
    const d = await dataset("sigint", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 6 * 1024 * 1024, 102);
    await snap(d, 0);
    proxy.setDecide((r) => (r.method === "PUT" && !r.path.includes("part-000000") ? { kind: "forward", delayMs: 5000 } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("part 0 uploaded", () => readState(d)?.chunks?.[0]?.uploaded === true);
    p.kill("SIGINT");
    expect(await p.exited).toBe(130);
    expect(existsSync(join(d.runDir, "zrb.lock"))).toBe(false);
    proxy.setDecide(() => forward);
    const out = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(out.resumed).toBe(true);
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 120_000);
});

describe("kill -9 and resume", () => {
  test("kill -9 leaks the send hold and the lock; the rerun takes both over, finishes, and leaves nothing behind", async () => {
    const d = await dataset("kill9", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 5 * 1024 * 1024, 103);
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    proxy.setDecide((r) => (r.method === "PUT" && r.path.includes("part-000003") ? { kind: "forward", delayMs: 10_000 } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("two parts uploaded", () => (readState(d)?.chunks ?? []).filter((c: any) => c?.uploaded).length >= 2);
    p.kill("SIGKILL");
    expect(await p.exited).toBe(137);
    expect(existsSync(join(d.runDir, "zrb.lock"))).toBe(true);
    expect(await userrefs(s)).toBe(1); // the leaked zrb-send hold
    proxy.setDecide(() => forward);
    const out = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(out.resumed).toBe(true);
    expect(await userrefs(s)).toBe(1); // now: the persistent base hold only
    expect(await auditOf(d)).toEqual(cleanAudit);
    expect(await restoredTree(d, out.backupId, s)).toEqual(expected);
  }, 120_000);

  test("an interrupted full is finished by the next incremental run, which then backs up on top of it", async () => {
    const d = await dataset("lowerfirst", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 5 * 1024 * 1024, 104);
    const full = await snap(d, 0);
    proxy.setDecide((r) => (r.method === "PUT" && r.path.includes("part-000003") ? { kind: "forward", delayMs: 10_000 } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("two parts uploaded", () => (readState(d)?.chunks ?? []).filter((c: any) => c?.uploaded).length >= 2);
    p.kill("SIGKILL");
    expect(await p.exited).toBe(137);
    const interrupted = readState(d).backupId;
    proxy.setDecide(() => forward);
    await writeRandomFile(join(d.mnt, "b.bin"), 100_000, 105);
    const expected = await hashTree(d.mnt);
    const s1 = await snap(d, 1);
    const r = await zrb(backupArgs(d, 1), { env });
    expect(r.stderr).toContain(`finishing interrupted level-0 backup ${interrupted}`);
    const out = jsonResult(r.stdout);
    expect(out.level).toBe(1);
    expect(out.parentBackupId).toBe(interrupted);
    expect(out.parent).toBe(full);
    expect(await auditOf(d)).toEqual(cleanAudit);
    expect(await restoredTree(d, out.backupId, s1)).toEqual(expected);
  }, 120_000);

  test("a newer snapshot appeared before the rerun: the rerun still backs up the recorded one", async () => {
    const d = await dataset("newer", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 4 * 1024 * 1024, 104);
    const s1 = await snap(d, 0);
    proxy.setDecide((r) => (r.method === "PUT" && !r.path.includes("part-000000") ? { kind: "forward", delayMs: 10_000 } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("part 0 uploaded", () => readState(d)?.chunks?.[0]?.uploaded === true);
    p.kill("SIGTERM");
    expect(await p.exited).toBe(143);
    proxy.setDecide(() => forward);
    await writeRandomFile(join(d.mnt, "b.bin"), 100_000, 105);
    const s2 = await snap(d, 0);
    const first = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(first.snapshot).toBe(s1);
    expect(first.resumed).toBe(true);
    const second = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(second.snapshot).toBe(s2);
    expect(second.resumed).toBe(false);
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 120_000);

  test("kill -9 while a part is still sealed and its early upload holds pieces: the rerun aborts that upload (never continues it), seals the part again, and what it stores restores", async () => {
    const d = await dataset("kill9early", { chunkSize: "20MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 30 * 1024 * 1024, 111);
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    // The send stops 14 MiB in, inside chunk 0 (20 MiB): its first 8 MiB piece can go up early.
    const fake = join(work, "zfs-send-pause");
    const pidFile = join(work, "zfs-send-pause.pid");
    writeFileSync(fake, `#!/bin/bash\nif [ "$1" = send ] && [ "$2" != -n ]; then zfs "$@" | head -c 14680064; echo $$ > '${pidFile}'; exec sleep 600; fi\nexec zfs "$@"\n`, { mode: 0o755 });
    const from = proxy.log.length;
    const p = await spawnZrb(backupArgs(d, 0), { ...env, ZRB_ZFS: fake });
    let uploadId = "";
    try {
      await waitFor("an early upload recorded with a piece stored", async () => {
        uploadId = readState(d)?.sealingUploads?.[0]?.uploadId ?? "";
        if (!uploadId) return false;
        const up = (await listUploads(client, bucket)).find((u) => u.uploadId === uploadId);
        return !!up && proxy.log.slice(from).some((q) => isUploadPart(q) && uploadIdOf(q) === uploadId);
      });
      // Let the piece's request finish (its reply), then kill mid-part.
      await Bun.sleep(1500);
      p.kill("SIGKILL");
      expect(await p.exited).toBe(137);
    } finally {
      if (existsSync(pidFile)) process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    }
    const st = readState(d);
    // The part was never sealed: no chunk record, only the early upload to abort.
    expect(st.chunks.filter((c: any) => c?.sha256)).toEqual([]);
    expect(st.sealingUploads).toEqual([{ index: 0, uploadId }]);
    const rerun = proxy.log.length;
    const out = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(out.backupId).toBe(st.backupId);
    const reqs = proxy.log.slice(rerun).filter((q) => /[?&]uploadId=/.test(q.path) && uploadIdOf(q) === uploadId);
    // Aborted, and nothing else: no piece added to it, no Complete of it.
    expect(reqs.map((q) => q.method)).toEqual(["DELETE"]);
    expect(readState(d)).toBeNull();
    expect(await auditOf(d)).toEqual(cleanAudit);
    expect(await restoredTree(d, out.backupId, s)).toEqual(expected);
  }, 180_000);

  test("the recorded snapshot vanished: the rerun fails clearly and cleans up; the run after it starts fresh", async () => {
    const d = await dataset("vanished", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 4 * 1024 * 1024, 106);
    const s1 = await snap(d, 0);
    proxy.setDecide((r) => (isUploadPart(r) || (r.method === "PUT" && !r.path.includes("part-000000")) ? { kind: "forward", delayMs: 10_000 } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("part 0 uploaded", () => readState(d)?.chunks?.[0]?.uploaded === true);
    p.kill("SIGTERM");
    expect(await p.exited).toBe(143);
    proxy.setDecide(() => forward);
    const st = readState(d);
    await run(["zfs", "destroy", s1]);
    const msg = await expectFail(backupArgs(d, 0), 5);
    expect(msg).toBe(
      `the interrupted backup ${st.backupId} needs ${s1} (guid ${st.snapshot.guid}), which no longer exists on ${d.fs}; ` +
        `its uploads were aborted, its parts deleted and its state removed: run the backup again to back up the newest snapshot`,
    );
    expect(readState(d)).toBeNull();
    expect(await listKeys(client, bucket, `${PREFIX}data/${d.fs}/`)).toEqual([]);
    expect((await listUploads(client, bucket)).filter((u) => u.key.includes(`/${d.fs}/`))).toEqual([]);
    expect(existsSync(join(d.runDir, "zrb.lock"))).toBe(false);
    // With no snapshot left the next run says so; with a new one it backs it up.
    expect(await expectFail(backupArgs(d, 0), 5)).toContain(`no snapshot ${d.fs}@zrb_level0_* to back up`);
    const s2 = await snap(d, 0);
    const out = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(out.snapshot).toBe(s2);
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 120_000);
});

describe("zrb cleanup", () => {
  test("lists (dry run) and removes dangling uploads and orphan parts; keeps finished backups, the resumable one and other datasets' objects", async () => {
    const { CreateMultipartUploadCommand, PutObjectCommand, DeleteObjectCommand } = await import("@aws-sdk/client-s3");
    const d = await dataset("cleanup", { chunkSize: "10MiB" });
    await writeRandomFile(join(d.mnt, "small.bin"), 300_000, 201);
    await snap(d, 0);
    const done = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    await writeRandomFile(join(d.mnt, "big.bin"), 25 * 1024 * 1024, 202);
    await snap(d, 1);
    // kill -9 with multipart uploads in flight: they are recorded in the state and must survive cleanup.
    proxy.setDecide((r) => (isUploadPart(r) && partNumberOf(r) > 1 ? { kind: "forward", delayMs: 10_000 } : forward));
    const p = await spawnZrb(backupArgs(d, 1), env);
    await waitFor("a multipart part recorded", () => (readState(d)?.chunks ?? []).some((c: any) => c?.multipart?.parts?.length >= 1));
    p.kill("SIGKILL");
    await p.exited;
    proxy.setDecide(() => forward);
    const st = readState(d);
    const stateUploads = st.chunks.filter((c: any) => c?.multipart).map((c: any) => c.multipart.uploadId).sort();

    // What a lost state or a foreign crash leaves: an upload and a part nobody refers to.
    const stale = `${PREFIX}data/${d.fs}/level0/20250101T000000Z-L0-abcdef/`;
    const up = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: stale + "part-000000.age" }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: stale + "part-000001.age", Body: "orphan" }));
    const child = `${PREFIX}data/${d.fs}/child/level0/20250101T000000Z-L0-abcdef/part-000000.age`; // another dataset's
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: child, Body: "child" }));
    const base = ["cleanup", "--allow-unsigned", "--config", d.cfg, "--task", "t", "--json"];

    // A kill -9 can also land between an upload's creation and the state write that records
    // it: the run never learned its id, but it lies under the resumable backup's prefix (which
    // its in-flight marker claims too): cleanup keeps it, and the backup aborts it when it commits.
    const unrecorded = (await listUploads(client, bucket))
      .filter((u) => u.key.includes(`/${d.fs}/level1/${st.backupId}/`) && !stateUploads.includes(u.uploadId))
      .map((u) => u.uploadId);
    const dry = jsonResult((await zrb([...base, "--dry-run"], { env })).stdout);
    expect(dry.dryRun).toBe(true);
    expect(dry.uploads.map((u: any) => u.uploadId)).toEqual([up.UploadId!]);
    expect(dry.orphans.map((o: any) => o.key)).toEqual([`data/${d.fs}/level0/20250101T000000Z-L0-abcdef/part-000001.age`]);
    expect(dry.kept.resumableBackupId).toBe(st.backupId);
    expect((await listUploads(client, bucket)).some((u) => u.uploadId === up.UploadId)).toBe(true);
    const young = jsonResult((await zrb([...base, "--older-than", "1h"], { env })).stdout);
    expect(young.uploads).toEqual([]);
    expect(young.orphans).toEqual([]);
    expect(await expectFail([...base, "--older-than", "soon"], 2)).toBe('--older-than must be a duration like 30m, 24h or 7d, got "soon"');

    // The resumable backup's spill files stay for its rerun; a spill directory nothing resumes goes.
    const spill = join(d.runDir, "spill", st.backupId);
    const staleSpill = join(d.runDir, "spill", "20250101T000000Z-L0-abcdef");
    expect(readdirSync(spill).length).toBeGreaterThan(0);
    mkdirSync(staleSpill, { recursive: true });
    writeFileSync(join(staleSpill, "part-000000.age"), "left by a lost state");
    const real = jsonResult((await zrb(base, { env })).stdout);
    expect(real.uploads.length).toBe(1);
    expect(real.orphans.length).toBe(1);
    expect(real.spillDirs).toEqual([staleSpill]);
    expect(existsSync(staleSpill)).toBe(false);
    expect(readdirSync(spill).length).toBeGreaterThan(0);
    const left = await listUploads(client, bucket);
    expect(left.some((u) => u.uploadId === up.UploadId)).toBe(false);
    expect(left.filter((u) => u.key.includes(`/${d.fs}/level1/`)).map((u) => u.uploadId).sort()).toEqual([...stateUploads, ...unrecorded].sort());
    expect((await listKeys(client, bucket, child)).length).toBe(1);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: child }));

    // The resumable backup still resumes, and leaves nothing behind.
    const out = jsonResult((await zrb(backupArgs(d, 1), { env })).stdout);
    expect(out.backupId).toBe(st.backupId);
    expect(out.parentBackupId).toBe(done.backupId);
    expect(await auditOf(d)).toEqual(cleanAudit);

    // A state lost with base_dir: the killed run's in-flight marker still claims its uploads (no
    // host can tell a lost state from a backup about to resume); cleanup --abandon removes them.
    await writeRandomFile(join(d.mnt, "big2.bin"), 25 * 1024 * 1024, 203);
    await snap(d, 1);
    proxy.setDecide((r) => (isUploadPart(r) && partNumberOf(r) > 1 ? { kind: "forward", delayMs: 10_000 } : forward));
    const p2 = await spawnZrb(backupArgs(d, 1), env);
    await waitFor("a multipart part recorded", () => (readState(d)?.chunks ?? []).some((c: any) => c?.multipart?.parts?.length >= 1));
    p2.kill("SIGKILL");
    await p2.exited;
    proxy.setDecide(() => forward);
    const lostId = readState(d).backupId;
    rmSync(join(d.runDir, "backup_state.yaml"));
    const again = jsonResult((await zrb(base, { env })).stdout);
    expect(again.uploads).toEqual([]);
    expect(again.inflight.map((b: any) => b.backupId)).toEqual([lostId]);
    expect(again.spillDirs.some((s: string) => s.endsWith(lostId))).toBe(true);
    const abandoned = jsonResult((await zrb([...base, "--abandon", lostId], { env })).stdout);
    expect(abandoned.uploads.length).toBeGreaterThan(0);
    expect(abandoned.uploads.every((u: any) => u.key.includes(lostId))).toBe(true);
    expect(abandoned.marker).toBe(`manifests/${d.fs}/${lostId}.inflight.yaml`);
    // …and the send holds the killed run leaked on its snapshot and base.
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 180_000);

  test("cleanup refuses while a backup of the dataset runs", async () => {
    const d = await dataset("cleanlock", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 3 * 1024 * 1024, 204);
    await snap(d, 0);
    proxy.setDecide((r) => (r.method === "PUT" ? { kind: "forward", delayMs: 3000 } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("the lock", () => existsSync(join(d.runDir, "zrb.lock")));
    const msg = await expectFail(["cleanup", "--allow-unsigned", "--config", d.cfg, "--task", "t"], 4);
    expect(msg).toMatch(new RegExp(`^dataset ${d.fs} is locked by 'zrb backup --level 0' \\(pid \\d+`));
    proxy.setDecide(() => forward);
    expect(await p.exited).toBe(0);
  }, 120_000);
});

describe("S3 faults through the proxy", () => {
  test("503 SlowDown bursts, 500s, connection resets, cut bodies and delays are retried and the backup succeeds", async () => {
    const d = await dataset("faults", { chunkSize: "1MiB", maxAttempts: 8 });
    await writeRandomFile(join(d.mnt, "a.bin"), 5 * 1024 * 1024, 301);
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    proxy.setDecide((r): ProxyAction => {
      const k = r.n % 10;
      if (k === 1 || k === 2) return { kind: "reply", response: slowDown() }; // bursts of two
      if (k === 4) return { kind: "reply", response: internalError() };
      if (k === 6) return { kind: "reset" };
      if (k === 8 && r.method === "PUT") return { kind: "cut", afterBytes: 5000 };
      if (k === 9) return { kind: "forward", delayMs: 400 };
      return forward;
    });
    const from = proxy.log.length;
    try {
      const out = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
      expect(out.resumed).toBe(false);
      // Counted from what the proxy really did (a cut of a body under 5000 bytes is no fault).
      const hit = faultsHit(proxy.log.slice(from));
      const hitAt = (...k: number[]) => hit.filter((q) => k.includes(q.n % 10)).length;
      expect(hitAt(1, 2)).toBeGreaterThan(1); // 503
      expect(hitAt(4)).toBeGreaterThan(0); // 500
      expect(hitAt(6)).toBeGreaterThan(0); // reset
      expect(hitAt(8)).toBeGreaterThan(0); // cut mid-body
      expect(proxy.log.slice(from).some((q) => q.n % 10 === 9 && q.action === "forward")).toBe(true);
      proxy.setDecide(() => forward);
      expect(await auditOf(d)).toEqual(cleanAudit);
      expect(await restoredTree(d, out.backupId, s)).toEqual(expected);
    } finally {
      proxy.setDecide(() => forward);
    }
  }, 120_000);

  test("a spent retry budget is one clear error; the state stays resumable and the rerun finishes", async () => {
    const d = await dataset("budget", { chunkSize: "1MiB", maxAttempts: 3 });
    await writeRandomFile(join(d.mnt, "a.bin"), 4 * 1024 * 1024, 302);
    const s = await snap(d, 0);
    proxy.setDecide((r) => (r.method === "PUT" && r.path.includes("part-000002") ? { kind: "reply", response: slowDown() } : forward));
    const msg = await expectFail(backupArgs(d, 0), 6);
    const st = readState(d);
    expect(msg).toBe(
      `put s3://${bucket}/${PREFIX}data/${d.fs}/level0/${st.backupId}/part-000002.age failed after 3 attempts: ` +
        `SlowDown (HTTP 503): Please reduce your request rate.; fix that and rerun: it resumes backup ${st.backupId}`,
    );
    expect(existsSync(join(d.runDir, "zrb.lock"))).toBe(false);
    expect(await userrefs(s)).toBe(0);
    expect(st.chunks[0].uploaded).toBe(true);
    proxy.setDecide(() => forward);
    const out = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(out.backupId).toBe(st.backupId);
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 120_000);

  test("clock skew and expired credentials: one line saying what to do", async () => {
    const d = await dataset("skew", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 100_000, 303);
    await snap(d, 0);
    const { s3Error } = await import("../helpers/faultproxy.ts");
    try {
      proxy.setDecide(() => ({ kind: "reply", response: s3Error(403, "Forbidden", "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.") }));
      expect(await expectFail(backupArgs(d, 0), 6)).toStartWith(`clock skew: ${proxy.endpoint} rejected the request time`);
      proxy.setDecide(() => ({ kind: "reply", response: s3Error(400, "Bad Request", "ExpiredToken", "The provided token has expired.") }));
      expect(await expectFail(backupArgs(d, 0), 6)).toStartWith(`credentials expired for bucket ${bucket}`);
    } finally {
      proxy.setDecide(() => forward);
    }
    jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 120_000);
});

describe("wrong bucket, dead endpoint, full or read-only disk, no zfs, no dataset", () => {
  test("a bucket that does not exist", async () => {
    const d = await dataset("nobucket", { bucket: "zrbt-does-not-exist" });
    await writeRandomFile(join(d.mnt, "a.bin"), 100_000, 304);
    const s = await snap(d, 0);
    expect(await expectFail(backupArgs(d, 0), 6)).toBe(`bucket zrbt-does-not-exist does not exist at ${proxy.endpoint}; create it or fix s3.bucket`);
    expect(readState(d)).toBeNull(); // failed before anything was held, written or sent
    expect(await userrefs(s)).toBe(0);
    expect(existsSync(join(d.runDir, "zrb.lock"))).toBe(false);
  }, 60_000);

  test("an endpoint that does not answer", async () => {
    const dead = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = dead.port;
    dead.stop(true); // nothing listens there now: connections are refused
    const d = await dataset("noendpoint", { endpoint: `http://127.0.0.1:${port}`, maxAttempts: 2 });
    await writeRandomFile(join(d.mnt, "a.bin"), 100_000, 305);
    await snap(d, 0);
    expect(await expectFail(backupArgs(d, 0), 6)).toMatch(
      new RegExp(`^cannot reach S3 endpoint http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.* \\(after 2 attempts\\)$`),
    );
  }, 60_000);

  test("disk full under base_dir: the error names the path; after freeing space the rerun resumes", async () => {
    const base = join(work, "tiny");
    mkdirSync(base, { recursive: true });
    // mode=0700: a tmpfs root is 1777 by default, and zrb refuses a base_dir others can write.
    await run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", base]);
    try {
      const d = await dataset("full", { chunkSize: "2MiB", workers: 1, baseDir: base });
      await writeRandomFile(join(d.mnt, "a.bin"), 9 * 1024 * 1024, 306);
      const s = await snap(d, 0);
      // Slow uploads so that spill files pile up: 2 chunks of 2 MiB do not fit in 3 MiB.
      proxy.setDecide((r) => (r.method === "PUT" ? { kind: "forward", delayMs: 1500 } : forward));
      const msg = await expectFail(backupArgs(d, 0), 9);
      proxy.setDecide(() => forward);
      // Whichever write the full disk refused first — the next part's spill file, or the state
      // file recording the part before (spill files are not fsynced, so the two race) — is named.
      const runDir = `${base}/run/${pool.pool}/full`;
      expect(msg).toMatch(new RegExp(`^writing (spill chunk: no space left on device at ${runDir}/spill/[0-9A-Za-z-]+/part-\\d{6}\\.age|state file: no space left on device at ${runDir}/backup_state\\.yaml); free space or point base_dir at a larger disk; fix that and rerun: it resumes backup [0-9A-Za-z-]+$`));
      expect(existsSync(join(d.runDir, "zrb.lock"))).toBe(false);
      // No temp file of a refused state write left lying.
      expect(readdirSync(d.runDir).filter((n) => n.includes(".tmp"))).toEqual([]);
      expect(await userrefs(s)).toBe(0);
      const st = readState(d);
      expect(st).not.toBeNull();
      await run(["mount", "-o", "remount,size=64m", base]);
      const out = jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
      expect(out.backupId).toBe(st.backupId);
      expect(await auditOf(d)).toEqual(cleanAudit);
    } finally {
      proxy.setDecide(() => forward);
      await run(["umount", "-l", base], { allowFail: true });
    }
  }, 120_000);

  test("a read-only base_dir", async () => {
    const base = join(work, "ro");
    mkdirSync(base, { recursive: true });
    await run(["mount", "-t", "tmpfs", "-o", "ro,size=1m,mode=0700", "tmpfs", base]);
    try {
      const d = await dataset("readonly", { baseDir: base });
      await writeRandomFile(join(d.mnt, "a.bin"), 100_000, 307);
      await snap(d, 0);
      expect(await expectFail(backupArgs(d, 0), 9)).toMatch(new RegExp(`^base_dir ${base} is not writable: .*read-only file system.*; make it writable or change base_dir$`));
    } finally {
      await run(["umount", "-l", base], { allowFail: true });
    }
  }, 60_000);

  test("a missing zfs binary", async () => {
    const d = await dataset("nozfs");
    await snap(d, 0);
    expect(await expectFail(backupArgs(d, 0), 5, { ZRB_ZFS: "/nonexistent/zfs" })).toMatch(
      /^cannot run '\/nonexistent\/zfs': .*; install the ZFS utilities \(zfsutils-linux\) or put zfs on PATH$/,
    );
    expect(existsSync(join(d.runDir, "zrb.lock"))).toBe(false);
  }, 60_000);

  test("a dataset that is gone", async () => {
    const d = await dataset("gone");
    for (let i = 0; i < 40 && (await run(["zfs", "destroy", "-r", d.fs], { allowFail: true })).code !== 0; i++) await Bun.sleep(250);
    expect(await expectFail(backupArgs(d, 0), 5)).toBe(`dataset ${d.fs} (task t) does not exist; check tasks[].pool/dataset in ${d.cfg}`);
  }, 60_000);
});

describe("resume edge cases", () => {
  test("killed after the manifest was written: the rerun finishes the bookkeeping without sending again", async () => {
    const d = await dataset("aftermanifest", { chunkSize: "1MiB", maxAttempts: 2 });
    await writeRandomFile(join(d.mnt, "a.bin"), 3 * 1024 * 1024, 401);
    const s = await snap(d, 0);
    // heads.yaml cannot be written: the run fails after its manifest is in the bucket.
    proxy.setDecide((r) => (r.method === "PUT" && r.path.includes("heads.yaml") ? { kind: "reply", response: internalError() } : forward));
    const msg = await expectFail(backupArgs(d, 0), 6);
    expect(msg).toContain("heads.yaml failed after 2 attempts");
    const st = readState(d);
    expect((await manifests(client, bucket, PREFIX, d.fs)).map((m) => m.backupId)).toEqual([st.backupId]);
    // A kill -9 at this point would also have leaked the send hold: the rerun, with nothing to send, releases it.
    await run(["zfs", "hold", "zrb-send", s]);
    proxy.setDecide(() => forward);
    const from = proxy.log.length;
    const r = await zrb(backupArgs(d, 0), { env });
    const out = jsonResult(r.stdout);
    expect(out.backupId).toBe(st.backupId);
    expect(r.stderr).toContain(`backup ${st.backupId} was already complete`);
    expect(proxy.log.slice(from).filter((q) => q.method === "PUT" && q.path.includes("/data/"))).toEqual([]);
    expect(await userrefs(s)).toBe(1);
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 120_000);

  test("the base hold cannot be placed after the manifest: the run fails and keeps its state; the rerun places the hold", async () => {
    const d = await dataset("basehold", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 100_000, 402);
    const s = await snap(d, 0);
    // `zfs hold zrb` fails (the send hold, zrb-send, is taken as usual): the backup's manifest and heads are stored by then.
    const fake = join(work, "zfs-no-base-hold");
    writeFileSync(fake, `#!/bin/bash\nif [ "$1" = hold ] && [ "$2" = zrb ]; then echo "cannot hold snapshot '$3': permission denied" >&2; exit 1; fi\nexec zfs "$@"\n`, { mode: 0o755 });
    expect(await expectFail(backupArgs(d, 0), 5, { ZRB_ZFS: fake })).toContain("permission denied");
    // Not reported as done, and the state that makes the next run place the hold is still there.
    const st = readState(d);
    expect(st?.snapshot?.name).toBe(s);
    expect(await userrefs(s)).toBe(0);
    const r = await zrb(backupArgs(d, 0), { env });
    expect(r.stderr).toContain(`backup ${st.backupId} was already complete`);
    expect(await userrefs(s)).toBe(1);
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 60_000);

  test("a finished level 1 whose heads.yaml write failed, then superseded by a level-0 run: every part of it is kept and it restores", async () => {
    const d = await dataset("keepparts", { chunkSize: "1MiB", maxAttempts: 2 });
    await writeRandomFile(join(d.mnt, "a.bin"), 2 * 1024 * 1024, 410);
    await snap(d, 0);
    jsonResult((await zrb(backupArgs(d, 0), { env })).stdout);
    await writeRandomFile(join(d.mnt, "b.bin"), 3 * 1024 * 1024 + 5, 411);
    const expected = await hashTree(d.mnt);
    const s1 = await snap(d, 1);
    // Parts and manifest are stored, then the heads write fails (500 after every retry): the
    // level 1 is complete in the bucket but its state file is left behind.
    proxy.setDecide((r) => (r.method === "PUT" && r.path.includes("heads.yaml") ? { kind: "reply", response: internalError() } : forward));
    const from = proxy.log.length;
    try {
      expect(await expectFail(backupArgs(d, 1), 6)).toContain("heads.yaml failed after 2 attempts");
    } finally {
      proxy.setDecide(() => forward);
    }
    expect(faultsHit(proxy.log.slice(from)).length).toBe(2);
    const st = readState(d);
    expect(st.level).toBe(1);
    const m1 = (await manifests(client, bucket, PREFIX, d.fs)).find((m) => m.backupId === st.backupId);
    expect(m1.snapshot.name).toBe(s1);
    const stored = () => listKeys(client, bucket, `${PREFIX}data/${d.fs}/level1/${st.backupId}/`).then((l) => l.map((o) => [o.key, o.size]));
    const want = m1.parts.map((p: any) => [PREFIX + p.key, p.cipherSize]);
    expect(want.length).toBeGreaterThan(2);
    expect(await stored()).toEqual(want);

    // A level-0 run supersedes the leftover level-1 state.
    await writeRandomFile(join(d.mnt, "c.bin"), 100_000, 412);
    await snap(d, 0);
    const r0 = await zrb(backupArgs(d, 0), { env });
    expect(r0.stderr).not.toContain("rolled back"); // the failed heads write left this host's head cache as it was
    const l0 = jsonResult(r0.stdout);
    expect(l0.level).toBe(0);
    expect(readState(d)).toBeNull();
    expect(await stored()).toEqual(want);
    expect(await restoredTree(d, st.backupId, s1)).toEqual(expected);
    expect(await auditOf(d)).toEqual(cleanAudit);
  }, 180_000);

  test("the re-sent stream differs from the recorded hashes: the backup starts over under a new id, and the old parts go", async () => {
    const d = await dataset("differs", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 4 * 1024 * 1024, 402);
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    proxy.setDecide((r) => (r.method === "PUT" && !r.path.includes("part-000000") ? { kind: "forward", delayMs: 10_000 } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("part 0 uploaded", () => readState(d)?.chunks?.[0]?.uploaded === true);
    p.kill("SIGTERM");
    expect(await p.exited).toBe(143);
    proxy.setDecide(() => forward);
    const old = readState(d);
    // OpenZFS does not promise byte-identical streams; a real pool will not show it on demand, so
    // a wrapper around the real zfs changes one byte of chunk 0 in the first send of the rerun.
    const mark = join(work, "differs.mark");
    const refs = join(work, "differs.refs");
    const fake = join(work, "zfs-differs");
    // Every later send notes the holds on what it sends: starting over must not give up the run's send hold.
    writeFileSync(
      fake,
      `#!/bin/bash\nset -o pipefail\nif [ "$1" = send ] && [ ! -e ${mark} ]; then touch ${mark}\n` +
        `zfs "$@" | { dd bs=1 count=1000 status=none; dd bs=1 count=1 of=/dev/null status=none; printf Z; cat; }\nexit $?\nfi\n` +
        `if [ "$1" = send ]; then zfs get -H -p -o value userrefs "\${@: -1}" >> ${refs}; fi\nexec zfs "$@"\n`,
      { mode: 0o755 },
    );
    const r = await zrb(backupArgs(d, 0), { env: { ...env, ZRB_ZFS: fake } });
    const out = jsonResult(r.stdout);
    expect(existsSync(mark)).toBe(true);
    expect(r.stderr).toContain("differs from the interrupted run's bytes; starting backup over under a new id");
    expect(out.backupId).not.toBe(old.backupId);
    expect(readFileSync(refs, "utf8").trim().split("\n")).toEqual(["1"]);
    expect(await listKeys(client, bucket, `${PREFIX}data/${d.fs}/level0/${old.backupId}/`)).toEqual([]);
    expect(await auditOf(d)).toEqual(cleanAudit);
    expect(await restoredTree(d, out.backupId, s)).toEqual(expected);
  }, 120_000);

  test("the re-sent stream differs in a chunk still on disk (sealed, not uploaded): the backup starts over, and what it stores restores", async () => {
    const d = await dataset("differsdisk", { chunkSize: "1MiB" });
    await writeRandomFile(join(d.mnt, "a.bin"), 4 * 1024 * 1024, 403);
    const expected = await hashTree(d.mnt);
    const s = await snap(d, 0);
    // Part 0 goes through; every other upload hangs, so chunk 1 is sealed and recorded but stays on disk.
    proxy.setDecide((r) => (r.method === "PUT" && !r.path.includes("part-000000") ? { kind: "forward", delayMs: 30_000 } : forward));
    const p = await spawnZrb(backupArgs(d, 0), env);
    await waitFor("part 0 uploaded and chunk 1 sealed", () => {
      const st = readState(d);
      return st?.chunks?.[0]?.uploaded === true && !!st?.chunks?.[1]?.sha256;
    });
    p.kill("SIGKILL");
    expect(await p.exited).toBe(137);
    proxy.setDecide(() => forward);
    const old = readState(d);
    expect(old.chunks[1].uploaded).toBe(false);
    const part1 = join(d.runDir, "spill", old.backupId, "part-000001.age");
    // The rerun uploads chunk 1 from this file and only re-checks it against the re-sent stream.
    expect(existsSync(part1)).toBe(true);
    // A wrapper around the real zfs changes one byte of chunk 1 (stream offset 1 MiB + 1000) in
    // the first send of the rerun.
    const mark = join(work, "differsdisk.mark");
    const fake = join(work, "zfs-differsdisk");
    writeFileSync(
      fake,
      `#!/bin/bash\nset -o pipefail\nif [ "$1" = send ] && [ ! -e ${mark} ]; then touch ${mark}\n` +
        `zfs "$@" | { dd bs=1000 count=1050 iflag=fullblock status=none; dd bs=1 count=1 of=/dev/null status=none; printf Z; cat; }\nexit $?\nfi\nexec zfs "$@"\n`,
      { mode: 0o755 },
    );
    const r = await zrb(backupArgs(d, 0), { env: { ...env, ZRB_ZFS: fake } });
    const out = jsonResult(r.stdout);
    expect(existsSync(mark)).toBe(true);
    expect(r.stderr).toContain("differs from the interrupted run's bytes; starting backup over under a new id");
    expect(out.backupId).not.toBe(old.backupId);
    expect(await listKeys(client, bucket, `${PREFIX}data/${d.fs}/level0/${old.backupId}/`)).toEqual([]);
    expect(await auditOf(d)).toEqual(cleanAudit);
    expect(await restoredTree(d, out.backupId, s)).toEqual(expected);
  }, 180_000);
});

describe("bad input: one line with the exact message", () => {
  test("levels, tasks, recipients, config file", async () => {
    const cfg = join(work, "bad-input.yaml");
    writeFileSync(
      cfg,
      YAML.stringify({
        base_dir: join(work, "bad-base"),
        age_public_key: recipient,
        s3: { enabled: false },
        local_store: join(work, "bad-store"),
        tasks: [
          { name: "t", pool: "nopool", dataset: "ds", enabled: true },
          { name: "off", pool: "nopool", dataset: "ds2" },
        ],
      }),
    );
    const bad = join(work, "bad-recipient.yaml");
    writeFileSync(bad, `base_dir: ${join(work, "bad-base")}\nage_public_key: age1notakey\ntasks:\n  - {name: t, pool: nopool, dataset: ds, enabled: true}\n`);
    const b = (...a: string[]) => ["backup", "--config", cfg, ...a];
    expect(await expectFail(b("--task", "t", "--level", "-1"), 2)).toBe('--level must be a whole number 0–99, got "-1"');
    expect(await expectFail(b("--task", "t", "--level", "1.5"), 2)).toBe('--level must be a whole number 0–99, got "1.5"');
    expect(await expectFail(b("--task", "t", "--level", "100"), 2)).toBe("--level must be 0–99, got 100");
    expect(await expectFail(b("--task", "t"), 2)).toBe("--level is required (0 for a full backup, 1–9 for incrementals)");
    expect(await expectFail(b("--level", "0"), 2)).toBe("--task NAME is required (one of tasks[].name in the config)");
    expect(await expectFail(b("--task", "nope", "--level", "0"), 3)).toBe(`no task named "nope" in ${cfg} (tasks: t, off)`);
    expect(await expectFail(b("--task", "off", "--level", "0"), 3)).toBe(`task off is disabled in ${cfg} (set enabled: true)`);
    expect(await expectFail(b("--task", "t", "--levle", "0"), 2)).toBe("zrb backup: unknown option --levle; did you mean --level? (see zrb backup --help)");
    expect(await expectFail(["backup", "--config", bad, "--task", "t", "--level", "0"], 3)).toBe(
      `${bad}:2:17: age_public_key is not a valid age public key: character "o" at position 6 cannot occur in one (the alphabet has no 1, b, i or o)`,
    );
    expect(await expectFail(["backup", "--config", join(work, "none.yaml"), "--task", "t", "--level", "0"], 3)).toBe(
      `config file ${join(work, "none.yaml")} does not exist; create it (see docs/config.md) or pass --config <file>`,
    );
    expect(await expectFail(["cleanup", "--allow-unsigned", "--config", cfg, "--task", "t", "--older-than", "-1h"], 2)).toBe('--older-than must be a duration like 30m, 24h or 7d, got "-1h"');
  }, 60_000);
});
