/**
 * The structure of a `zfs send` stream, as much as zrb checks before letting `zfs receive`
 * commit it: it starts with a BEGIN record (DMU_BACKUP_MAGIC) naming the snapshot it creates
 * (toguid) and its incremental base (fromguid, 0 for a full), and a non-recursive stream ends
 * with an END record naming the same toguid. Records are `dmu_replay_record`s of 312 bytes
 * (OpenZFS include/sys/zfs_ioctl.h; zfs-fuse's is the same): drr_type (u32) at 0; BEGIN:
 * drr_magic (u64) at 8, drr_toguid at 40, drr_fromguid at 48, drr_toname at 56; END:
 * drr_checksum (4 × u64) at 8, drr_toguid at 40. Byte order is the sender's: the magic tells.
 *
 * `zfs send -p` (tasks[].send_properties) makes a compound stream instead: a BEGIN record of
 * header type DMU_COMPOUNDSTREAM (drr_versioninfo & 3 == 2, toguid 0) carrying the properties as
 * a packed nvlist of drr_payloadlen bytes (u32 at 4), an END record, then the substream above
 * (BEGIN … END of the snapshot), and a final END record with toguid 0. The checks then look at
 * the substream's BEGIN, after the header, and its END, just before the final one.
 */

export const RECORD_SIZE = 312;
const DRR_BEGIN = 0;
const DRR_END = 5;
const MAGIC = 0x2f5bacbacn;
const COMPOUND = 2n;
/** A property nvlist larger than this is not one zfs send -p of one dataset makes. */
const MAX_HEADER_PAYLOAD = 16 * 1024 * 1024;
/** The tail the checks need: the substream's END and a compound stream's final END. */
export const TAIL_BYTES = 2 * RECORD_SIZE;

export interface StreamEnds {
  toguid: string;
  fromguid: string;
  endToguid: string;
}

function reader(rec: Uint8Array) {
  const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
  const le = v.getBigUint64(8, true) === MAGIC ? true : v.getBigUint64(8, false) === MAGIC ? false : undefined;
  return { v, le };
}

/** Why `begin` (the first 312 bytes) is not a BEGIN record, or its guids. */
export function parseBegin(begin: Uint8Array): { toguid: string; fromguid: string; littleEndian: boolean } | string {
  if (begin.length < RECORD_SIZE) return `the stream is ${begin.length} bytes, shorter than one record`;
  const { v, le } = reader(begin);
  if (le === undefined) return "it does not start with a zfs send BEGIN record (no stream magic)";
  if (v.getUint32(0, le) !== DRR_BEGIN) return `its first record is of type ${v.getUint32(0, le)}, not BEGIN`;
  return { toguid: v.getBigUint64(40, le).toString(), fromguid: v.getBigUint64(48, le).toString(), littleEndian: le };
}

/** Why `end` (the last 312 bytes) is not an END record, or its toguid. */
export function parseEnd(end: Uint8Array, littleEndian: boolean): { toguid: string } | string {
  if (end.length < RECORD_SIZE) return "the stream is shorter than one record";
  const v = new DataView(end.buffer, end.byteOffset, end.byteLength);
  const t = v.getUint32(0, littleEndian);
  if (t !== DRR_END) return `its last record is of type ${t}, not END (a truncated or foreign stream)`;
  return { toguid: v.getBigUint64(40, littleEndian).toString() };
}

/** A compound stream's header (BEGIN with the property nvlist, END): its length, or null for a plain stream. */
function compoundHeader(begin: Uint8Array): number | null {
  const { v, le } = reader(begin);
  if (le === undefined || v.getUint32(0, le) !== DRR_BEGIN || (v.getBigUint64(16, le) & 3n) !== COMPOUND) return null;
  return RECORD_SIZE + Math.min(v.getUint32(4, le), MAX_HEADER_PAYLOAD + 1) + RECORD_SIZE;
}

/** How many bytes from the start the checks need, given the first RECORD_SIZE of them. */
export function headBytesNeeded(first: Uint8Array): number {
  if (first.length < RECORD_SIZE) return RECORD_SIZE;
  const h = compoundHeader(first);
  return h === null ? RECORD_SIZE : h + RECORD_SIZE;
}

/**
 * Why a stream whose first bytes are `head` (at least headBytesNeeded of them) and whose last
 * bytes are `tail` (TAIL_BYTES, or the whole stream when shorter) is not the stream of snapshot
 * `guid` from base `parentGuid` (null: a full stream), or undefined.
 */
export function streamEndsProblem(head: Uint8Array, tail: Uint8Array, guid: string, parentGuid: string | null): string | undefined {
  const h = head.length >= RECORD_SIZE ? compoundHeader(head) : null;
  if (h !== null) {
    if (h > RECORD_SIZE * 2 + MAX_HEADER_PAYLOAD) return "its property header is larger than zfs send -p makes";
    if (head.length < h + RECORD_SIZE) return "the stream ends inside its property header";
    const le = reader(head).le!;
    const endOfHeader = parseEnd(head.subarray(h - RECORD_SIZE, h), le);
    if (typeof endOfHeader === "string") return `its property header ${endOfHeader.replace(/^its last record/, "is followed by a record")}`;
    const last = parseEnd(tail.subarray(Math.max(0, tail.length - RECORD_SIZE)), le);
    if (typeof last === "string") return last;
    if (last.toguid !== "0") return `its last record names snapshot guid ${last.toguid}, not the end of a stream with properties`;
    return plainEndsProblem(head.subarray(h, h + RECORD_SIZE), tail.subarray(0, Math.max(0, tail.length - RECORD_SIZE)), guid, parentGuid);
  }
  return plainEndsProblem(head, tail, guid, parentGuid);
}

function plainEndsProblem(begin: Uint8Array, tail: Uint8Array, guid: string, parentGuid: string | null): string | undefined {
  const end = tail.subarray(Math.max(0, tail.length - RECORD_SIZE));
  const b = parseBegin(begin);
  if (typeof b === "string") return b;
  if (b.toguid !== guid) return `its BEGIN record creates snapshot guid ${b.toguid}, the manifest says ${guid}`;
  const from = parentGuid ?? "0";
  if (b.fromguid !== from) return `its BEGIN record is ${b.fromguid === "0" ? "a full stream" : `based on guid ${b.fromguid}`}, the manifest says ${parentGuid ? `based on ${parentGuid}` : "a full stream"}`;
  const e = parseEnd(end, b.littleEndian);
  if (typeof e === "string") return e;
  if (e.toguid !== guid) return `its END record names snapshot guid ${e.toguid}, the manifest says ${guid}`;
  return undefined;
}

/** The first and last bytes of a stream seen piece by piece, as streamEndsProblem needs them. */
export class StreamEndsCollector {
  private head = new Uint8Array(0);
  private want = RECORD_SIZE;
  private tail = new Uint8Array(0);
  push(b: Uint8Array): void {
    let rest = b;
    while (this.head.length < this.want && rest.length > 0) {
      const take = rest.subarray(0, this.want - this.head.length);
      this.head = Buffer.concat([this.head, take]);
      rest = rest.subarray(take.length);
      if (this.head.length === RECORD_SIZE) this.want = headBytesNeeded(this.head);
    }
    const t = Buffer.concat([this.tail, b.subarray(Math.max(0, b.length - TAIL_BYTES))]);
    this.tail = t.subarray(Math.max(0, t.length - TAIL_BYTES));
  }
  problem(guid: string, parentGuid: string | null): string | undefined {
    return streamEndsProblem(this.head, this.tail, guid, parentGuid);
  }
}
