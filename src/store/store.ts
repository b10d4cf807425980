/**
 * The narrow object-store interface every backend implements (S3, local directory), and the
 * one error type they throw. Keys are relative to the configured prefix and always use '/'.
 * Retry, layout and dry-run are wrappers around this interface (store/retry.ts is the only
 * retry loop), not flags inside it; callers test an error's `kind`, never its message.
 * "Throws StoreError" below: a local-directory store may also throw an I/O ZrbError (exit 9)
 * for its own disk (full, read-only, permissions).
 */
import { ExitCode, ZrbError } from "../util/errors.ts";

export interface ObjectInfo {
  key: string;
  size: number;
  storageClass?: string;
  etag?: string;
  lastModified?: Date;
  /** For archived classes: undefined = not archived / unknown, "ongoing", or "available" (thawed). */
  restore?: "ongoing" | "available";
  /** Object lock: the object cannot be deleted before this time (head only). */
  lockedUntil?: Date;
}

/** Persisted progress of a multipart upload, so a killed run can resume it. */
export interface MultipartProgress {
  uploadId: string;
  partSize: number;
  /** Completed parts (1-based part numbers) with their ETags. */
  parts: { partNumber: number; etag: string }[];
}

export interface PutOptions {
  storageClass?: string;
  transient?: boolean;
}

export interface PutFileOptions {
  /** Exact size of the file in bytes (sent as ContentLength). */
  size: number;
  /** Hex SHA-256 of the whole file; stored as object metadata and checked on upload where the backend can. */
  sha256Hex: string;
  storageClass?: string;
  /** Resume an earlier multipart upload of this same key and file. */
  resume?: MultipartProgress;
  /** Called (and awaited) after the upload id is created and after every completed part. */
  onProgress?: (p: MultipartProgress) => Promise<void> | void;
  /** Called with bytes sent so far (for progress display). */
  onBytes?: (sent: number) => void;
  signal?: AbortSignal;
}

/** What beginUpload needs to know before the file is complete (signal: the run failed or was interrupted). */
export interface EarlyUploadOptions extends Pick<PutFileOptions, "storageClass" | "signal" | "onBytes"> {
  /** The most bytes the file can grow to (sets the part size). */
  maxSize: number;
  /** Where the writer renames the file once complete (the pieces are read from either). */
  renamedTo: string;
  /** Told the upload id once created, before any byte is sent (record it, to abort it after a crash). */
  onCreated?: (uploadId: string) => Promise<void> | void;
}

/** An upload begun while its file is still being written (ObjectStore.beginUpload; store/s3-growing.ts). */
export interface EarlyUpload {
  /** The file's first `bytes` bytes are on disk and final. */
  grew(bytes: number): void;
  /**
   * The file is complete (opts: its size and SHA-256): send the rest and complete the upload.
   * "done": stored and checked; "unused": nothing usable was begun (upload it with putFile);
   * otherwise the progress so far, to continue with putFile({resume}) after a failure.
   */
  finish(opts: PutFileOptions): Promise<"done" | "unused" | MultipartProgress>;
}

/** Smallest part of a multipart upload but the last (S3's rule): the head of a rewrite is at least this. */
export const MIN_REWRITE_HEAD = 5 * 1024 * 1024;

export interface RewriteOptions {
  /** The object's current size in bytes (checked before anything is written). */
  size: number;
  /** The object must still be this version (its ETag, from head()) when its bytes are copied (stores with ETags: S3). */
  etag?: string;
  storageClass?: string;
  signal?: AbortSignal;
}

/**
 * What went wrong, as a caller needs to know it:
 *  - not-found: the object (or the multipart upload) does not exist;
 *  - no-bucket: the bucket does not exist;
 *  - access-denied: missing, wrong or expired credentials, a clock the server rejects, or no permission;
 *  - archived: the object is in an archive class (Glacier, Deep Archive) and not restored;
 *  - transient: worth retrying (5xx, throttling, timeouts, resets, a body cut short);
 *  - too-large: a small object is larger than the caller allows (see get's maxBytes);
 *  - locked: object lock forbids deleting it yet (its retain-until date is in the future);
 *  - permanent: anything else the server refused.
 */
export type StoreErrorKind = "not-found" | "no-bucket" | "access-denied" | "archived" | "transient" | "too-large" | "locked" | "permanent";

/** Every failure of a store operation: one line for the user (exit code 6) and a kind for the code. */
export class StoreError extends ZrbError {
  constructor(
    readonly kind: StoreErrorKind,
    message: string,
    opts: { cause?: unknown; size?: number; retry?: (attempts: number) => string } = {},
  ) {
    super(message, ExitCode.STORE, { cause: opts.cause });
    this.name = "StoreError";
    this.size = opts.size;
    this.retryMessage = opts.retry;
  }
  /** For too-large: the object's size. */
  readonly size?: number;
  private readonly retryMessage?: (attempts: number) => string;
  /** The same failure after `attempts` tries (the retry wrapper's final error). */
  afterAttempts(attempts: number): StoreError {
    const msg = this.retryMessage?.(attempts) ?? `${this.message} (after ${attempts} attempts)`;
    return new StoreError(this.kind, msg, { cause: this.cause, size: this.size });
  }
}

