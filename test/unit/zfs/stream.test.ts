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

/** A plain stream made here: BEGIN (toguid, fromguid), a record of another type, END (its toguid), in either byte order. */
function made(o: { le: boolean; to: bigint; from?: bigint; endTo?: bigint; firstType?: number }): Uint8Array {
  const b = new Uint8Array(3 * RECORD_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, o.firstType ?? 0, o.le);
  v.setBigUint64(8, 0x2f5bacbacn, o.le);
  v.setUint32(16, 1, o.le); // a substream's version, not a compound header
  v.setBigUint64(40, o.to, o.le);
  v.setBigUint64(48, o.from ?? 0n, o.le);
  v.setUint32(RECORD_SIZE, 7, o.le); // a FREEOBJECTS record
  v.setUint32(2 * RECORD_SIZE, 5, o.le);
  v.setBigUint64(2 * RECORD_SIZE + 40, o.endTo ?? o.to, o.le);
  return b;
}

describe("zfs send streams, records made here", () => {
  test("either byte order: a big-endian sender's stream reads as the sender wrote it", () => {
    for (const le of [true, false]) {
      expect(check(made({ le, to: 11n }), "11")).toBeUndefined();
      expect(check(made({ le, to: 11n, endTo: 12n }), "11")).toContain("its END record names snapshot guid 12");
    }
  });
  test("an incremental is checked against its base: another base, or none recorded, is refused", () => {
    const inc = made({ le: true, to: 11n, from: 10n });
    expect(check(inc, "11", "10")).toBeUndefined();
    expect(check(inc, "11", "9")).toContain("based on guid 10, the manifest says based on 9");
    expect(check(inc, "11", null)).toContain("based on guid 10, the manifest says a full stream");
  });
  test("too short, or not starting with BEGIN: refused with the reason", () => {
    expect(check(made({ le: true, to: 11n }).subarray(0, 100), "11")).toContain("100 bytes, shorter than one record");
    expect(check(made({ le: true, to: 11n, firstType: 1 }), "11")).toContain("first record is of type 1, not BEGIN");
  });
});
