/**
 * One retry budget for every object-store call. The AWS SDK's own retry is switched off
 * (maxAttempts: 1) so that `s3.retry.max_attempts` is the only number that counts, and so
 * that a streamed body is re-opened for each attempt (the SDK cannot rewind a stream).
 */
import { ZrbError, storeError } from "../util/errors.ts";

export interface RetryOptions {
  /** Total attempts, including the first (>= 1). */
  maxAttempts: number;
  /** What is being done, for messages: e.g. "upload part 3 of s3://b/p/key". */
  what: string;
  signal?: AbortSignal;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called before sleeping for a retry (log it at debug level). */
  onRetry?: (attempt: number, err: unknown, delayMs: number) => void;
}

const RETRYABLE_NAMES = new Set([
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

const RETRYABLE_CODES = new Set([
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

const RETRYABLE_MESSAGE = /socket hang up|ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|timed? ?out|connection (was )?(closed|reset|refused)|other side closed|network error/i;

export function httpStatusOf(err: unknown): number | undefined {
  const e = err as { $metadata?: { httpStatusCode?: number }; $response?: { statusCode?: number } } | undefined;
  return e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
}

export function isAbortError(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name;
  return name === "AbortError";
}

/** Whether an error is transient: 5xx (not 501/505), 408, 429, throttling, timeouts, dropped or refused connections. */
export function isRetryable(err: unknown): boolean {
  if (err == null || typeof err !== "object") return false;
  if (err instanceof ZrbError) return false;
  if (isAbortError(err)) return false;
  const e = err as { name?: string; code?: string; message?: string; cause?: unknown; $retryable?: unknown };
  const status = httpStatusOf(err);
  if (status !== undefined) {
    if (status === 501 || status === 505) return false; // Not Implemented / HTTP Version: permanent
    if (status >= 500 || status === 408 || status === 429) return true;
    if (status >= 400) return RETRYABLE_NAMES.has(e.name ?? "") && e.name !== "InternalError";
  }
  if (e.$retryable) return true;
  if (e.name && RETRYABLE_NAMES.has(e.name)) return true;
  if (e.code && RETRYABLE_CODES.has(e.code)) return true;
  if (typeof e.message === "string" && RETRYABLE_MESSAGE.test(e.message)) return true;
  if (e.cause && e.cause !== err) return isRetryable(e.cause);
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

/** The error to throw when `signal` is aborted. */
export function abortReason(signal: AbortSignal): unknown {
  const r = signal.reason;
  if (r instanceof Error) return r;
  return new DOMException("The operation was aborted", "AbortError");
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortReason(signal!));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Run `fn` until it succeeds, a non-retryable error occurs (rethrown unchanged, so the caller
 * can classify it), the signal is aborted (its reason is thrown), or the budget is spent
 * (a ZrbError naming `what`, the attempt count and the last error).
 * Backoff: exponential with full jitter, delay = random(0, min(maxDelay, base * 2^(attempt-1))).
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const max = Math.max(1, Math.floor(opts.maxAttempts));
  const base = opts.baseDelayMs ?? 200;
  const cap = opts.maxDelayMs ?? 20_000;
  for (let attempt = 1; ; attempt++) {
    if (opts.signal?.aborted) throw abortReason(opts.signal);
    try {
      return await fn(attempt);
    } catch (err) {
      if (opts.signal?.aborted) throw abortReason(opts.signal);
      if (!isRetryable(err)) throw err;
      if (attempt >= max) {
        throw storeError(
          `${opts.what} failed after ${attempt} attempt${attempt === 1 ? "" : "s"}: ${describeError(err)}; ` +
            `check the network and the S3 service, or raise s3.retry.max_attempts`,
          err,
        );
      }
      const delay = Math.floor(Math.random() * Math.min(cap, base * 2 ** (attempt - 1)));
      opts.onRetry?.(attempt, err, delay);
      await sleep(delay, opts.signal);
    }
  }
}
