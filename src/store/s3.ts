/**
 * S3-compatible object store (AWS S3, MinIO, B2, Wasabi, R2, Garage, Ceph radosgw).
 *
 * - Credentials come only from the SDK's default chain (env, ~/.aws, SSO, instance/container roles).
 * - The SDK's own retry is off (maxAttempts 1); every call goes through withRetry so that
 *   `s3.retry.max_attempts` is the whole budget and streamed bodies are re-opened per attempt.
 * - Large files are uploaded multipart, each part streamed from its byte range of the file
 *   (a node fs ReadStream with start/end and an explicit ContentLength: the only body type
 *   that streams through the SDK's node http handler under Bun; web ReadableStreams and
 *   Blobs are rejected by it). Progress (upload id, part ETags) is reported after every part
 *   so that a killed run can resume; resume trusts only parts the server lists with the
 *   recorded ETag and the expected size.
 * - Checksum mode defaults to WHEN_REQUIRED: with the SDK's default trailing checksums,
 *   radosgw answers 411 to streamed bodies.
 */
import { createReadStream, type ReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import {
  S3Client,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  HeadBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
  RestoreObjectCommand,
  type StorageClass,
  type Tier,
} from "@aws-sdk/client-s3";
import { TooLargeError, type MultipartProgress, type ObjectInfo, type ObjectStore, type PutFileOptions } from "./store.ts";
import { normalizePrefix, validateKey, validateListPrefix } from "./keys.ts";
import { abortReason, describeError, httpStatusOf, isAbortError, isRetryable, withRetry } from "./retry.ts";
import { ZrbError, integrityError, storeError } from "../util/errors.ts";

export const MiB = 1024 * 1024;
/** Files up to this size go in one PutObject; larger ones multipart. */
export const SINGLE_PUT_MAX = 8 * MiB;
/** Smallest part zrb uses (S3's minimum is 5 MiB). */
export const MIN_PART_SIZE = 8 * MiB;
export const MAX_PARTS = 10_000;
/** S3's hard minimum part size (all parts but the last). */
const S3_MIN_PART = 5 * MiB;

/** Part size for a file of `size` bytes: at least 8 MiB, whole MiB, never more than 10,000 parts. */
export function partSizeFor(size: number): number {
  const perPart = Math.ceil(size / MAX_PARTS);
  return Math.max(MIN_PART_SIZE, Math.ceil(perPart / MiB) * MiB);
}

export interface S3StoreOptions {
  bucket: string;
  prefix: string;
  region: string;
  /** Custom endpoint (MinIO, B2, radosgw…); set ⇒ path-style addressing. */
  endpoint?: string;
  /** Total attempts per request (s3.retry.max_attempts). */
  maxAttempts: number;
  checksumMode?: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
  /** Socket inactivity timeout per request (default 120 s). Not a total: big parts may take long. */
  requestTimeoutMs?: number;
  /** Parts uploaded concurrently by putFile (default 4). */
  partConcurrency?: number;
  /** Page size for list/listUploads (default: the server's, 1000). Small values force pagination in tests. */
  listPageSize?: number;
  /** Called before each retry sleep; log it at debug level. */
  onRetry?: (info: { what: string; attempt: number; error: string; delayMs: number }) => void;
  /** Backoff base for retries (default 200 ms). */
  retryBaseDelayMs?: number;
  /** The run's interrupt signal: aborts every request in flight and every retry sleep. */
  signal?: AbortSignal;
}

const ARCHIVED_CLASSES = new Set(["GLACIER", "DEEP_ARCHIVE"]);

// A silent logger: the SDK otherwise prints warnings (e.g. "An error was encountered in a
// non-retryable streaming request.") straight to the console, bypassing zrb's output.
const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

const stripQuotes = (etag: string | undefined) => (etag ?? "").replace(/^"+|"+$/g, "");

function errName(err: unknown): string {
  const e = err as { name?: string; Code?: string; code?: string } | undefined;
  return e?.Code ?? e?.name ?? e?.code ?? "";
}

export function parseRestoreHeader(h: string | undefined): "ongoing" | "available" | undefined {
  if (!h) return undefined;
  const m = /ongoing-request\s*=\s*"?(true|false)"?/i.exec(h);
  if (!m) return undefined;
  return m[1]!.toLowerCase() === "true" ? "ongoing" : "available";
}

export class S3Store implements ObjectStore {
  readonly location: string;
  /** The underlying SDK client (exposed so tests can add recording middleware). */
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  private readonly endpointDesc: string;
  private readonly maxAttempts: number;
  private readonly partConcurrency: number;
  private readonly listPageSize?: number;
  private readonly checksumMode: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
  private readonly onRetryCb?: S3StoreOptions["onRetry"];
  private readonly retryBaseDelayMs?: number;
  private readonly runSignal?: AbortSignal;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw storeError("s3.bucket is empty; set it in the config");
    this.bucket = opts.bucket;
    this.prefix = normalizePrefix(opts.prefix);
    this.maxAttempts = Math.max(1, Math.floor(opts.maxAttempts || 1));
    this.partConcurrency = Math.max(1, Math.floor(opts.partConcurrency ?? 4));
    this.listPageSize = opts.listPageSize;
    this.checksumMode = opts.checksumMode ?? "WHEN_REQUIRED";
    this.onRetryCb = opts.onRetry;
    this.retryBaseDelayMs = opts.retryBaseDelayMs;
    this.runSignal = opts.signal;
    this.endpointDesc = opts.endpoint ?? `https://s3.${opts.region}.amazonaws.com`;
    this.location = `s3://${this.bucket}/${this.prefix}` + (opts.endpoint ? ` at ${opts.endpoint}` : "");
    this.client = new S3Client({
      region: opts.region,
      ...(opts.endpoint ? { endpoint: opts.endpoint, forcePathStyle: true } : {}),
      maxAttempts: 1,
      requestChecksumCalculation: this.checksumMode,
      responseChecksumValidation: this.checksumMode,
      requestHandler: {
        connectionTimeout: 10_000,
        socketTimeout: opts.requestTimeoutMs ?? 120_000,
      },
      logger: quietLogger,
    });
  }

  // ---------------------------------------------------------------- helpers

  private full(key: string): string {
    return this.prefix + validateKey(key);
  }

  /** The run's signal and a call's own, as one. */
  private signalOf(signal?: AbortSignal): AbortSignal | undefined {
    if (!signal) return this.runSignal;
    if (!this.runSignal) return signal;
    return AbortSignal.any([signal, this.runSignal]);
  }

  /** client.send, always abortable by the run's signal (typed as the SDK's own send). */
  private readonly send = ((cmd: Parameters<S3Client["send"]>[0], opts?: { abortSignal?: AbortSignal }) =>
    this.client.send(cmd, { abortSignal: this.signalOf(opts?.abortSignal) })) as S3Client["send"];

  urlOf(key: string): string {
    return this.url(key);
  }

  private url(key?: string): string {
    return `s3://${this.bucket}/${this.prefix}${key ?? ""}`;
  }

  /** Map an SDK/network error to a one-line ZrbError (never containing credentials). */
  private mapError(err: unknown, op: string, key?: string, attempts = 1): Error {
    if (err instanceof ZrbError || err instanceof TooLargeError) return err;
    if (isAbortError(err)) return err as Error;
    const name = errName(err);
    const status = httpStatusOf(err);
    const where = key !== undefined ? this.url(key) : `s3://${this.bucket}`;
    const ctx = op === "check access" ? "" : ` (${op} ${where})`;
    if (name === "NoSuchBucket" || (op === "check access" && status === 404)) {
      return storeError(`bucket ${this.bucket} does not exist at ${this.endpointDesc}; create it or fix s3.bucket`, err);
    }
    if (name === "CredentialsProviderError" || /Could not load credentials/i.test((err as Error)?.message ?? "")) {
      return storeError(
        `no AWS credentials found for bucket ${this.bucket}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run with an instance role`,
        err,
      );
    }
    if (name === "RequestTimeTooSkewed") {
      return storeError(
        `clock skew: ${this.endpointDesc} rejected the request time${ctx}; sync this host's clock (NTP) and retry`,
        err,
      );
    }
    if (name === "ExpiredToken" || name === "ExpiredTokenException" || name === "TokenRefreshRequired") {
      return storeError(
        `credentials expired for bucket ${this.bucket}${ctx}: refresh them (new session token, aws sso login, or the instance role) and retry`,
        err,
      );
    }
    if (
      status === 403 ||
      name === "AccessDenied" ||
      name === "InvalidAccessKeyId" ||
      name === "SignatureDoesNotMatch" ||
      name === "InvalidToken"
    ) {
      return storeError(
        `access denied to bucket ${this.bucket}${ctx}: check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE)`,
        err,
      );
    }
    if (status === undefined && isRetryable(err)) {
      const n = attempts > 1 ? ` (after ${attempts} attempts)` : "";
      return storeError(`cannot reach S3 endpoint ${this.endpointDesc}: ${describeError(err)}${n}`, err);
    }
    const n = attempts > 1 ? ` after ${attempts} attempts` : "";
    return storeError(`${op} ${where} failed${n}: ${describeError(err)}`, err);
  }

  /** Run one SDK call with the retry budget; map the final error. */
  private async call<T>(
    op: string,
    key: string | undefined,
    fn: (attempt: number) => Promise<T>,
    signal?: AbortSignal,
    maxAttempts = this.maxAttempts,
  ): Promise<T> {
    signal = this.signalOf(signal);
    let attempts = 0;
    try {
      return await withRetry(
        (a) => {
          attempts = a;
          return fn(a);
        },
        {
          maxAttempts,
          what: `${op} ${key !== undefined ? this.url(key) : `s3://${this.bucket}`}`,
          signal,
          baseDelayMs: this.retryBaseDelayMs,
          onRetry: (attempt, err, delayMs) =>
            this.onRetryCb?.({ what: `${op} ${key !== undefined ? this.url(key) : ""}`.trim(), attempt, error: describeError(err), delayMs }),
        },
      );
    } catch (err) {
      if (signal?.aborted) throw err;
      // withRetry wraps an exhausted retryable error in a ZrbError; classify the cause instead.
      const cause = err instanceof ZrbError && err.cause !== undefined && !(err.cause instanceof ZrbError) ? err.cause : err;
      throw this.mapError(cause, op, key, attempts);
    }
  }

  private archivedError(key: string, cause: unknown): Error {
    return storeError(
      `object ${this.url(key)} is archived (Glacier/Deep Archive) and not restored; thaw it first (zrb restore --thaw) and wait until it is available`,
      cause,
    );
  }

  // ---------------------------------------------------------------- small objects

  async put(key: string, body: Uint8Array | string, opts?: { storageClass?: string }): Promise<void> {
    const Key = this.full(key);
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const sha = new Bun.CryptoHasher("sha256").update(bytes);
    const shaHex = sha.digest("hex");
    await this.call("put", key, () =>
      this.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          StorageClass: opts?.storageClass as StorageClass | undefined,
          Metadata: { "zrb-sha256": shaHex },
          ChecksumSHA256: Buffer.from(shaHex, "hex").toString("base64"),
        }),
      ),
    );
  }

  async get(key: string, opts?: { maxBytes?: number }): Promise<Uint8Array | null> {
    const Key = this.full(key);
    try {
      return await this.call("get", key, async () => {
        const r = await this.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
        if (!r.Body) return new Uint8Array(0);
        if (opts?.maxBytes !== undefined && (r.ContentLength ?? 0) > opts.maxBytes) {
          (r.Body as { destroy?: () => void }).destroy?.();
          throw new TooLargeError(key, r.ContentLength ?? 0);
        }
        return await r.Body.transformToByteArray();
      });
    } catch (err) {
      if (err instanceof TooLargeError) throw err;
      const c = (err as { cause?: unknown }).cause ?? err;
      if (errName(c) === "NoSuchKey" || (httpStatusOf(c) === 404 && errName(c) !== "NoSuchBucket")) return null;
      if (errName(c) === "InvalidObjectState") throw this.archivedError(key, c);
      throw err;
    }
  }

  async getStream(key: string, range?: { start: number; end?: number }): Promise<ReadableStream<Uint8Array>> {
    const Key = this.full(key);
    let Range: string | undefined;
    if (range) {
      if (!Number.isSafeInteger(range.start) || range.start < 0 || (range.end !== undefined && (!Number.isSafeInteger(range.end) || range.end < range.start))) {
        throw storeError(`invalid byte range ${range.start}-${range.end ?? ""} for ${this.url(key)}`);
      }
      Range = `bytes=${range.start}-${range.end ?? ""}`;
    }
    try {
      const r = await this.call("get", key, () => this.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range })));
      if (!r.Body) return new ReadableStream({ start: (c) => c.close() });
      return r.Body.transformToWebStream() as ReadableStream<Uint8Array>;
    } catch (err) {
      const c = (err as { cause?: unknown }).cause ?? err;
      if (errName(c) === "NoSuchKey") throw storeError(`object ${this.url(key)} does not exist`, c);
      if (errName(c) === "InvalidRange") throw storeError(`byte range ${Range} is outside object ${this.url(key)}`, c);
      if (errName(c) === "InvalidObjectState") throw this.archivedError(key, c);
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const Key = this.full(key);
    try {
      const r = await this.call("head", key, () => this.send(new HeadObjectCommand({ Bucket: this.bucket, Key })));
      const info: ObjectInfo = {
        key,
        size: r.ContentLength ?? 0,
        storageClass: r.StorageClass ?? "STANDARD",
      };
      if (r.ETag) info.etag = stripQuotes(r.ETag);
      if (r.LastModified) info.lastModified = r.LastModified;
      const restore = parseRestoreHeader(r.Restore);
      if (restore) info.restore = restore;
      return info;
    } catch (err) {
      const c = (err as { cause?: unknown }).cause ?? err;
      if (errName(c) === "NoSuchKey" || errName(c) === "NotFound") return null;
      throw err;
    }
  }

  /** The zrb-sha256 metadata stored with an object (hex), or undefined. */
  async storedSha256(key: string): Promise<string | undefined> {
    const Key = this.full(key);
    const r = await this.call("head", key, () => this.send(new HeadObjectCommand({ Bucket: this.bucket, Key })));
    return r.Metadata?.["zrb-sha256"];
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validateListPrefix(prefix);
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const r = await this.call("list", prefix, () =>
        this.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
            MaxKeys: this.listPageSize,
          }),
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
      if (r.IsTruncated && !token) throw storeError(`list ${this.url(prefix)}: the server said the listing is truncated but gave no continuation token`);
    } while (token);
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out;
  }

  async delete(key: string): Promise<void> {
    const Key = this.full(key);
    await this.call("delete", key, () => this.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })));
  }

  async listUploads(prefix: string): Promise<{ key: string; uploadId: string; initiated?: Date }[]> {
    validateListPrefix(prefix);
    const out: { key: string; uploadId: string; initiated?: Date }[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const r = await this.call("list uploads", prefix, () =>
        this.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: idMarker,
            MaxUploads: this.listPageSize,
          }),
        ),
      );
      for (const u of r.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Key.startsWith(this.prefix)) continue;
        const e: { key: string; uploadId: string; initiated?: Date } = { key: u.Key.slice(this.prefix.length), uploadId: u.UploadId };
        if (u.Initiated) e.initiated = u.Initiated;
        out.push(e);
      }
      if (!r.IsTruncated) break;
      if (r.NextKeyMarker === keyMarker && r.NextUploadIdMarker === idMarker) {
        throw storeError(`list uploads ${this.url(prefix)}: the server's pagination did not advance`);
      }
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.uploadId < b.uploadId ? -1 : 1));
    return out;
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    const Key = this.full(key);
    try {
      await this.call("abort upload", key, () =>
        this.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: uploadId })),
      );
    } catch (err) {
      const c = (err as { cause?: unknown }).cause ?? err;
      if (errName(c) === "NoSuchUpload") return; // already gone: aborting is idempotent
      throw err;
    }
  }

  async thaw(key: string, opts: { days: number; tier: "Bulk" | "Standard" | "Expedited" }): Promise<"requested" | "ongoing" | "available"> {
    const Key = this.full(key);
    let r0;
    try {
      r0 = await this.call("head", key, () => this.send(new HeadObjectCommand({ Bucket: this.bucket, Key })));
    } catch (err) {
      const c = (err as { cause?: unknown }).cause ?? err;
      if (errName(c) === "NotFound" || errName(c) === "NoSuchKey") throw storeError(`cannot thaw ${this.url(key)}: the object does not exist`, c);
      throw err;
    }
    const restore = parseRestoreHeader(r0.Restore);
    if (restore) return restore;
    // S3 Intelligent-Tiering archive tiers: restored without Days (the object moves back to a frequent tier).
    const intelligent = !!r0.ArchiveStatus;
    if (!intelligent && !ARCHIVED_CLASSES.has(r0.StorageClass ?? "STANDARD")) return "available";
    try {
      const r = await this.call("restore", key, () =>
        this.send(
          new RestoreObjectCommand({
            Bucket: this.bucket,
            Key,
            RestoreRequest: intelligent ? {} : { Days: opts.days, GlacierJobParameters: { Tier: opts.tier as Tier } },
          }),
        ),
      );
      // 202 Accepted: a new restore; 200 OK: already restored (the copy's expiry was extended).
      return r.$metadata.httpStatusCode === 200 ? "available" : "requested";
    } catch (err) {
      const c = (err as { cause?: unknown }).cause ?? err;
      if (errName(c) === "RestoreAlreadyInProgress") return "ongoing";
      // Servers where archive classes are only labels (radosgw without cloud tiering, MinIO…) do
      // not implement RestoreObject; their "archived" objects are readable as they are.
      if (errName(c) === "NotImplemented" || httpStatusOf(c) === 501) return "available";
      throw err;
    }
  }

  async checkAccess(): Promise<void> {
    await this.call("check access", undefined, () => this.send(new HeadBucketCommand({ Bucket: this.bucket })));
    const probe = `.zrb-access-check-${crypto.randomUUID()}`;
    const Key = this.prefix + probe;
    try {
      await this.call("check access", undefined, () =>
        this.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: new Uint8Array(0), ContentLength: 0 })),
      );
      await this.call("check access", undefined, () => this.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })));
    } catch (err) {
      const c = (err as { cause?: unknown }).cause ?? err;
      if (httpStatusOf(c) === 403 || errName(c) === "AccessDenied") {
        throw storeError(
          `access denied writing to s3://${this.bucket}/${this.prefix}: the credentials can read the bucket but not write/delete under the prefix; grant s3:PutObject and s3:DeleteObject`,
          c,
        );
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- large files

  async putFile(key: string, path: string, opts: PutFileOptions): Promise<void> {
    const Key = this.full(key);
    const signal = opts.signal;
    if (signal?.aborted) throw abortReason(signal);
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      throw storeError(`cannot upload ${path} to ${this.url(key)}: ${describeError(err)}`, err);
    }
    if (st.size !== opts.size) {
      throw integrityError(`cannot upload ${path} to ${this.url(key)}: the file is ${st.size} bytes but ${opts.size} were expected`);
    }
    if (!/^[0-9a-f]{64}$/i.test(opts.sha256Hex)) {
      throw storeError(`cannot upload ${path} to ${this.url(key)}: sha256 ${JSON.stringify(opts.sha256Hex)} is not 64 hex digits`);
    }
    const shaHex = opts.sha256Hex.toLowerCase();
    const size = opts.size;

    if (size <= SINGLE_PUT_MAX) {
      await this.call(
        "put",
        key,
        () =>
          this.send(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key,
              Body: size === 0 ? new Uint8Array(0) : createReadStream(path, { start: 0, end: size - 1 }),
              ContentLength: size,
              StorageClass: opts.storageClass as StorageClass | undefined,
              Metadata: { "zrb-sha256": shaHex },
              ChecksumSHA256: Buffer.from(shaHex, "hex").toString("base64"),
            }),
            { abortSignal: signal },
          ),
        signal,
      );
      opts.onBytes?.(size);
      return;
    }
    await this.putMultipart(key, Key, path, size, shaHex, opts);
  }

  private async listAllParts(key: string, Key: string, uploadId: string, signal?: AbortSignal): Promise<Map<number, { etag: string; size: number }>> {
    const parts = new Map<number, { etag: string; size: number }>();
    let marker: string | undefined;
    for (;;) {
      const r = await this.call(
        "list parts",
        key,
        () => this.send(new ListPartsCommand({ Bucket: this.bucket, Key, UploadId: uploadId, PartNumberMarker: marker }), { abortSignal: signal }),
        signal,
        // radosgw answers an unknown upload id with 500: do not spend the whole budget on it.
        Math.min(this.maxAttempts, 3),
      );
      for (const p of r.Parts ?? []) {
        if (p.PartNumber !== undefined) parts.set(p.PartNumber, { etag: stripQuotes(p.ETag), size: p.Size ?? -1 });
      }
      if (!r.IsTruncated) break;
      const next = r.NextPartNumberMarker;
      if (next === undefined || next === marker) break;
      marker = next;
    }
    return parts;
  }

  private async putMultipart(key: string, Key: string, path: string, size: number, shaHex: string, opts: PutFileOptions): Promise<void> {
    const signal = opts.signal;
    let partSize = partSizeFor(size);
    let progress: MultipartProgress | undefined;

    // --- resume: trust only parts the server lists with the recorded ETag and the expected size
    const r = opts.resume;
    if (r) {
      const rCount = r.partSize > 0 ? Math.ceil(size / r.partSize) : Infinity;
      const usable = Number.isSafeInteger(r.partSize) && r.partSize >= S3_MIN_PART && rCount <= MAX_PARTS && !!r.uploadId;
      if (usable) {
        let server: Map<number, { etag: string; size: number }> | null = null;
        try {
          server = await this.listAllParts(key, Key, r.uploadId, signal);
        } catch (err) {
          if (isAbortError(err) || signal?.aborted) throw err;
          const c = (err as { cause?: unknown }).cause ?? err;
          const name = errName(c);
          const status = httpStatusOf(c);
          // Unknown upload id: AWS says NoSuchUpload; radosgw says NoSuchKey (404) or 500.
          if (!(name === "NoSuchUpload" || name === "NoSuchKey" || status === 404 || status === 500)) throw err;
          // The upload may be gone because a killed run completed it before recording that:
          // then the object is here with this file's size and SHA-256 and nothing is left to do.
          const meta = await this.headMeta(key, Key, signal);
          if (meta && meta.size === size && meta.sha === shaHex) {
            opts.onBytes?.(size);
            return;
          }
          // Starting over: drop the old upload if it still exists somewhere (best effort).
          await this.abortUpload(key, r.uploadId).catch(() => {});
        }
        if (server) {
          const expected = (n: number) => Math.min(r.partSize, size - (n - 1) * r.partSize);
          const trusted = r.parts
            .filter((p) => p.partNumber >= 1 && p.partNumber <= rCount)
            .filter((p) => {
              const s = server!.get(p.partNumber);
              return !!s && s.etag === stripQuotes(p.etag) && s.size === expected(p.partNumber);
            })
            .map((p) => ({ partNumber: p.partNumber, etag: stripQuotes(p.etag) }));
          partSize = r.partSize;
          progress = { uploadId: r.uploadId, partSize, parts: dedupeSort(trusted) };
        }
      } else {
        // A progress record we cannot continue (bad part size): drop the old upload (best effort), start over.
        await this.abortUpload(key, r.uploadId).catch(() => {});
      }
    }

    if (!progress) {
      const created = await this.call(
        "create multipart upload",
        key,
        () =>
          this.send(
            new CreateMultipartUploadCommand({
              Bucket: this.bucket,
              Key,
              StorageClass: opts.storageClass as StorageClass | undefined,
              Metadata: { "zrb-sha256": shaHex },
            }),
            { abortSignal: signal },
          ),
        signal,
      );
      if (!created.UploadId) throw storeError(`create multipart upload ${this.url(key)}: the server returned no upload id`);
      progress = { uploadId: created.UploadId, partSize, parts: [] };
      await opts.onProgress?.(snapshot(progress));
    }

    const state = progress;
    const uploadId = state.uploadId;
    const count = Math.ceil(size / partSize);
    const done = new Set(state.parts.map((p) => p.partNumber));
    const todo: number[] = [];
    for (let n = 1; n <= count; n++) if (!done.has(n)) todo.push(n);
    const partLen = (n: number) => Math.min(partSize, size - (n - 1) * partSize);

    // Bytes sent so far = finished parts + what the in-flight parts' file streams have read.
    // (Polled: a 'data' listener would switch the stream to flowing mode and lose bytes.)
    let bytesDone = state.parts.reduce((a, p) => a + partLen(p.partNumber), 0);
    const inflight = new Map<number, ReadStream>();
    const reportBytes = () => {
      if (!opts.onBytes) return;
      let s = bytesDone;
      for (const b of inflight.values()) s += b.bytesRead;
      opts.onBytes(s);
    };
    if (bytesDone > 0) reportBytes();
    const ticker = opts.onBytes ? setInterval(reportBytes, 500) : undefined;
    ticker?.unref?.();

    // onProgress calls are serialised so that a later state is never overwritten by an earlier one.
    let progressChain: Promise<void> = Promise.resolve();
    const pushProgress = () => {
      const snap = snapshot(state);
      progressChain = progressChain.then(() => opts.onProgress?.(snap));
      return progressChain;
    };

    // Stop scheduling on the first failure; in-flight parts finish so their progress is recorded.
    let firstError: unknown;
    let next = 0;
    const worker = async () => {
      while (firstError === undefined && next < todo.length) {
        if (signal?.aborted) throw abortReason(signal);
        const n = todo[next++]!;
        const start = (n - 1) * partSize;
        const len = partLen(n);
        try {
          const res = await this.call(
            `upload part ${n}/${count} of`,
            key,
            async () => {
              // A fresh stream of the part's byte range for every attempt (the SDK cannot rewind one).
              const body = createReadStream(path, { start, end: start + len - 1 });
              inflight.set(n, body);
              try {
                return await this.send(
                  new UploadPartCommand({ Bucket: this.bucket, Key, UploadId: uploadId, PartNumber: n, Body: body, ContentLength: len }),
                  { abortSignal: signal },
                );
              } finally {
                body.destroy(); // close the file at once when the request failed or was aborted
              }
            },
            signal,
          );
          inflight.delete(n);
          if (!res.ETag) throw storeError(`upload part ${n} of ${this.url(key)}: the server returned no ETag`);
          state.parts = dedupeSort([...state.parts, { partNumber: n, etag: stripQuotes(res.ETag) }]);
          bytesDone += len;
          reportBytes();
          await pushProgress();
        } catch (err) {
          inflight.delete(n);
          if (firstError === undefined) firstError = err;
          throw err;
        }
      }
    };
    const results = await Promise.allSettled(Array.from({ length: Math.min(this.partConcurrency, todo.length) }, () => worker()));
    if (ticker) clearInterval(ticker);
    await progressChain.catch(() => {});
    if (signal?.aborted) throw abortReason(signal);
    if (firstError !== undefined) throw firstError;
    for (const res of results) if (res.status === "rejected") throw res.reason;

    // --- complete (parts in order), then confirm with HEAD (radosgw returns an empty ETag)
    const parts = dedupeSort(state.parts);
    if (parts.length !== count || parts.some((p, i) => p.partNumber !== i + 1)) {
      throw storeError(`upload ${this.url(key)}: internal error, ${parts.length} of ${count} parts recorded`);
    }
    try {
      await this.call(
        "complete multipart upload",
        key,
        () =>
          this.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: `"${p.etag}"` })) },
            }),
            { abortSignal: signal },
          ),
        signal,
      );
    } catch (err) {
      // A retried Complete whose first attempt succeeded (reply lost) finds the upload gone:
      // accept it if the object is there with our size and hash.
      const c = (err as { cause?: unknown }).cause ?? err;
      const name = errName(c);
      if (name !== "NoSuchUpload" && name !== "NoSuchKey") throw err;
      const meta = await this.headMeta(key, Key, signal);
      if (!meta || meta.size !== size || meta.sha !== shaHex) throw err;
    }
    const meta = await this.headMeta(key, Key, signal);
    if (!meta) throw storeError(`upload ${this.url(key)}: the object is missing after CompleteMultipartUpload`);
    if (meta.size !== size) {
      throw integrityError(`upload ${this.url(key)}: the stored object is ${meta.size} bytes, expected ${size}`);
    }
  }

  private async headMeta(key: string, Key: string, signal?: AbortSignal): Promise<{ size: number; sha?: string } | null> {
    try {
      const r = await this.call("head", key, () => this.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal: signal }), signal);
      return { size: r.ContentLength ?? -1, sha: r.Metadata?.["zrb-sha256"] };
    } catch (err) {
      const c = (err as { cause?: unknown }).cause ?? err;
      if (errName(c) === "NotFound" || errName(c) === "NoSuchKey") return null;
      throw err;
    }
  }
}

function dedupeSort(parts: { partNumber: number; etag: string }[]): { partNumber: number; etag: string }[] {
  const m = new Map<number, string>();
  for (const p of parts) m.set(p.partNumber, p.etag);
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([partNumber, etag]) => ({ partNumber, etag }));
}

function snapshot(p: MultipartProgress): MultipartProgress {
  return { uploadId: p.uploadId, partSize: p.partSize, parts: p.parts.map((x) => ({ ...x })) };
}
