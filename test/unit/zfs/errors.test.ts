/** zfs's stderr, as zfs prints it, parsed into the kind the callers act on and the line they report. */
import { describe, expect, test } from "bun:test";
import { parseFailure, type ZfsFailureKind } from "../../../src/zfs/errors.ts";

/** Holds (an existing tag, a missing one, a missing snapshot), then receive's refusals. */
const SEEN: Record<string, ZfsFailureKind> = {
  "cannot hold snapshot 't/a@s': tag already exists on this dataset": "tag-exists",
  "cannot release hold from snapshot 't/a@s': no such tag on this dataset": "no-such-tag",
  "cannot open 't/a@s': dataset does not exist": "not-found",
  "could not find any snapshots to destroy; check snapshot names.": "not-found",
  "cannot receive incremental stream: destination t/b has been modified\nsince most recent snapshot": "modified",
  "cannot receive incremental stream: most recent snapshot of t/b does not\nmatch incremental source": "modified",
  "cannot receive new filesystem stream: destination has snapshots (eg. t/b@x)\nmust destroy them to overwrite it": "foreign-snapshots",
  "cannot receive new filesystem stream: destination 't/b' exists\nmust specify -F to overwrite it": "exists",
  "cannot receive new filesystem stream: out of space": "no-space",
  "cannot receive: write failed: No space left on device": "no-space",
  "cannot receive: invalid stream (bad magic number)": "other",
  "cannot open 'zfstest': no such pool": "not-found",
  // zfs-fuse with its daemon down: nothing is known of the dataset (a failed restore step must not take it for missing).
  "connect: No such file or directory\nPlease make sure that the zfs-fuse daemon is running.\ninternal error: failed to initialize ZFS library": "other",
};

describe("zfs failures", () => {
  test("each message zfs prints is the kind its callers act on", () => {
    expect(Object.fromEntries(Object.keys(SEEN).map((m) => [m, parseFailure(`${m}\n`).kind]))).toEqual(SEEN);
  });
  test("every line counts, trimmed and joined; the line is at most 500 characters", () => {
    const f = parseFailure("  internal error: retrying\n\n\tcannot open 't/a': dataset does not exist  \n");
    expect(f).toEqual({ kind: "not-found", line: "internal error: retrying; cannot open 't/a': dataset does not exist" });
    expect(parseFailure("x".repeat(600)).line).toBe("x".repeat(500));
  });
});
