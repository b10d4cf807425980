/**
 * The structure of a `zfs send` stream, as much as zrb checks before letting `zfs receive`
 * commit it: it starts with a BEGIN record (DMU_BACKUP_MAGIC) naming the snapshot it creates
 * (toguid) and its incremental base (fromguid, 0 for a full), and a non-recursive stream ends
 * with an END record naming the same toguid. Records are `dmu_replay_record`s of 312 bytes
 * (OpenZFS include/sys/zfs_ioctl.h; zfs-fuse's is the same): drr_type (u32) at 0; BEGIN:
 * drr_magic (u64) at 8, drr_toguid at 40, drr_fromguid at 48, drr_toname at 56; END:
 * drr_checksum (4 × u64) at 8, drr_toguid at 40. Byte order is the sender's: the magic tells.
 */

export const RECORD_SIZE = 312;
const DRR_BEGIN = 0;
const DRR_END = 5;
const MAGIC = 0x2f5bacbacn;

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

/**
 * Why a stream whose first and last 312 bytes are `begin` and `end` is not the stream of
 * snapshot `guid` from base `parentGuid` (null: a full stream), or undefined.
 */
export function streamEndsProblem(begin: Uint8Array, end: Uint8Array, guid: string, parentGuid: string | null): string | undefined {
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
