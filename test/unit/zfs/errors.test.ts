/** zfs's stderr, as zfs prints it, parsed into the kind the callers act on and the line they report. */
import { describe, expect, test } from "bun:test";
import { parseFailure } from "../../../src/zfs/errors.ts";

const kind = (stderr: string) => parseFailure(stderr).kind;

describe("zfs failures", () => {
  test("holds: an existing tag and a missing one are told apart from a missing snapshot", () => {
    expect(kind("cannot hold snapshot 't/a@s': tag already exists on this dataset\n")).toBe("tag-exists");
    expect(kind("cannot release hold from snapshot 't/a@s': no such tag on this dataset\n")).toBe("no-such-tag");
    expect(kind("cannot open 't/a@s': dataset does not exist\n")).toBe("not-found");
    expect(kind("could not find any snapshots to destroy; check snapshot names.\n")).toBe("not-found");
  });
  test("receive: a changed target, another base, snapshots not in the stream, no space", () => {
    expect(kind("cannot receive incremental stream: destination t/b has been modified\nsince most recent snapshot\n")).toBe("modified");
    expect(kind("cannot receive incremental stream: most recent snapshot of t/b does not\nmatch incremental source\n")).toBe("modified");
    expect(kind("cannot receive new filesystem stream: destination has snapshots (eg. t/b@x)\nmust destroy them to overwrite it\n")).toBe("foreign-snapshots");
    expect(kind("cannot receive new filesystem stream: out of space\n")).toBe("no-space");
    expect(kind("cannot receive: write failed: No space left on device\n")).toBe("no-space");
    expect(kind("cannot receive: invalid stream (bad magic number)\n")).toBe("other");
  });
  test("every line counts, trimmed and joined; the line is at most 500 characters", () => {
    const f = parseFailure("  internal error: retrying\n\n\tcannot open 't/a': dataset does not exist  \n");
    expect(f).toEqual({ kind: "not-found", line: "internal error: retrying; cannot open 't/a': dataset does not exist" });
    expect(parseFailure("x".repeat(600)).line).toBe("x".repeat(500));
  });
});
