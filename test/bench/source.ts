/**
 * The bench's bytes: incompressible, no two MiB alike (a random 16 MiB block XORed with a
 * different word per repetition), fast to make: the stream file and its first chunk, and the
 * files the e2e rows put in a zfs-fuse dataset.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { MiB } from "./proc.ts";

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
