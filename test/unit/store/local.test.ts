import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalStore } from "../../../src/store/local.ts";
import { openStore } from "../../../src/store/open.ts";
import { ZrbError } from "../../../src/util/errors.ts";
import { pseudoRandom, readAll, sha256Hex } from "./helpers.ts";

let dir: string;
let root: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "zrb-localstore-"));
  root = join(dir, "store");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("LocalStore", () => {
  test("location and openStore with s3.enabled false", () => {
    const s = openStore({
      s3: { enabled: false, bucket: "", prefix: "", region: "", retry: { maxAttempts: 1 } },
      localStoreDir: root,
    });
    expect(s).toBeInstanceOf(LocalStore);
    expect(s.location).toBe(root + "/");
  });

  test("put/get/head/delete round trip; parents created and pruned", async () => {
    const s = new LocalStore(root);
    await s.checkAccess();
    await s.put("manifests/p/d/head.yaml", "level: 0\n");
    const bin = pseudoRandom(70_000, 3);
    await s.put("a/b/c.bin", bin);
    expect(new TextDecoder().decode((await s.get("manifests/p/d/head.yaml"))!)).toBe("level: 0\n");
    expect(await s.get("a/b/c.bin")).toEqual(bin);
    const h = await s.head("a/b/c.bin");
    expect(h?.size).toBe(70_000);
    expect(h?.key).toBe("a/b/c.bin");
    expect(h?.storageClass).toBeUndefined();
    expect(await s.get("nope")).toBeNull();
    expect(await s.head("nope")).toBeNull();
    expect(await s.head("a")).toBeNull(); // a directory is not an object
    await s.put("a/b/c.bin", "overwritten");
    expect(new TextDecoder().decode((await s.get("a/b/c.bin"))!)).toBe("overwritten");
    await s.delete("a/b/c.bin");
    await s.delete("a/b/c.bin");
    expect(existsSync(join(root, "a"))).toBe(false);
    expect(existsSync(root)).toBe(true);
  });

  test("deleting the last object prunes its empty directories but never the root", async () => {
    const s = new LocalStore(root);
    await s.put("only/one/obj", "x");
    await s.delete("only/one/obj");
    expect(existsSync(root)).toBe(true);
    expect(readdirSync(root)).toEqual([]);
  });

  test("getStream, whole and ranged; missing object is a clear error", async () => {
    const s = new LocalStore(root);
    const data = pseudoRandom(200_000, 5);
    await s.put("r/obj", data);
    expect(await readAll(await s.getStream("r/obj"))).toEqual(data);
    expect(await readAll(await s.getStream("r/obj", { start: 5, end: 9 }))).toEqual(data.slice(5, 10));
    expect(await readAll(await s.getStream("r/obj", { start: 199_990 }))).toEqual(data.slice(199_990));
    expect(await readAll(await s.getStream("r/obj", { start: 199_990, end: 10_000_000 }))).toEqual(data.slice(199_990));
    await expect(s.getStream("r/obj", { start: 300_000 })).rejects.toThrow("outside object");
    await expect(s.getStream("r/missing")).rejects.toThrow("object r/missing does not exist in " + root + "/");
  });

  test("putFile copies atomically, checks size and sha256, reports bytes", async () => {
    const s = new LocalStore(root);
    const data = pseudoRandom(3 * 1024 * 1024 + 7, 9);
    const src = join(dir, "src.bin");
    writeFileSync(src, data);
    let seen = 0;
    await s.putFile("data/x/part-000", src, { size: data.length, sha256Hex: sha256Hex(data), onBytes: (n) => (seen = n) });
    expect(seen).toBe(data.length);
    expect(sha256Hex((await s.get("data/x/part-000"))!)).toBe(sha256Hex(data));
    await expect(s.putFile("data/x/bad", src, { size: data.length, sha256Hex: "0".repeat(64) })).rejects.toThrow("its SHA-256 is");
    await expect(s.putFile("data/x/bad", src, { size: 1, sha256Hex: sha256Hex(data) })).rejects.toThrow("were expected");
    // no final name, no temp file left behind
    expect(readdirSync(join(root, "data/x"))).toEqual(["part-000"]);
    expect(await s.listUploads("")).toEqual([]);
  });

  test("putFile honours an aborted signal and leaves no partial file", async () => {
    const s = new LocalStore(root);
    const data = pseudoRandom(4 * 1024 * 1024, 1);
    const src = join(dir, "src.bin");
    writeFileSync(src, data);
    const ac = new AbortController();
    const p = s.putFile("data/aborted", src, {
      size: data.length,
      sha256Hex: sha256Hex(data),
      signal: ac.signal,
      onBytes: () => ac.abort(),
    });
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    expect(await s.head("data/aborted")).toBeNull();
    expect(readdirSync(join(root, "data"))).toEqual([]);
  });

  test("list is recursive, prefix-filtered, sorted, and skips temp files", async () => {
    const s = new LocalStore(root);
    for (const k of ["l/e", "l/a", "l/sub/c", "l/b", "lx/y", "m"]) await s.put(k, k);
    writeFileSync(join(root, "l", ".a.zrbtmp-0123456789abcdef"), "partial");
    expect((await s.list("l/")).map((o) => o.key)).toEqual(["l/a", "l/b", "l/e", "l/sub/c"]);
    expect((await s.list("l")).map((o) => o.key)).toEqual(["l/a", "l/b", "l/e", "l/sub/c", "lx/y"]);
    expect((await s.list("l/s")).map((o) => o.key)).toEqual(["l/sub/c"]);
    expect((await s.list("")).map((o) => o.key)).toEqual(["l/a", "l/b", "l/e", "l/sub/c", "lx/y", "m"]);
    expect(await s.list("zzz/")).toEqual([]);
    expect(new LocalStore(join(dir, "absent")).list("")).resolves.toEqual([]);
  });

  test("listUploads returns temp files left by a killed run; abortUpload removes them", async () => {
    const s = new LocalStore(root);
    await s.put("data/p/part-001", "done");
    const tmp = ".part-002.zrbtmp-0123456789abcdef";
    writeFileSync(join(root, "data/p", tmp), "half");
    const ups = await s.listUploads("data/");
    expect(ups.map((u) => [u.key, u.uploadId])).toEqual([["data/p/part-002", tmp]]);
    expect(ups[0]!.initiated).toBeInstanceOf(Date);
    expect(await s.listUploads("data/p/part-001")).toEqual([]);
    await expect(s.abortUpload("data/p/part-002", "../../x")).rejects.toBeInstanceOf(ZrbError);
    await expect(s.abortUpload("data/p/part-001", tmp)).rejects.toBeInstanceOf(ZrbError); // id of another key
    await s.abortUpload("data/p/part-002", tmp);
    await s.abortUpload("data/p/part-002", tmp); // idempotent
    expect(await s.listUploads("")).toEqual([]);
    expect(new TextDecoder().decode((await s.get("data/p/part-001"))!)).toBe("done");
  });

  test("key validation: nothing outside the root is reachable", async () => {
    const s = new LocalStore(root);
    mkdirSync(root, { recursive: true });
    writeFileSync(join(dir, "secret"), "outside");
    for (const k of ["../x", "/x", "a/../../b", "../secret", "a\\b", "a\u0001", "", "a//b", "."]) {
      await expect(s.put(k, "x")).rejects.toBeInstanceOf(ZrbError);
      await expect(s.get(k)).rejects.toBeInstanceOf(ZrbError);
      await expect(s.delete(k)).rejects.toBeInstanceOf(ZrbError);
    }
    await expect(s.list("../")).rejects.toBeInstanceOf(ZrbError);
    expect(existsSync(join(dir, "secret"))).toBe(true);
    expect(existsSync(join(dir, "x"))).toBe(false);
  });

  test("thaw is always available", async () => {
    expect(await new LocalStore(root).thaw("k", { days: 1, tier: "Bulk" })).toBe("available");
  });

  test("checkAccess creates the root, and fails with a one-line error when it cannot", async () => {
    const s = new LocalStore(root);
    await s.checkAccess();
    expect(existsSync(root)).toBe(true);
    expect(readdirSync(root)).toEqual([]);
    if (process.getuid?.() !== 0) {
      chmodSync(root, 0o500);
      try {
        await expect(s.checkAccess()).rejects.toThrow(/not writable: permission denied/);
      } finally {
        chmodSync(root, 0o700);
      }
    }
    writeFileSync(join(dir, "file"), "x");
    await expect(new LocalStore(join(dir, "file", "sub")).checkAccess()).rejects.toBeInstanceOf(ZrbError);
  });
});
