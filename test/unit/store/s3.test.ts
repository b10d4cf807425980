/**
 * S3Store against the real radosgw of the test rig (no SDK mocks: requests are recorded by a
 * middleware and faults are injected by a TCP proxy in front of radosgw): what only S3 has —
 * multipart resume, pagination, thaw, the error messages. The retry wrapper in front of it, through
 * a fault-injecting proxy, is in s3-faults.test.ts; what every store must do in contract.test.ts.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { CreateMultipartUploadCommand, HeadObjectCommand, ListObjectVersionsCommand, ListObjectsV2Command, ListPartsCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { S3Store, parseRestoreHeader, partSizeFor, MiB } from "../../../src/store/s3.ts";
import { openStore } from "../../../src/store/open.ts";
import { RetryStore } from "../../../src/store/retry.ts";
import { StoreError, type MultipartProgress } from "../../../src/store/store.ts";
import { ZrbError } from "../../../src/util/errors.ts";
import { makeBucket, type S3Rig } from "../../helpers/rig.ts";
import { pageListParts, pseudoRandom, readAll, recordCalls, sha256Hex, s3Kit, ENV } from "./helpers.ts";

setDefaultTimeout(60_000);

// Credentials reach the store only through the standard chain: here, the environment.
const { ctx, store, retrying, storedSha, writeFile, interrupted, uploadedParts } = s3Kit("zrb-s3test-");
let rig: S3Rig;
let bucket: string;
let dir: string;
beforeAll(() => void ({ rig, bucket, dir } = ctx));

describe("keys and location", () => {
  test("prefix is normalised and location names no secrets", () => {
    const s = new S3Store({ bucket: "b", prefix: "/zrb/x//", region: "us-east-1" });
    expect(s.prefix).toBe("zrb/x/");
    expect(s.location).toBe("s3://b/zrb/x/");
    const t = new S3Store({ bucket: "b", prefix: "", region: "eu-west-1", endpoint: "http://h:9000" });
    expect(t.prefix).toBe("");
    expect(t.location).toBe("s3://b/ at http://h:9000");
    expect(t.location).not.toContain("TEST");
    expect(() => new S3Store({ bucket: "b", prefix: "a/../b", region: "r" })).toThrow(ZrbError);
  });

  test("unsafe keys are rejected before any request", async () => {
    const s = store();
    const calls = recordCalls(s.client);
    for (const k of ["../x", "/x", "a/../../b", "a/..", "a\\b", "a\nb", "a\u0000b", "a\u0085b", "", "a//b", "./a", "a/"]) {
      await expect(s.put(k, "x")).rejects.toBeInstanceOf(ZrbError);
      await expect(s.get(k)).rejects.toBeInstanceOf(ZrbError);
      await expect(s.head(k)).rejects.toBeInstanceOf(ZrbError);
      await expect(s.delete(k)).rejects.toBeInstanceOf(ZrbError);
    }
    await expect(s.list("../")).rejects.toBeInstanceOf(ZrbError);
    await expect(s.listUploads("/abs")).rejects.toBeInstanceOf(ZrbError);
    expect(calls).toHaveLength(0);
  });

  test("part size: >= 8 MiB, whole MiB, never more than 10,000 parts", () => {
    expect(partSizeFor(20 * MiB)).toBe(8 * MiB);
    expect(partSizeFor(80_000 * MiB)).toBe(8 * MiB);
    expect(partSizeFor(80_000 * MiB + 1)).toBe(9 * MiB);
    // A sealed 64 MiB chunk (age adds ≈ 16 KiB): 8 parts, the last one not a few KiB of its own.
    const sealed = 64 * MiB + 16_640;
    expect(partSizeFor(sealed)).toBe(9 * MiB);
    expect(sealed - (Math.ceil(sealed / (9 * MiB)) - 1) * 9 * MiB).toBeGreaterThanOrEqual(MiB);
    const fiveTiB = 5 * 1024 * 1024 * MiB;
    expect(Math.ceil(fiveTiB / partSizeFor(fiveTiB))).toBeLessThanOrEqual(10_000);
    expect(partSizeFor(fiveTiB) % MiB).toBe(0);
  });

  test("Restore header parsing", () => {
    expect(parseRestoreHeader(undefined)).toBeUndefined();
    expect(parseRestoreHeader('ongoing-request="true"')).toBe("ongoing");
    expect(parseRestoreHeader('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"')).toBe("available");
  });
});

describe("objects on radosgw", () => {
  test("small put/get/head/delete round trip, under the prefix", async () => {
    const s = store();
    const body = pseudoRandom(1000, 7);
    await s.put("manifests/p/d/head.yaml", body);
    await s.put("manifests/p/d/text", "héllo\n");
    expect(await s.get("manifests/p/d/head.yaml")).toEqual(body);
    expect(new TextDecoder().decode((await s.get("manifests/p/d/text"))!)).toBe("héllo\n");
    const h = await s.head("manifests/p/d/head.yaml");
    expect(h?.key).toBe("manifests/p/d/head.yaml");
    expect(h?.size).toBe(1000);
    expect(h?.storageClass).toBe("STANDARD");
    expect(h?.lastModified).toBeInstanceOf(Date);
    expect(await storedSha(s, "manifests/p/d/head.yaml")).toBe(sha256Hex(body));
    // the real key is under the prefix
    const raw = await s.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "zrb/test/manifests/p/d/" }));
    expect((raw.Contents ?? []).map((o) => o.Key).sort()).toEqual(["zrb/test/manifests/p/d/head.yaml", "zrb/test/manifests/p/d/text"]);
    await s.delete("manifests/p/d/head.yaml");
    await s.delete("manifests/p/d/head.yaml"); // idempotent
    expect(await s.get("manifests/p/d/head.yaml")).toBeNull();
    expect(await s.head("manifests/p/d/head.yaml")).toBeNull();
    await expect(s.getStream("manifests/p/d/head.yaml")).rejects.toThrow(
      "object s3://" + bucket + "/zrb/test/manifests/p/d/head.yaml does not exist",
    );
  });

  test("storage class is set and reported", async () => {
    const s = store();
    await s.put("sc/glacier", "x", { storageClass: "GLACIER" });
    expect((await s.head("sc/glacier"))?.storageClass).toBe("GLACIER");
    const listed = await s.list("sc/");
    expect(listed.map((o) => [o.key, o.storageClass])).toEqual([["sc/glacier", "GLACIER"]]);
  });

  test("putFile: small file is one PutObject, byte-exact, sha256 metadata", async () => {
    const s = store();
    const calls = recordCalls(s.client);
    const data = pseudoRandom(3 * MiB + 5, 3);
    const p = await writeFile("small.bin", data);
    let bytes = 0;
    await s.putFile("data/small", p, { size: data.length, sha256Hex: sha256Hex(data), onBytes: (n) => (bytes = n) });
    expect(calls.map((c) => c.command)).toEqual(["PutObjectCommand"]);
    expect(bytes).toBe(data.length);
    expect(await s.get("data/small")).toEqual(data);
    expect(await storedSha(s, "data/small")).toBe(sha256Hex(data));
    // empty file
    const e = await writeFile("empty.bin", new Uint8Array(0));
    await s.putFile("data/empty", e, { size: 0, sha256Hex: sha256Hex(new Uint8Array(0)) });
    expect((await s.head("data/empty"))?.size).toBe(0);
  });

  test("putFile: wrong size is refused before upload", async () => {
    const s = store();
    const p = await writeFile("wrongsize.bin", pseudoRandom(100));
    await expect(s.putFile("data/ws", p, { size: 101, sha256Hex: "0".repeat(64) })).rejects.toThrow("the file is 100 bytes but 101 were expected");
  });

  test("putFile: 20 MiB multipart with 8 MiB parts, byte-exact, progress after create and every part", async () => {
    const s = store();
    const calls = recordCalls(s.client);
    const data = pseudoRandom(20 * MiB, 11);
    const p = await writeFile("mp.bin", data);
    const progress: MultipartProgress[] = [];
    const seenBytes: number[] = [];
    await s.putFile("data/mp", p, {
      size: data.length,
      sha256Hex: sha256Hex(data),
      storageClass: "STANDARD_IA",
      onProgress: async (pr) => {
        await Bun.sleep(1); // awaited: the caller persists it
        progress.push(pr);
      },
      onBytes: (n) => seenBytes.push(n),
    });
    const parts = calls.filter((c) => c.command === "UploadPartCommand");
    expect(parts.map((c) => c.input.PartNumber).sort()).toEqual([1, 2, 3]);
    expect(parts.map((c) => c.input.ContentLength).sort()).toEqual([4 * MiB, 8 * MiB, 8 * MiB]);
    expect(progress).toHaveLength(4);
    expect(progress[0]!.parts).toEqual([]);
    expect(progress[0]!.partSize).toBe(8 * MiB);
    expect(progress[3]!.parts.map((x) => x.partNumber)).toEqual([1, 2, 3]);
    expect(seenBytes[seenBytes.length - 1]).toBe(data.length);
    const got = await readAll(await s.getStream("data/mp"));
    expect(got.length).toBe(data.length);
    expect(sha256Hex(got)).toBe(sha256Hex(data));
    const h = await s.head("data/mp");
    expect(h?.size).toBe(data.length);
    expect(h?.storageClass).toBe("STANDARD_IA");
    expect(await storedSha(s, "data/mp")).toBe(sha256Hex(data));
    expect(await s.listUploads("data/")).toEqual([]);
  });

  test("putFile: resume after an abort does not re-send finished parts", async () => {
    const data = pseudoRandom(20 * MiB, 21);
    const sha = sha256Hex(data);
    const p = await writeFile("resume.bin", data);

    // Run 1: one part at a time; "the process dies" (abort) once part 1 is recorded.
    const s1 = store({ partConcurrency: 1 });
    const ac = new AbortController();
    let persisted: MultipartProgress | undefined;
    const run1 = s1.putFile("data/resume", p, {
      size: data.length,
      sha256Hex: sha,
      signal: ac.signal,
      onProgress: (pr) => {
        persisted = structuredClone(pr);
        if (pr.parts.length >= 1) ac.abort();
      },
    });
    await expect(run1).rejects.toMatchObject({ name: "AbortError" });
    expect(persisted?.parts.map((x) => x.partNumber)).toEqual([1]);
    const ups = await s1.listUploads("data/resume");
    expect(ups.map((u) => u.uploadId)).toEqual([persisted!.uploadId]);
    expect(await s1.head("data/resume")).toBeNull();

    // Run 2: a fresh store (a new process) resumes from the persisted progress.
    const s2 = store();
    const calls = recordCalls(s2.client);
    const progress: MultipartProgress[] = [];
    await s2.putFile("data/resume", p, { size: data.length, sha256Hex: sha, resume: persisted, onProgress: (pr) => void progress.push(pr) });
    const names = calls.map((c) => c.command);
    expect(names).toContain("ListPartsCommand");
    expect(names).not.toContain("CreateMultipartUploadCommand");
    const sent = calls.filter((c) => c.command === "UploadPartCommand").map((c) => c.input.PartNumber);
    expect(sent.sort()).toEqual([2, 3]); // part 1 was not re-sent
    expect(progress.every((pr) => pr.uploadId === persisted!.uploadId)).toBe(true);
    expect(sha256Hex(await readAll(await s2.getStream("data/resume")))).toBe(sha);
    expect(await s2.listUploads("data/")).toEqual([]);
  });

  test("putFile: a recorded part whose ETag the server does not confirm is re-sent", async () => {
    const data = pseudoRandom(17 * MiB, 5);
    const sha = sha256Hex(data);
    const p = await writeFile("tamper.bin", data);
    const s1 = store({ partConcurrency: 1 });
    const ac = new AbortController();
    let persisted: MultipartProgress | undefined;
    await expect(
      s1.putFile("data/tamper", p, {
        size: data.length,
        sha256Hex: sha,
        signal: ac.signal,
        onProgress: (pr) => {
          persisted = structuredClone(pr);
          if (pr.parts.length >= 2) ac.abort();
        },
      }),
    ).rejects.toMatchObject({ name: "AbortError" });
    expect(persisted!.parts).toHaveLength(2);
    persisted!.parts[0]!.etag = "0123456789abcdef0123456789abcdef"; // stale/corrupt record
    const s2 = store();
    const calls = recordCalls(s2.client);
    await s2.putFile("data/tamper", p, { size: data.length, sha256Hex: sha, resume: persisted });
    expect(calls.filter((c) => c.command === "UploadPartCommand").map((c) => c.input.PartNumber).sort()).toEqual([1, 3]);
    expect(sha256Hex((await s2.get("data/tamper"))!)).toBe(sha);
  });

  test("putFile: an unknown upload id starts a fresh upload", async () => {
    const data = pseudoRandom(9 * MiB, 9);
    const p = await writeFile("fresh.bin", data);
    const s = store();
    const calls = recordCalls(s.client);
    const progress: MultipartProgress[] = [];
    await s.putFile("data/fresh", p, {
      size: data.length,
      sha256Hex: sha256Hex(data),
      resume: { uploadId: "2~zrbBogusUploadId0000000000000", partSize: 8 * MiB, parts: [{ partNumber: 1, etag: "abc" }] },
      onProgress: (pr) => void progress.push(pr),
    });
    expect(calls.map((c) => c.command)).toContain("CreateMultipartUploadCommand");
    expect(calls.filter((c) => c.command === "UploadPartCommand").map((c) => c.input.PartNumber).sort()).toEqual([1, 2]);
    expect(progress[0]!.uploadId).not.toBe("2~zrbBogusUploadId0000000000000");
    expect(sha256Hex((await s.get("data/fresh"))!)).toBe(sha256Hex(data));
  });

  test("putFile: resuming an upload that a killed run already completed does not upload again", async () => {
    const data = pseudoRandom(9 * MiB, 31);
    const sha = sha256Hex(data);
    const p = await writeFile("completed.bin", data);
    const s = store();
    let last: MultipartProgress | undefined;
    await s.putFile("data/completed", p, { size: data.length, sha256Hex: sha, onProgress: (pr) => void (last = structuredClone(pr)) });
    expect(last?.parts).toHaveLength(2); // the run "died" before recording that the part was uploaded
    const s2 = store();
    const calls = recordCalls(s2.client);
    await s2.putFile("data/completed", p, { size: data.length, sha256Hex: sha, resume: last });
    expect(calls.map((c) => c.command)).toEqual(["ListPartsCommand", "HeadObjectCommand"]);
    // a different file under the same key and old upload id is uploaded afresh
    const other = pseudoRandom(9 * MiB, 32);
    const p2 = await writeFile("completed2.bin", other);
    await s2.putFile("data/completed", p2, { size: other.length, sha256Hex: sha256Hex(other), resume: last });
    expect(sha256Hex((await s2.get("data/completed"))!)).toBe(sha256Hex(other));
    expect(await s2.listUploads("data/completed")).toEqual([]);
  });

  test("putFile: a recorded part the server holds at another size than the record's part size implies is re-sent", async () => {
    const data = pseudoRandom(17 * MiB, 73);
    const sha = sha256Hex(data);
    const p = await writeFile("resized.bin", data);
    const persisted = await interrupted("data/resized", p, data, 1); // part 1 is stored with 8 MiB
    const s2 = store();
    const calls = recordCalls(s2.client);
    // The record says 6 MiB parts: the stored 8 MiB part 1 is not the file's bytes [0, 6 MiB).
    await s2.putFile("data/resized", p, { size: data.length, sha256Hex: sha, resume: { ...persisted, partSize: 6 * MiB } });
    expect(uploadedParts(calls)).toEqual([1, 2, 3]);
    expect(sha256Hex((await s2.get("data/resized"))!)).toBe(sha);
    expect(await s2.listUploads("data/resized")).toEqual([]);
  });

  test("putFile: resume reads every page of the upload's part list", async () => {
    const data = pseudoRandom(20 * MiB, 75);
    const sha = sha256Hex(data);
    const p = await writeFile("paged.bin", data);
    const persisted = await interrupted("data/paged", p, data, 2);
    const s2 = store();
    pageListParts(s2.client, 1);
    const calls = recordCalls(s2.client);
    await s2.putFile("data/paged", p, { size: data.length, sha256Hex: sha, resume: persisted });
    expect(calls.filter((c) => c.command === "ListPartsCommand").length).toBeGreaterThanOrEqual(2);
    expect(uploadedParts(calls)).toEqual([3]); // parts 1 and 2 (on two pages) were not re-sent
    expect(sha256Hex((await s2.get("data/paged"))!)).toBe(sha);
  });

  test("putFile: a record whose part size is under S3's 5 MiB minimum is not continued; a fresh upload stores the file", async () => {
    const data = pseudoRandom(9 * MiB, 71);
    const sha = sha256Hex(data);
    const p = await writeFile("tiny.bin", data);
    const s = store();
    const old = await s.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: s.prefix + "data/tiny" }));
    const calls = recordCalls(s.client);
    await s.putFile("data/tiny", p, { size: data.length, sha256Hex: sha, resume: { uploadId: old.UploadId!, partSize: MiB, parts: [] } });
    expect(calls.filter((c) => c.command === "UploadPartCommand").map((c) => c.input.ContentLength as number).sort((a, b) => a - b)).toEqual([MiB, 8 * MiB]);
    expect(sha256Hex((await s.get("data/tiny"))!)).toBe(sha);
    expect(await s.listUploads("data/tiny")).toEqual([]); // the recorded upload was aborted
  });

  test("rewriteHead: an object replaced since it was read is refused and left as it is, also when it would be rewritten whole", async () => {
    const s = store();
    await s.put("rw/stale", "version 1");
    const etag = (await s.head("rw/stale"))!.etag;
    await s.put("rw/stale", "version 2");
    const err = await s.rewriteHead("rw/stale", new TextEncoder().encode("new"), 9, { size: 9, etag }).then(
      () => null,
      (e) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect(err.kind).toBe("permanent");
    expect(err.message).toContain("changed since it was read");
    expect(new TextDecoder().decode((await s.get("rw/stale"))!)).toBe("version 2");
  });

  test("putFile: abort stops promptly and leaves the upload resumable", async () => {
    const data = pseudoRandom(40 * MiB, 13);
    const p = await writeFile("abort.bin", data);
    const s = store();
    const ac = new AbortController();
    let uploadId = "";
    const run = s.putFile("data/abort", p, {
      size: data.length,
      sha256Hex: sha256Hex(data),
      signal: ac.signal,
      onProgress: (pr) => {
        uploadId = pr.uploadId;
        setTimeout(() => ac.abort(), 5);
      },
    });
    await expect(run).rejects.toMatchObject({ name: "AbortError" });
    // Stopped, not finished: the object is not there and not all 5 of its 8 MiB parts are.
    expect(await s.head("data/abort")).toBeNull();
    const listed = await s.client.send(new ListPartsCommand({ Bucket: bucket, Key: s.prefix + "data/abort", UploadId: uploadId }));
    expect((listed.Parts ?? []).length).toBeLessThan(5);
    const ups = await s.listUploads("data/abort");
    expect(ups.map((u) => u.uploadId)).toEqual([uploadId]);
    await s.abortUpload("data/abort", uploadId);
    expect(await s.listUploads("data/abort")).toEqual([]);
  });

  test("getStream with a byte range", async () => {
    const s = store();
    const data = pseudoRandom(10_000, 17);
    await s.put("range/obj", data);
    expect(await readAll(await s.getStream("range/obj", { start: 5, end: 9 }))).toEqual(data.slice(5, 10));
    expect(await readAll(await s.getStream("range/obj", { start: 9_990 }))).toEqual(data.slice(9_990));
    expect(await readAll(await s.getStream("range/obj", { start: 0, end: 0 }))).toEqual(data.slice(0, 1));
    await expect(s.getStream("range/obj", { start: 20_000 })).rejects.toThrow("is outside object");
  });

  test("list paginates, strips the prefix and sorts", async () => {
    const s = store({ listPageSize: 2 });
    const calls = recordCalls(s.client);
    const keys = ["list/e", "list/a", "list/sub/c", "list/b", "list/d"];
    for (const k of keys) await s.put(k, k);
    await s.put("listother/x", "x");
    calls.length = 0;
    const got = await s.list("list/");
    expect(got.map((o) => o.key)).toEqual([...keys].sort());
    expect(got.find((o) => o.key === "list/a")?.size).toBe(6);
    expect(calls.filter((c) => c.command === "ListObjectsV2Command").length).toBeGreaterThanOrEqual(3);
    expect((await s.list("list")).map((o) => o.key)).toEqual([...[...keys].sort(), "listother/x"]);
    expect(await s.list("nothing-here/")).toEqual([]);
  });

  test("delete under object lock removes every version of the key, over several pages, and nothing of a key it is a prefix of", async () => {
    const locked = await makeBucket(rig, { objectLock: true });
    const s = store({ bucket: locked, objectLock: { mode: "GOVERNANCE", days: 1 }, listPageSize: 2 });
    // Written without a retention date (the bucket has no default one), so every version may go.
    for (const [k, n] of [["ver/k", 3], ["ver/k2", 2]] as const)
      for (let i = 0; i < n; i++) await s.client.send(new PutObjectCommand({ Bucket: locked, Key: `zrb/test/${k}`, Body: `${k} ${i}` }));
    const calls = recordCalls(s.client);
    await s.delete("ver/k");
    expect(calls.filter((c) => c.command === "ListObjectVersionsCommand").length).toBeGreaterThanOrEqual(2);
    const left = await s.client.send(new ListObjectVersionsCommand({ Bucket: locked, Prefix: "zrb/test/ver/" }));
    expect((left.Versions ?? []).map((v) => v.Key)).toEqual(["zrb/test/ver/k2", "zrb/test/ver/k2"]);
    expect(left.DeleteMarkers ?? []).toEqual([]);
    expect(await s.head("ver/k")).toBeNull();
  });

  test("delete under object lock goes oldest version first: an older version locked longer stops it with the object as it was", async () => {
    const locked = await makeBucket(rig, { objectLock: true });
    const s = store({ bucket: locked, objectLock: { mode: "GOVERNANCE", days: 1 } });
    const Key = "zrb/test/ver/m";
    const old = await s.client.send(new PutObjectCommand({ Bucket: locked, Key, Body: "old", ObjectLockMode: "GOVERNANCE", ObjectLockRetainUntilDate: new Date(Date.now() + 86_400_000) }));
    await s.client.send(new PutObjectCommand({ Bucket: locked, Key, Body: "new" })); // no retention
    const err = await s.delete("ver/m").then(
      () => null,
      (e) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).kind).toBe("locked");
    expect((err as StoreError).message).toMatch(/is locked until \d{4}-/); // the locked version's date
    // Nothing was deleted: the object is still the newest version, not the old one come back.
    expect(new TextDecoder().decode((await s.get("ver/m"))!)).toBe("new");
    const left = await s.client.send(new ListObjectVersionsCommand({ Bucket: locked, Prefix: Key }));
    expect((left.Versions ?? []).length).toBe(2);
    expect(left.Versions!.some((v) => v.VersionId === old.VersionId)).toBe(true);
  });

  test("listUploads paginates; abortUpload leaves no uploads and is idempotent", async () => {
    const s = store({ listPageSize: 2 });
    const ids: string[] = [];
    for (const k of ["up/a", "up/b", "up/c"]) {
      const r = await s.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: "zrb/test/" + k }));
      ids.push(r.UploadId!);
    }
    const calls = recordCalls(s.client);
    const ups = await s.listUploads("up/");
    expect(ups.map((u) => u.key)).toEqual(["up/a", "up/b", "up/c"]);
    expect(ups.every((u) => u.initiated instanceof Date)).toBe(true);
    expect(calls.filter((c) => c.command === "ListMultipartUploadsCommand").length).toBeGreaterThanOrEqual(2);
    for (const u of ups) await s.abortUpload(u.key, u.uploadId);
    await s.abortUpload("up/a", ids[0]!); // already gone: no error
    expect(await s.listUploads("up/")).toEqual([]);
  });

  test("thaw: a non-archived object is available; radosgw's label-only GLACIER (RestoreObject 501) is readable", async () => {
    const s = store();
    await s.put("thaw/std", "x");
    expect(await s.thaw("thaw/std", { days: 1, tier: "Bulk" })).toBe("available");
    await s.put("thaw/glacier", "x", { storageClass: "GLACIER" });
    const calls = recordCalls(s.client);
    expect(await s.thaw("thaw/glacier", { days: 1, tier: "Bulk" })).toBe("available");
    expect(calls.map((c) => c.command)).toEqual(["HeadObjectCommand", "RestoreObjectCommand"]);
    expect(calls[1]!.input.RestoreRequest).toEqual({ Days: 1, GlacierJobParameters: { Tier: "Bulk" } });
    await expect(s.thaw("thaw/missing", { days: 1, tier: "Bulk" })).rejects.toThrow("the object does not exist");
  });

  test("openStore builds an S3Store behind the retry wrapper from the config shape", async () => {
    const st = openStore({
      s3: { enabled: true, bucket, prefix: "zrb/test", region: rig.region, endpoint: rig.endpoint, retry: { maxAttempts: 2 } },
      localStoreDir: "/nonexistent",
    });
    expect(st).toBeInstanceOf(RetryStore);
    expect((st as RetryStore).inner).toBeInstanceOf(S3Store);
    expect(st.location).toBe(`s3://${bucket}/zrb/test/ at ${rig.endpoint}`);
    await st.checkAccess();
  });
});

describe("errors users can cause", () => {
  test("checkAccess succeeds and leaves no probe object", async () => {
    const s = store({ prefix: "probe-check" });
    await s.checkAccess();
    expect(await s.list("")).toEqual([]);
  });

  test("nonexistent bucket: exact one-line message", async () => {
    const s = retrying(new S3Store({ bucket: "zrbt-does-not-exist-9f8e7d", prefix: "", region: rig.region, endpoint: rig.endpoint }), 2);
    const err = await s.checkAccess().then(
      () => null,
      (e) => e,
    );
    expect(err).toBeInstanceOf(ZrbError);
    expect(err.message).toBe(`bucket zrbt-does-not-exist-9f8e7d does not exist at ${rig.endpoint}; create it or fix s3.bucket`);
    await expect(s.put("a", "b")).rejects.toThrow(`bucket zrbt-does-not-exist-9f8e7d does not exist at ${rig.endpoint}`);
  });

  test("wrong credentials: exact one-line message, no secret in it", async () => {
    const secret = "WRONGSECRET-zrb-test-value";
    process.env.AWS_SECRET_ACCESS_KEY = secret;
    try {
      const s = store();
      const calls = recordCalls(s.client);
      const err = await s.checkAccess().then(
        () => null,
        (e) => e,
      );
      expect(err).toBeInstanceOf(ZrbError);
      expect(err.message).toBe(`access denied to bucket ${bucket}: check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE)`);
      expect(calls).toHaveLength(1); // a 403 is not retried
      const err2 = await s.put("x", "y").then(
        () => null,
        (e) => e,
      );
      expect(err2.message).toContain(`access denied to bucket ${bucket}`);
      expect(err2.message).not.toContain(secret);
      expect(err2.message).not.toContain("\n");
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = rig.secretAccessKey;
    }
  });

  test("no credentials anywhere in the chain: one-line message", async () => {
    const keep = { ...process.env };
    for (const k of ENV) delete process.env[k];
    process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, "no-credentials");
    process.env.AWS_CONFIG_FILE = join(dir, "no-config");
    process.env.AWS_EC2_METADATA_DISABLED = "true";
    try {
      const err = await store().checkAccess().then(
        () => null,
        (e) => e,
      );
      expect(err).toBeInstanceOf(ZrbError);
      expect(err.message).toBe(
        `no AWS credentials found for bucket ${bucket}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run with an instance role`,
      );
    } finally {
      for (const k of ["AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED"]) {
        if (keep[k] === undefined) delete process.env[k];
        else process.env[k] = keep[k];
      }
      process.env.AWS_ACCESS_KEY_ID = rig.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = rig.secretAccessKey;
    }
  });

  test("unreachable endpoint: cannot reach message", async () => {
    const s = retrying(new S3Store({ bucket, prefix: "", region: rig.region, endpoint: "http://127.0.0.1:1" }), 2);
    await expect(s.checkAccess()).rejects.toThrow(/^cannot reach S3 endpoint http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED.* \(after 2 attempts\)$/);
  });
});
