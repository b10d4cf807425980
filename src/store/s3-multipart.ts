/**
 * Upload one file as one S3 object, resumable: one PutObject up to 8 MiB, else a multipart
 * upload whose id and finished parts (with their ETags) are reported after every part so that a
 * killed run can continue it. Resume trusts only parts the server lists with the recorded ETag
 * and the expected size. One attempt per request: a failed call fails putFile, and the retry
 * wrapper calls it again with the progress reported so far (which is how a part that met a 503
 * is re-sent without re-sending the others).
 *
 * Each part is streamed from its byte range of the file (a node fs ReadStream with start/end and
 * an explicit ContentLength: the only body type that streams through the SDK's node http
 * handler under Bun; web ReadableStreams and Blobs are rejected by it).
 */
import { createReadStream, type ReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import {
  type S3Client,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  ListPartsCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
  type StorageClass,
} from "@aws-sdk/client-s3";
import { StoreError, type MultipartProgress, type PutFileOptions } from "./store.ts";
import { httpStatusOf } from "./s3-errors.ts";
import { abortReason } from "./retry.ts";
import { integrityError, storeError } from "../util/errors.ts";
import type { Semaphore } from "../util/semaphore.ts";

export const MiB = 1024 * 1024;
/** Files up to this size go in one PutObject; larger ones multipart. */
export const SINGLE_PUT_MAX = 8 * MiB;
/** Smallest part zrb uses (S3's minimum is 5 MiB). */
export const MIN_PART_SIZE = 8 * MiB;
export const MAX_PARTS = 10_000;
/** S3's hard minimum part size (all parts but the last). */
const S3_MIN_PART = 5 * MiB;

/**
 * Part size for a file of `size` bytes: at least 8 MiB, whole MiB, never more than 10,000 parts,
 * and no last part under 1 MiB: age adds a few KiB to a chunk of a power-of-two size, which
 * would otherwise be a part of its own at the end of every chunk, waiting for a free connection
 * while the link idles (measured through the WAN emulator: ≈ 0.5 s per 64 MiB part); those
 * bytes are spread over the other parts instead.
 */
export function partSizeFor(size: number): number {
  const base = Math.max(MIN_PART_SIZE, Math.ceil(Math.ceil(size / MAX_PARTS) / MiB) * MiB);
  const n = Math.ceil(size / base);
  if (n > 1 && size - (n - 1) * base < MiB) return Math.ceil(size / (n - 1) / MiB) * MiB;
  return base;
}

/** What the multipart code needs of the S3 store. */
export interface S3Context {
  client: S3Client;
  /** Object-lock parameters for a new object (none without s3.object_lock). */
  lock(): { ObjectLockMode?: "GOVERNANCE" | "COMPLIANCE"; ObjectLockRetainUntilDate?: Date };
  bucket: string;
  partConcurrency: number;
  /**
   * Shared by every file this store uploads at once (a backup uploads up to workers + 1 parts
   * together): the run's connections stay s3.concurrency, and a file that asked first is served
   * first, so the oldest upload finishes first and frees its spill slot for the next part.
   */
  partSlots?: Semaphore;
  /** s3://bucket/prefix/key, for messages. */
  urlOf(key: string): string;
  /** Key under the prefix, validated. */
  full(key: string): string;
  /** One SDK call, abortable, failures classified into StoreError. */
  call<T>(op: string, key: string, fn: (abortSignal?: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T>;
  /** HeadObject, or null when the object does not exist. */
  head(key: string, signal?: AbortSignal): Promise<HeadObjectCommandOutput | null>;
}

export const stripQuotes = (etag: string | undefined) => (etag ?? "").replace(/^"+|"+$/g, "");

export async function putFile(ctx: S3Context, key: string, path: string, opts: PutFileOptions): Promise<void> {
  const Key = ctx.full(key);
  const signal = opts.signal;
  if (signal?.aborted) throw abortReason(signal);
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw storeError(`cannot upload ${path} to ${ctx.urlOf(key)}: ${(err as Error).message}`, err);
  }
  if (st.size !== opts.size) throw integrityError(`cannot upload ${path} to ${ctx.urlOf(key)}: the file is ${st.size} bytes but ${opts.size} were expected`);
  if (!/^[0-9a-f]{64}$/i.test(opts.sha256Hex)) throw storeError(`cannot upload ${path} to ${ctx.urlOf(key)}: sha256 ${JSON.stringify(opts.sha256Hex)} is not 64 hex digits`);
  const shaHex = opts.sha256Hex.toLowerCase();
  const size = opts.size;
  if (size <= SINGLE_PUT_MAX) {
    const body = size === 0 ? null : createReadStream(path, { start: 0, end: size - 1 });
    // Bytes read so far, polled (a 'data' listener would take bytes from the request).
    const ticker = body && opts.onBytes ? setInterval(() => opts.onBytes!(body.bytesRead), 500) : undefined;
    ticker?.unref?.();
    await ctx.call(
      "put",
      key,
      (abortSignal) =>
        ctx.client.send(
          new PutObjectCommand({
            Bucket: ctx.bucket,
            Key,
            Body: body ?? new Uint8Array(0),
            ContentLength: size,
            StorageClass: opts.storageClass as StorageClass | undefined,
            Metadata: { "zrb-sha256": shaHex },
            ChecksumSHA256: Buffer.from(shaHex, "hex").toString("base64"),
            ...ctx.lock(),
          }),
          { abortSignal },
        ),
      signal,
    ).finally(() => {
      clearInterval(ticker);
      body?.destroy();
    });
    opts.onBytes?.(size);
    return;
  }
  const progress = (await resumeUpload(ctx, key, size, shaHex, opts)) ?? (await createUpload(ctx, key, size, shaHex, opts));
  if (progress === "complete") {
    opts.onBytes?.(size);
    return;
  }
  await uploadParts(ctx, key, path, size, progress, opts);
  await completeUpload(ctx, key, size, shaHex, progress, signal);
}

/** The object as stored: its size and zrb-sha256 metadata, or null. */
async function storedMeta(ctx: S3Context, key: string, signal?: AbortSignal): Promise<{ size: number; sha?: string } | null> {
  const r = await ctx.head(key, signal);
  return r ? { size: r.ContentLength ?? -1, sha: r.Metadata?.["zrb-sha256"] } : null;
}

/**
 * Continue a recorded upload: the parts the server lists with the recorded ETag and size.
 * "complete" when a killed run already completed it (the object is there with this size and
 * hash); undefined when it cannot be continued (then the old upload is dropped, best effort).
 */
async function resumeUpload(ctx: S3Context, key: string, size: number, shaHex: string, opts: PutFileOptions): Promise<MultipartProgress | "complete" | undefined> {
  const r = opts.resume;
  if (!r) return undefined;
  const count = r.partSize > 0 ? Math.ceil(size / r.partSize) : Infinity;
  const usable = Number.isSafeInteger(r.partSize) && r.partSize >= S3_MIN_PART && count <= MAX_PARTS && !!r.uploadId;
  let server: Map<number, { etag: string; size: number }> | null = null;
  if (usable) {
    try {
      server = await listParts(ctx, key, r.uploadId, opts.signal);
    } catch (err) {
      // Unknown upload id: AWS says NoSuchUpload; radosgw says NoSuchKey (404) or 500.
      if (!(err instanceof StoreError) || !(err.kind === "not-found" || httpStatusOf(err.cause) === 500)) throw err;
      const meta = await storedMeta(ctx, key, opts.signal);
      if (meta && meta.size === size && meta.sha === shaHex) return "complete";
    }
  }
  if (!server) {
    await abortMultipart(ctx, key, r.uploadId).catch(() => {});
    return undefined;
  }
  const expected = (n: number) => Math.min(r.partSize, size - (n - 1) * r.partSize);
  const trusted = r.parts
    .filter((p) => p.partNumber >= 1 && p.partNumber <= count)
    .filter((p) => {
      const s = server!.get(p.partNumber);
      return !!s && s.etag === stripQuotes(p.etag) && s.size === expected(p.partNumber);
    })
    .map((p) => ({ partNumber: p.partNumber, etag: stripQuotes(p.etag) }));
  return { uploadId: r.uploadId, partSize: r.partSize, parts: dedupeSort(trusted) };
}

async function listParts(ctx: S3Context, key: string, uploadId: string, signal?: AbortSignal): Promise<Map<number, { etag: string; size: number }>> {
  const parts = new Map<number, { etag: string; size: number }>();
  let marker: string | undefined;
  for (;;) {
    const r = await ctx.call(
      "list parts",
      key,
      (abortSignal) => ctx.client.send(new ListPartsCommand({ Bucket: ctx.bucket, Key: ctx.full(key), UploadId: uploadId, PartNumberMarker: marker }), { abortSignal }),
      signal,
    );
    for (const p of r.Parts ?? []) if (p.PartNumber !== undefined) parts.set(p.PartNumber, { etag: stripQuotes(p.ETag), size: p.Size ?? -1 });
    if (!r.IsTruncated) break;
    const next = r.NextPartNumberMarker;
    if (next === undefined || next === marker) break;
    marker = next;
  }
  return parts;
}

export async function abortMultipart(ctx: S3Context, key: string, uploadId: string): Promise<void> {
  await ctx.call("abort upload", key, (abortSignal) =>
    ctx.client.send(new AbortMultipartUploadCommand({ Bucket: ctx.bucket, Key: ctx.full(key), UploadId: uploadId }), { abortSignal }),
  );
}

async function createUpload(ctx: S3Context, key: string, size: number, shaHex: string, opts: PutFileOptions): Promise<MultipartProgress> {
  const uploadId = await createMultipart(ctx, key, { sha256Hex: shaHex, storageClass: opts.storageClass }, opts.signal);
  const progress = { uploadId, partSize: partSizeFor(size), parts: [] };
  await opts.onProgress?.(copy(progress));
  return progress;
}

/** CreateMultipartUpload: its id. The zrb-sha256 metadata only when the file's hash is known already. */
export async function createMultipart(ctx: S3Context, key: string, o: { sha256Hex?: string; storageClass?: string }, signal?: AbortSignal): Promise<string> {
  const created = await ctx.call(
    "create multipart upload",
    key,
    (abortSignal) =>
      ctx.client.send(
        new CreateMultipartUploadCommand({
          Bucket: ctx.bucket,
          Key: ctx.full(key),
          StorageClass: o.storageClass as StorageClass | undefined,
          Metadata: o.sha256Hex ? { "zrb-sha256": o.sha256Hex } : undefined,
          ...ctx.lock(),
        }),
        { abortSignal },
      ),
    signal,
  );
  if (!created.UploadId) throw storeError(`create multipart upload of ${ctx.urlOf(key)}: the server returned no upload id`);
  return created.UploadId;
}

/**
 * UploadPart of bytes [start, start+len) of file `path` as part `n` of `count`: its ETag. `onBody`
 * sees the file stream while it is sent (bytes read so far, for progress).
 */
export async function uploadPart(ctx: S3Context, key: string, uploadId: string, n: number, count: number, path: string, start: number, len: number, signal?: AbortSignal, onBody?: (b: ReadStream | null) => void): Promise<string> {
  const res = await ctx.call(
    `upload part ${n}/${count} of`,
    key,
    async (abortSignal) => {
      const body = createReadStream(path, { start, end: start + len - 1 });
      onBody?.(body);
      try {
        return await ctx.client.send(new UploadPartCommand({ Bucket: ctx.bucket, Key: ctx.full(key), UploadId: uploadId, PartNumber: n, Body: body, ContentLength: len }), { abortSignal });
      } finally {
        body.destroy(); // close the file at once when the request failed or was aborted
      }
    },
    signal,
  ).finally(() => onBody?.(null));
  if (!res.ETag) throw storeError(`upload part ${n} of ${ctx.urlOf(key)}: the server returned no ETag`);
  return stripQuotes(res.ETag);
}

/** Order of the uploads begun by this process: an older file's parts get a free connection first (partSlots). */
let uploadSeq = 0;

/** The next rank for partSlots: an upload begun earlier is served first. */
export const nextUploadRank = (): number => uploadSeq++;

/** Upload the parts not yet in `state`, partConcurrency at a time, reporting progress after each. */
async function uploadParts(ctx: S3Context, key: string, path: string, size: number, state: MultipartProgress, opts: PutFileOptions): Promise<void> {
  const { signal } = opts;
  const partSize = state.partSize;
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
    const snap = copy(state);
    progressChain = progressChain.then(() => opts.onProgress?.(snap));
    return progressChain;
  };

  // Stop scheduling on the first failure; in-flight parts finish so their progress is recorded.
  let firstError: unknown;
  let next = 0;
  const rank = nextUploadRank();
  const worker = async () => {
    while (firstError === undefined && next < todo.length) {
      await ctx.partSlots?.acquire(rank);
      try {
        if (firstError !== undefined || next >= todo.length) return;
        await sendOne(todo[next++]!);
      } finally {
        ctx.partSlots?.release();
      }
    }
  };
  const sendOne = async (n: number) => {
    if (signal?.aborted) throw abortReason(signal);
    const start = (n - 1) * partSize;
    const len = partLen(n);
    try {
      const etag = await uploadPart(ctx, key, state.uploadId, n, count, path, start, len, signal, (b) => (b ? inflight.set(n, b) : inflight.delete(n)));
      state.parts = dedupeSort([...state.parts, { partNumber: n, etag }]);
      bytesDone += len;
      reportBytes();
      await pushProgress();
    } catch (err) {
      inflight.delete(n);
      if (firstError === undefined) firstError = err;
      throw err;
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(ctx.partConcurrency, todo.length) }, () => worker()));
  if (ticker) clearInterval(ticker);
  await progressChain.catch(() => {});
  if (signal?.aborted) throw abortReason(signal);
  if (firstError !== undefined) throw firstError;
  for (const res of results) if (res.status === "rejected") throw res.reason;
}

