/**
 * The bench's bytes: incompressible, no two MiB alike (a random 16 MiB block XORed with a
 * different word per repetition), fast to make: the stream file and its first chunk, and the
 * files the e2e rows put in a zfs-fuse dataset. The stream file starts and ends with the BEGIN
 * and END records of snapshot BENCH_GUID, as the restore path checks a `zfs send` stream's.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { RECORD_SIZE } from "../../src/zfs/stream.ts";
import { beginRecord, endRecord } from "../helpers/send-records.ts";
import { MiB } from "./proc.ts";

/** The guid of the snapshot the bench's stream claims to be (its backup state's and manifest's). */
export const BENCH_GUID = "1";
/** The smallest stream: its BEGIN and END records. */
export const MIN_STREAM = 2 * RECORD_SIZE;

const BLOCK = 16 * MiB;

/** Write `size` incompressible bytes to `path`; with `chunkPath`, its first `chunkSize` bytes there too. */
export function generate(path: string, size: number, chunkPath: string | null = null, chunkSize = 0): void {
  const base = new Uint8Array(BLOCK);
  for (let off = 0; off < BLOCK; off += 65536) crypto.getRandomValues(base.subarray(off, off + 65536));
  const base32 = new Uint32Array(base.buffer);
  const block = new Uint8Array(BLOCK);
  const block32 = new Uint32Array(block.buffer);
  const seed = new Uint32Array(1);
  const fd = openSync(path, "w", 0o600);
  const cfd = chunkPath ? openSync(chunkPath, "w", 0o600) : -1;
  try {
    for (let done = 0, k = 0; done < size; k++) {
      crypto.getRandomValues(seed);
      const x = (seed[0]! ^ Math.imul(k + 1, 0x9e3779b1)) >>> 0 || 1;
      for (let i = 0; i < block32.length; i++) block32[i] = base32[i]! ^ x;
      const n = Math.min(BLOCK, size - done);
      for (let off = 0; off < n; ) off += writeSync(fd, block, off, n - off);
      if (cfd >= 0 && done < chunkSize) {
        const m = Math.min(n, chunkSize - done);
        for (let off = 0; off < m; ) off += writeSync(cfd, block, off, m - off);
      }
      done += n;
    }
  } finally {
    closeSync(fd);
    if (cfd >= 0) closeSync(cfd);
  }
}

/** `bytes` written at offset `at` of `fd`, cut at `limit` (the file's size). */
function patch(fd: number, bytes: Uint8Array, at: number, limit: number): void {
  const b = bytes.subarray(0, Math.max(0, limit - at));
  for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off, at + off);
}

/**
 * Overwrite the stream file's first and last RECORD_SIZE bytes (size ≥ MIN_STREAM) with the BEGIN
 * and END records of BENCH_GUID; the chunk file (its first `chunkSize` bytes) gets what falls in it.
 */
export function frameAsSendStream(path: string, size: number, chunkPath: string | null = null, chunkSize = 0): void {
  const records: [Uint8Array, number][] = [
    [beginRecord(BENCH_GUID), 0],
    [endRecord(BENCH_GUID), size - RECORD_SIZE],
  ];
  for (const [file, limit] of [[path, size], ...(chunkPath ? [[chunkPath, chunkSize] as const] : [])] as const) {
    const fd = openSync(file, "r+");
    try {
      for (const [bytes, at] of records) patch(fd, bytes, at, limit);
    } finally {
      closeSync(fd);
    }
  }
}
