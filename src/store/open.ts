/** Build the configured object store: S3 when `s3.enabled`, else a local directory. */
import type { ObjectStore } from "./store.ts";
import { S3Store, type S3StoreOptions } from "./s3.ts";
import { LocalStore } from "./local.ts";

export interface StoreConfig {
  s3: {
    enabled: boolean;
    bucket: string;
    prefix: string;
    region: string;
    endpoint?: string;
    retry: { maxAttempts: number };
    /** Optional: "WHEN_REQUIRED" (default; needed by radosgw) or "WHEN_SUPPORTED". */
    checksumMode?: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
    /** Optional: parts uploaded at once per file (default 4). */
    partConcurrency?: number;
    /** Optional: socket inactivity timeout per request in ms (default 120000). */
    requestTimeoutMs?: number;
  };
  /** Root directory of the local store used when s3.enabled is false. */
  localStoreDir: string;
}

export function openStore(cfg: StoreConfig, extra?: { onRetry?: S3StoreOptions["onRetry"]; signal?: AbortSignal }): ObjectStore {
  if (!cfg.s3.enabled) return new LocalStore(cfg.localStoreDir);
  const s3 = cfg.s3;
  return new S3Store({
    bucket: s3.bucket,
    prefix: s3.prefix,
    region: s3.region,
    endpoint: s3.endpoint || undefined,
    maxAttempts: s3.retry.maxAttempts,
    checksumMode: s3.checksumMode,
    partConcurrency: s3.partConcurrency,
    requestTimeoutMs: s3.requestTimeoutMs,
    onRetry: extra?.onRetry,
    signal: extra?.signal,
  });
}
