/**
 * The first and last records of a `zfs send` stream (the layout src/zfs/stream.ts checks:
 * 312-byte dmu_replay_records, little-endian here), for streams the tests and the bench make up
 * around arbitrary bytes: restore and verify refuse a stream that does not begin with the BEGIN
 * record of the manifest's snapshot and end with its END record.
 */
import { RECORD_SIZE } from "../../src/zfs/stream.ts";

const DRR_BEGIN = 0;
const DRR_END = 5;
const DMU_BACKUP_MAGIC = 0x2f5bacbacn;

/** A BEGIN record creating snapshot `toguid` from `fromguid` ("0": a full stream). */
export function beginRecord(toguid: string, fromguid = "0"): Uint8Array {
  const r = new Uint8Array(RECORD_SIZE);
  const v = new DataView(r.buffer);
  v.setUint32(0, DRR_BEGIN, true);
  v.setBigUint64(8, DMU_BACKUP_MAGIC, true);
  v.setBigUint64(40, BigInt(toguid), true);
  v.setBigUint64(48, BigInt(fromguid), true);
  return r;
}

/** The END record of the stream of snapshot `toguid`. */
export function endRecord(toguid: string): Uint8Array {
  const r = new Uint8Array(RECORD_SIZE);
  const v = new DataView(r.buffer);
  v.setUint32(0, DRR_END, true);
  v.setBigUint64(40, BigInt(toguid), true);
  return r;
}
