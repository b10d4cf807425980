/** The stream checks on real zfs send streams (zfs-fuse, plain and with -p) and on damaged copies of them. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { headBytesNeeded, RECORD_SIZE, streamEndsProblem, StreamEndsCollector, TAIL_BYTES } from "../../../src/zfs/stream.ts";

const dir = join(import.meta.dir, "..", "..", "fixtures", "streams");
const plain = { bytes: new Uint8Array(readFileSync(join(dir, "zfs-fuse-send.stream"))), guid: "14797082297575201170" };
const props = { bytes: new Uint8Array(readFileSync(join(dir, "zfs-fuse-send-p.stream"))), guid: "15094805400403777129" };

/** What the checks see of a stream: the head they ask for and the tail. */
function check(s: Uint8Array, guid: string, parent: string | null = null): string | undefined {
  const head = s.subarray(0, Math.min(s.length, headBytesNeeded(s.subarray(0, RECORD_SIZE))));
  return streamEndsProblem(head, s.subarray(Math.max(0, s.length - TAIL_BYTES)), guid, parent);
}

/** The collector, fed in pieces of `n` bytes. */
function collect(s: Uint8Array, n: number, guid: string, parent: string | null = null): string | undefined {
  const c = new StreamEndsCollector();
  for (let i = 0; i < s.length; i += n) c.push(s.subarray(i, i + n));
  return c.problem(guid, parent);
}

describe("zfs send stream ends", () => {
  test("a plain stream and a compound (-p) stream of the right snapshot pass, in one piece or many", () => {
    expect(headBytesNeeded(plain.bytes.subarray(0, RECORD_SIZE))).toBe(RECORD_SIZE);
    expect(headBytesNeeded(props.bytes.subarray(0, RECORD_SIZE))).toBeGreaterThan(3 * RECORD_SIZE); // header, its payload, END, the substream's BEGIN
    for (const s of [plain, props]) {
      expect(check(s.bytes, s.guid)).toBeUndefined();
      for (const n of [1, 7, 312, 313, 4096, s.bytes.length]) expect(collect(s.bytes, n, s.guid)).toBeUndefined();
    }
  });
  test("the wrong snapshot, or an incremental where a full is recorded, is named", () => {
    expect(check(props.bytes, "42")).toContain(`its BEGIN record creates snapshot guid ${props.guid}, the manifest says 42`);
    expect(check(props.bytes, props.guid, "7")).toContain("its BEGIN record is a full stream, the manifest says based on 7");
    expect(collect(plain.bytes, 100, "42")).toContain("the manifest says 42");
  });
  test("a compound stream cut before its final END, or after its substream, is refused", () => {
    const cut = props.bytes.subarray(0, props.bytes.length - RECORD_SIZE); // ends with the substream's END
    expect(check(cut, props.guid)).toContain("not the end of a stream with properties");
    const short = props.bytes.subarray(0, props.bytes.length - 2 * RECORD_SIZE);
    expect(check(short, props.guid)).toBeDefined();
    expect(collect(props.bytes.subarray(0, 400), 50, props.guid)).toContain("inside its property header");
  });
  test("a plain stream still needs its END record", () => {
    expect(check(plain.bytes.subarray(0, plain.bytes.length - RECORD_SIZE), plain.guid)).toContain("not END");
  });
});
