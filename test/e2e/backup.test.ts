/**
 * The backup spine on real parts: zfs-fuse pools, radosgw over HTTP, the compiled binary,
 * and the stock `age` and `b3sum` tools as the judges of what landed in the bucket.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import {
  ageKeyPair,
  hashTree,
  makeBucket,
  makePool,
  run,
  s3Client,
  s3Rig,
  snapshotGuid,
  tmpDir,
  userrefs,
  writeRandomFile,
  zfsRig,
  type S3Rig,
  type TestPool,
} from "../helpers/rig.ts";
import { configYaml, jsonResult, s3Env, spawnZrb, zrb } from "../helpers/zrb.ts";

let s3: S3Rig;
let client: S3Client;
let pool: TestPool;
let bucket: string;
let work: string;
let keyFile: string;
let recipient: string;
let cfgPath: string;
let env: Record<string, string>;
let fs: string;
let mnt: string;

async function getBytes(key: string): Promise<Uint8Array> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return await r.Body!.transformToByteArray();
}

/** Fetch a backup's parts with the plain S3 API, decrypt each with the stock age CLI, concatenate. */
async function fetchStream(manifest: any, out: string): Promise<void> {
  writeFileSync(out, "");
  for (const p of manifest.parts) {
    const enc = join(work, "part.age");
    writeFileSync(enc, await getBytes("zrb/" + p.key));
    expect(statSync(enc).size).toBe(p.cipherSize);
    const sha = new Bun.CryptoHasher("sha256").update(readFileSync(enc)).digest("hex");
    expect(sha).toBe(p.sha256);
    const dec = join(work, "part.plain");
    await run(["age", "-d", "-i", keyFile, "-o", dec, enc]);
    expect(statSync(dec).size).toBe(p.plainSize);
    appendFileSync(out, readFileSync(dec));
  }
}

async function b3sum(path: string): Promise<string> {
  return (await run(["b3sum", "--no-names", path])).stdout.trim();
}

async function snapshot(level: number): Promise<string> {
  const r = await zrb(["snapshot", "--config", cfgPath, "--task", "main", "--level", String(level)], { env });
  const name = r.stdout.trim();
  expect(name).toMatch(new RegExp(`^${fs}@zrb_level${level}_\\d{8}T\\d{6}Z$`));
  return name;
}

async function backupJson(level: number): Promise<any> {
  const r = await zrb(["backup", "--config", cfgPath, "--task", "main", "--level", String(level), "--json"], { env });
  return jsonResult(r.stdout);
}

async function manifestOf(id: string): Promise<any> {
  return YAML.parse(new TextDecoder().decode(await getBytes(`zrb/manifests/${fs}/${id}.manifest.yaml`)));
}

beforeAll(async () => {
  await zfsRig();
  s3 = await s3Rig();
  client = await s3Client(s3);
  pool = await makePool({ sizeMiB: 256 });
  bucket = await makeBucket(s3);
  work = tmpDir("zrb-e2e-backup-");
  ({ keyFile, recipient } = await ageKeyPair(join(work, "key.txt")));
  fs = `${pool.pool}/data`;
  await run(["zfs", "create", fs]);
  mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fs])).stdout.trim();
  cfgPath = join(work, "zrb.yaml");
  writeFileSync(
    cfgPath,
    configYaml({
      baseDir: join(work, "base"),
      recipients: [recipient],
      bucket,
      s3,
      chunkSize: "1MiB",
      workers: 2,
      tasks: [{ name: "main", pool: pool.pool, dataset: "data" }],
      backupData: ["STANDARD", "STANDARD_IA"],
    }),
  );
  env = s3Env(s3);
}, 300_000);

