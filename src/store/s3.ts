/**
 * S3-compatible object store (AWS S3, MinIO, B2, Wasabi, R2, Garage, Ceph radosgw): one attempt
 * per call, every failure classified into a StoreError (s3-errors.ts). Retrying is the job of
 * the wrapper in retry.ts; large files go through s3-multipart.ts.
 *
 * - Credentials come only from the SDK's default chain (env, ~/.aws, SSO, instance/container roles).
 * - Checksum mode defaults to WHEN_REQUIRED: with the SDK's default trailing checksums,
 *   radosgw answers 411 to streamed bodies.
 * - Every request is abortable by the run's signal (SIGTERM/SIGINT), so a stalled request never
 *   holds up a stop.
 * - Every request is watched (watchdog.ts, through s3-transport.ts): no byte moved, no headers, or
 *   a drip for s3.request_timeout aborts it with a transient StoreError naming the endpoint and
 *   the stall, which the retry wrapper retries. The same layer applies the bandwidth limit.
 */
import {
  S3Client,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  HeadBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  ListMultipartUploadsCommand,
  AbortMultipartUploadCommand,
  RestoreObjectCommand,
  ListObjectVersionsCommand,
  PutObjectRetentionCommand,
  GetObjectLockConfigurationCommand,
  type ObjectLockMode,
  type StorageClass,
  type Tier,
} from "@aws-sdk/client-s3";
import { ARCHIVED_CLASSES, StoreError, type EarlyUpload, type EarlyUploadOptions, type ObjectInfo, type ObjectStore, type PutFileOptions, type PutOptions, type RewriteOptions } from "./store.ts";
import { normalizePrefix, validateKey, validateListPrefix } from "./keys.ts";
import { classify, describeError, isAbortError, parseRestoreHeader, stallError } from "./s3-errors.ts";
import { abortReason } from "../util/abort.ts";
import type { Limiter } from "../util/bandwidth-schedule.ts";
import { MeteredHttpHandler, RequestWatch } from "./s3-transport.ts";
import { putFile, type S3Context } from "./s3-multipart.ts";
import { S3EarlyUpload } from "./s3-growing.ts";
import { rewriteHead } from "./s3-rewrite.ts";
import { ZrbError, storeError } from "../util/errors.ts";
import { now } from "../util/clock.ts";
import { log } from "../util/log.ts";
import { Semaphore } from "../util/semaphore.ts";

export { MiB, SINGLE_PUT_MAX, MIN_PART_SIZE, MAX_PARTS, partSizeFor } from "./s3-multipart.ts";

export interface S3StoreOptions {
  bucket: string;
  prefix: string;
  region: string;
  /** Custom endpoint (MinIO, B2, radosgw…); set ⇒ path-style addressing. */
  endpoint?: string;
  checksumMode?: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
  /** A request that moves no byte, gets no headers, or moves < 1 KiB for this long is stalled (default 60 s; not a total). */
  requestTimeoutMs?: number;
  /** The bandwidth limit shared by every upload and download body. */
  bandwidth?: Limiter;
  /** Multipart parts in flight for the whole store at once, all files together (default 4; open.ts passes s3.concurrency). */
  partConcurrency?: number;
  /** Page size for list/listUploads (default: the server's, 1000). Small values force pagination in tests. */
  listPageSize?: number;
  /** The run's interrupt signal: aborts every request in flight. */
  signal?: AbortSignal;
  /** s3.object_lock: every object written is locked this many days (the bucket must have object lock). */
  objectLock?: { mode: "GOVERNANCE" | "COMPLIANCE"; days: number };
  /** This store's own credentials (stores[].credentials, open.ts); else the AWS default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** A profile of the shared credentials file for this store. */
  profile?: string;
}

// A silent logger: the SDK otherwise prints warnings (e.g. "An error was encountered in a
// non-retryable streaming request.") straight to the console, bypassing zrb's output.
const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export const stripQuotes = (etag: string | undefined) => (etag ?? "").replace(/^"+|"+$/g, "");

export { parseRestoreHeader } from "./s3-errors.ts";

