/**
 * Build the configured object store: S3 (one attempt per call, every request watched for
 * stalls and metered by the bandwidth limit) wrapped in the retry layer when `s3.enabled`, else a
 * local directory (which has no transient failures to retry and no bandwidth to limit).
 */
import type { ObjectStore } from "./store.ts";
import { configError } from "../util/errors.ts";
import { S3Store, type S3StoreOptions } from "./s3.ts";
import { LocalStore } from "./local.ts";
import { RetryStore, type RetryOptions } from "./retry.ts";
import { TokenBucket } from "../util/token-bucket.ts";
import { ScheduledLimiter, type BandwidthSchedule, type Limiter } from "../util/bandwidth-schedule.ts";

/**
 * What a store is built from: the config's s3 section (checksum_mode, request_timeout and
 * bandwidth_limit may be left out) and local_store. Spelled out here rather than taken from the
 * config's type: the store sits below the config in src/README.md's layers, and a validated
 * Config fits this shape as it is.
 */
export interface StoreConfig {
  s3: {
    enabled: boolean;
    bucket: string;
    prefix: string;
    region: string;
    endpoint?: string;
    retry: { maxAttempts: number };
    checksumMode?: S3StoreOptions["checksumMode"];
    /** Milliseconds. */
    requestTimeout?: number;
    /** Bytes per second. */
    bandwidthLimit?: number;
    /** Bytes per second by the local time of day (s3.bandwidth_schedule); wins over bandwidthLimit. */
    bandwidthSchedule?: BandwidthSchedule;
    /** Multipart parts uploaded at once by the run, whatever the number of objects (s3.concurrency). */
    concurrency?: number;
    objectLock?: S3StoreOptions["objectLock"];
    /** stores[].credentials: a profile, or the names of two environment variables (config/stores.ts). */
    credentials?: { profile?: string; accessKeyIdEnv?: string; secretAccessKeyEnv?: string };
  };
  /** Root directory of the local store used when s3.enabled is false. */
  localStoreDir: string;
}

export interface OpenOptions {
  /** Called before each retry (cli/common.ts prints it: one line per retry). */
  onRetry?: RetryOptions["onRetry"];
  signal?: AbortSignal;
  retryBaseDelayMs?: number;
  /** The limiter of all bodies together (--bwlimit, or one the caller built from the config to watch it); overrides s3.bandwidth_limit/_schedule. */
  limiter?: Limiter;
}

export function openStore(cfg: StoreConfig, extra: OpenOptions = {}): ObjectStore {
  if (!cfg.s3.enabled) return new LocalStore(cfg.localStoreDir);
  const s3 = cfg.s3;
  const limit = extra.limiter ?? (s3.bandwidthSchedule ? new ScheduledLimiter(s3.bandwidthSchedule) : s3.bandwidthLimit ? new TokenBucket(s3.bandwidthLimit) : undefined);
  const inner = new S3Store({
    bucket: s3.bucket,
    prefix: s3.prefix,
    region: s3.region,
    endpoint: s3.endpoint || undefined,
    checksumMode: s3.checksumMode,
    requestTimeoutMs: s3.requestTimeout,
    bandwidth: limit,
    signal: extra.signal,
    objectLock: s3.objectLock,
    partConcurrency: s3.concurrency,
    profile: s3.credentials?.profile,
    credentials: envCredentials(s3.credentials),
  });
  return new RetryStore(inner, { maxAttempts: s3.retry.maxAttempts, onRetry: extra.onRetry, signal: extra.signal, baseDelayMs: extra.retryBaseDelayMs });
}

/**
 * A store's keys from the environment variables its config names. A variable that is unset or
 * empty is an error naming the variable (never a value), before any request is made.
 */
function envCredentials(c: StoreConfig["s3"]["credentials"]): S3StoreOptions["credentials"] {
  if (!c?.accessKeyIdEnv || !c.secretAccessKeyEnv) return undefined;
  const get = (name: string) => {
    const v = process.env[name];
    if (!v) throw configError(`the environment variable ${name} (stores[].credentials) is not set; export it before running zrb (in the systemd unit: an EnvironmentFile)`);
    return v;
  };
  return { accessKeyId: get(c.accessKeyIdEnv), secretAccessKey: get(c.secretAccessKeyEnv) };
}