afterAll(async () => {
  await pool?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe("backup levels 0..4 on zfs-fuse + radosgw", () => {
  test("every backup decrypts with stock age, matches b3sum, and zfs receive reproduces the files", async () => {
    const restored = `${pool.pool}/restored`;
    const ids: string[] = [];
    const changes: ((m: string) => Promise<void>)[] = [
      async (m) => {
        mkdirSync(join(m, "photos"), { recursive: true });
        await writeRandomFile(join(m, "photos/big.bin"), 3 * 1024 * 1024 + 12345, 1); // > chunk size: several parts
        await writeRandomFile(join(m, "small.txt"), 1000, 2);
        await writeRandomFile(join(m, "photos/a.jpg"), 200_000, 3);
      },
      async (m) => await writeRandomFile(join(m, "photos/b.jpg"), 300_000, 4),
      async (m) => rmSync(join(m, "small.txt")),
      async (m) => renameSync(join(m, "photos/a.jpg"), join(m, "photos/renamed.jpg")),
      async (m) => await writeRandomFile(join(m, "photos/big.bin"), 2 * 1024 * 1024, 5), // rewrite
    ];
    for (let level = 0; level <= 4; level++) {
      await changes[level]!(mnt);
      const snap = await snapshot(level);
      const expected = await hashTree(mnt);
      const r = await backupJson(level);
      expect(r.level).toBe(level);
      expect(r.snapshot).toBe(snap);
      ids.push(r.backupId);
      const m = await manifestOf(r.backupId);
      expect(m.snapshot.name).toBe(snap);
      expect(m.snapshot.guid).toBe(await snapshotGuid(snap));
      expect(m.level).toBe(level);
      expect(m.recipients).toEqual([recipient]);
      expect(m.storageClass).toBe(level === 0 ? "STANDARD" : "STANDARD_IA"); // past the list's end: the last entry
      if (level === 0) {
        expect(m.parent).toBeNull();
        expect(m.parts.length).toBeGreaterThan(3); // multi-part
      } else {
        expect(m.parent.backupId).toBe(ids[level - 1]);
        expect(m.parent.level).toBe(level - 1);
      }
      m.parts.forEach((p: any, i: number) => {
        expect(p.index).toBe(i);
        expect(p.key).toBe(`data/${fs}/level${level}/${r.backupId}/part-${String(i).padStart(6, "0")}.age`);
      });
      // Judge with the stock tools only.
      const stream = join(work, `stream-${level}`);
      await fetchStream(m, stream);
      expect(statSync(stream).size).toBe(m.stream.size);
      expect(await b3sum(stream)).toBe(m.stream.blake3);
      const recv = await run(["sh", "-c", `zfs receive -u ${level ? "-F " : ""}${restored} < ${stream}`], { allowFail: true });
      expect(recv.stderr).toBe("");
      expect(recv.code).toBe(0);
      rmSync(stream);
      await run(["zfs", "mount", restored]);
      const rmnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", restored])).stdout.trim();
      expect(await hashTree(rmnt)).toEqual(expected);
      await run(["zfs", "unmount", restored]);
      expect(await snapshotGuid(`${restored}@${snap.split("@")[1]}`)).toBe(m.snapshot.guid);
      // No send hold leaked; the chain's bases keep exactly one persistent hold.
      expect(await userrefs(snap)).toBe(1);
    }
    // Heads in the bucket name the live chain 0..4.
    const heads = YAML.parse(new TextDecoder().decode(await getBytes(`zrb/manifests/${fs}/heads.yaml`)));
    expect(Object.keys(heads.levels).sort()).toEqual(["0", "1", "2", "3", "4"]);
    expect(heads.levels["4"].backupId).toBe(ids[4]);

    // dump(8): another level 1 is a differential from the level 0, and makes levels 2..4 stale.
    await writeRandomFile(join(mnt, "after.bin"), 50_000, 9);
    const snap1b = await snapshot(1);
    const r1b = await backupJson(1);
    const m1b = await manifestOf(r1b.backupId);
    expect(m1b.parent.backupId).toBe(ids[0]);
    const heads2 = YAML.parse(new TextDecoder().decode(await getBytes(`zrb/manifests/${fs}/heads.yaml`)));
    expect(Object.keys(heads2.levels).sort()).toEqual(["0", "1"]);
    expect(heads2.levels["1"].backupId).toBe(r1b.backupId);
    // Holds moved: the new L1 base is held, the stale L1..L4 snapshots were released.
    expect(await userrefs(snap1b)).toBe(1);
    expect(await userrefs(m1b.parent.name)).toBe(1);
    for (const id of ids.slice(1)) expect(await userrefs((await manifestOf(id)).snapshot.name)).toBe(0);
    // A level 2 now follows the new level 1.
    await writeRandomFile(join(mnt, "after2.bin"), 10_000, 10);
    await snapshot(2);
    const r2b = await backupJson(2);
    expect((await manifestOf(r2b.backupId)).parent.backupId).toBe(r1b.backupId);
  });

  test("zrb_level1_ never matches zrb_level10_ snapshots", async () => {
    await writeRandomFile(join(mnt, "n.bin"), 1000, 11);
    const s1 = await snapshot(1);
    await run(["zfs", "snapshot", `${fs}@zrb_level10_20990101T000000Z`]); // newer, but another level
    const r = await backupJson(1);
    expect(r.snapshot).toBe(s1);
    await run(["zfs", "destroy", `${fs}@zrb_level10_20990101T000000Z`]);
  });

  test("a level with no lower-level backup fails clearly", async () => {
    const p2 = await makePool({ sizeMiB: 128 });
    try {
      const cfg2 = join(work, "zrb2.yaml");
      writeFileSync(
        cfg2,
        configYaml({ baseDir: join(work, "base2"), recipients: [recipient], bucket, s3, prefix: "other/", tasks: [{ name: "t", pool: p2.pool, dataset: "" }] }),
      );
      await run(["zfs", "snapshot", `${p2.pool}@zrb_level1_20260101T000000Z`]);
      const r = await zrb(["backup", "--config", cfg2, "--task", "t", "--level", "1"], { env, allowFail: true });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("level 1 needs a backup at a lower level");
      expect(await userrefs(`${p2.pool}@zrb_level1_20260101T000000Z`)).toBe(0);
      const none = await zrb(["backup", "--config", cfg2, "--task", "t", "--level", "0"], { env, allowFail: true });
      expect(none.code).toBe(5);
      expect(none.stderr).toContain(`no snapshot ${p2.pool}@zrb_level0_* to back up`);
    } finally {
      await p2.destroy();
    }
  });

  test("two concurrent backups of one dataset: one runs, the other fails naming the holder", async () => {
    await writeRandomFile(join(mnt, "lockfile.bin"), 40 * 1024 * 1024, 12);
    await snapshot(0);
    const lockPath = join(work, "base", "run", pool.pool, "data", "zrb.lock");
    const first = await spawnZrb(["backup", "--config", cfgPath, "--task", "main", "--level", "0"], env);
    for (let i = 0; i < 200 && !existsSync(lockPath); i++) await Bun.sleep(25);
    expect(existsSync(lockPath)).toBe(true);
    const second = await zrb(["backup", "--config", cfgPath, "--task", "main", "--level", "0"], { env, allowFail: true });
    expect(second.code).toBe(4);
    expect(second.stderr).toMatch(/is locked by 'zrb backup --level 0' \(pid \d+/);
    expect(await first.exited).toBe(0);
    expect(existsSync(lockPath)).toBe(false);
  });

  test("a failed zfs send leaves no hold, no lock and no manifest", async () => {
    // A real pool cannot fail a send on demand: a wrapper around the real zfs injects it.
    const fake = join(work, "zfs-failing-send");
    writeFileSync(
      fake,
      `#!/bin/sh\nif [ "$1" = send ]; then zfs "$@" | head -c 100000; echo "injected: send failed" >&2; exit 1; fi\nexec zfs "$@"\n`,
      { mode: 0o755 },
    );
    await writeRandomFile(join(mnt, "f.bin"), 500_000, 13);
    const snap = await snapshot(3);
    // Manifests and heads: the in-flight marker of the interrupted backup is counted apart.
    const catalog = async () => ((await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `zrb/manifests/${fs}/` }))).Contents ?? []).map((o) => o.Key!);
    const before = (await catalog()).filter((k) => !k.endsWith(".inflight.yaml"));
    const r = await zrb(["backup", "--config", cfgPath, "--task", "main", "--level", "3"], { env: { ...env, ZRB_ZFS: fake }, allowFail: true });
    expect(r.code).toBe(5);
    // One error line; besides it only the progress reporter's start line of this backup (and the
    // once-per-run warning that this test config has no signing_key).
    const lines = r.stderr.trim().split("\n").filter((l) => l.trim() !== "" && !l.includes("no signing_key in"));
    expect(lines.filter((l) => l.startsWith("zrb: "))).toEqual([expect.stringContaining("injected: send failed")]);
    expect(lines.filter((l) => !l.startsWith("zrb: ") && !l.includes("backup main level 3: "))).toEqual([]);
    expect(await userrefs(snap)).toBe(0);
    expect(existsSync(join(work, "base", "run", pool.pool, "data", "zrb.lock"))).toBe(false);
    const after = await catalog();
    expect(after.filter((k) => !k.endsWith(".inflight.yaml"))).toEqual(before);
    // The failed run stays resumable, so its marker stays (prune and cleanup on any host spare its parts).
    const state = YAML.parse(readFileSync(join(work, "base", "run", pool.pool, "data", "backup_state.yaml"), "utf8"));
    expect(after.filter((k) => k.endsWith(".inflight.yaml"))).toEqual([`zrb/manifests/${fs}/${state.backupId}.inflight.yaml`]);
  });
});

