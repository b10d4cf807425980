/**
 * Restore on real parts: zfs-fuse pools, radosgw, the compiled binary (test/helpers/zrb.ts
 * switches to `bun src/main.ts` with ZRB_TEST_FROM_SOURCE=1). The chain L0..L4 (+ a
 * differential L1b) is backed up once; every restore runs from a fresh base_dir (no local
 * state) and is judged by the file hashes recorded right after each snapshot and by guids.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { ageKeyPair, hashTree, makeBucket, makePool, run, s3Client, s3Rig, snapshotGuid, tmpDir, writeRandomFile, zfsRig, type S3Rig, type TestPool } from "../helpers/rig.ts";
import { configYaml, jsonResult, s3Env, zrb } from "../helpers/zrb.ts";

let s3: S3Rig;
let client: S3Client;
let pool: TestPool;
let bucket: string;
let work: string;
let keyFile: string;
let recipient: string;
let backupCfg: string;
let restoreCfg: string;
let env: Record<string, string>;
let fs: string;
let mnt: string;
const PREFIX = "zrb/";
const ids: string[] = [];
const snaps: string[] = [];
const trees: Record<string, string>[] = [];
let id1b: string;
let snap1b: string;
let tree1b: Record<string, string>;

async function getBytes(key: string): Promise<Uint8Array> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: PREFIX + key }));
  return await r.Body!.transformToByteArray();
}
async function putBytes(key: string, body: Uint8Array | string, storageClass?: string): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: PREFIX + key, Body: body, ...(storageClass ? { StorageClass: storageClass as any } : {}) }));
}
async function manifestOf(id: string): Promise<any> {
  return YAML.parse(new TextDecoder().decode(await getBytes(`manifests/${fs}/${id}.manifest.yaml`)));
}
const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const short = (s: string) => s.split("@")[1]!;

async function exists(ds: string): Promise<boolean> {
  return (await run(["zfs", "list", "-H", "-o", "name", ds], { allowFail: true })).code === 0;
}
async function snapsOf(ds: string): Promise<string[]> {
  const r = await run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", ds], { allowFail: true });
  return r.stdout.split("\n").filter((l) => l.startsWith(ds + "@"));
}

/** File hashes of one received snapshot, through a temporary clone (never mounts the target itself). */
async function treeOfSnapshot(snap: string): Promise<Record<string, string>> {
  const clone = `${pool.pool}/chk${Math.random().toString(16).slice(2, 8)}`;
  await run(["zfs", "clone", snap, clone]);
  try {
    const m = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", clone])).stdout.trim();
    return await hashTree(m);
  } finally {
    for (let i = 0; i < 40; i++) {
      const r = await run(["zfs", "destroy", clone], { allowFail: true });
      if (r.code === 0) break;
      await Bun.sleep(250);
    }
  }
}

/** Change one hex digit of a manifest's stream BLAKE3 in the bucket; undo() puts the original back. */
async function editStreamBlake3(id: string): Promise<{ real: string; fake: string; undo(): Promise<void> }> {
  const key = `manifests/${fs}/${id}.manifest.yaml`;
  const orig = await getBytes(key);
  const m = YAML.parse(new TextDecoder().decode(orig));
  const real: string = m.stream.blake3;
  m.stream.blake3 = (real[0] === "0" ? "1" : "0") + real.slice(1);
  await putBytes(key, YAML.stringify(m));
  return { real, fake: m.stream.blake3, undo: () => putBytes(key, orig) };
}

/** [name, guid] of every snapshot of a dataset, oldest first. */
async function snapsWithGuids(ds: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const snap of await snapsOf(ds)) out.push([snap, await snapshotGuid(snap)]);
  return out;
}

/** dmu_replay_record: fixed size and the END record's drr_type on zfs-fuse (checked with a tiny zfs send). */
const DRR_SIZE = 312;
const DRR_END = 5;

