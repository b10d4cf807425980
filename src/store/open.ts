/**
 * Build the configured object store: S3 (one attempt per call) wrapped in the retry layer when
 * `s3.enabled`, else a local directory (which has no transient failures to retry).
 */
import type { Config } from "../config/config.ts";
import type { ObjectStore } from "./store.ts";
import { S3Store } from "./s3.ts";
import { LocalStore } from "./local.ts";
import { RetryStore, type RetryOptions } from "./retry.ts";

/** What a store is built from: the config's s3 section (checksum_mode may be left out: WHEN_REQUIRED) and local_store. */
export interface StoreConfig {
  s3: Pick<Config["s3"], "enabled" | "bucket" | "prefix" | "region" | "endpoint" | "retry"> & Partial<Pick<Config["s3"], "checksumMode" | "objectLock">>;
  /** Root directory of the local store used when s3.enabled is false. */
  localStoreDir: string;
}

export function openStore(cfg: StoreConfig, extra: { onRetry?: RetryOptions["onRetry"]; signal?: AbortSignal; retryBaseDelayMs?: number } = {}): ObjectStore {
  if (!cfg.s3.enabled) return new LocalStore(cfg.localStoreDir);
  const s3 = cfg.s3;
  const inner = new S3Store({
    bucket: s3.bucket,
    prefix: s3.prefix,
    region: s3.region,
    endpoint: s3.endpoint || undefined,
    checksumMode: s3.checksumMode,
    signal: extra.signal,
    objectLock: s3.objectLock,
  });
  return new RetryStore(inner, { maxAttempts: s3.retry.maxAttempts, onRetry: extra.onRetry, signal: extra.signal, baseDelayMs: extra.retryBaseDelayMs });
}
