import { describe, expect, test } from "bun:test";
import { describeError, isRetryable, withRetry } from "../../../src/store/retry.ts";
import { ZrbError } from "../../../src/util/errors.ts";

/** An error shaped like the ones the SDK throws (name + $metadata). Not a mock of the SDK. */
const sdkErr = (name: string, status: number, message = "UnknownError") =>
  Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
const sysErr = (code: string, message: string) => Object.assign(new Error(message), { code });

describe("isRetryable", () => {
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
  ] as const)("case %#", (err, want) => {
    expect(isRetryable(err)).toBe(want);
  });
});

describe("withRetry", () => {
  test("retries transient errors, then succeeds; reports each retry", async () => {
    let calls = 0;
    const seen: [number, number][] = [];
    const v = await withRetry(
      async (attempt) => {
        calls++;
        if (attempt < 3) throw sdkErr("SlowDown", 503);
        return "ok";
      },
      { maxAttempts: 5, what: "put k", baseDelayMs: 1, onRetry: (a, _e, d) => void seen.push([a, d]) },
    );
    expect(v).toBe("ok");
    expect(calls).toBe(3);
    expect(seen.map((s) => s[0])).toEqual([1, 2]);
    expect(seen.every(([a, d]) => d >= 0 && d < 2 ** (a - 1) * 1 + 1)).toBe(true);
  });

  test("client errors are rethrown unchanged after one attempt", async () => {
    let calls = 0;
    const e = sdkErr("AccessDenied", 403);
    await expect(
      withRetry(
        async () => {
          calls++;
          throw e;
        },
        { maxAttempts: 5, what: "put k", baseDelayMs: 1 },
      ),
    ).rejects.toBe(e);
    expect(calls).toBe(1);
  });

  test("an exhausted budget gives a one-line ZrbError naming the operation and the last error", async () => {
    let calls = 0;
    const err = await withRetry(
      async () => {
        calls++;
        throw sdkErr("SlowDown", 503, "Please reduce your request rate.");
      },
      { maxAttempts: 3, what: "upload part 2 of s3://b/p/k", baseDelayMs: 1 },
    ).catch((e) => e);
    expect(calls).toBe(3);
    expect(err).toBeInstanceOf(ZrbError);
    expect(err.message).toStartWith("upload part 2 of s3://b/p/k failed after 3 attempts: SlowDown (HTTP 503): Please reduce your request rate.");
    expect(err.message).not.toContain("\n");
  });

  test("backoff delays are capped", async () => {
    const delays: number[] = [];
    await withRetry(
      async (a) => {
        if (a < 8) throw sdkErr("SlowDown", 503);
      },
      { maxAttempts: 8, what: "x", baseDelayMs: 1, maxDelayMs: 4, onRetry: (_a, _e, d) => void delays.push(d) },
    );
    expect(delays).toHaveLength(7);
    expect(Math.max(...delays)).toBeLessThan(4);
  });

  test("abort stops the wait at once and throws the abort reason", async () => {
    const ac = new AbortController();
    // The backoff is an hour: only an abort that cuts the wait short lets this test finish.
    const p = withRetry(
      async () => {
        throw sdkErr("SlowDown", 503);
      },
      { maxAttempts: 10, what: "x", baseDelayMs: 3_600_000, maxDelayMs: 3_600_000, signal: ac.signal, onRetry: () => setTimeout(() => ac.abort(), 10) },
    );
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    const ac2 = new AbortController();
    ac2.abort();
    let called = false;
    await expect(withRetry(async () => void (called = true), { maxAttempts: 1, what: "x", signal: ac2.signal })).rejects.toMatchObject({
      name: "AbortError",
    });
    expect(called).toBe(false);
  }, 30_000);

  test("describeError is short and has no newlines", () => {
    expect(describeError(sdkErr("NoSuchKey", 404))).toBe("NoSuchKey (HTTP 404)");
    expect(describeError(sysErr("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:1"))).toBe("ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1");
    expect(describeError(new Error("a\nb"))).toBe("a b");
  });
});
