/**
 * Object lock on radosgw (a versioned bucket created with object lock): every object zrb writes
 * carries a retain-until date; a new incremental extends the dates of the backups it depends on
 * (kopia #1067's point: a lock must cover everything newer points need); a locked object cannot
 * be deleted — not by a plain delete that would only hide it behind a delete marker, since zrb
 * deletes versions — and zrb's deleters report it instead of failing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DeleteObjectCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { ageKeyPair, makeBucket, makePool, run, s3Client, s3Rig, tmpDir, writeRandomFile, zfsRig, type S3Rig, type TestPool } from "../helpers/rig.ts";
import { configYaml, expectZrbFail, jsonResult, s3Env, zrb } from "../helpers/zrb.ts";

let s3: S3Rig;
let client: S3Client;
let pool: TestPool;
let work: string;
let recipient: string;
let env: Record<string, string>;
const PREFIX = "zrb/";
const DAY = 86_400_000;

beforeAll(async () => {
  await zfsRig();
  s3 = await s3Rig();
  client = await s3Client(s3);
  pool = await makePool({ sizeMiB: 256 });
  work = tmpDir("zrb-e2e-lock-");
  ({ recipient } = await ageKeyPair(join(work, "key.txt")));
  env = s3Env(s3);
});

afterAll(async () => {
  await pool?.destroy();
});

function config(name: string, bucket: string, days = 30): string {
  const doc = YAML.parse(
    configYaml({ baseDir: join(work, `base-${name}`), recipients: [recipient], bucket, s3, prefix: PREFIX, chunkSize: "64KiB", tasks: [{ name: "t", pool: pool.pool, dataset: name }] }),
  );
  doc.s3.object_lock = { mode: "GOVERNANCE", days };
  doc.prune = { orphan_grace: "0s" }; // the orphans these tests make are seconds old
  const p = join(work, `${name}.yaml`);
  writeFileSync(p, YAML.stringify(doc));
  return p;
}

async function lockedUntil(bucket: string, key: string): Promise<number> {
  const h = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  return h.ObjectLockRetainUntilDate!.getTime();
}

describe("s3.object_lock", () => {
  test("zrb check refuses a bucket without object lock (exit 6)", async () => {
    const plain = await makeBucket(s3);
    await run(["zfs", "create", `${pool.pool}/nolock`]);
    await expectZrbFail(["check", "--config", config("nolock", plain)], env, 6, `bucket ${plain} does not have object lock enabled`);
  });

  test("every object is locked; a later incremental extends the lock of the chain it depends on", async () => {
    const bucket = await makeBucket(s3, { objectLock: true });
    const fs = `${pool.pool}/locked`;
    await run(["zfs", "create", fs]);
    const cfg = config("locked", bucket, 30);
    await zrb(["check", "--config", cfg], { env });
    const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fs])).stdout.trim();
    await writeRandomFile(join(mnt, "a.bin"), 200_000, 1);
    await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "0"], { env });
    const t0 = Date.now();
    const l0 = jsonResult((await zrb(["backup", "--config", cfg, "--task", "t", "--level", "0", "--json"], { env })).stdout);
    const m0 = YAML.parse(new TextDecoder().decode(await (await client.send(new (await import("@aws-sdk/client-s3")).GetObjectCommand({ Bucket: bucket, Key: PREFIX + l0.manifest }))).Body!.transformToByteArray()));
    const keys0 = [PREFIX + l0.manifest, ...m0.parts.map((p: any) => PREFIX + p.key)];
    for (const k of keys0) {
      const u = await lockedUntil(bucket, k);
      expect(u).toBeGreaterThanOrEqual(t0 + 30 * DAY - 60_000);
      expect(u).toBeLessThan(Date.now() + 30 * DAY + 60_000);
    }
    // Ten days later (ZRB_NOW): a level 1 on top of it. The level 0 it needs is locked as long.
    await writeRandomFile(join(mnt, "b.bin"), 50_000, 2);
    const later = new Date(Date.now() + 10 * DAY).toISOString();
    await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "1"], { env: { ...env, ZRB_NOW: later } });
    const l1 = jsonResult((await zrb(["backup", "--config", cfg, "--task", "t", "--level", "1", "--json"], { env: { ...env, ZRB_NOW: later } })).stdout);
    expect(l1.parentBackupId).toBe(l0.backupId);
    for (const k of keys0) expect(await lockedUntil(bucket, k)).toBeGreaterThanOrEqual(Date.parse(later) + 30 * DAY - 60_000);

    // A delete that must fail: deleting a locked version is refused by the server.
    const h = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: keys0[1]! }));
    const e = await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keys0[1]!, VersionId: h.VersionId })).then(
      () => null,
      (err) => err,
    );
    expect(e?.name).toBe("AccessDenied");
    // zrb cleanup meets a locked orphan: it reports it and leaves it (exit 0), nothing hidden behind a delete marker.
    const orphan = `${PREFIX}data/${fs}/level0/20250101T000000Z-L0-abcdef/part-000000.age`;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: orphan, Body: "x", ObjectLockMode: "GOVERNANCE", ObjectLockRetainUntilDate: new Date(Date.now() + DAY) }));
    const r = await zrb(["cleanup", "--allow-unsigned", "--config", cfg, "--task", "t"], { env });
    expect(r.stderr).toContain("could not be deleted");
    expect(r.stderr).toContain("is locked until");
    // ... and its summary does not count it as deleted.
    expect(r.stdout + r.stderr).toMatch(/deleted 0 orphan object\(s\) \(0 B\); 1 the store would not delete/);
    const v = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: orphan }));
    expect(v.Versions?.length).toBe(1);
    expect(v.DeleteMarkers ?? []).toEqual([]);
  });

  test("prune keeps a locked backup as a planned keep with its date; a lock the clock misjudges is a reported skip, never half a backup", async () => {
    const bucket = await makeBucket(s3, { objectLock: true });
    const fs = `${pool.pool}/lockprune`;
    await run(["zfs", "create", fs]);
    const cfg = config("lockprune", bucket, 1);
    const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fs])).stdout.trim();
    const ids: string[] = [];
    for (const [i, at] of [new Date(Date.now() - 3 * DAY), new Date()].entries()) {
      await writeRandomFile(join(mnt, `f${i}.bin`), 100_000, 10 + i);
      await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "0"], { env: { ...env, ZRB_NOW: at.toISOString() } });
      // uploaded now (the lock counts from the real clock: the server's)
      ids.push(jsonResult((await zrb(["backup", "--config", cfg, "--task", "t", "--level", "0", "--json"], { env })).stdout).backupId);
    }
    const listKeys = async () => (await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: PREFIX }))).Versions!.map((v) => v.Key!).sort();
    const before = await listKeys();
    // Today the older backup is still locked (1 day from its upload, which was just now): kept, with its date.
    const dry = await zrb(["prune", "--allow-unsigned", "--config", cfg, "--task", "t", "--keep-last", "1", "--dry-run"], { env });
    expect(dry.stdout).toMatch(new RegExp(`keep\\s+${ids[0]}.*object lock until \\d{4}-\\d\\d-\\d\\d`));
    const r = await zrb(["prune", "--allow-unsigned", "--config", cfg, "--task", "t", "--keep-last", "1"], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("1 backup(s) kept under object lock");
    expect(await listKeys()).toEqual(before);
    // Two days on by zrb's clock, the server still holds the lock: the manifest's delete is
    // refused, so the backup stays whole (its parts untouched), reported, exit 0.
    const later = await zrb(["prune", "--allow-unsigned", "--config", cfg, "--task", "t", "--keep-last", "1"], { env: { ...env, ZRB_NOW: new Date(Date.now() + 2 * DAY).toISOString() } });
    expect(later.code).toBe(0);
    expect(later.stderr).toContain("is locked until");
    expect(later.stderr).toContain("left for a later prune");
    expect(await listKeys()).toEqual(before);
    const v = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: PREFIX }));
    expect(v.DeleteMarkers ?? []).toEqual([]);
  });
});
