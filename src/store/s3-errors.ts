/**
 * Every error the AWS SDK or the network can throw, classified once into a StoreError: a kind
 * the code tests and one secret-free line for the user. Nothing else looks at SDK error names,
 * HTTP statuses or network error codes.
 */
import { StoreError, type StoreErrorKind } from "./store.ts";
import type { Stall } from "./watchdog.ts";
import { ZrbError } from "../util/errors.ts";
import { formatDuration } from "../util/duration.ts";

const THROTTLING = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "ProvisionedThroughputExceededException",
  "BandwidthLimitExceeded",
  "TransactionInProgressException",
  "RequestTimeout",
  "RequestTimeoutException",
  "InternalError",
  "ServiceUnavailable",
  "TimeoutError",
]);

const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTCONN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

const NETWORK_MESSAGE = /socket hang up|ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|timed? ?out|connection (was )?(closed|reset|refused)|other side closed|network error/i;

export function httpStatusOf(err: unknown): number | undefined {
  const e = err as { $metadata?: { httpStatusCode?: number }; $response?: { statusCode?: number } } | undefined;
  return e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
}

export function errName(err: unknown): string {
  const e = err as { name?: string; Code?: string; code?: string } | undefined;
  return e?.Code ?? e?.name ?? e?.code ?? "";
}

export function isAbortError(err: unknown): boolean {
  return (err as { name?: string } | undefined)?.name === "AbortError";
}

/** Whether a raw SDK/network error is transient: 5xx (not 501/505), 408, 429, throttling, timeouts, dropped or refused connections. */
export function isTransient(err: unknown): boolean {
  if (err == null || typeof err !== "object") return false;
  if (err instanceof ZrbError || isAbortError(err)) return false;
  const e = err as { name?: string; code?: string; message?: string; cause?: unknown; $retryable?: unknown };
  const status = httpStatusOf(err);
  if (status !== undefined) {
    if (status === 501 || status === 505) return false; // Not Implemented / HTTP Version: permanent
    if (status >= 500 || status === 408 || status === 429) return true;
    if (status >= 400) return THROTTLING.has(e.name ?? "") && e.name !== "InternalError";
  }
  if (e.$retryable) return true;
  if (e.name && THROTTLING.has(e.name)) return true;
  if (e.code && NETWORK_CODES.has(e.code)) return true;
  if (typeof e.message === "string" && NETWORK_MESSAGE.test(e.message)) return true;
  if (e.cause && e.cause !== err) return isTransient(e.cause);
  return false;
}

/** A short, secret-free description of an SDK or network error: "SlowDown (HTTP 503): message". */
export function describeError(err: unknown): string {
  if (err == null) return "unknown error";
  if (typeof err !== "object") return String(err);
  const e = err as { name?: string; code?: string; message?: string; Code?: string };
  const status = httpStatusOf(err);
  const name = e.Code ?? (e.name && e.name !== "Error" && e.name !== "Unknown" ? e.name : undefined) ?? e.code;
  const msg = e.message && e.message !== "UnknownError" && e.message !== name ? e.message : "";
  let s = name ?? "";
  if (status !== undefined) s = s ? `${s} (HTTP ${status})` : `HTTP ${status}`;
  if (msg) s = s ? `${s}: ${msg}` : msg;
  return (s || "unknown error").replace(/\s*\n\s*/g, " ");
}

export interface ErrorContext {
  /** What was being done: "put", "get", "upload part 3/5 of", "check access"… */
  op: string;
  /** s3://bucket/prefix/key (or s3://bucket for bucket-level calls). */
  where: string;
  bucket: string;
  /** Endpoint URL for messages (never with credentials: the config refuses them). */
  endpoint: string;
}