export class S3Store implements ObjectStore {
  readonly location: string;
  /** The underlying SDK client (exposed so tests can add recording middleware). */
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  private readonly endpointDesc: string;
  private readonly partConcurrency: number;
  /** Multipart part uploads in flight for the whole run, whatever the number of files uploading (s3.concurrency). */
  private readonly partSlots: Semaphore;
  private readonly listPageSize?: number;
  private readonly runSignal?: AbortSignal;
  private readonly objectLock?: S3StoreOptions["objectLock"];
  private readonly timeoutMs: number;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw storeError("s3.bucket is empty; set it in the config");
    this.bucket = opts.bucket;
    this.prefix = normalizePrefix(opts.prefix);
    this.partConcurrency = Math.max(1, Math.floor(opts.partConcurrency ?? 4));
    this.partSlots = new Semaphore(this.partConcurrency);
    this.listPageSize = opts.listPageSize;
    this.runSignal = opts.signal;
    this.objectLock = opts.objectLock;
    this.timeoutMs = opts.requestTimeoutMs ?? 60_000;
    this.endpointDesc = opts.endpoint ?? `https://s3.${opts.region}.amazonaws.com`;
    this.location = `s3://${this.bucket}/${this.prefix}` + (opts.endpoint ? ` at ${opts.endpoint}` : "");
    const checksumMode = opts.checksumMode ?? "WHEN_REQUIRED";
    this.client = new S3Client({
      region: opts.region,
      ...(opts.endpoint ? { endpoint: opts.endpoint, forcePathStyle: true } : {}),
      maxAttempts: 1,
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      ...(opts.profile ? { profile: opts.profile } : {}),
      requestChecksumCalculation: checksumMode,
      responseChecksumValidation: checksumMode,
      // The watchdog decides about stalls; the socket timer is only a backstop far behind it
      // (a bandwidth-limited body may leave its socket idle while it waits for tokens).
      requestHandler: new MeteredHttpHandler({ connectionTimeout: 10_000, socketTimeout: Math.max(10 * this.timeoutMs, 600_000) }, opts.bandwidth),
      logger: quietLogger,
    });
  }

  urlOf(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  private full(key: string): string {
    return this.prefix + validateKey(key);
  }

  /** The run's signal and a call's own, as one. */
  private signalOf(signal?: AbortSignal): AbortSignal | undefined {
    if (!signal) return this.runSignal;
    if (!this.runSignal) return signal;
    return AbortSignal.any([signal, this.runSignal]);
  }

  /** One SDK call, abortable by the run's signal; failures classified. */
  private async call<T>(op: string, key: string | undefined, fn: (abortSignal?: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const { value, watch } = await this.watched(op, key, fn, signal);
    watch.end();
    return value;
  }

  /**
   * One SDK call under a stall watch (s3-transport.ts); the watch is handed back still running,
   * for a response body that is read after the call returned. A stall surfaces as a transient
   * StoreError, an interrupt as its own reason, anything else classified.
   */
  private async watched<T>(op: string, key: string | undefined, fn: (abortSignal?: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<{ value: T; watch: RequestWatch }> {
    const outer = this.signalOf(signal);
    if (outer?.aborted) throw abortReason(outer);
    const ctx = { op, where: key !== undefined ? this.urlOf(key) : `s3://${this.bucket}`, bucket: this.bucket, endpoint: this.endpointDesc };
    const watch = new RequestWatch(this.timeoutMs, outer, (stall) => stallError(stall, ctx));
    try {
      return { value: await fn(watch.signal), watch };
    } catch (err) {
      watch.end();
      if (outer?.aborted) throw abortReason(outer);
      if (watch.stalled) throw watch.stalled;
      if (isAbortError(err)) throw err;
      throw classify(err, ctx);
    }
  }

  /** The object-lock parameters of a write: retained `days` from now. */
  private lockParams(): { ObjectLockMode?: ObjectLockMode; ObjectLockRetainUntilDate?: Date } {
    if (!this.objectLock) return {};
    return { ObjectLockMode: this.objectLock.mode, ObjectLockRetainUntilDate: new Date(now().getTime() + this.objectLock.days * 86_400_000) };
  }

  /** What s3-multipart.ts needs of this store. */
  private context(): S3Context {
    return {
      lock: () => this.lockParams(),
      client: this.client,
      bucket: this.bucket,
      partConcurrency: this.partConcurrency,
      partSlots: this.partSlots,
      urlOf: (k) => this.urlOf(k),
      full: (k) => this.full(k),
      call: (op, key, fn, signal) => this.call(op, key, fn, signal),
      head: (k, signal) => this.headRaw(k, signal),
    };
  }

  // ---------------------------------------------------------------- small objects

  async put(key: string, body: Uint8Array | string, opts?: PutOptions): Promise<void> {
    const Key = this.full(key);
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const shaHex = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    await this.call("put", key, (abortSignal) =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          StorageClass: opts?.storageClass as StorageClass | undefined,
          Metadata: { "zrb-sha256": shaHex },
          ChecksumSHA256: Buffer.from(shaHex, "hex").toString("base64"),
          ...(opts?.transient ? {} : this.lockParams()),
        }),
        { abortSignal },
      ),
    );
  }

  async get(key: string, opts?: { maxBytes?: number }): Promise<Uint8Array | null> {
    const Key = this.full(key);
    try {
      return await this.call("get", key, async (abortSignal) => {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }), { abortSignal });
        if (!r.Body) return new Uint8Array(0);
        const size = r.ContentLength ?? 0;
        if (opts?.maxBytes !== undefined && size > opts.maxBytes) {
          (r.Body as { destroy?: () => void }).destroy?.();
          throw new StoreError("too-large", `object ${this.urlOf(key)} is ${size} bytes, more than the ${opts.maxBytes} expected`, { size });
        }
        return await r.Body.transformToByteArray();
      });
    } catch (err) {
      if (err instanceof StoreError && err.kind === "not-found") return null;
      throw err;
    }
  }

  async getStream(key: string, range?: { start: number; end?: number }): Promise<ReadableStream<Uint8Array>> {
    const Key = this.full(key);
    let Range: string | undefined;
    if (range) {
      if (!Number.isSafeInteger(range.start) || range.start < 0 || (range.end !== undefined && (!Number.isSafeInteger(range.end) || range.end < range.start)))
        throw storeError(`invalid byte range ${range.start}-${range.end ?? ""} for ${this.urlOf(key)}`);
      Range = `bytes=${range.start}-${range.end ?? ""}`;
    }
    let r, watch;
    try {
      ({ value: r, watch } = await this.watched("get", key, (abortSignal) => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range }), { abortSignal })));
    } catch (err) {
      const c = (err as { cause?: unknown }).cause;
      if (err instanceof StoreError && err.kind === "permanent" && (c as { name?: string })?.name === "InvalidRange")
        throw new StoreError("permanent", `byte range ${Range} is outside object ${this.urlOf(key)}`, { cause: c });
      throw err;
    }
    if (!r.Body) {
      watch.end();
      return new ReadableStream({ start: (c) => c.close() });
    }
    return checkedBody(r.Body.transformToWebStream() as ReadableStream<Uint8Array>, r.ContentLength, this.urlOf(key), watch);
  }

  private async headRaw(key: string, signal?: AbortSignal) {
    const Key = this.full(key);
    try {
      return await this.call("head", key, (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }), signal);
    } catch (err) {
      if (err instanceof StoreError && err.kind === "not-found") return null;
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const r = await this.headRaw(key);
    if (!r) return null;
    const info: ObjectInfo = { key, size: r.ContentLength ?? 0, storageClass: r.StorageClass ?? "STANDARD" };
    if (r.ETag) info.etag = stripQuotes(r.ETag);
    if (r.LastModified) info.lastModified = r.LastModified;
    const restore = parseRestoreHeader(r.Restore);
    if (restore) info.restore = restore;
    if (r.ObjectLockRetainUntilDate) info.lockedUntil = r.ObjectLockRetainUntilDate;
    return info;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validateListPrefix(prefix);
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const r = await this.call("list", prefix, (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token, MaxKeys: this.listPageSize }),
          { abortSignal },
        ),
      );
      for (const o of r.Contents ?? []) {
        if (!o.Key || !o.Key.startsWith(this.prefix)) continue;
        const info: ObjectInfo = { key: o.Key.slice(this.prefix.length), size: o.Size ?? 0 };
        if (o.StorageClass) info.storageClass = o.StorageClass;
        if (o.ETag) info.etag = stripQuotes(o.ETag);
        if (o.LastModified) info.lastModified = o.LastModified;
        out.push(info);
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
      if (r.IsTruncated && !token) throw storeError(`list ${this.urlOf(prefix)}: the server said the listing is truncated but gave no continuation token`);
    } while (token);
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out;
  }

  async delete(key: string): Promise<void> {
    const Key = this.full(key);
    if (!this.objectLock) {
      await this.call("delete", key, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }));
      return;
    }
    // A bucket with object lock keeps versions: a plain delete only adds a delete marker and the
    // data stays. Delete every version of exactly this key (a locked one refuses: "locked") —
    // every page of them: a version left behind would become the object again.
    const versions: string[] = [];
    const markers: string[] = [];
    let KeyMarker: string | undefined;
    let VersionIdMarker: string | undefined;
    for (;;) {
      const page = await this.call("list versions", key, (abortSignal) =>
        this.client.send(new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: Key, KeyMarker, VersionIdMarker, MaxKeys: this.listPageSize }), { abortSignal }),
      );
      for (const v of page.Versions ?? []) if (v.Key === Key && v.VersionId) versions.push(v.VersionId);
      for (const v of page.DeleteMarkers ?? []) if (v.Key === Key && v.VersionId) markers.push(v.VersionId);
      if (!page.IsTruncated) break;
      if (!page.NextKeyMarker) throw storeError(`list versions of ${this.urlOf(key)}: the server said the listing is truncated but gave no marker to go on from`);
      KeyMarker = page.NextKeyMarker;
      VersionIdMarker = page.NextVersionIdMarker;
    }
    // Oldest first (the listing is newest first), delete markers last: a version still locked
    // stops the loop with every newer one there, so the object stays what it was — never an
    // older version of it become current again.
    for (const VersionId of [...versions.reverse(), ...markers]) {
      try {
        await this.call("delete", key, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key, VersionId }), { abortSignal }));
      } catch (err) {
        if (!(err instanceof StoreError && err.kind === "locked")) throw err;
        const until = (
          await this.call("head", key, (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key, VersionId }), { abortSignal })).catch(() => null)
        )?.ObjectLockRetainUntilDate;
        throw new StoreError("locked", `${this.urlOf(key)} is locked${until ? ` until ${until.toISOString()}` : ""} (object lock); it can be deleted after that`, { cause: err.cause });
      }
    }
  }

  async retain(key: string, until: Date): Promise<void> {
    if (!this.objectLock) return;
    const Key = this.full(key);
    const h = await this.headRaw(key);
    if (!h) throw new StoreError("not-found", `cannot lock ${this.urlOf(key)}: the object does not exist`);
    if (h.ObjectLockRetainUntilDate && h.ObjectLockRetainUntilDate.getTime() >= until.getTime()) return;
    await this.call("retain", key, (abortSignal) =>
      this.client.send(
        new PutObjectRetentionCommand({ Bucket: this.bucket, Key, VersionId: h.VersionId, Retention: { Mode: this.objectLock!.mode, RetainUntilDate: until } }),
        { abortSignal },
      ),
    );
  }

  async listUploads(prefix: string): Promise<{ key: string; uploadId: string; initiated?: Date }[]> {
    validateListPrefix(prefix);
    const out: { key: string; uploadId: string; initiated?: Date }[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const r = await this.call("list uploads", prefix, (abortSignal) =>
        this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: idMarker,
            MaxUploads: this.listPageSize,
          }),
          { abortSignal },
        ),
      );
      for (const u of r.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Key.startsWith(this.prefix)) continue;
        const e: { key: string; uploadId: string; initiated?: Date } = { key: u.Key.slice(this.prefix.length), uploadId: u.UploadId };
        if (u.Initiated) e.initiated = u.Initiated;
        out.push(e);
      }
      if (!r.IsTruncated) break;
      if (r.NextKeyMarker === keyMarker && r.NextUploadIdMarker === idMarker)
        throw storeError(`list uploads ${this.urlOf(prefix)}: the server's pagination did not advance`);
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.uploadId < b.uploadId ? -1 : 1));
    return out;
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    const Key = this.full(key);
    try {
      await this.call("abort upload", key, (abortSignal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: uploadId }), { abortSignal }),
      );
    } catch (err) {
      if (err instanceof StoreError && err.kind === "not-found") return; // already gone: aborting is idempotent
      throw err;
    }
  }

  async thaw(key: string, opts: { days: number; tier: "Bulk" | "Standard" | "Expedited" }): Promise<"requested" | "ongoing" | "available"> {
    const Key = this.full(key);
    const r0 = await this.headRaw(key);
    if (!r0) throw new StoreError("not-found", `cannot thaw ${this.urlOf(key)}: the object does not exist`);
    const restore = parseRestoreHeader(r0.Restore);
    if (restore) return restore;
    // S3 Intelligent-Tiering archive tiers: restored without Days (the object moves back to a frequent tier).
    const intelligent = !!r0.ArchiveStatus;
    if (!intelligent && !ARCHIVED_CLASSES.has(r0.StorageClass ?? "STANDARD")) return "available";
    try {
      const r = await this.call("restore", key, (abortSignal) =>
        this.client.send(
          new RestoreObjectCommand({
            Bucket: this.bucket,
            Key,
            RestoreRequest: intelligent ? {} : { Days: opts.days, GlacierJobParameters: { Tier: opts.tier as Tier } },
          }),
          { abortSignal },
        ),
      );
      // 202 Accepted: a new restore; 200 OK: already restored (the copy's expiry was extended).
      return r.$metadata.httpStatusCode === 200 ? "available" : "requested";
    } catch (err) {
      const c = (err as { cause?: { name?: string; $metadata?: { httpStatusCode?: number } } }).cause;
      if (c?.name === "RestoreAlreadyInProgress") return "ongoing";
      // Servers where archive classes are only labels (radosgw without cloud tiering, MinIO…) do
      // not implement RestoreObject; their "archived" objects are readable as they are.
      if (c?.name === "NotImplemented" || c?.$metadata?.httpStatusCode === 501) return "available";
      throw err;
    }
  }

  async checkAccess(): Promise<void> {
    await this.call("check access", undefined, (abortSignal) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }));
    if (this.objectLock) {
      const r = await this.call("check object lock", undefined, (abortSignal) =>
        this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket }), { abortSignal }),
      ).catch((err) => {
        if (err instanceof StoreError && (err.kind === "not-found" || err.kind === "permanent")) return null;
        throw err;
      });
      if (r?.ObjectLockConfiguration?.ObjectLockEnabled !== "Enabled")
        throw new StoreError(
          "permanent",
          `bucket ${this.bucket} does not have object lock enabled, but s3.object_lock is set; create a bucket with object lock (it cannot be turned on later on most providers) or remove s3.object_lock`,
        );
    }
    const Key = this.prefix + `.zrb-access-check-${crypto.randomUUID()}`;
    try {
      await this.call("check access", undefined, (abortSignal) =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: new Uint8Array(0), ContentLength: 0 }), { abortSignal }),
      );
      try {
        await this.call("check access", undefined, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }));
      } catch (err) {
        if (!(err instanceof StoreError && (err.kind === "access-denied" || err.kind === "locked"))) throw err;
        // A NAS role without s3:DeleteObject (zrb iam-policy --role nas): writing is what it needs.
        log.warn(`the credentials can write under s3://${this.bucket}/${this.prefix} but not delete (fine for a NAS whose prune runs elsewhere); the probe ${Key} stays`);
      }
    } catch (err) {
      if (err instanceof StoreError && err.kind === "access-denied")
        throw new StoreError(
          "access-denied",
          `access denied writing to s3://${this.bucket}/${this.prefix}: the credentials can read the bucket but not write/delete under the prefix; grant s3:PutObject and s3:DeleteObject`,
          { cause: err.cause },
        );
      throw err;
    }
  }

  // ---------------------------------------------------------------- large files

  rewriteHead(key: string, head: Uint8Array, from: number, opts: RewriteOptions): Promise<{ copied: number }> {
    return rewriteHead(this.context(), key, head, from, opts);
  }

  putFile(key: string, path: string, opts: PutFileOptions): Promise<void> {
    return putFile(this.context(), key, path, { ...opts, signal: this.signalOf(opts.signal) });
  }

  beginUpload(key: string, path: string, opts: EarlyUploadOptions): EarlyUpload {
    return new S3EarlyUpload(this.context(), key, path, { ...opts, signal: this.signalOf(opts.signal) });
  }
}

/**
 * A response body that errors with a transient StoreError when the connection breaks off, the
 * body ends before Content-Length, or the request's watchdog finds it stalled: the retry wrapper
 * resumes it with a range from there. The watchdog counts only while a read waits on the network.
 */
function checkedBody(body: ReadableStream<Uint8Array>, length: number | undefined, url: string, watch: RequestWatch): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let got = 0;
  watch.watchdog.pause();
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      let r;
      watch.watchdog.resume();
      try {
        r = await reader.read();
      } catch (err) {
        watch.end();
        if (watch.stalled) return ctl.error(watch.stalled);
        if (isAbortError(err) || err instanceof ZrbError) return ctl.error(err);
        return ctl.error(new StoreError("transient", `reading ${url} broke off after ${got} bytes: ${describeError(err)}`, { cause: err }));
      } finally {
        watch.watchdog.pause();
      }
      if (r.done) {
        watch.end();
        if (length !== undefined && got < length)
          return ctl.error(new StoreError("transient", `reading ${url} ended after ${got} of ${length} bytes`));
        return ctl.close();
      }
      got += r.value.length;
      ctl.enqueue(r.value);
    },
    cancel(reason) {
      watch.end();
      return reader.cancel(reason);
    },
  });
}
