/**
 * The narrow object-store interface every backend implements (S3, local directory).
 * Keys are relative to the configured prefix and always use '/' separators.
 * Layout, retry and dry-run are wrappers around this interface, not flags inside it.
 */
export interface ObjectInfo {
  key: string;
  size: number;
  storageClass?: string;
  etag?: string;
  lastModified?: Date;
  /** For archived classes: undefined = not archived / unknown, "ongoing", or "available" (thawed). */
  restore?: "ongoing" | "available";
}

/** Persisted progress of a multipart upload, so a killed run can resume it. */
export interface MultipartProgress {
  uploadId: string;
  partSize: number;
  /** Completed parts (1-based part numbers) with their ETags. */
  parts: { partNumber: number; etag: string }[];
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

export interface ObjectStore {
  /** Human-readable location, e.g. "s3://bucket/prefix/" or "/var/lib/zrb/store/". No secrets. */
  readonly location: string;
  /** Where `key` lives, for messages: "s3://bucket/prefix/key" or "/root/key". No endpoint, no secrets. */
  urlOf(key: string): string;
  /** Put a small object (manifests, heads) atomically. */
  put(key: string, body: Uint8Array | string, opts?: { storageClass?: string }): Promise<void>;
  /** Upload a (possibly very large) file as one object, multipart where needed, resumable. */
  putFile(key: string, path: string, opts: PutFileOptions): Promise<void>;
  /** Whole small object, or null if it does not exist. Throws TooLargeError past `maxBytes`, before reading the body. */
  get(key: string, opts?: { maxBytes?: number }): Promise<Uint8Array | null>;
  /** Stream an object (or a byte range [start, end] inclusive). Throws a clear error if missing. */
  getStream(key: string, range?: { start: number; end?: number }): Promise<ReadableStream<Uint8Array>>;
  head(key: string): Promise<ObjectInfo | null>;
  /** All objects whose key starts with prefix (recursive), sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  delete(key: string): Promise<void>;
  /** Multipart uploads in progress under prefix. */
  listUploads(prefix: string): Promise<{ key: string; uploadId: string; initiated?: Date }[]>;
  abortUpload(key: string, uploadId: string): Promise<void>;
  /** Ask an archived object (GLACIER / DEEP_ARCHIVE) to be restored for `days` at `tier`. */
  thaw(key: string, opts: { days: number; tier: "Bulk" | "Standard" | "Expedited" }): Promise<"requested" | "ongoing" | "available">;
  /** Check that the bucket/directory exists and is writable with the current credentials. */
  checkAccess(): Promise<void>;
}

/** A small object (manifest, heads) is larger than the caller allows: it is not what zrb wrote. */
export class TooLargeError extends Error {
  constructor(
    readonly key: string,
    readonly size: number,
  ) {
    super(`object ${key} is ${size} bytes, more than expected`);
    this.name = "TooLargeError";
  }
}
