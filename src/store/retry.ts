/**
 * The only retry loop: a wrapper around any ObjectStore (restic's retry.New(be) is the model).
 * A call is retried when it fails with a transient StoreError, with exponential backoff and
 * full jitter, until `maxAttempts` tries are spent (s3.retry.max_attempts; the SDK's own retry
 * is off, so the number means what it says). Then the last error is thrown with the attempt
 * count. Two calls get more than a blind repeat:
 *   - putFile is called again with the multipart progress reported so far, so a part that met
 *     a 503 is re-sent without re-sending the parts already stored;
 *   - a getStream whose body breaks off (or ends short) is reopened with a byte range from where
 *     it stopped: the caller sees one stream.
 */
import { StoreError, type EarlyUpload, type EarlyUploadOptions, type ObjectInfo, type ObjectStore, type PutFileOptions, type PutOptions, type RewriteOptions } from "./store.ts";

export interface RetryOptions {
  /** Total attempts, including the first (>= 1). */
  maxAttempts: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** The run's interrupt signal: stops retrying (and sleeping) at once. */
  signal?: AbortSignal;
  /** Called before sleeping for a retry. */
  onRetry?: (info: { what: string; attempt: number; maxAttempts: number; error: string; delayMs: number }) => void;
}

export { abortReason, sleep } from "../util/abort.ts";
import { abortReason, sleep } from "../util/abort.ts";

const transient = (err: unknown): err is StoreError => err instanceof StoreError && err.kind === "transient";

/** Backoff before retry number `attempt` (1-based): random(0, min(maxDelay, base * 2^(attempt-1))). */
export function backoffMs(attempt: number, base = 200, cap = 20_000): number {
  return Math.floor(Math.random() * Math.min(cap, base * 2 ** (attempt - 1)));
}

/**
 * Run `fn` until it succeeds, fails with anything but a transient StoreError (rethrown
 * unchanged), the signal aborts (its reason is thrown), or the budget is spent (the last error,
 * re-worded with the attempt count).
 */
export async function withRetry<T>(what: string, fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const max = Math.max(1, Math.floor(opts.maxAttempts));
  for (let attempt = 1; ; attempt++) {
    if (opts.signal?.aborted) throw abortReason(opts.signal);
    try {
      return await fn(attempt);
    } catch (err) {
      if (opts.signal?.aborted) throw abortReason(opts.signal);
      if (!transient(err)) throw err;
      if (attempt >= max) throw attempt > 1 ? err.afterAttempts(attempt) : err;
      const delayMs = backoffMs(attempt, opts.baseDelayMs, opts.maxDelayMs);
      opts.onRetry?.({ what, attempt, maxAttempts: max, error: err.message, delayMs });
      await sleep(delayMs, opts.signal);
    }
  }
}

