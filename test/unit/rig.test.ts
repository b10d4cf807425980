// Self-test of the test rig: real zfs-fuse pools and a real radosgw behave as e2e tests expect.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmod, mkdir, rmdir, symlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import {
  contentOf,
  emptyAndDeleteBucket,
  hashTree,
  makeBucket,
  makePool,
  run,
  s3Client,
  s3Rig,
  snapshotGuid,
  userrefs,
  writeRandomFile,
  type S3Rig,
  type TestPool,
} from "../helpers/rig.ts";

describe("rig: zfs-fuse", () => {
  let p: TestPool;
  beforeAll(async () => {
    p = await makePool();
  }, 60_000);
  afterAll(async () => {
    await p?.destroy();
  }, 60_000);

  test("write, snapshot, full + incremental send | receive give equal trees", async () => {
    const src = `${p.pool}/src`;
    await run(["zfs", "create", src]);
    const dir = join(p.dir, "src");
    await mkdir(join(dir, "sub"));
    await writeRandomFile(join(dir, "big"), 3 * 1024 * 1024 + 17, 42);
    await writeRandomFile(join(dir, "sub", "small"), 1000);
    await symlink("sub/small", join(dir, "ln"));
    await run(["zfs", "snapshot", `${src}@s1`]);
    await writeRandomFile(join(dir, "sub", "later"), 5000);
    await run(["zfs", "snapshot", `${src}@s2`]);

    const full = await run(["sh", "-c", `zfs send ${src}@s1 | zfs receive -u -F ${p.pool}/dst`]);
    expect(full.code).toBe(0);
    await run(["sh", "-c", `zfs send -i ${src}@s1 ${src}@s2 | zfs receive -u -F ${p.pool}/dst`]);

    const snaps = (await run(["zfs", "list", "-H", "-o", "name,createtxg", "-t", "snapshot", "-d", "1", `${p.pool}/dst`]))
      .stdout.trim().split("\n").map((l) => l.split("\t")[0]);
    expect(snaps).toEqual([`${p.pool}/dst@s1`, `${p.pool}/dst@s2`]);
    expect(await snapshotGuid(`${p.pool}/dst@s2`)).toBe(await snapshotGuid(`${src}@s2`));
    expect(await snapshotGuid(`${src}@s2`)).toMatch(/^\d+$/);

    await run(["zfs", "mount", `${p.pool}/dst`]);
    const want = await hashTree(dir);
    expect(Object.keys(want)).toEqual(["big", "ln", "sub", "sub/later", "sub/small"]);
    expect(want.ln).toMatch(/^link \d+ sub\/small$/);
    expect(want.sub).toMatch(/^dir 755 \d+$/);
    expect(want.big).toMatch(new RegExp(`^file 644 \\d+ ${3 * 1024 * 1024 + 17} [0-9a-f]{64}$`));
    expect(await hashTree(join(p.dir, "dst"))).toEqual(want);
  });

  test("hold / release are visible through userrefs", async () => {
    const snap = `${p.pool}/src@s1`;
    expect(await userrefs(snap)).toBe(0);
    await run(["zfs", "hold", "zrbt-hold", snap]);
    expect(await userrefs(snap)).toBe(1);
    await run(["zfs", "release", "zrbt-hold", snap]);
    expect(await userrefs(snap)).toBe(0);
  });

  test("hashTree sees mode, mtime and empty directories", async () => {
    const d = join(p.dir, "meta");
    await mkdir(join(d, "empty"), { recursive: true });
    await writeRandomFile(join(d, "f"), 100, 1);
    const before = await hashTree(d);
    expect(before.empty).toMatch(/^dir \d+ \d+$/);
    await chmod(join(d, "f"), 0o600);
    const chmodded = await hashTree(d);
    expect(contentOf(chmodded.f)).toBe(contentOf(before.f)!);
    expect(chmodded.f).not.toBe(before.f!);
    await utimes(join(d, "f"), new Date(2001, 1, 1), new Date(2001, 1, 1));
    expect((await hashTree(d)).f).not.toBe(chmodded.f!);
    await rmdir(join(d, "empty"));
    expect(Object.keys(await hashTree(d))).toEqual(["f"]);
  });

  test("writeRandomFile is deterministic", async () => {
    const a = join(p.dir, "r1"), b = join(p.dir, "r2"), c = join(p.dir, "r3");
    await writeRandomFile(a, 2_500_000, 7);
    await writeRandomFile(b, 2_500_000, 7);
    await writeRandomFile(c, 2_500_000, 8);
    const h = await hashTree(p.dir);
    expect(contentOf(h.r1)).toBe(contentOf(h.r2)!);
    expect(contentOf(h.r1)).not.toBe(contentOf(h.r3)!);
  });
});

describe("rig: radosgw", () => {
  let s3: S3Rig;
  let bucket: string;
  beforeAll(async () => {
    s3 = await s3Rig();
    bucket = await makeBucket(s3);
  }, 120_000); // a cold radosgw takes ~15 s to come up
  afterAll(async () => {
    if (bucket) await emptyAndDeleteBucket(s3, bucket);
  }, 60_000);

  test("put / get over HTTP", async () => {
    const c = await s3Client(s3);
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: "a/b.txt", Body: "hello rig" }));
    const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: "a/b.txt" }));
    expect(await got.Body!.transformToString()).toBe("hello rig");
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: "cold", Body: "x", StorageClass: "DEEP_ARCHIVE" }));
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: "cold" }));
    expect(head.StorageClass).toBe("DEEP_ARCHIVE");
    c.destroy();
  });

  test("multipart: 2 parts, ListParts, complete; and an aborted upload", async () => {
    const c = await s3Client(s3);
    const Key = "mp/object";
    const part1 = new Uint8Array(5 * 1024 * 1024).fill(1);
    const part2 = new Uint8Array(1234).fill(2);
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }));
    const e1 = (await c.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: 1, Body: part1 }))).ETag;
    const e2 = (await c.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: 2, Body: part2 }))).ETag;
    const parts = await c.send(new ListPartsCommand({ Bucket: bucket, Key, UploadId }));
    expect(parts.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([
      [1, part1.length, e1],
      [2, part2.length, e2],
    ]);
    await c.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key,
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] },
      }),
    );
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key }));
    expect(head.ContentLength).toBe(part1.length + part2.length);
    expect(head.ETag).toMatch(/-2"$/);

    // left open on purpose: emptyAndDeleteBucket must abort it
    await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: "mp/dangling" }));
    void AbortMultipartUploadCommand;
    c.destroy();
  });
});
