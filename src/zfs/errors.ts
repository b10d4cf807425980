/**
 * zfs's stderr, parsed once into a kind the code tests (zrepl does the same). zfs-fuse and
 * OpenZFS word things differently; every pattern either of them prints lives here.
 */

export type ZfsFailureKind =
  /** The dataset, snapshot or hold does not exist. */
  | "not-found"
  /** `zfs hold`: the snapshot already carries this tag. */
  | "tag-exists"
  /** `zfs release`: no hold with this tag. */
  | "no-such-tag"
  /** `zfs receive` (incremental): the target changed since its newest snapshot. */
  | "modified"
  /** `zfs receive` (full): the target has snapshots not in the stream. */
  | "foreign-snapshots"
  /** `zfs receive` (full, no -F): the target exists already. */
  | "exists"
  | "no-space"
  | "other";

export interface ZfsFailure {
  kind: ZfsFailureKind;
  /** stderr's lines joined on one line ("; "), at most 500 characters. */
  line: string;
}

export function firstLine(s: string): string {
  return s.split("\n").map((l) => l.trim()).filter(Boolean).join("; ").slice(0, 500);
}

export function parseFailure(stderr: string): ZfsFailure {
  const line = firstLine(stderr);
  const kind: ZfsFailureKind = /tag already exists/i.test(line)
    ? "tag-exists"
    : /no such tag/i.test(line)
      ? "no-such-tag"
      : /destination has snapshots/i.test(line)
        ? "foreign-snapshots"
        : /destination '[^']*' exists|must specify -F to overwrite/i.test(line)
          ? "exists"
          : /has been modified|most recent snapshot/i.test(line)
            ? "modified"
            : /out of space|no space/i.test(line)
              ? "no-space"
              : // "no such pool|dataset|snapshot" only: zfs-fuse with its daemon down says
                // "connect: No such file or directory", which says nothing of the dataset.
                /does not exist|could not find|no such (pool|dataset|snapshot|filesystem)/i.test(line)
                ? "not-found"
                : "other";
  return { kind, line };
}
