/**
 * The fault proxy (test/helpers/faultproxy.ts) itself, in front of the real radosgw: a test
 * that counts faults must not get unplanned ones. A plain forward delivers every byte of big
 * responses, a throwing decide() fails its owner, cut faults are logged as faults only when
 * they withheld something, and a drip drips.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { emptyAndDeleteBucket, makeBucket, s3Client, s3Rig, type S3Rig } from "../helpers/rig.ts";
import { faultsHit, forward, startFaultProxy, type FaultProxy } from "../helpers/faultproxy.ts";
import { pseudoRandom, sha256Hex } from "./store/helpers.ts";

const MiB = 1024 * 1024;
let s3: S3Rig;
let direct: S3Client;
let bucket: string;
const big: { key: string; sha: string; size: number }[] = [];

beforeAll(async () => {
  s3 = await s3Rig();
  direct = await s3Client(s3);
  bucket = await makeBucket(s3);
  for (let i = 0; i < 3; i++) {
    const body = pseudoRandom(20 * MiB, 1000 + i);
    const key = `big-${i}`;
    await direct.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    big.push({ key, sha: sha256Hex(body), size: body.length });
  }
}, 120_000);

afterAll(async () => {
  direct?.destroy();
  if (bucket) await emptyAndDeleteBucket(s3, bucket);
}, 60_000);

/** A proxy and a client through it whose own retries are off: one call, one request. */
function proxied(decide?: Parameters<typeof startFaultProxy>[0]["decide"]): { proxy: FaultProxy; client: Promise<S3Client> } {
  const proxy = startFaultProxy({ upstreamPort: Number(new URL(s3.endpoint).port), decide });
  const client = Promise.resolve(
    new S3Client({
      endpoint: proxy.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      forcePathStyle: true,
      maxAttempts: 1,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    }),
  );
  return { proxy, client };
}

/** "ok" or "failed": how a call ended, for calls a fault is meant to break. */
function outcome(p: Promise<unknown>): Promise<"ok" | "failed"> {
  return p.then(
    () => "ok",
    () => "failed",
  );
}

/** GET through the client; the body's SHA-256 and length, or the error that ended it. */
async function fetchBody(c: S3Client, key: string, range?: string): Promise<{ sha: string; size: number; error?: string }> {
  const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
  const h = new Bun.CryptoHasher("sha256");
  let size = 0;
  try {
    for await (const b of r.Body!.transformToWebStream() as unknown as AsyncIterable<Uint8Array>) {
      h.update(b);
      size += b.length;
    }
  } catch (err) {
    return { sha: h.digest("hex"), size, error: String(err) };
  }
  return { sha: h.digest("hex"), size };
}