/** A backup's zfs send stream as stored: its parts fetched with the S3 API, each decrypted by the stock age CLI. */
async function streamOf(id: string): Promise<Buffer> {
  const m = await manifestOf(id);
  const out: Buffer[] = [];
  for (const p of m.parts) {
    const enc = join(work, "p.age");
    writeFileSync(enc, await getBytes(p.key));
    await run(["age", "-d", "-i", keyFile, "-o", join(work, "p.plain"), enc]);
    out.push(readFileSync(join(work, "p.plain")));
  }
  const all = Buffer.concat(out);
  expect(all.length).toBe(m.stream.size);
  return all;
}

/** target@<short name of source> is the source snapshot: same guid, same files (content, mode, mtime, dirs, links). */
async function expectRestored(target: string, source: string, tree: Record<string, string>): Promise<void> {
  const rs = `${target}@${short(source)}`;
  expect(await snapshotGuid(rs)).toBe(await snapshotGuid(source));
  expect(await treeOfSnapshot(rs)).toEqual(tree);
}

function restoreArgs(target: string, ...more: string[]): string[] {
  return ["restore", "--config", restoreCfg, "--task", "main", "--target", target, "--private-key", keyFile, ...more];
}

/** One line on stderr, the expected exit code, and the message. */
async function expectFail(args: string[], code: number, ...needles: string[]): Promise<string> {
  const r = await zrb(args, { env, allowFail: true });
  if (r.code !== code) console.error(r.stderr);
  expect(r.code).toBe(code);
  const errLines = r.stderr.split("\n").filter((l) => l.startsWith("zrb: "));
  expect(errLines.length).toBe(1);
  for (const n of needles) expect(errLines[0]).toContain(n);
  return errLines[0]!;
}

beforeAll(async () => {
  await zfsRig();
  s3 = await s3Rig();
  client = await s3Client(s3);
  pool = await makePool({ sizeMiB: 320 });
  bucket = await makeBucket(s3);
  work = tmpDir("zrb-e2e-restore-");
  ({ keyFile, recipient } = await ageKeyPair(join(work, "key.txt")));
  fs = `${pool.pool}/src`;
  await run(["zfs", "create", fs]);
  mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fs])).stdout.trim();
  env = s3Env(s3);
  const cfg = (baseDir: string) =>
    configYaml({ baseDir, recipients: [recipient], bucket, s3, prefix: PREFIX, chunkSize: "1MiB", workers: 2, tasks: [{ name: "main", pool: pool.pool, dataset: "src" }] });
  backupCfg = join(work, "backup.yaml");
  writeFileSync(backupCfg, cfg(join(work, "base-backup")));
  // The restoring host: same config, its own (empty) base_dir.
  restoreCfg = join(work, "restore.yaml");
  writeFileSync(restoreCfg, cfg(join(work, "base-restore")));

  const changes: ((m: string) => Promise<void>)[] = [
    async (m) => {
      mkdirSync(join(m, "docs/deep"), { recursive: true });
      mkdirSync(join(m, "empty/nested"), { recursive: true, mode: 0o750 });
      await writeRandomFile(join(m, "big.bin"), 2 * 1024 * 1024 + 777, 1); // > one chunk
      await writeRandomFile(join(m, "docs/a.txt"), 5000, 2);
      await writeRandomFile(join(m, "docs/deep/b.txt"), 70_000, 3);
      chmodSync(join(m, "docs/a.txt"), 0o600);
      chmodSync(join(m, "docs/deep"), 0o701);
      symlinkSync("a.txt", join(m, "docs/link"));
      utimesSync(join(m, "docs/deep/b.txt"), new Date("2001-02-03T04:05:06.789Z"), new Date("2001-02-03T04:05:06.789Z"));
    },
    // > 1 MiB: bytes reach zfs receive before the stream is verified (see "zfs receive never commits").
    async (m) => await writeRandomFile(join(m, "docs/c.bin"), 3_000_000, 4),
    async (m) => rmSync(join(m, "docs/a.txt")),
    async (m) => renameSync(join(m, "docs/deep/b.txt"), join(m, "docs/b-renamed.txt")),
    async (m) => {
      await writeRandomFile(join(m, "big.bin"), 1024 * 1024 + 5, 5);
      rmSync(join(m, "docs/deep"), { recursive: true });
    },
  ];
  for (let level = 0; level <= 4; level++) {
    await changes[level]!(mnt);
    const s = (await zrb(["snapshot", "--config", backupCfg, "--task", "main", "--level", String(level)], { env })).stdout.trim();
    snaps.push(s);
    trees.push(await hashTree(mnt));
    const r = jsonResult((await zrb(["backup", "--config", backupCfg, "--task", "main", "--level", String(level), "--json"], { env })).stdout);
    ids.push(r.backupId);
  }
  // A differential: a second level 1, based on the level 0.
  await writeRandomFile(join(mnt, "later.bin"), 40_000, 6);
  snap1b = (await zrb(["snapshot", "--config", backupCfg, "--task", "main", "--level", "1"], { env })).stdout.trim();
  tree1b = await hashTree(mnt);
  id1b = jsonResult((await zrb(["backup", "--config", backupCfg, "--task", "main", "--level", "1", "--json"], { env })).stdout).backupId;
  // The NAS is gone: only the bucket, the config and the key remain.
  rmSync(join(work, "base-backup"), { recursive: true, force: true });
});

