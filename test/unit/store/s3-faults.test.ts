/**
 * S3Store behind the retry wrapper, as zrb uses it, through fault-injecting TCP proxies in front
 * of the rig's radosgw (no SDK mocks): 503s, cut and stalled connections, a reader that stops,
 * ListParts failing on resume, a conditional rewrite refused, the retry budget.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { S3Store, MiB } from "../../../src/store/s3.ts";
import { MIN_REWRITE_HEAD, StoreError } from "../../../src/store/store.ts";
import { openStore } from "../../../src/store/open.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import type { S3Rig } from "../../helpers/rig.ts";
import { faultProxy, pseudoRandom, readAll, recordCalls, s3ErrorReply, sha256Hex, s3Kit } from "./helpers.ts";
import { forward, startFaultProxy } from "../../helpers/faultproxy.ts";
import { TokenBucket } from "../../../src/util/token-bucket.ts";

setDefaultTimeout(60_000);

// Credentials reach the store only through the standard chain: here, the environment.
const { ctx, store, retrying, writeFile, interrupted, uploadedParts } = s3Kit("zrb-s3faults-");
let rig: S3Rig;
let bucket: string;
beforeAll(() => void ({ rig, bucket } = ctx));

describe("retry through a fault-injecting proxy", () => {
  const port = () => Number(new URL(rig.endpoint).port);

  test("503 SlowDown is retried with backoff, then succeeds", async () => {
    const proxy = faultProxy({ upstreamPort: port(), failFirst: 2, reply: s3ErrorReply("503 Slow Down", "SlowDown", "Please reduce your request rate.") });
    try {
      const retries: { attempt: number; error: string; delayMs: number }[] = [];
      const s = retrying(store({ endpoint: proxy.endpoint }), 4, (i) => void retries.push(i));
      await s.put("retry/a", "through the proxy");
      expect(proxy.replied).toBe(2);
      expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
      expect(retries[0]!.error).toContain("SlowDown");
      expect(retries[0]!.error).toContain("503");
      expect(new TextDecoder().decode((await s.get("retry/a"))!)).toBe("through the proxy");
    } finally {
      proxy.stop();
    }
  });

  test("a multipart part that meets 503s is re-sent from the file and the object is intact", async () => {
    const data = pseudoRandom(9 * MiB, 23);
    const p = await writeFile("retry-mp.bin", data);
    // The first 2 UploadPart requests meet 503s; the parts are re-read from the file and re-sent.
    const proxy = faultProxy({
      upstreamPort: port(),
      failFirst: 2,
      match: /^PUT .*partNumber=/,
      reply: s3ErrorReply("503 Slow Down", "SlowDown", "slow down"),
    });
    try {
      const retried: string[] = [];
      const inner = store({ endpoint: proxy.endpoint, partConcurrency: 1 });
      const calls = recordCalls(inner.client);
      const s2 = retrying(inner, 5, (i) => void retried.push(i.what));
      await s2.putFile("retry/mp", p, { size: data.length, sha256Hex: sha256Hex(data) });
      expect(proxy.replied).toBe(2);
      expect(retried.length).toBe(2);
      expect(retried.every((w) => w === `upload s3://${bucket}/zrb/test/retry/mp`)).toBe(true);
      // One upload id throughout; only the parts that met a 503 were sent again.
      expect(calls.filter((c) => c.command === "CreateMultipartUploadCommand")).toHaveLength(1);
      expect(calls.filter((c) => c.command === "UploadPartCommand").map((c) => c.input.PartNumber)).toEqual([1, 1, 1, 2]);
    } finally {
      proxy.stop();
    }
    expect(sha256Hex((await store().get("retry/mp"))!)).toBe(sha256Hex(data));
  });

  test("the retry budget is one number: exhausted 503s give one line naming the operation and key", async () => {
    const proxy = faultProxy({ upstreamPort: port(), failFirst: 100, reply: s3ErrorReply("503 Slow Down", "SlowDown", "slow down") });
    try {
      const s = retrying(store({ endpoint: proxy.endpoint }), 3);
      const err = await s.put("retry/b", "x").then(
        () => null,
        (e) => e,
      );
      expect(err).toBeInstanceOf(ZrbError);
      expect(err.message).toBe(`put s3://${bucket}/zrb/test/retry/b failed after 3 attempts: SlowDown (HTTP 503): slow down`);
      expect(proxy.replied).toBe(3); // the SDK did not retry on its own
    } finally {
      proxy.stop();
    }
  });

  test("a GET body that starts to drip is aborted after request_timeout and resumed by range: every byte, once", async () => {
    const data = pseudoRandom(3 * MiB, 31);
    await store().put("stall/drip", data);
    let gets = 0;
    const proxy = startFaultProxy({ upstreamPort: port(), decide: (r) => (r.method === "GET" && ++gets === 1 ? { kind: "dripResponse", intervalMs: 100 } : forward) });
    try {
      const retries: { what: string; error: string }[] = [];
      const s = retrying(store({ endpoint: proxy.endpoint, requestTimeoutMs: 1000 }), 3, (i) => void retries.push(i));
      const got = await readAll(await s.getStream("stall/drip"));
      expect(sha256Hex(got)).toBe(sha256Hex(data));
      expect(retries.length).toBe(1);
      expect(retries[0]!.error).toContain(`S3 endpoint ${proxy.endpoint} stalled: only `);
      expect(retries[0]!.error).toContain("a trickle under 1 KiB per s3.request_timeout");
      // the second GET asked for the rest only: from the bytes the drip had delivered
      const delivered = proxy.log[0]!.delivered!;
      expect(delivered).toBeGreaterThan(0);
      expect(retries[0]!.what).toBe(`get s3://${bucket}/zrb/test/stall/drip from byte ${delivered}`);
      expect(proxy.log[1]!.headers.range).toBe(`bytes=${delivered}-`);
    } finally {
      proxy.stop();
    }
  });

  test("a request nobody answers ends after each attempt's request_timeout with the endpoint and the stall", async () => {
    const proxy = startFaultProxy({ upstreamPort: port(), decide: () => ({ kind: "stall" }) });
    try {
      const s = retrying(store({ endpoint: proxy.endpoint, requestTimeoutMs: 1000 }), 2);
      const err = await s.list("stall/").then(
        () => null,
        (e) => e,
      );
      expect(err).toBeInstanceOf(ZrbError);
      expect(err.exitCode).toBe(6);
      expect(err.message).toBe(
        `S3 endpoint ${proxy.endpoint} stalled: no response within 1s of sending the request (list s3://${bucket}/zrb/test/stall/), 2 attempts in a row; check the endpoint and the network, or raise s3.request_timeout`,
      );
      expect(proxy.log.length).toBe(2);
    } finally {
      proxy.stop();
    }
  });

  test("waiting for the bandwidth limit is not a stall: 64 KiB pieces 2 s apart with a 1 s request_timeout", async () => {
    const data = pseudoRandom(192 * 1024, 32);
    const p = await writeFile("slow.bin", data);
    const s = retrying(store({ requestTimeoutMs: 1000, bandwidth: new TokenBucket(32 * 1024, 1024) }), 1);
    await s.putFile("stall/limited", p, { size: data.length, sha256Hex: sha256Hex(data) });
    expect(sha256Hex((await store().get("stall/limited"))!)).toBe(sha256Hex(data));
  });

  test("a ranged GET whose body is cut off is resumed within its range: exactly the bytes asked for", async () => {
    const data = pseudoRandom(MiB, 41);
    await store().put("cut/ranged", data);
    let gets = 0;
    const proxy = startFaultProxy({ upstreamPort: port(), decide: (r) => (r.method === "GET" && ++gets === 1 ? { kind: "cutResponse", afterBytes: 100_000 } : forward) });
    try {
      const retries: string[] = [];
      const s = retrying(store({ endpoint: proxy.endpoint }), 3, (i) => void retries.push(i.what));
      const got = await readAll(await s.getStream("cut/ranged", { start: 1000, end: 499_999 }));
      expect(got.length).toBe(499_000);
      expect(sha256Hex(got)).toBe(sha256Hex(data.subarray(1000, 500_000)));
      expect(retries).toEqual([`get s3://${bucket}/zrb/test/cut/ranged from byte 101000`]);
      expect(proxy.log[1]!.headers.range).toBe("bytes=101000-499999");
    } finally {
      proxy.stop();
    }
  });

  test("a body that breaks off on every attempt fails after the budget: one GET per attempt", async () => {
    const data = pseudoRandom(200_000, 43);
    await store().put("cut/always", data);
    const proxy = startFaultProxy({ upstreamPort: port(), decide: (r) => (r.method === "GET" ? { kind: "cutResponse", afterBytes: 1000 } : forward) });
    try {
      const s = retrying(store({ endpoint: proxy.endpoint }), 3);
      const err = await readAll(await s.getStream("cut/always")).then(
        () => null,
        (e) => e,
      );
      expect(err).toBeInstanceOf(StoreError);
      expect(err.kind).toBe("transient");
      expect(err.message).toEndWith("(after 3 attempts)");
      expect(proxy.log.filter((r) => r.method === "GET").length).toBe(3);
    } finally {
      proxy.stop();
    }
  });

  test("a reader that pauses longer than request_timeout is no stall: one GET, no retry, every byte", async () => {
    const data = pseudoRandom(4 * MiB, 47);
    await store().put("stall/slowreader", data);
    const inner = store({ requestTimeoutMs: 500 });
    const calls = recordCalls(inner.client);
    const retries: string[] = [];
    const s = retrying(inner, 3, (i) => void retries.push(i.error));
    const reader = (await s.getStream("stall/slowreader")).getReader();
    const chunks: Uint8Array[] = [];
    const first = await reader.read();
    chunks.push(first.value!);
    await Bun.sleep(1500); // the consumer is busy (a slow disk, zfs receive): nobody reads
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
    expect(sha256Hex(await readAll(new Blob(chunks).stream()))).toBe(sha256Hex(data));
    expect(retries).toEqual([]);
    expect(calls.filter((c) => c.command === "GetObjectCommand").length).toBe(1);
  });

  test("a resume whose ListParts meets a 503 is retried, not started afresh: only the missing part is sent", async () => {
    const data = pseudoRandom(17 * MiB, 77);
    const sha = sha256Hex(data);
    const p = await writeFile("retry-listparts.bin", data);
    const persisted = await interrupted("retry/listparts", p, data, 2);
    const proxy = faultProxy({ upstreamPort: port(), failFirst: 1, match: /^GET .*uploadId=/, reply: s3ErrorReply("503 Slow Down", "SlowDown", "slow down") });
    try {
      const inner = store({ endpoint: proxy.endpoint });
      const calls = recordCalls(inner.client);
      await retrying(inner, 3).putFile("retry/listparts", p, { size: data.length, sha256Hex: sha, resume: persisted });
      expect(proxy.replied).toBe(1);
      expect(calls.filter((c) => c.command === "CreateMultipartUploadCommand")).toHaveLength(0);
      expect(uploadedParts(calls)).toEqual([3]);
    } finally {
      proxy.stop();
    }
    expect(sha256Hex((await store().get("retry/listparts"))!)).toBe(sha);
  });

  test("rewriteHead: a copy the server refuses leaves the object as it was and no upload behind", async () => {
    const size = 6 * MiB;
    const old = pseudoRandom(size, 61);
    await store().put("rw/refused", old);
    const etag = (await store().head("rw/refused"))!.etag;
    // The UploadPartCopy of the body (part 2) is refused; the new head (part 1) went up already.
    const proxy = faultProxy({ upstreamPort: port(), failFirst: 1, match: /^PUT .*partNumber=2/, reply: s3ErrorReply("400 Bad Request", "InvalidRequest", "refused") });
    try {
      const s = store({ endpoint: proxy.endpoint });
      const err = await s.rewriteHead("rw/refused", pseudoRandom(MIN_REWRITE_HEAD, 63), MIN_REWRITE_HEAD, { size, etag }).then(
        () => null,
        (e) => e,
      );
      expect(proxy.replied).toBe(1);
      expect(err).toBeInstanceOf(StoreError);
      expect(err.kind).toBe("permanent");
    } finally {
      proxy.stop();
    }
    expect(sha256Hex((await store().get("rw/refused"))!)).toBe(sha256Hex(old));
    expect(await store().listUploads("rw/")).toEqual([]);
  });

  test("openStore: the retry budget is s3.retry.max_attempts", async () => {
    const proxy = faultProxy({ upstreamPort: port(), failFirst: 2, reply: s3ErrorReply("503 Slow Down", "SlowDown", "slow down") });
    try {
      const st = openStore(
        { s3: { enabled: true, bucket, prefix: "zrb/test", region: rig.region, endpoint: proxy.endpoint, retry: { maxAttempts: 3 } }, localStoreDir: "" },
        { retryBaseDelayMs: 5 },
      );
      await st.put("retry/budget", "third time");
      expect(proxy.replied).toBe(2);
      expect(new TextDecoder().decode((await store().get("retry/budget"))!)).toBe("third time");
    } finally {
      proxy.stop();
    }
  });

  test("openStore: the run's signal ends a request in flight at once (not after request_timeout)", async () => {
    const proxy = startFaultProxy({ upstreamPort: port(), decide: () => ({ kind: "stall" }) });
    try {
      const ac = new AbortController();
      const st = openStore(
        { s3: { enabled: true, bucket, prefix: "zrb/test", region: rig.region, endpoint: proxy.endpoint, retry: { maxAttempts: 3 }, requestTimeout: 30_000 }, localStoreDir: "" },
        { signal: ac.signal },
      );
      const stop = new ZrbError("interrupted by SIGTERM", ExitCode.SIGTERM);
      setTimeout(() => ac.abort(stop), 200);
      const t0 = performance.now();
      await expect(st.put("stall/interrupted", "x")).rejects.toBe(stop);
      expect(performance.now() - t0).toBeLessThan(5_000);
    } finally {
      proxy.stop();
    }
  });

  test("403 is not retried", async () => {
    const proxy = faultProxy({ upstreamPort: port(), failFirst: 100, reply: s3ErrorReply("403 Forbidden", "AccessDenied", "Access Denied") });
    try {
      const s = retrying(store({ endpoint: proxy.endpoint }), 5);
      await expect(s.put("retry/c", "x")).rejects.toThrow(`access denied to bucket ${bucket} (put s3://${bucket}/zrb/test/retry/c)`);
      expect(proxy.replied).toBe(1);
    } finally {
      proxy.stop();
    }
  });
});