describe("local-only mode and keys", () => {
  test("genkey writes a 0600 age-keygen identity that the age CLI uses; refuses to overwrite", async () => {
    const d = join(work, "keys");
    const r = await zrb(["genkey", "--out-dir", d]);
    const pub = r.stdout.trim();
    expect(pub).toMatch(/^age1[0-9a-z]{58}$/);
    expect(r.stdout).not.toContain("AGE-SECRET-KEY");
    expect(r.stderr).not.toContain("AGE-SECRET-KEY");
    expect(statSync(join(d, "zrb_private.key")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(d, "zrb_public.key"), "utf8").trim()).toBe(pub);
    expect((await run(["age-keygen", "-y", join(d, "zrb_private.key")])).stdout.trim()).toBe(pub);
    const again = await zrb(["genkey", "--out-dir", d], { allowFail: true });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("already exists; refusing to overwrite");
  });

  test("s3.enabled: false keeps everything in a local directory, readable with stock tools", async () => {
    const p = await makePool({ sizeMiB: 128 });
    try {
      const store = join(work, "local-base", "store");
      const cfg = join(work, "local.yaml");
      writeFileSync(cfg, configYaml({ baseDir: join(work, "local-base"), recipients: [recipient], tasks: [{ name: "l", pool: p.pool, dataset: "" }] }));
      const pm = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", p.pool])).stdout.trim();
      await writeRandomFile(join(pm, "x.bin"), 2_500_000, 14);
      await zrb(["snapshot", "--config", cfg, "--task", "l", "--level", "0"], { env });
      const r = jsonResult((await zrb(["backup", "--config", cfg, "--task", "l", "--level", "0", "--json"], { env })).stdout);
      const m = YAML.parse(readFileSync(join(store, `manifests/${p.pool}/${r.backupId}.manifest.yaml`), "utf8"));
      const out = join(work, "local-stream");
      writeFileSync(out, "");
      for (const part of m.parts) {
        const dec = join(work, "lp");
        await run(["age", "-d", "-i", keyFile, "-o", dec, join(store, part.key)]);
        appendFileSync(out, readFileSync(dec));
      }
      expect(await b3sum(out)).toBe(m.stream.blake3);
    } finally {
      await p.destroy();
    }
  });
});