/** Complete (parts in order), then confirm with HEAD (radosgw returns an empty ETag). */
export async function completeUpload(ctx: S3Context, key: string, size: number, shaHex: string, state: MultipartProgress, signal?: AbortSignal): Promise<void> {
  const count = Math.ceil(size / state.partSize);
  const parts = dedupeSort(state.parts);
  if (parts.length !== count || parts.some((p, i) => p.partNumber !== i + 1))
    throw storeError(`upload of ${ctx.urlOf(key)}: internal error, ${parts.length} of ${count} parts recorded`);
  try {
    await ctx.call(
      "complete multipart upload",
      key,
      (abortSignal) =>
        ctx.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: ctx.bucket,
            Key: ctx.full(key),
            UploadId: state.uploadId,
            MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: `"${p.etag}"` })) },
          }),
          { abortSignal },
        ),
      signal,
    );
  } catch (err) {
    // A retried Complete whose first attempt succeeded (reply lost) finds the upload gone:
    // accept it if the object is there with our size and hash.
    if (!(err instanceof StoreError && err.kind === "not-found")) throw err;
    const meta = await storedMeta(ctx, key, signal);
    if (!meta || meta.size !== size || meta.sha !== shaHex) throw err;
  }
  const meta = await storedMeta(ctx, key, signal);
  if (!meta) throw storeError(`upload of ${ctx.urlOf(key)}: the object is missing after CompleteMultipartUpload`);
  if (meta.size !== size) throw integrityError(`upload of ${ctx.urlOf(key)}: the stored object is ${meta.size} bytes, expected ${size}`);
}

export function dedupeSort(parts: { partNumber: number; etag: string }[]): { partNumber: number; etag: string }[] {
  const m = new Map<number, string>();
  for (const p of parts) m.set(p.partNumber, p.etag);
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([partNumber, etag]) => ({ partNumber, etag }));
}

export function copy(p: MultipartProgress): MultipartProgress {
  return { uploadId: p.uploadId, partSize: p.partSize, parts: p.parts.map((x) => ({ ...x })) };
}
