/**
 * Error classification (s3-errors.ts) and the retry wrapper's loop (retry.ts). The errors are
 * shaped like the ones the SDK and the network throw (name + $metadata, code); the SDK itself is
 * exercised against radosgw in s3.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { classify, describeError, isTransient } from "../../../src/store/s3-errors.ts";
import { withRetry } from "../../../src/store/retry.ts";
import { StoreError } from "../../../src/store/store.ts";
import { ZrbError } from "../../../src/util/errors.ts";

const sdkErr = (name: string, status: number, message = "UnknownError") => Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
const sysErr = (code: string, message: string) => Object.assign(new Error(message), { code });
const ctx = { op: "put", where: "s3://b/p/k", bucket: "b", endpoint: "http://h:1" };

describe("isTransient", () => {
  test.each([
    [sdkErr("SlowDown", 503), true],
    [sdkErr("InternalError", 500), true],
    [sdkErr("ServiceUnavailable", 503), true],
    [sdkErr("Unknown", 502), true],
    [sdkErr("NotImplemented", 501), false],
    [sdkErr("TooManyRequests", 429), true],
    [sdkErr("RequestTimeout", 408), true],
    [sdkErr("RequestTimeout", 400), true],
    [sdkErr("AccessDenied", 403), false],
    [sdkErr("NoSuchKey", 404), false],
    [sdkErr("NoSuchBucket", 404), false],
    [sdkErr("InvalidArgument", 400), false],
    [sdkErr("EntityTooSmall", 400), false],
    [sysErr("ECONNRESET", "read ECONNRESET"), true],
    [sysErr("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:1"), true],
    [new Error("socket hang up"), true],
    [Object.assign(new Error("the request socket timed out"), { name: "TimeoutError" }), true],
    [Object.assign(new Error("Request aborted"), { name: "AbortError" }), false],
    [new TypeError("x is not a function"), false],
    [new ZrbError("already classified"), false],
    // A wrapper whose message says nothing, around a reset connection (its cause): transient.
    [Object.assign(new Error("fetch failed"), { cause: sysErr("ECONNRESET", "read ECONNRESET") }), true],
    [Object.assign(new Error("wrapped"), { cause: sdkErr("AccessDenied", 403) }), false],
  ] as const)("case %#", (err, want) => {
    expect(isTransient(err)).toBe(want);
  });
});

describe("classify: one kind per error, one line per message", () => {
  test.each([
    [sdkErr("NoSuchKey", 404), "not-found", "object s3://b/p/k does not exist"],
    [sdkErr("NoSuchUpload", 404), "not-found", "object s3://b/p/k does not exist"],
    [sdkErr("NoSuchBucket", 404), "no-bucket", "bucket b does not exist at http://h:1; create it or fix s3.bucket"],
    [sdkErr("AccessDenied", 403), "access-denied", "access denied to bucket b (put s3://b/p/k): check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE)"],
    [sdkErr("RequestTimeTooSkewed", 403), "access-denied", "clock skew: http://h:1 rejected the request time (put s3://b/p/k); sync this host's clock (NTP) and retry"],
    [sdkErr("InvalidObjectState", 403), "archived", "object s3://b/p/k is archived (Glacier/Deep Archive) and not restored; thaw it first (zrb restore --thaw) and wait until it is available"],
    [sdkErr("SlowDown", 503, "slow down"), "transient", "put s3://b/p/k failed: SlowDown (HTTP 503): slow down"],
    [sysErr("ECONNREFUSED", "connect ECONNREFUSED"), "transient", "cannot reach S3 endpoint http://h:1: ECONNREFUSED: connect ECONNREFUSED"],
    [sdkErr("EntityTooSmall", 400, "too small"), "permanent", "put s3://b/p/k failed: EntityTooSmall (HTTP 400): too small"],
    // A 404 under a name the table does not know (a HEAD has no body to name it) is still a missing object.
    [sdkErr("Unknown", 404), "not-found", "object s3://b/p/k does not exist"],
    // Object lock refusing a delete: its own kind (prune keeps the object), not a credentials problem.
    [sdkErr("AccessDenied", 403, "forbidden by object lock"), "locked", "object lock forbids deleting s3://b/p/k yet (AccessDenied (HTTP 403): forbidden by object lock)"],
    [sdkErr("ExpiredToken", 400, "The provided token has expired."), "access-denied", "credentials expired for bucket b (put s3://b/p/k): refresh them (new session token, aws sso login, or the instance role) and retry"],
  ] as const)("case %#", (err, kind, message) => {
    const e = classify(err, ctx);
    expect(e).toBeInstanceOf(StoreError);
    expect(e.exitCode).toBe(6);
    expect(e.kind).toBe(kind);
    expect(e.message).toBe(message);
  });
  test("a transient error re-worded with its attempt count", () => {
    expect(classify(sdkErr("SlowDown", 503, "x"), ctx).afterAttempts(3).message).toBe("put s3://b/p/k failed after 3 attempts: SlowDown (HTTP 503): x");
    expect(classify(sysErr("ECONNRESET", "reset"), ctx).afterAttempts(2).message).toBe("cannot reach S3 endpoint http://h:1: ECONNRESET: reset (after 2 attempts)");
  });
  test("describeError is short and has no newlines", () => {
    expect(describeError(sdkErr("NoSuchKey", 404))).toBe("NoSuchKey (HTTP 404)");
    expect(describeError(sysErr("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:1"))).toBe("ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1");
    expect(describeError(new Error("a\nb"))).toBe("a b");
  });
});

const transient = (message = "slow") => classify(sdkErr("SlowDown", 503, message), ctx);

describe("withRetry", () => {
  test("retries transient errors, then succeeds; reports each retry", async () => {
    let calls = 0;
    const seen: { attempt: number; maxAttempts: number; delayMs: number }[] = [];
    const v = await withRetry(
      "put k",
      async (attempt) => {
        calls++;
        if (attempt < 3) throw transient();
        return "ok";
      },
      { maxAttempts: 5, baseDelayMs: 1, onRetry: (i) => void seen.push(i) },
    );
    expect(v).toBe("ok");
    expect(calls).toBe(3);
    expect(seen.map((s) => [s.attempt, s.maxAttempts])).toEqual([
      [1, 5],
      [2, 5],
    ]);
    expect(seen.every(({ attempt, delayMs }) => delayMs >= 0 && delayMs < 2 ** (attempt - 1) + 1)).toBe(true);
  });

  test("anything but a transient StoreError is rethrown unchanged after one attempt", async () => {
    for (const e of [classify(sdkErr("AccessDenied", 403), ctx), new Error("a bug"), new ZrbError("a usage problem")]) {
      let calls = 0;
      await expect(
        withRetry(
          "put k",
          async () => {
            calls++;
            throw e;
          },
          { maxAttempts: 5, baseDelayMs: 1 },
        ),
      ).rejects.toBe(e);
      expect(calls).toBe(1);
    }
  });

  test("an exhausted budget gives the last error with the attempt count, one line", async () => {
    let calls = 0;
    const err = await withRetry(
      "put k",
      async () => {
        calls++;
        throw transient("Please reduce your request rate.");
      },
      { maxAttempts: 3, baseDelayMs: 1 },
    ).catch((e) => e);
    expect(calls).toBe(3);
    expect(err).toBeInstanceOf(StoreError);
    expect(err.message).toBe("put s3://b/p/k failed after 3 attempts: SlowDown (HTTP 503): Please reduce your request rate.");
  });

  test("backoff delays are capped", async () => {
    const delays: number[] = [];
    await withRetry(
      "x",
      async (a) => {
        if (a < 8) throw transient();
      },
      { maxAttempts: 8, baseDelayMs: 1, maxDelayMs: 4, onRetry: (i) => void delays.push(i.delayMs) },
    );
    expect(delays).toHaveLength(7);
    expect(Math.max(...delays)).toBeLessThan(4);
  });

  test("abort stops the wait at once and throws the abort reason", async () => {
    // A ten-minute backoff: if the abort did not cut the wait short, the test would time out.
    const ac = new AbortController();
    const p = withRetry(
      "x",
      async () => {
        throw transient();
      },
      { maxAttempts: 10, baseDelayMs: 600_000, maxDelayMs: 600_000, signal: ac.signal, onRetry: () => setTimeout(() => ac.abort(), 10) },
    );
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    const ac2 = new AbortController();
    ac2.abort();
    let called = false;
    await expect(withRetry("x", async () => void (called = true), { maxAttempts: 1, signal: ac2.signal })).rejects.toMatchObject({ name: "AbortError" });
    expect(called).toBe(false);
  });
});
