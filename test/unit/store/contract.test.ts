/**
 * The object-store contract: the same scenarios against every backend zrb has — the local
 * directory store and S3 (the real radosgw of the rig, behind the retry wrapper, as openStore
 * builds it). restic's backend test suite is the model: whatever the pipeline relies on is
 * asserted here once, for all of them.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../../src/store/open.ts";
import { MIN_REWRITE_HEAD, StoreError, type ObjectStore } from "../../../src/store/store.ts";
import { emptyAndDeleteBucket, makeBucket, s3Rig, type S3Rig } from "../../helpers/rig.ts";
import { pseudoRandom, readAll, sha256Hex } from "./helpers.ts";

setDefaultTimeout(60_000);

let dir: string;
let rig: S3Rig;
let bucket: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zrb-contract-"));
  rig = await s3Rig();
  process.env.AWS_ACCESS_KEY_ID = rig.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = rig.secretAccessKey;
  bucket = await makeBucket(rig);
});

afterAll(async () => {
  await emptyAndDeleteBucket(rig, bucket);
  rmSync(dir, { recursive: true, force: true });
});

const backends: [string, () => ObjectStore][] = [
  ["local directory", () => openStore({ s3: { enabled: false, bucket: "", prefix: "", region: "", retry: { maxAttempts: 1 } }, localStoreDir: join(dir, "local") })],
  ["S3 (radosgw)", () => openStore({ s3: { enabled: true, bucket, prefix: "contract", region: rig.region, endpoint: rig.endpoint, retry: { maxAttempts: 3 } }, localStoreDir: "" })],
];

async function rejection(p: Promise<unknown>): Promise<StoreError> {
  const e = await p.then(
    () => null,
    (err) => err,
  );
  expect(e).toBeInstanceOf(StoreError);
  return e as StoreError;
}

for (const [name, make] of backends) {
  describe(`store contract: ${name}`, () => {
    let s: ObjectStore;
    beforeAll(() => {
      s = make();
    });

    test("put, get, head, delete; missing objects are null; delete is idempotent", async () => {
      const body = pseudoRandom(5000, 1);
      await s.put("c/small/a.bin", body);
      await s.put("c/small/t.txt", "héllo\n");
      expect(await s.get("c/small/a.bin")).toEqual(body);
      expect(new TextDecoder().decode((await s.get("c/small/t.txt"))!)).toBe("héllo\n");
      expect((await s.head("c/small/a.bin"))?.size).toBe(5000);
      expect((await s.head("c/small/a.bin"))?.key).toBe("c/small/a.bin");
      await s.put("c/small/t.txt", "overwritten");
      expect(new TextDecoder().decode((await s.get("c/small/t.txt"))!)).toBe("overwritten");
      await s.delete("c/small/a.bin");
      await s.delete("c/small/a.bin");
      expect(await s.get("c/small/a.bin")).toBeNull();
      expect(await s.head("c/small/a.bin")).toBeNull();
    });

    test("get refuses an object larger than maxBytes before reading it (too-large, with its size)", async () => {
      await s.put("c/big/x", pseudoRandom(10_000, 2));
      const e = await rejection(s.get("c/big/x", { maxBytes: 9_999 }));
      expect(e.kind).toBe("too-large");
      expect(e.size).toBe(10_000);
      expect((await s.get("c/big/x", { maxBytes: 10_000 }))?.length).toBe(10_000);
    });

    test("getStream: whole, ranged, a missing object is not-found (when opening)", async () => {
      const data = pseudoRandom(200_000, 3);
      await s.put("c/stream/o", data);
      expect(await readAll(await s.getStream("c/stream/o"))).toEqual(data);
      expect(await readAll(await s.getStream("c/stream/o", { start: 5, end: 9 }))).toEqual(data.slice(5, 10));
      expect(await readAll(await s.getStream("c/stream/o", { start: 199_990 }))).toEqual(data.slice(199_990));
      const e = await rejection(s.getStream("c/stream/missing"));
      expect(e.kind).toBe("not-found");
      expect(e.message).toContain("c/stream/missing");
      expect(e.message).toContain("does not exist");
    });

    test("list: recursive, sorted, prefix-relative keys with sizes; nothing is []", async () => {
      const keys = ["c/list/e", "c/list/a", "c/list/sub/c", "c/list/b"];
      for (const k of keys) await s.put(k, k);
      await s.put("c/listother/x", "x");
      const got = await s.list("c/list/");
      expect(got.map((o) => o.key)).toEqual([...keys].sort());
      expect(got.find((o) => o.key === "c/list/a")?.size).toBe(8);
      expect((await s.list("c/list")).map((o) => o.key)).toEqual([...[...keys].sort(), "c/listother/x"]);
      expect(await s.list("c/nothing-here/")).toEqual([]);
    });

    test("putFile: small and multipart-sized files are stored byte-exact; a size mismatch is refused", async () => {
      for (const [n, size] of [["empty", 0], ["small", 70_000], ["big", 17 * 1024 * 1024 + 3]] as const) {
        const data = pseudoRandom(size, 7);
        const p = join(dir, `${name.replace(/\W/g, "")}-${n}.bin`);
        await Bun.write(p, data);
        let bytes = -1;
        await s.putFile(`c/files/${n}`, p, { size, sha256Hex: sha256Hex(data), onBytes: (b) => (bytes = b) });
        expect(bytes).toBe(size);
        expect((await s.head(`c/files/${n}`))?.size).toBe(size);
        expect(sha256Hex(await readAll(await s.getStream(`c/files/${n}`)))).toBe(sha256Hex(data));
      }
      const p = join(dir, `${name.replace(/\W/g, "")}-ws.bin`);
      await Bun.write(p, pseudoRandom(100));
      await expect(s.putFile("c/files/ws", p, { size: 101, sha256Hex: "0".repeat(64) })).rejects.toThrow("the file is 100 bytes but 101 were expected");
      expect(await s.head("c/files/ws")).toBeNull();
    });

    test("rewriteHead: a new head (≥ 5 MiB) before a range copied in the store; the rest of the object is byte-exact", async () => {
      const old = pseudoRandom(12 * 1024 * 1024 + 17, 11);
      const p = join(dir, `${name.replace(/\W/g, "")}-rw.bin`);
      await Bun.write(p, old);
      await s.putFile("c/rw/o", p, { size: old.length, sha256Hex: sha256Hex(old) });
      const info = (await s.head("c/rw/o"))!;
      const head = pseudoRandom(MIN_REWRITE_HEAD + 100, 12);
      const from = 6 * 1024 * 1024;
      expect(await s.rewriteHead("c/rw/o", head, from, { size: old.length, etag: info.etag })).toEqual({ copied: old.length - from });
      const want = new Uint8Array(head.length + old.length - from);
      want.set(head);
      want.set(old.subarray(from), head.length);
      expect(sha256Hex(await readAll(await s.getStream("c/rw/o")))).toBe(sha256Hex(want));
      expect((await s.head("c/rw/o"))?.size).toBe(want.length);
    });

    test("rewriteHead: from = size replaces a small object whole; a wrong size or a missing object is refused and changes nothing", async () => {
      await s.put("c/rw/small", pseudoRandom(1000, 13));
      expect(await s.rewriteHead("c/rw/small", new TextEncoder().encode("new"), 1000, { size: 1000 })).toEqual({ copied: 0 });
      expect(new TextDecoder().decode((await s.get("c/rw/small"))!)).toBe("new");
      await expect(s.rewriteHead("c/rw/small", new Uint8Array(10), 3, { size: 4 })).rejects.toThrow("expected 4");
      expect(new TextDecoder().decode((await s.get("c/rw/small"))!)).toBe("new");
      expect((await rejection(s.rewriteHead("c/rw/missing", new Uint8Array(1), 0, { size: 0 }))).kind).toBe("not-found");
    });

    test("no upload is left in progress after putFile and rewriteHead", async () => {
      expect(await s.listUploads("c/")).toEqual([]);
    });

    test("keys that could leave the prefix are refused before any request", async () => {
      for (const k of ["../x", "a/../../b", "/abs", "a//b", "a\u0000b", ""]) await expect(s.put(k, "x")).rejects.toThrow(/invalid object key/);
    });

    test("urlOf names the object without secrets; checkAccess passes and leaves nothing behind", async () => {
      expect(s.urlOf("c/x")).toEndWith("c/x");
      expect(s.urlOf("c/x")).not.toContain(rig.secretAccessKey);
      const before = await s.list("");
      await s.checkAccess();
      expect(await s.list("")).toEqual(before);
    });
  });
}