export const isStoreError = (err: unknown, kind?: StoreErrorKind): err is StoreError =>
  err instanceof StoreError && (kind === undefined || err.kind === kind);

export interface ObjectStore {
  /** Human-readable location, e.g. "s3://bucket/prefix/ at https://host" or "/var/lib/zrb/store/". No secrets. */
  readonly location: string;
  /** Where `key` lives, for messages: "s3://bucket/prefix/key" or "/root/key". No endpoint, no secrets. */
  urlOf(key: string): string;
  /**
   * Put a small object (manifests, heads) atomically. `transient`: a record meant to be deleted
   * soon (an in-flight marker) gets no object-lock retention. Throws StoreError.
   */
  put(key: string, body: Uint8Array | string, opts?: PutOptions): Promise<void>;
  /** Upload a (possibly very large) file as one object, multipart where needed, resumable. Throws StoreError. */
  putFile(key: string, path: string, opts: PutFileOptions): Promise<void>;
  /**
   * Begin uploading the file at `path` while it is still written (S3: multipart pieces as they
   * become final); undefined where the store has no use for it (it then takes putFile).
   */
  beginUpload?(key: string, path: string, opts: EarlyUploadOptions): EarlyUpload | undefined;
  /**
   * Replace `key` by `head` followed by the bytes [from, size) of its current content, copied
   * inside the store (S3: a multipart upload whose first part is `head` and whose other parts are
   * UploadPartCopy ranges of the object itself). The object changes only when the new one is
   * complete: a failed or killed rewrite leaves the old object (and at most an upload in
   * progress, see listUploads). `head` is at least MIN_REWRITE_HEAD bytes unless `from` is the
   * size (nothing is copied: the object becomes `head`). Returns the bytes copied in the store.
   * Throws StoreError (not-found; archived for an archive class; permanent when the ETag no
   * longer matches).
   */
  rewriteHead(key: string, head: Uint8Array, from: number, opts: RewriteOptions): Promise<{ copied: number }>;
  /** Whole small object, or null if it does not exist. Throws StoreError (too-large past `maxBytes`, before reading the body). */
  get(key: string, opts?: { maxBytes?: number }): Promise<Uint8Array | null>;
  /**
   * Stream an object (or a byte range [start, end] inclusive). Throws StoreError (not-found,
   * archived, …) when opening; the stream errors with a StoreError (transient) when the body
   * breaks off or ends short.
   */
  getStream(key: string, range?: { start: number; end?: number }): Promise<ReadableStream<Uint8Array>>;
  /** Object info, or null if it does not exist. Throws StoreError. */
  head(key: string): Promise<ObjectInfo | null>;
  /** All objects whose key starts with prefix (recursive), sorted by key. Throws StoreError. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /**
   * Delete an object for good (with object lock: every version of it); deleting a missing one
   * succeeds. Throws StoreError (locked while its retain-until date has not passed).
   */
  delete(key: string): Promise<void>;
  /**
   * Object lock: make sure `key` cannot be deleted before `until` (extend its retain-until date
   * when it is earlier). A no-op where the store has no object lock. Throws StoreError.
   */
  retain(key: string, until: Date): Promise<void>;
  /** Multipart uploads in progress under prefix. Throws StoreError. */
  listUploads(prefix: string): Promise<{ key: string; uploadId: string; initiated?: Date }[]>;
  /** Abort a multipart upload; an unknown one succeeds. Throws StoreError. */
  abortUpload(key: string, uploadId: string): Promise<void>;
  /** Ask an archived object (GLACIER / DEEP_ARCHIVE) to be restored for `days` at `tier`. Throws StoreError. */
  thaw(key: string, opts: { days: number; tier: "Bulk" | "Standard" | "Expedited" }): Promise<"requested" | "ongoing" | "available">;
  /** Check that the bucket/directory exists and is writable with the current credentials. Throws StoreError. */
  checkAccess(): Promise<void>;
}

/** Storage classes whose objects must be restored (thawed) before they can be read. */
export const ARCHIVED_CLASSES: ReadonlySet<string> = new Set(["GLACIER", "DEEP_ARCHIVE"]);

/**
 * Days a provider bills an object of these classes for at least, however early it is deleted
 * (AWS S3's minimum storage durations; other providers' archive tiers are similar). Deleting
 * such an object sooner saves nothing, so prune keeps it until then unless told otherwise.
 */
export const MIN_STORAGE_DAYS: Readonly<Record<string, number>> = {
  STANDARD_IA: 30,
  ONEZONE_IA: 30,
  GLACIER_IR: 90,
  GLACIER: 90,
  DEEP_ARCHIVE: 180,
};
