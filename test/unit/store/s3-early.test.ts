/**
 * The early upload (store/s3-growing.ts) against the real radosgw of the test rig: a file that
 * grows while its first pieces are already sent is stored byte for byte, pieces never go up
 * before the writer says their bytes are final, a failed piece hands back the pieces the server
 * acknowledged (for putFile's resume), and a small file is left to putFile.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { S3Store, MiB } from "../../../src/store/s3.ts";
import { RetryStore } from "../../../src/store/retry.ts";
import type { MultipartProgress } from "../../../src/store/store.ts";
import { faultProxy, pseudoRandom, readAll, recordCalls, sha256Hex, useS3Rig } from "./helpers.ts";

setDefaultTimeout(120_000);

const ctx = useS3Rig("zrb-early-");

function store(endpoint = ctx.rig.endpoint): S3Store {
  return new S3Store({ bucket: ctx.bucket, prefix: "zrb/early", region: ctx.rig.region, endpoint, partConcurrency: 4 });
}

/** Write `bytes` to `tmp` in steps of `step`, telling `grew` after each, then rename it to `final`. */
async function grow(tmp: string, final: string, bytes: Uint8Array, step: number, grew: (n: number) => void): Promise<void> {
  writeFileSync(tmp, new Uint8Array(0));
  for (let off = 0; off < bytes.length; off += step) {
    appendFileSync(tmp, bytes.subarray(off, Math.min(bytes.length, off + step)));
    grew(Math.min(bytes.length, off + step));
    await Bun.sleep(5);
  }
  renameSync(tmp, final);
}

describe("early upload of a growing file", () => {
  test("pieces go up while the file grows, only final ones, and the object is the file", async () => {
    const s = store();
    const calls = recordCalls(s.client);
    const bytes = pseudoRandom(29 * MiB + 12345, 7);
    const tmp = join(ctx.dir, "a.tmp");
    const final = join(ctx.dir, "a");
    let created = "";
    const early = s.beginUpload("grow/a", tmp, { maxSize: 40 * MiB, renamedTo: final, onCreated: (id) => void (created = id) });
    // Each UploadPart, when it is sent: how many bytes the file had on disk then.
    let onDisk = 0;
    const sentAt: { part: number; onDisk: number }[] = [];
    s.client.middlewareStack.add(
      ((next: (a: unknown) => Promise<unknown>, ctx: { commandName: string }) => async (args: { input: { PartNumber?: number } }) => {
        if (ctx.commandName === "UploadPartCommand") sentAt.push({ part: args.input.PartNumber!, onDisk });
        return next(args);
      }) as never,
      { step: "initialize", name: "zrbEarlyAt" },
    );
    await grow(tmp, final, bytes, 512 * 1024, (n) => {
      onDisk = n;
      early.grew(n);
    });
    // Pieces 1–3 (8 MiB each) could go while the file grew; the last one only after finish().
    const early3 = sentAt.filter((x) => x.part <= 3);
    expect(early3.length).toBe(3);
    for (const x of early3) expect(x.onDisk).toBeGreaterThan(x.part * 8 * MiB);
    const progress: MultipartProgress[] = [];
    const r = await early.finish({ size: bytes.length, sha256Hex: sha256Hex(bytes), onProgress: (p) => void progress.push(p) });
    expect(r).toBe("done");
    expect(created).not.toBe("");
    expect(progress[0]!.uploadId).toBe(created);
    expect(progress.at(-1)!.parts.map((p) => p.partNumber)).toEqual([1, 2, 3, 4]);
    expect(calls.filter((c) => c.command === "CreateMultipartUploadCommand").length).toBe(1);
    const got = await readAll((await s.getStream("grow/a"))!);
    expect(got.length).toBe(bytes.length);
    expect(sha256Hex(got)).toBe(sha256Hex(bytes));
  });

  test("the writer was faster: the file is already at its final name when the upload hears of it", async () => {
    const s = store();
    const bytes = pseudoRandom(17 * MiB, 13);
    const final = join(ctx.dir, "r");
    writeFileSync(final, bytes);
    const early = s.beginUpload("grow/r", join(ctx.dir, "r.tmp"), { maxSize: 40 * MiB, renamedTo: final });
    early.grew(bytes.length);
    expect(await early.finish({ size: bytes.length, sha256Hex: sha256Hex(bytes) })).toBe("done");
    expect(sha256Hex(await readAll((await s.getStream("grow/r"))!))).toBe(sha256Hex(bytes));
  });

  test("a file that ends small is left to putFile, and nothing is begun", async () => {
    const s = store();
    const calls = recordCalls(s.client);
    const bytes = pseudoRandom(3 * MiB, 9);
    const early = s.beginUpload("grow/small", join(ctx.dir, "s.tmp"), { maxSize: 40 * MiB, renamedTo: join(ctx.dir, "s") });
    await grow(join(ctx.dir, "s.tmp"), join(ctx.dir, "s"), bytes, MiB, (n) => early.grew(n));
    expect(await early.finish({ size: bytes.length, sha256Hex: sha256Hex(bytes) })).toBe("unused");
    expect(calls.length).toBe(0);
  });

  test("a failed piece hands back the acknowledged ones; putFile's resume completes the object", async () => {
    // The second UploadPart request fails (503); the others reach radosgw.
    let seen = 0;
    const proxy = faultProxy({ upstreamPort: Number(new URL(ctx.rig.endpoint).port), failFirst: 1, reply: "HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", match: /^PUT .*partNumber=2/ });
    try {
      const s = store(proxy.endpoint);
      const bytes = pseudoRandom(20 * MiB, 11);
      const tmp = join(ctx.dir, "f.tmp");
      const final = join(ctx.dir, "f");
      const early = s.beginUpload("grow/f", tmp, { maxSize: 40 * MiB, renamedTo: final });
      await grow(tmp, final, bytes, MiB, (n) => early.grew(n));
      const sha = sha256Hex(bytes);
      const r = await early.finish({ size: bytes.length, sha256Hex: sha, onProgress: () => void seen++ });
      expect(proxy.replied).toBe(1);
      expect(typeof r).toBe("object");
      const p = r as MultipartProgress;
      expect(p.parts.map((x) => x.partNumber)).not.toContain(2);
      await new RetryStore(s, { maxAttempts: 3, baseDelayMs: 5 }).putFile("grow/f", final, { size: bytes.length, sha256Hex: sha, resume: p });
      expect(sha256Hex(await readAll((await s.getStream("grow/f"))!))).toBe(sha);
      expect(seen).toBeGreaterThan(0);
    } finally {
      proxy.stop();
    }
  });
});