/** Classify one SDK/network error into a StoreError with a one-line message. */
export function classify(err: unknown, c: ErrorContext): StoreError {
  if (err instanceof StoreError) return err;
  const name = errName(err);
  const status = httpStatusOf(err);
  const ctx = c.op === "check access" ? "" : ` (${c.op} ${c.where})`;
  const make = (kind: StoreErrorKind, message: string, retry?: (n: number) => string) => new StoreError(kind, message, { cause: err, retry });
  if (name === "NoSuchBucket" || (c.op === "check access" && status === 404))
    return make("no-bucket", `bucket ${c.bucket} does not exist at ${c.endpoint}; create it or fix s3.bucket`);
  if (name === "NoSuchKey" || name === "NotFound" || name === "NoSuchUpload" || status === 404)
    return make("not-found", `object ${c.where} does not exist`);
  if (name === "InvalidObjectState")
    return make("archived", `object ${c.where} is archived (Glacier/Deep Archive) and not restored; thaw it first (zrb restore --thaw) and wait until it is available`);
  if (name === "CredentialsProviderError" || /Could not load credentials/i.test((err as Error)?.message ?? ""))
    return make(
      "access-denied",
      `no AWS credentials found for bucket ${c.bucket}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run with an instance role`,
    );
  if (name === "RequestTimeTooSkewed")
    return make("access-denied", `clock skew: ${c.endpoint} rejected the request time${ctx}; sync this host's clock (NTP) and retry`);
  if (name === "ExpiredToken" || name === "ExpiredTokenException" || name === "TokenRefreshRequired")
    return make("access-denied", `credentials expired for bucket ${c.bucket}${ctx}: refresh them (new session token, aws sso login, or the instance role) and retry`);
  if ((status === 403 || name === "AccessDenied") && /object lock|retention|worm/i.test((err as Error)?.message ?? ""))
    return make("locked", `object lock forbids deleting ${c.where} yet (${describeError(err)})`);
  if (status === 403 || name === "AccessDenied" || name === "InvalidAccessKeyId" || name === "SignatureDoesNotMatch" || name === "InvalidToken")
    return make("access-denied", `access denied to bucket ${c.bucket}${ctx}: check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE)`);
  if (isTransient(err)) {
    if (status === undefined)
      return make("transient", `cannot reach S3 endpoint ${c.endpoint}: ${describeError(err)}`, (n) => `cannot reach S3 endpoint ${c.endpoint}: ${describeError(err)} (after ${n} attempts)`);
    return make(
      "transient",
      `${c.op} ${c.where} failed: ${describeError(err)}`,
      (n) => `${c.op} ${c.where} failed after ${n} attempts: ${describeError(err)}`,
    );
  }
  return make("permanent", `${c.op} ${c.where} failed: ${describeError(err)}`);
}

/** What a stalled request did (or did not do), for a message. */
export function describeStall(s: Stall): string {
  const t = formatDuration(s.timeoutMs);
  if (s.kind === "no-response") return `no response within ${t} of sending the request`;
  if (s.kind === "no-data") return `no byte moved for ${t}`;
  return `only ${s.bytes} bytes moved in ${t}, a trickle under 1 KiB per s3.request_timeout`;
}

/** A request the watchdog aborted: transient (retried); after the budget, a line naming the endpoint and the stall. */
export function stallError(s: Stall, c: ErrorContext): StoreError {
  const what = describeStall(s);
  return new StoreError("transient", `S3 endpoint ${c.endpoint} stalled: ${what} (${c.op} ${c.where})`, {
    retry: (n) =>
      `S3 endpoint ${c.endpoint} stalled: ${what} (${c.op} ${c.where}), ${n} attempts in a row; check the endpoint and the network, or raise s3.request_timeout`,
  });
}

/** An archived object's thaw state from S3's `x-amz-restore` header: in progress, done, or none asked. */
export function parseRestoreHeader(h: string | undefined): "ongoing" | "available" | undefined {
  if (!h) return undefined;
  const m = /ongoing-request\s*=\s*"?(true|false)"?/i.exec(h);
  if (!m) return undefined;
  return m[1]!.toLowerCase() === "true" ? "ongoing" : "available";
}
