/**
 * Rewrite the head of an S3 object without moving its body (zrb rekey: a new age header in
 * front of an unchanged payload). A multipart upload onto the same key: part 1 is the new head
 * (S3 wants every part but the last to be at least 5 MiB, so the caller puts the first bytes of
 * the body in it too), parts 2… are UploadPartCopy ranges of the object itself, pinned to the
 * version the caller read with CopySourceIfMatch. Only CompleteMultipartUpload replaces the
 * object, after every part is in; any failure aborts the upload, so the old object stays
 * whole and no upload is left behind (a killed process leaves one: rekey aborts it on rerun).
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type StorageClass,
} from "@aws-sdk/client-s3";
import { ARCHIVED_CLASSES, MIN_REWRITE_HEAD, StoreError, type RewriteOptions } from "./store.ts";
import type { S3Context } from "./s3-multipart.ts";
import { parseRestoreHeader } from "./s3-errors.ts";
import { integrityError, storeError } from "../util/errors.ts";

/** Largest range one UploadPartCopy moves (S3 allows 5 GiB; smaller keeps a retry cheap). */
const COPY_PART = 1024 * 1024 * 1024;

const stripQuotes = (etag: string | undefined) => (etag ?? "").replace(/^"+|"+$/g, "");

/** The object as it is now: refused when missing, archived (thaw first) or not the expected size. */
async function checkSource(ctx: S3Context, key: string, opts: RewriteOptions): Promise<string | undefined> {
  const h = await ctx.head(key, opts.signal);
  if (!h) throw new StoreError("not-found", `object ${ctx.urlOf(key)} does not exist`);
  if (ARCHIVED_CLASSES.has(h.StorageClass ?? "") && parseRestoreHeader(h.Restore) !== "available")
    throw new StoreError("archived", `${ctx.urlOf(key)} is in storage class ${h.StorageClass} and not restored; thaw it first (zrb restore --thaw)`);
  if ((h.ContentLength ?? -1) !== opts.size) throw integrityError(`${ctx.urlOf(key)} is ${h.ContentLength} bytes, expected ${opts.size}; it changed since it was read`);
  const etag = stripQuotes(h.ETag);
  if (opts.etag && etag && etag !== opts.etag) throw new StoreError("permanent", `${ctx.urlOf(key)} changed since it was read (ETag ${etag}, expected ${opts.etag})`);
  return opts.etag ?? (etag || undefined);
}

export async function rewriteHead(ctx: S3Context, key: string, head: Uint8Array, from: number, opts: RewriteOptions): Promise<{ copied: number }> {
  const Key = ctx.full(key);
  const size = opts.size;
  if (!Number.isSafeInteger(from) || from < 0 || from > size) throw storeError(`rewrite of ${ctx.urlOf(key)}: byte ${from} is outside the ${size}-byte object`);
  const etag = await checkSource(ctx, key, opts);
  const common = { Bucket: ctx.bucket, Key, StorageClass: opts.storageClass as StorageClass | undefined, ...ctx.lock() };
  if (from === size) {
    // The whole object in one request, its SHA-256 checked by the server as put() does.
    const ChecksumSHA256 = new Bun.CryptoHasher("sha256").update(head).digest("base64");
    await ctx.call("put", key, (abortSignal) => ctx.client.send(new PutObjectCommand({ ...common, Body: head, ContentLength: head.byteLength, ChecksumSHA256 }), { abortSignal }), opts.signal);
    return { copied: 0 };
  }
  if (head.byteLength < MIN_REWRITE_HEAD) throw storeError(`rewrite of ${ctx.urlOf(key)}: internal error, a ${head.byteLength}-byte first part is under S3's 5 MiB minimum`);
  const created = await ctx.call("create multipart upload", key, (abortSignal) => ctx.client.send(new CreateMultipartUploadCommand(common), { abortSignal }), opts.signal);
  const UploadId = created.UploadId;
  if (!UploadId) throw storeError(`rewrite of ${ctx.urlOf(key)}: the server returned no upload id`);
  try {
    const parts: { PartNumber: number; ETag: string }[] = [];
    const first = await ctx.call(
      "upload part",
      key,
      (abortSignal) => ctx.client.send(new UploadPartCommand({ Bucket: ctx.bucket, Key, UploadId, PartNumber: 1, Body: head, ContentLength: head.byteLength }), { abortSignal }),
      opts.signal,
    );
    parts.push({ PartNumber: 1, ETag: first.ETag ?? "" });
    const source = `${ctx.bucket}/${Key.split("/").map(encodeURIComponent).join("/")}`;
    for (let start = from; start < size; start += COPY_PART) {
      const end = Math.min(size, start + COPY_PART) - 1;
      const PartNumber = parts.length + 1;
      const r = await ctx.call(
        "upload part copy",
        key,
        (abortSignal) =>
          ctx.client.send(
            new UploadPartCopyCommand({ Bucket: ctx.bucket, Key, UploadId, PartNumber, CopySource: source, CopySourceRange: `bytes=${start}-${end}`, ...(etag ? { CopySourceIfMatch: `"${etag}"` } : {}) }),
            { abortSignal },
          ),
        opts.signal,
      );
      parts.push({ PartNumber, ETag: r.CopyPartResult?.ETag ?? "" });
    }
    await ctx.call(
      "complete multipart upload",
      key,
      (abortSignal) => ctx.client.send(new CompleteMultipartUploadCommand({ Bucket: ctx.bucket, Key, UploadId, MultipartUpload: { Parts: parts } }), { abortSignal }),
      opts.signal,
    );
  } catch (err) {
    await ctx.call("abort multipart upload", key, (abortSignal) => ctx.client.send(new AbortMultipartUploadCommand({ Bucket: ctx.bucket, Key, UploadId }), { abortSignal })).catch(() => {});
    throw err;
  }
  const want = head.byteLength + size - from;
  const after = await ctx.head(key, opts.signal);
  if ((after?.ContentLength ?? -1) !== want) throw integrityError(`rewrite of ${ctx.urlOf(key)}: the new object is ${after?.ContentLength} bytes, expected ${want}`);
  return { copied: size - from };
}
