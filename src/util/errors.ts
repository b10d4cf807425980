/**
 * Typed errors and exit codes. Every error a user can cause is a ZrbError: one line,
 * naming the thing that is wrong and what to do about it. Anything else is a bug.
 * Code branches on an error's `errorKind` (isKind); the exit code a kind ends the process with is
 * chosen here, in EXIT_OF_KIND, and nowhere else.
 */
export const ExitCode = {
  OK: 0,
  /** Unexpected failure (a bug, or an error zrb did not classify). */
  FAILURE: 1,
  /** Bad command line usage. */
  USAGE: 2,
  /** The configuration file is invalid. */
  CONFIG: 3,
  /** Another zrb run holds the lock for this dataset. */
  LOCKED: 4,
  /** ZFS command failed or a dataset/snapshot is missing. */
  ZFS: 5,
  /** Object store (S3 / local target) failed. */
  STORE: 6,
  /** Integrity check failed: a hash, a size or a signature did not match. */
  INTEGRITY: 7,
  /** Cryptography: missing/invalid key, identity does not match. */
  CRYPTO: 8,
  /** Local I/O: disk full, permission denied, read-only base_dir. */
  IO: 9,
  /** `zrb status --max-age`: the newest backup of a task (or level) is older than allowed, or there is none. */
  STALE: 10,
  /** `zrb systemd install/uninstall`: systemctl is missing, systemd is not the running init, or a systemctl command failed. */
  SYSTEMD: 11,
  /** Interrupted by SIGINT. */
  SIGINT: 130,
  /** Interrupted by SIGTERM. */
  SIGTERM: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** What went wrong, for code to branch on. */
export type ErrorKind =
  | "internal"
  | "usage"
  | "config"
  | "locked"
  | "zfs"
  | "store"
  | "integrity"
  | "crypto"
  /** The age identity given opens no recipient of a file (a crypto error: exit 8). */
  | "no-identity"
  | "io"
  | "stale"
  | "systemd"
  | "sigint"
  | "sigterm";

/** The one mapping from kinds to exit codes. */
const EXIT_OF_KIND: Record<ErrorKind, ExitCode> = {
  internal: ExitCode.FAILURE,
  usage: ExitCode.USAGE,
  config: ExitCode.CONFIG,
  locked: ExitCode.LOCKED,
  zfs: ExitCode.ZFS,
  store: ExitCode.STORE,
  integrity: ExitCode.INTEGRITY,
  crypto: ExitCode.CRYPTO,
  "no-identity": ExitCode.CRYPTO,
  io: ExitCode.IO,
  stale: ExitCode.STALE,
  systemd: ExitCode.SYSTEMD,
  sigint: ExitCode.SIGINT,
  sigterm: ExitCode.SIGTERM,
};

const KIND_OF_EXIT = new Map<number, ErrorKind>(
  (Object.entries(EXIT_OF_KIND) as [ErrorKind, ExitCode][]).filter(([k]) => k !== "no-identity").map(([k, c]) => [c, k]),
);

export class ZrbError extends Error {
  /** What went wrong (StoreError adds its own finer `kind` of store failure). */
  readonly errorKind: ErrorKind;
  readonly exitCode: ExitCode;
  /** `how`: the kind, or (for the many callers written before kinds) the exit code, which names its kind. */
  constructor(message: string, how: ExitCode | ErrorKind = "internal", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ZrbError";
    this.errorKind = typeof how === "string" ? how : (KIND_OF_EXIT.get(how) ?? "internal");
    this.exitCode = EXIT_OF_KIND[this.errorKind];
  }
}

/** Whether `err` is a ZrbError of one of these kinds. */
export const isKind = (err: unknown, ...kinds: ErrorKind[]): boolean => err instanceof ZrbError && kinds.includes(err.errorKind);
/** An interrupt (SIGINT or SIGTERM) ended the run. */
export const isInterruptError = (err: unknown): boolean => isKind(err, "sigint", "sigterm");

export const usageError = (msg: string) => new ZrbError(msg, ExitCode.USAGE);
export const configError = (msg: string) => new ZrbError(msg, ExitCode.CONFIG);
export const zfsError = (msg: string) => new ZrbError(msg, ExitCode.ZFS);
export const storeError = (msg: string, cause?: unknown) => new ZrbError(msg, ExitCode.STORE, { cause });
export const integrityError = (msg: string) => new ZrbError(msg, ExitCode.INTEGRITY);
export const cryptoError = (msg: string) => new ZrbError(msg, ExitCode.CRYPTO);
export const noIdentityError = (msg: string) => new ZrbError(msg, "no-identity");
export const ioError = (msg: string, cause?: unknown) => new ZrbError(msg, ExitCode.IO, { cause });

/** Map a Node/Bun system error on a path to a one-line ZrbError. */
export function fsError(err: unknown, what: string, path: string): ZrbError {
  const code = (err as { code?: string })?.code;
  switch (code) {
    case "ENOSPC":
      return ioError(`${what}: no space left on device at ${path}; free space or point base_dir at a larger disk`, err);
    case "EROFS":
      return ioError(`${what}: ${path} is on a read-only file system; make it writable or change base_dir`, err);
    case "EACCES":
    case "EPERM":
      return ioError(`${what}: permission denied on ${path}; run as a user that can write there (usually root)`, err);
    case "ENOENT":
      return ioError(`${what}: ${path} does not exist`, err);
    case "EDQUOT":
      return ioError(`${what}: disk quota exceeded at ${path}`, err);
    default:
      return ioError(`${what}: ${path}: ${(err as Error)?.message ?? String(err)}`, err);
  }
}