afterAll(async () => {
  await pool?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("zrb restore from the bucket alone", () => {
  test("--plan lists the chain and changes nothing", async () => {
    const target = `${pool.pool}/planned`;
    const r = await zrb([...restoreArgs(target, "--level", "4", "--plan", "--json")], { env });
    const plan = JSON.parse(r.stdout);
    expect(plan.steps.map((s: any) => s.backupId)).toEqual(ids);
    expect(plan.steps.map((s: any) => s.level)).toEqual([0, 1, 2, 3, 4]);
    expect(plan.steps.every((s: any) => s.action === "receive" && s.storageClasses[0] === "STANDARD")).toBe(true);
    expect(plan.steps[0].parts).toBeGreaterThan(2);
    expect(plan.steps[0].downloadBytes).toBeGreaterThan(2 * 1024 * 1024);
    const text = await zrb([...restoreArgs(target, "--level", "4", "--dry-run")], { env });
    expect(text.stdout).toContain("5 step(s) to apply");
    for (const id of ids) expect(text.stdout).toContain(id);
    expect(await exists(target)).toBe(false);
    expect(existsSync(join(work, "base-restore", "restore-scratch"))).toBe(false);
  });

  test("L0..L4 into a new dataset: every file and every guid matches the source at each snapshot", async () => {
    const target = `${pool.pool}/r4`;
    const r = await zrb([...restoreArgs(target, "--level", "4", "--json")], { env });
    const out = jsonResult(r.stdout);
    expect(out.applied.map((a: any) => a.backupId)).toEqual(ids);
    expect(out.restored).toBe(`${target}@${short(snaps[4]!)}`);
    for (let i = 0; i <= 4; i++) {
      const rs = `${target}@${short(snaps[i]!)}`;
      expect(await snapshotGuid(rs)).toBe(await snapshotGuid(snaps[i]!));
      expect(await treeOfSnapshot(rs)).toEqual(trees[i]!);
    }
    // Scratch space is gone afterwards.
    expect(readdirSync(join(work, "base-restore", "restore-scratch")).filter((f) => !f.endsWith(".lock"))).toEqual([]);
  });

  test("an intermediate point (--level 2), then resume to L4 on the same target, then nothing to do", async () => {
    const target = `${pool.pool}/r2`;
    await zrb(restoreArgs(target, "--level", "2"), { env });
    expect((await snapsOf(target)).map(short)).toEqual(snaps.slice(0, 3).map(short));
    await expectRestored(target, snaps[2]!, trees[2]!);
    const plan = JSON.parse((await zrb([...restoreArgs(target, "--level", "4", "--plan", "--json")], { env })).stdout);
    expect(plan.resumeFrom).toBe(3);
    expect(plan.steps.map((s: any) => s.action)).toEqual(["present", "present", "present", "receive", "receive"]);
    const r = jsonResult((await zrb([...restoreArgs(target, "--level", "4", "--json")], { env })).stdout);
    expect(r.applied.map((a: any) => a.level)).toEqual([3, 4]);
    await expectRestored(target, snaps[4]!, trees[4]!);
    const again = jsonResult((await zrb([...restoreArgs(target, "--level", "4", "--json")], { env })).stdout);
    expect(again.applied).toEqual([]);
  });

  test("--snapshot picks that point; the default is the newest backup (the differential L0 → L1b)", async () => {
    const t3 = `${pool.pool}/r3`;
    await zrb(restoreArgs(t3, "--snapshot", short(snaps[3]!)), { env });
    await expectRestored(t3, snaps[3]!, trees[3]!);
    const td = `${pool.pool}/rdiff`;
    const r = jsonResult((await zrb([...restoreArgs(td), "--json"], { env })).stdout);
    expect(r.applied.map((a: any) => a.backupId)).toEqual([ids[0], id1b]);
    expect((await snapsOf(td)).map(short)).toEqual([short(snaps[0]!), short(snap1b)]);
    expect(await snapshotGuid(`${td}@${short(snap1b)}`)).toBe(await snapshotGuid(snap1b));
    await expectRestored(td, snap1b, tree1b);
  });

  test("a target changed since its last restored snapshot: zfs receive refuses the next step (exit 5, its reason, the way out); the target keeps that snapshot and the change; --force rolls it back and completes", async () => {
    const target = `${pool.pool}/rmod`;
    await zrb(restoreArgs(target, "--level", "0"), { env });
    await run(["zfs", "mount", target]);
    const m = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", target])).stdout.trim();
    await writeRandomFile(join(m, "changed-after.bin"), 5000, 9);
    await expectFail(restoreArgs(target, "--backup-id", ids[1]!), 5, `zfs receive of ${short(snaps[1]!)} into ${target} failed: `, "has been modified", `rerun with --force to roll ${target} back`);
    expect((await snapsOf(target)).map(short)).toEqual([short(snaps[0]!)]);
    expect(existsSync(join(m, "changed-after.bin"))).toBe(true);
    await zrb(restoreArgs(target, "--backup-id", ids[1]!, "--force"), { env });
    await expectRestored(target, snaps[1]!, trees[1]!);
  });

  test("a zfs receive that fails after taking the whole stream (exit 1, a snapshot made): the step fails (exit 5, zfs's reason), never exit 0", async () => {
    // A fault a real pool does not make on demand (a mount or property failure after the
    // commit): the real receive runs, then the wrapper reports a failure.
    const target = `${pool.pool}/rlate`;
    await zrb(restoreArgs(target, "--level", "0"), { env });
    const wrapper = join(work, "zfs-receive-fails-late");
    writeFileSync(wrapper, `#!/bin/bash\nif [ "$1" = receive ]; then zfs "$@" || exit $?; echo "cannot mount '/nowhere': failed after the stream" >&2; exit 1; fi\nexec zfs "$@"\n`, { mode: 0o755 });
    const r = await zrb(restoreArgs(target, "--backup-id", ids[1]!), { env: { ...env, ZRB_ZFS: wrapper }, allowFail: true });
    expect(r.code).toBe(5);
    expect(r.stderr.split("\n").filter((l) => l.startsWith("zrb: "))).toEqual([
      `zrb: error: zfs receive of ${short(snaps[1]!)} into ${target} failed: cannot mount '/nowhere': failed after the stream`,
    ]);
  });

  test("a zfs receive that exits 0 without making the snapshot: the step fails (exit 5), never reported as restored", async () => {
    const target = `${pool.pool}/rnone`;
    await zrb(restoreArgs(target, "--level", "0"), { env });
    const wrapper = join(work, "zfs-receive-makes-nothing");
    writeFileSync(wrapper, `#!/bin/bash\nif [ "$1" = receive ]; then cat >/dev/null; exit 0; fi\nexec zfs "$@"\n`, { mode: 0o755 });
    const r = await zrb(restoreArgs(target, "--backup-id", ids[1]!), { env: { ...env, ZRB_ZFS: wrapper }, allowFail: true });
    expect(r.code).toBe(5);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("zrb: "));
    expect(lines.length).toBe(1);
    expect(lines[0]).toStartWith(`zrb: error: zfs receive of backup ${ids[1]} succeeded but ${target} has no snapshot with guid ${await snapshotGuid(snaps[1]!)}`);
    expect((await snapsOf(target)).map(short)).toEqual([short(snaps[0]!)]);
  });

  test("target exists without --force: refused, the dataset is unchanged; --force overwrites an empty one", async () => {
    const target = `${pool.pool}/existing`;
    await run(["zfs", "create", target]);
    const m = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", target])).stdout.trim();
    await writeRandomFile(join(m, "keep.txt"), 1000, 7);
    const before = await hashTree(m);
    await expectFail(restoreArgs(target, "--backup-id", ids[1]!), 5, `target ${target} already exists and holds none of the snapshots of this chain`, "--force");
    expect(await hashTree(m)).toEqual(before);
    expect(await snapsOf(target)).toEqual([]);
    await run(["zfs", "unmount", target]); // zfs-fuse: -F over a mounted, just-read fs can fail with EIO
    await zrb(restoreArgs(target, "--backup-id", ids[1]!, "--force"), { env });
    await expectRestored(target, snaps[1]!, trees[1]!);
  });

  test("pool missing, wrong identity: clear errors, nothing created", async () => {
    await expectFail(restoreArgs("nosuchpool/x"), 5, "pool nosuchpool (of --target nosuchpool/x) does not exist");
    const other = join(work, "other-key.txt");
    await run(["age-keygen", "-o", other]);
    const target = `${pool.pool}/wrongkey`;
    const r = await zrb(["restore", "--config", restoreCfg, "--task", "main", "--target", target, "--private-key", other, "--level", "0"], { env, allowFail: true });
    expect(r.code).toBe(8);
    expect(r.stderr).toContain(`this identity does not match any recipient of backup ${ids[0]}`);
    expect(r.stderr).not.toContain("AGE-SECRET-KEY");
    expect(await exists(target)).toBe(false);
  });

  test("one flipped byte in a part: named with both hashes, nothing left behind; zrb verify sees it too", async () => {
    const m = await manifestOf(ids[0]!);
    const p = m.parts[1];
    const orig = await getBytes(p.key);
    const bad = orig.slice();
    bad[Math.floor(bad.length / 2)]! ^= 0x01;
    await putBytes(p.key, bad);
    try {
      const target = `${pool.pool}/flipped`;
      await expectFail(restoreArgs(target, "--level", "0"), 7, `part 1 of backup ${ids[0]}`, p.key, `ciphertext SHA-256 is ${sha256(bad)}, manifest says ${p.sha256}`);
      expect(await exists(target)).toBe(false);
      await expectFail(["verify", "--config", restoreCfg, "--task", "main", "--level", "0", "--private-key", keyFile], 7, "verification failed");
    } finally {
      await putBytes(p.key, orig);
    }
    const ok = jsonResult((await zrb(["verify", "--config", restoreCfg, "--task", "main", "--level", "4", "--private-key", keyFile, "--json"], { env })).stdout);
    expect(ok.ok).toBe(true);
    expect(ok.backups.map((b: any) => b.streamBlake3)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    const sampled = jsonResult((await zrb(["verify", "--config", restoreCfg, "--task", "main", "--sample", "2", "--json"], { env })).stdout);
    expect(sampled.parts.length).toBe(2);
    expect(sampled.decrypted).toBe(false);
  });

  test("two same-size parts swapped in the bucket: refused before decrypting", async () => {
    const m = await manifestOf(ids[0]!);
    const [a, b] = [m.parts[0], m.parts[1]];
    expect(a.cipherSize).toBe(b.cipherSize);
    const [ba, bb] = [await getBytes(a.key), await getBytes(b.key)];
    await putBytes(a.key, bb);
    await putBytes(b.key, ba);
    try {
      const target = `${pool.pool}/swapped`;
      await expectFail(restoreArgs(target, "--level", "0"), 7, `part 0 of backup ${ids[0]}`, `ciphertext SHA-256 is ${b.sha256}, manifest says ${a.sha256}`);
      expect(await exists(target)).toBe(false);
    } finally {
      await putBytes(a.key, ba);
      await putBytes(b.key, bb);
    }
  });

  test("a manifest whose stream BLAKE3 was edited: exit 7, the new target is gone", async () => {
    const edit = await editStreamBlake3(ids[0]!);
    try {
      const target = `${pool.pool}/edited`;
      await expectFail(restoreArgs(target, "--level", "0"), 7, `backup ${ids[0]}: stream BLAKE3 is ${edit.real}, manifest says ${edit.fake}`);
      expect(await exists(target)).toBe(false);
    } finally {
      await edit.undo();
    }
  });

  test("zfs receive never commits: an incremental step onto an existing target with its stream BLAKE3 edited never delivers the END record, and the target keeps exactly its level-0 snapshot", async () => {
    // Where destroying is not an option: level 0 is restored first, so the failed step must
    // leave the target exactly as it was; a zfs wrapper records every byte zfs receive read.
    const target = `${pool.pool}/edited-incr`;
    await zrb(restoreArgs(target, "--level", "0"), { env });
    const before = await snapsWithGuids(target);
    expect(before).toEqual([[`${target}@${short(snaps[0]!)}`, await snapshotGuid(snaps[0]!)]]);

    // The level-1 stream as stored, judged by the stock age CLI; zfs-fuse's send stream ends
    // with a 312-byte dmu_replay_record whose drr_type is DRR_END (5).
    const stream = await streamOf(ids[1]!);
    expect(stream.length).toBeGreaterThan(2 * 1024 * 1024);
    const endAt = stream.length - DRR_SIZE;
    expect([stream.readUInt32LE(endAt), stream.readUInt32LE(endAt + 4)]).toEqual([DRR_END, 0]);

    const cap = join(work, "recv-capture");
    const wrapper = join(work, "zfs-tee-receive");
    writeFileSync(
      wrapper,
      // The pipeline's two halves are subshells: they outlive the wrapper when zrb kills it,
      // so .eof/.rc say when tee saw the end of zrb's pipe and how zfs receive ended.
      `#!/bin/bash\nif [ "$1" = receive ]; then\n  { tee ${cap}.bin; : > ${cap}.eof; } | { zfs "$@"; rc=$?; echo $rc > ${cap}.rc; exit $rc; }\n  exit \${PIPESTATUS[1]}\nfi\nexec zfs "$@"\n`,
      { mode: 0o755 },
    );
    const edit = await editStreamBlake3(ids[1]!);
    try {
      const r = await zrb(restoreArgs(target, "--backup-id", ids[1]!), { env: { ...env, ZRB_ZFS: wrapper }, allowFail: true });
      expect(r.stderr.split("\n").filter((l) => l.startsWith("zrb: "))).toEqual([
        `zrb: error: backup ${ids[1]}: stream BLAKE3 is ${edit.real}, manifest says ${edit.fake}; nothing was committed to ${target}`,
      ]);
      expect(r.code).toBe(7);
      for (let i = 0; i < 300 && !existsSync(`${cap}.rc`); i++) await Bun.sleep(100);
      expect(existsSync(`${cap}.eof`)).toBe(true);
      expect(readFileSync(`${cap}.rc`, "utf8").trim()).not.toBe("0");
      const seen = readFileSync(`${cap}.bin`);
      // Bytes did flow before the check (else this proves nothing), as a strict prefix of the
      // stream that stops before its END record.
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.length).toBeLessThanOrEqual(endAt);
      expect(seen.equals(stream.subarray(0, seen.length))).toBe(true);
      expect(await snapsWithGuids(target)).toEqual(before);
    } finally {
      await edit.undo();
    }
    // With the manifest repaired the same step applies on top of the untouched level 0.
    await zrb(restoreArgs(target, "--backup-id", ids[1]!), { env });
    await expectRestored(target, snaps[1]!, trees[1]!);
  });

  test("a missing part names its key and the backups it breaks; older points stay restorable", async () => {
    const m = await manifestOf(ids[2]!);
    const p = m.parts[0];
    const orig = await getBytes(p.key);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: PREFIX + p.key }));
    try {
      const target = `${pool.pool}/missing`;
      const line = await expectFail(restoreArgs(target, "--level", "4"), 6, p.key, "is missing", "backups affected:", ids[2]!, ids[3]!, ids[4]!);
      expect(line).not.toContain(`${ids[1]} (level 1)`);
      expect(await exists(target)).toBe(false);
      const plan = JSON.parse((await zrb([...restoreArgs(target, "--level", "1", "--plan", "--json")], { env })).stdout);
      expect(plan.steps.length).toBe(2);
    } finally {
      await putBytes(p.key, orig);
    }
  });

  test("a corrupted manifest cannot point zrb outside the task's prefix or its scratch dir", async () => {
    const m = await manifestOf(ids[1]!);
    const evilId = "20990101T000000Z-L1-evil00";
    m.backupId = evilId;
    m.parts[0].key = `../../../../tmp/zrb-evil-${process.pid}`;
    const key = `manifests/${fs}/${evilId}.manifest.yaml`;
    await putBytes(key, YAML.stringify(m));
    try {
      await expectFail(restoreArgs(`${pool.pool}/evil`, "--backup-id", evilId), 7, `manifest ${key} is corrupt: part 0 key`, "is outside");
      m.parts[0].key = `data/${pool.pool}/other/level1/${evilId}/part-000000.age`;
      await putBytes(key, YAML.stringify(m));
      await expectFail(restoreArgs(`${pool.pool}/evil`, "--backup-id", evilId), 7, "is outside");
      expect(existsSync(`/tmp/zrb-evil-${process.pid}`)).toBe(false);
      expect(await exists(`${pool.pool}/evil`)).toBe(false);
    } finally {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: PREFIX + key }));
    }
  });

  test("archived parts: the plan says so, restore asks for --thaw; with --thaw radosgw's label-only classes restore", async () => {
    const m = await manifestOf(id1b);
    const copy = (k: string, cls: string) =>
      client.send(new CopyObjectCommand({ Bucket: bucket, Key: PREFIX + k, CopySource: `${bucket}/${PREFIX}${k}`, StorageClass: cls as any, MetadataDirective: "COPY" }));
    for (const p of m.parts) await copy(p.key, "DEEP_ARCHIVE");
    try {
      const target = `${pool.pool}/archived`;
      const plan = JSON.parse((await zrb([...restoreArgs(target, "--backup-id", id1b, "--plan", "--json")], { env })).stdout);
      expect(plan.steps[1].storageClasses).toEqual(["DEEP_ARCHIVE"]);
      expect(plan.steps[1].archived).toBe(m.parts.length);
      expect(plan.frozen).toBe(m.parts.length);
      await expectFail(restoreArgs(target, "--backup-id", id1b), 6, "archived storage class (DEEP_ARCHIVE)", "--thaw");
      expect(await exists(target)).toBe(false);
      // radosgw only labels classes: RestoreObject answers 501 NotImplemented, which the store
      // reads as "readable as it is"; the restore then runs and is verified like any other.
      const r = jsonResult((await zrb([...restoreArgs(target, "--backup-id", id1b, "--thaw", "--tier", "Expedited", "--json")], { env })).stdout);
      expect(r.thaw).toEqual({ total: m.parts.length, requested: 0, ongoing: 0, available: m.parts.length });
      await expectRestored(target, snap1b, tree1b);
    } finally {
      for (const p of m.parts) await copy(p.key, "STANDARD");
    }
  });

  test("--thaw requests every archived object of the chain at once (calls recorded around the real S3 store)", async () => {
    const { loadConfig, findTask } = await import("../../src/config/config.ts");
    const { storeFor } = await import("../../src/cli/common.ts");
    const { restore } = await import("../../src/pipeline/restore/index.ts");
    const { parseIdentityFile } = await import("../../src/crypto/keys.ts");
    const { NO_TRUST } = await import("../../src/records/trust.ts");
    Object.assign(process.env, env);
    const { config } = await loadConfig(restoreCfg);
    const task = findTask(config, "main", { allowDisabled: true });
    const real = storeFor(config);
    const calls: { key: string; tier: string; days: number }[] = [];
    // radosgw cannot thaw: record the requests and answer as S3 does to a new request (202 → "requested").
    const store = Object.assign(Object.create(real), {
      location: real.location,
      thaw: async (key: string, o: { tier: string; days: number }) => {
        calls.push({ key, ...o });
        return "requested" as const;
      },
    });
    const archived = [...(await manifestOf(ids[3]!)).parts, ...(await manifestOf(ids[4]!)).parts];
    const copy = (k: string, cls: string) =>
      client.send(new CopyObjectCommand({ Bucket: bucket, Key: PREFIX + k, CopySource: `${bucket}/${PREFIX}${k}`, StorageClass: cls as any, MetadataDirective: "COPY" }));
    for (const p of archived) await copy(p.key, "GLACIER");
    const target = `${pool.pool}/thawed`;
    try {
      let progress: any;
      const err = await restore(config, task, store, {
        target,
        selector: { backupId: ids[4]! },
        force: false,
        identities: await parseIdentityFile(keyFile),
        trust: NO_TRUST,
        planOnly: false,
        thaw: { tier: "Bulk", days: 3 },
        onThaw: (p) => (progress = p),
      }).catch((e) => e);
      expect(err.message).toContain(`thaw in progress: ${archived.length} requested now, 0 already thawing, 0 of ${archived.length} available`);
      expect(err.exitCode).toBe(6);
      expect(progress).toEqual({ total: archived.length, requested: archived.length, ongoing: 0, available: 0 });
      expect(calls.map((c) => c.key).sort()).toEqual(archived.map((p: any) => p.key).sort());
      expect(calls.every((c) => c.tier === "Bulk" && c.days === 3)).toBe(true);
      expect(await exists(target)).toBe(false);
    } finally {
      for (const p of archived) await copy(p.key, "STANDARD");
    }
  });

  test("manual recovery with stock tools only: S3 GET, age -d, cat in key order, b3sum, zfs receive", async () => {
    const target = `${pool.pool}/manual`;
    for (const id of [ids[0]!, ids[1]!]) {
      const m = await manifestOf(id);
      const stream = join(work, `manual-${id}`);
      writeFileSync(stream, "");
      const keys = m.parts.map((p: any) => p.key);
      expect([...keys].sort()).toEqual(keys); // key order is stream order
      for (const p of m.parts) {
        const enc = join(work, "p.age");
        writeFileSync(enc, await getBytes(p.key));
        expect(sha256(readFileSync(enc))).toBe(p.sha256);
        await run(["age", "-d", "-i", keyFile, "-o", join(work, "p.plain"), enc]);
        appendFileSync(stream, readFileSync(join(work, "p.plain")));
      }
      expect(statSync(stream).size).toBe(m.stream.size);
      expect((await run(["b3sum", "--no-names", stream])).stdout.trim()).toBe(m.stream.blake3);
      await run(["sh", "-c", `zfs receive -u ${target} < ${stream}`]);
      rmSync(stream);
    }
    await expectRestored(target, snaps[1]!, trees[1]!);
  });
});