describe("fault proxy", () => {
  test("plain forwarding: six concurrent 20 MiB GETs (twice each object) return every byte", async () => {
    const { proxy, client } = proxied();
    const c = await client;
    try {
      const got = await Promise.all([...big, ...big].map((o) => fetchBody(c, o.key)));
      expect(got).toEqual([...big, ...big].map((o) => ({ sha: o.sha, size: o.size })));
      expect(proxy.log.map((r) => [r.method, r.action, r.fault])).toEqual(Array(6).fill(["GET", "forward", false]));
      expect(faultsHit(proxy.log)).toEqual([]);
    } finally {
      c.destroy();
      proxy.stop();
    }
  }, 120_000);

  test("a decide() that throws resets that request and fails its owner (check and stop throw)", async () => {
    let n = 0;
    const { proxy, client } = proxied(() => {
      if (++n === 1) throw new Error("planted bug in a fault schedule");
      return forward;
    });
    const c = await client;
    try {
      const first = await outcome(c.send(new GetObjectCommand({ Bucket: bucket, Key: "big-0", Range: "bytes=0-9" })));
      expect(first).toBe("failed");
      expect(proxy.log[0]!.action).toBe("error");
      expect(proxy.errors.length).toBe(1);
      expect(() => proxy.check()).toThrow("planted bug in a fault schedule");
      // Later requests are still served.
      expect((await fetchBody(c, "big-0", "bytes=0-9")).size).toBe(10);
    } finally {
      c.destroy();
      expect(() => proxy.stop()).toThrow("decide() threw on request 1 (GET /");
    }
  }, 60_000);

  test("cutResponse delivers exactly N body bytes, logs the request's headers (Range) and the fault", async () => {
    const { proxy, client } = proxied((r) => (r.n === 1 ? { kind: "cutResponse", afterBytes: 300_000 } : r.n === 2 ? { kind: "cutResponse", afterBytes: 50 } : forward));
    const c = await client;
    try {
      const cut = await fetchBody(c, "big-1", "bytes=1000-");
      expect(cut.size).toBe(300_000);
      expect(cut.error).toBeDefined();
      expect(proxy.log[0]).toMatchObject({ action: "cutResponse", fault: true, delivered: 300_000 });
      expect(proxy.log[0]!.headers.range).toBe("bytes=1000-");
      // A body shorter than the budget is delivered whole: no fault.
      const small = await fetchBody(c, "big-1", "bytes=0-9");
      expect(small).toEqual({ sha: sha256Hex(pseudoRandom(20 * MiB, 1001).subarray(0, 10)), size: 10 });
      expect(proxy.log[1]).toMatchObject({ action: "cutResponse", fault: false, delivered: 10 });
    } finally {
      c.destroy();
      proxy.stop();
    }
  }, 60_000);

  test("dropResponse: the server did the work, the client got no answer", async () => {
    const { proxy, client } = proxied((r) => (r.method === "PUT" ? { kind: "dropResponse" } : forward));
    const c = await client;
    try {
      const put = await outcome(c.send(new PutObjectCommand({ Bucket: bucket, Key: "dropped", Body: "stored anyway" })));
      expect(put).toBe("failed");
      expect(proxy.log[0]).toMatchObject({ action: "dropResponse", fault: true });
      const got = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: "dropped" }));
      expect(await got.Body!.transformToString()).toBe("stored anyway");
    } finally {
      c.destroy();
      proxy.stop();
    }
  }, 60_000);

  test("dripResponse: the head at once, then the body a byte per tick, and the connection kept open", async () => {
    const { proxy, client } = proxied((r) => (r.n === 1 ? { kind: "dripResponse", intervalMs: 20 } : forward));
    const c = await client;
    try {
      const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: "big-2", Range: "bytes=0-99" }));
      expect(r.ContentLength).toBe(100);
      const reader = (r.Body!.transformToWebStream() as ReadableStream<Uint8Array>).getReader();
      const pieces: number[] = [];
      for (let got = 0; got < 5; ) {
        const { value } = await reader.read();
        pieces.push(value!.length);
        got += value!.length;
      }
      expect(pieces.every((n) => n === 1)).toBe(true); // one byte at a time, each in its own read
      await reader.cancel();
      expect(proxy.log[0]).toMatchObject({ action: "dripResponse", fault: true });
      expect(proxy.log[0]!.delivered).toBeGreaterThanOrEqual(5);
    } finally {
      c.destroy();
      proxy.stop();
    }
  }, 60_000);

  test("cut of a request body: a fault only when the body is longer than the budget", async () => {
    const { proxy, client } = proxied((r) => (r.method === "PUT" ? { kind: "cut", afterBytes: 1000 } : forward));
    const c = await client;
    try {
      await c.send(new PutObjectCommand({ Bucket: bucket, Key: "short", Body: "x".repeat(999) }));
      const long = await outcome(c.send(new PutObjectCommand({ Bucket: bucket, Key: "long", Body: "y".repeat(100_000) })));
      expect(long).toBe("failed");
      expect(proxy.log.map((r) => [r.path.split("/").pop()!.split("?")[0], r.fault])).toEqual([
        ["short", false],
        ["long", true],
      ]);
      expect((await fetchBody(direct, "short")).size).toBe(999);
      // The cut request was never stored.
      expect(await outcome(direct.send(new GetObjectCommand({ Bucket: bucket, Key: "long" })))).toBe("failed");
    } finally {
      c.destroy();
      proxy.stop();
    }
  }, 60_000);
});