export class RetryStore implements ObjectStore {
  readonly location: string;
  constructor(
    readonly inner: ObjectStore,
    private readonly opts: RetryOptions,
  ) {
    this.location = inner.location;
  }
  private retry<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(what, fn, { ...this.opts, signal: signal ?? this.opts.signal });
  }
  urlOf(key: string): string {
    return this.inner.urlOf(key);
  }
  put(key: string, body: Uint8Array | string, opts?: PutOptions): Promise<void> {
    return this.retry(`put ${this.urlOf(key)}`, () => this.inner.put(key, body, opts));
  }
  putFile(key: string, path: string, opts: PutFileOptions): Promise<void> {
    let resume = opts.resume;
    return this.retry(
      `upload ${this.urlOf(key)}`,
      () =>
        this.inner.putFile(key, path, {
          ...opts,
          resume,
          onProgress: (p) => {
            resume = p;
            return opts.onProgress?.(p);
          },
        }),
      opts.signal,
    );
  }
  /** Not retried: an early upload stops at its first failure and its caller continues with putFile. */
  beginUpload(key: string, path: string, opts: EarlyUploadOptions): EarlyUpload | undefined {
    return this.inner.beginUpload?.(key, path, opts);
  }
  rewriteHead(key: string, head: Uint8Array, from: number, opts: RewriteOptions): Promise<{ copied: number }> {
    // Each attempt is a whole new upload: a failed one is aborted by the backend before it throws.
    return this.retry(`rewrite ${this.urlOf(key)}`, () => this.inner.rewriteHead(key, head, from, opts), opts.signal);
  }
  get(key: string, opts?: { maxBytes?: number }): Promise<Uint8Array | null> {
    return this.retry(`get ${this.urlOf(key)}`, () => this.inner.get(key, opts));
  }
  head(key: string): Promise<ObjectInfo | null> {
    return this.retry(`head ${this.urlOf(key)}`, () => this.inner.head(key));
  }
  list(prefix: string): Promise<ObjectInfo[]> {
    return this.retry(`list ${this.urlOf(prefix)}`, () => this.inner.list(prefix));
  }
  delete(key: string): Promise<void> {
    return this.retry(`delete ${this.urlOf(key)}`, () => this.inner.delete(key));
  }
  retain(key: string, until: Date): Promise<void> {
    return this.retry(`retain ${this.urlOf(key)}`, () => this.inner.retain(key, until));
  }
  listUploads(prefix: string): Promise<{ key: string; uploadId: string; initiated?: Date }[]> {
    return this.retry(`list uploads ${this.urlOf(prefix)}`, () => this.inner.listUploads(prefix));
  }
  abortUpload(key: string, uploadId: string): Promise<void> {
    return this.retry(`abort upload ${this.urlOf(key)}`, () => this.inner.abortUpload(key, uploadId));
  }
  thaw(key: string, opts: { days: number; tier: "Bulk" | "Standard" | "Expedited" }): Promise<"requested" | "ongoing" | "available"> {
    return this.retry(`thaw ${this.urlOf(key)}`, () => this.inner.thaw(key, opts));
  }
  checkAccess(): Promise<void> {
    return this.retry(`check access ${this.location}`, () => this.inner.checkAccess());
  }

  async getStream(key: string, range?: { start: number; end?: number }): Promise<ReadableStream<Uint8Array>> {
    const what = `get ${this.urlOf(key)}`;
    const start = range?.start ?? 0;
    let delivered = 0;
    let attempt = 1;
    const open = () => this.inner.getStream(key, { start: start + delivered, ...(range?.end !== undefined ? { end: range.end } : {}) });
    // The first open is retried here, so that not-found and friends surface from getStream itself.
    let reader = (await withRetry(what, (a) => ((attempt = a), this.inner.getStream(key, range)), this.opts)).getReader();
    const max = Math.max(1, Math.floor(this.opts.maxAttempts));
    const signal = this.opts.signal;
    return new ReadableStream<Uint8Array>({
      pull: async (ctl) => {
        for (;;) {
          let err: unknown;
          try {
            const r = await reader.read();
            if (r.done) return ctl.close();
            delivered += r.value.length;
            ctl.enqueue(r.value);
            return;
          } catch (e) {
            err = e;
          }
          // The body broke off: reopen from the first byte not yet delivered, within the budget.
          for (;;) {
            if (signal?.aborted) return ctl.error(abortReason(signal));
            if (!transient(err) || attempt >= max) return ctl.error(transient(err) && attempt > 1 ? err.afterAttempts(attempt) : err);
            const delayMs = backoffMs(attempt, this.opts.baseDelayMs, this.opts.maxDelayMs);
            this.opts.onRetry?.({ what: `${what} from byte ${start + delivered}`, attempt, maxAttempts: max, error: err.message, delayMs });
            try {
              await sleep(delayMs, signal);
            } catch (e) {
              return ctl.error(e);
            }
            attempt++;
            try {
              reader = (await open()).getReader();
              break;
            } catch (e) {
              err = e;
            }
          }
        }
      },
      cancel: (reason) => reader.cancel(reason),
    });
  }
}
