/**
 * Downloading one part (src/pipeline/restore/fetch.ts) over several connections: ranged GETs of
 * the real local store, counted by a wrapper. The bytes land in order and exactly, the ranges
 * cover the part with the last one open-ended, no more than `connections` are in flight, progress
 * hears of bytes while ranges are still outstanding, and the old checks hold: an object longer
 * than its manifest, a changed byte (SHA-256), a missing object. PartFetcher: the part before a
 * step's short last part tapers too, and the scratch never holds more than `ahead` files with the
 * spare a received part leaves for the next download.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, createHash } from "node:crypto";
import { downloadPart, PartFetcher, RANGE_BYTES, rangesOf } from "../../../src/pipeline/restore/fetch.ts";
import { startThreads, type Threads } from "../../../src/pipeline/parallel/index.ts";
import { LocalStore } from "../../../src/store/local.ts";
import type { ObjectStore } from "../../../src/store/store.ts";
import type { Manifest, ManifestPart } from "../../../src/records/manifest.ts";
import { ExitCode } from "../../../src/util/errors.ts";

const STEP = 64 * 1024;
let dir: string;
let threads: Threads;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zrb-fetch-"));
  threads = await startThreads(2, (e) => {
    throw e;
  });
});
afterAll(() => {
  threads?.terminate();
  rmSync(dir, { recursive: true, force: true });
});

/** The local store, counting GETs, their ranges and how many are open at once. */
function counting(inner: ObjectStore) {
  const seen = { gets: [] as ({ start: number; end?: number } | undefined)[], open: 0, maxOpen: 0 };
  const store = Object.create(inner) as ObjectStore;
  store.getStream = async (key, range) => {
    seen.gets.push(range);
    const s = await inner.getStream(key, range);
    seen.open++;
    seen.maxOpen = Math.max(seen.maxOpen, seen.open);
    const reader = s.getReader();
    return new ReadableStream<Uint8Array>({
      async pull(ctl) {
        await Bun.sleep(2); // a slow network: ranges overlap
        const r = await reader.read();
        if (r.done) {
          seen.open--;
          ctl.close();
        } else ctl.enqueue(r.value);
      },
    });
  };
  return { store, seen };
}

async function setup(name: string, body: Uint8Array, manifestSize = body.length, sha = createHash("sha256").update(body).digest("hex")) {
  const local = new LocalStore(join(dir, `store-${name}`));
  const key = `data/tank/x/level0/${name}/part-000000.age`;
  await local.put(key, body);
  const p: ManifestPart = { index: 0, key, plainSize: manifestSize, cipherSize: manifestSize, sha256: sha, blake3: "" };
  const m = { backupId: name, parts: [p] } as unknown as Manifest;
  return { local, p, m, path: join(dir, `${name}.part`) };
}

/** `bodies` stored in a local store as the parts of backup `name`, and a manifest of them. */
async function storedParts(name: string, bodies: Uint8Array[]) {
  const local = new LocalStore(join(dir, `store-${name}`));
  const parts: ManifestPart[] = [];
  for (const [index, body] of bodies.entries()) {
    const key = `data/tank/x/level0/${name}/part-00000${index}.age`;
    await local.put(key, body);
    parts.push({ index, key, plainSize: body.length, cipherSize: body.length, sha256: createHash("sha256").update(body).digest("hex"), blake3: "" });
  }
  return { local, parts, m: { backupId: name, parts } as unknown as Manifest };
}

describe("rangesOf", () => {
  const lens = (rs: { start: number; end?: number }[], size: number) => rs.map((r) => (r.end ?? size - 1) - r.start + 1);
  test("staggered at the start, contiguous, the last open-ended; a small part plain", () => {
    const size = 10_300;
    const rs = rangesOf(size, 1000, 4);
    expect(lens(rs, size)).toEqual([250, 500, 750, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 800]);
    expect(rs.every((r, i) => r.start === (i ? rs[i - 1]!.end! + 1 : 0))).toBe(true);
    expect(rs.at(-1)!.end).toBeUndefined();
    expect(lens(rangesOf(2500, 1000), 2500)).toEqual([1000, 1000, 500]);
  });
  test("near the step's end each range is a connections-th of what the step has left, never below step/16 — also in a part followed by a short one", () => {
    const size = 10_000;
    // 4 connections, the last part: the last 4000 bytes are tapered.
    const last = lens(rangesOf(size, 1000, 0, { connections: 4, after: 0 }), size);
    expect(last.slice(0, 6)).toEqual([1000, 1000, 1000, 1000, 1000, 1000]);
    expect(last.slice(6, 9)).toEqual([1000, 750, 563]); // 4000/4, 3000/4, 2250/4 (rounded up)
    expect(last.every((l, i) => i === 0 || l <= last[i - 1]!)).toBe(true);
    expect(Math.min(...last.slice(0, -1))).toBeGreaterThanOrEqual(63);
    expect(last.reduce((a, b) => a + b, 0)).toBe(size);
    // Followed by 1500 bytes in the step: its own end is tapered already (2500 left at 9000).
    const before = lens(rangesOf(size, 1000, 0, { connections: 4, after: 1500 }), size);
    expect(before.at(-2)).toBeLessThan(1000);
    expect(before.reduce((a, b) => a + b, 0)).toBe(size);
    // Far from the step's end: plain.
    expect(lens(rangesOf(size, 1000, 0, { connections: 4, after: 100_000 }), size).slice(0, -1).every((l) => l === 1000)).toBe(true);
  });
});

describe("downloadPart over several connections", () => {
  test("3.5 ranges with 3 connections: exact bytes in order, staggered ranges cover it (last open-ended), at most 3 open, progress before the end", async () => {
    const body = randomBytes(3 * STEP + STEP / 2);
    const { local, p, m, path } = await setup("ranged", body);
    const { store, seen } = counting(local);
    const progress: number[] = [];
    const getsAtFirstProgress: number[] = [];
    const onBytes = (n: number) => {
      if (progress.length === 0) getsAtFirstProgress.push(seen.gets.length);
      progress.push(n);
    };
    await downloadPart(store, m, p, path, threads, { connections: 3, rangeBytes: STEP, onBytes });
    expect(Buffer.compare(readFileSync(path), body)).toBe(0);
    // The first 3 ranges (one per connection) staggered: a third, two thirds, then whole ranges,
    // so the connections do not all end, and wait for their next round trip, at once.
    // Whole ranges after them; the last, open-ended, holds what is left over (no taper asked).
    const [a, b] = [Math.ceil(STEP / 3), Math.ceil((2 * STEP) / 3)];
    const ends = [a, a + b, a + b + STEP, a + b + 2 * STEP];
    expect(seen.gets).toEqual([...ends.map((e, i) => ({ start: i ? ends[i - 1]! : 0, end: e - 1 })), { start: ends[3]! }]);
    expect(seen.maxOpen).toBeLessThanOrEqual(3);
    expect(seen.maxOpen).toBeGreaterThanOrEqual(2);
    expect(progress.reduce((a, b) => a + b, 0)).toBe(body.length);
    expect(getsAtFirstProgress).toEqual([3]); // progress moved before the last range was even asked for
    rmSync(path);
  });

  test("one connection, or a part no larger than a range: one plain GET", async () => {
    const body = randomBytes(STEP);
    const { local, p, m, path } = await setup("single", body);
    for (const connections of [1, 4]) {
      const { store, seen } = counting(local);
      await downloadPart(store, m, p, path, threads, { connections, rangeBytes: STEP });
      expect(seen.gets).toEqual([undefined]);
      expect(Buffer.compare(readFileSync(path), body)).toBe(0);
      rmSync(path);
    }
  });

  test("ranges that end exactly at the part's end: no range asked past it (a store refuses one)", async () => {
    expect(rangesOf(3000, 1000)).toEqual([{ start: 0, end: 999 }, { start: 1000, end: 1999 }, { start: 2000 }]);
    const body = randomBytes(STEP * 2 + STEP / 2);
    const { local, p, m, path } = await setup("exact", body);
    await downloadPart(local, m, p, path, threads, { connections: 2, rangeBytes: STEP });
    expect(Buffer.compare(readFileSync(path), body)).toBe(0);
    rmSync(path);
  });

  test("an object longer than its manifest says is refused (exit 7), fetched by ranges or in one GET", async () => {
    const body = randomBytes(2 * STEP + 10);
    const { local, p, m, path } = await setup("longer", body, 2 * STEP);
    for (const connections of [1, 2])
      await expect(downloadPart(local, m, p, path, threads, { connections, rangeBytes: STEP })).rejects.toMatchObject({ exitCode: ExitCode.INTEGRITY, message: expect.stringContaining("larger than") });
  });

  test("an object even one byte shorter than its manifest says is the store's (exit 6, how many bytes came), by ranges or in one GET", async () => {
    const body = randomBytes(2 * STEP + 10);
    const { local, p, m, path } = await setup("shorter", body, body.length + 1);
    for (const connections of [1, 2])
      await expect(downloadPart(local, m, p, path, threads, { connections, rangeBytes: STEP })).rejects.toMatchObject({ exitCode: ExitCode.STORE, message: expect.stringContaining(`the store returned ${body.length} of ${body.length + 1} bytes`) });
  });

  test("a changed byte fails the SHA-256 after one more download (exit 7); a missing object is the store's (exit 6)", async () => {
    const body = randomBytes(3 * STEP);
    const { local, p, m, path } = await setup("changed", body, body.length, "0".repeat(64));
    const { store, seen } = counting(local);
    await expect(downloadPart(store, m, p, path, threads, { connections: 2, rangeBytes: STEP })).rejects.toMatchObject({ exitCode: ExitCode.INTEGRITY, message: expect.stringContaining("SHA-256") });
    expect(seen.gets.length).toBe(8); // twice four ranges (half, whole, whole, the half left)
    const gone = { ...p, key: "data/tank/x/level0/none/part-000000.age" };
    await expect(downloadPart(local, m, gone, join(dir, "gone.part"), threads, { connections: 2, rangeBytes: STEP })).rejects.toMatchObject({ exitCode: ExitCode.STORE, message: expect.stringContaining("missing") });
  });
});

describe("PartFetcher", () => {
  test("a step ending in a short part: the part before it tapers its last ranges too", async () => {
    const MiB = 1024 * 1024;
    const bodies = [randomBytes(14 * MiB), randomBytes(MiB)];
    const { local, parts, m } = await storedParts("fetcher", bodies);
    const gets: { key: string; start: number; end?: number }[] = [];
    const store = Object.create(local) as ObjectStore;
    store.getStream = async (key, range) => {
      gets.push({ key, start: range?.start ?? 0, end: range?.end });
      return local.getStream(key, range);
    };
    const scratch = mkdtempSync(join(dir, "fetcher-"));
    const f = new PartFetcher(store, m, scratch, 2, threads, undefined, { connections: 3 });
    for (const [i, body] of bodies.entries()) {
      expect(Buffer.compare(readFileSync(await f.take(i)), body)).toBe(0);
      f.release(i);
    }
    // Part 0's ranges in order: two staggered ones (growing), then — the step has less than
    // 3 connections × 4 MiB left from there on — each a third of what the step has left: none
    // whole, each no larger than the one before. Without the short part after it counted, they
    // would be whole 4 MiB ranges to the end.
    const first = gets.filter((g) => g.key === parts[0]!.key).sort((a, b) => a.start - b.start);
    const lens = first.slice(0, -1).map((g) => g.end! - g.start + 1);
    expect(lens.slice(0, 2)).toEqual([Math.ceil(RANGE_BYTES / 3), Math.ceil((2 * RANGE_BYTES) / 3)]);
    const tail = lens.slice(2);
    expect(tail[0]).toBe(Math.ceil((15 * MiB - 4 * MiB) / 3));
    expect(tail.length).toBeGreaterThanOrEqual(4);
    expect(tail.every((l, i) => l < RANGE_BYTES && (i === 0 || l <= tail[i - 1]!))).toBe(true);
    rmSync(scratch, { recursive: true, force: true });
  });
});

describe("PartFetcher scratch", () => {
  test("never more than `ahead` files in the scratch, the spare a received part leaves for the next download included; none left after the last", async () => {
    const bodies = Array.from({ length: 6 }, (_, i) => randomBytes(300_000 + i));
    const { local, m } = await storedParts("scratch", bodies);
    const scratch = mkdtempSync(join(dir, "scratch-"));
    const f = new PartFetcher(local, m, scratch, 2, threads, undefined, { connections: 2 });
    let most = 0;
    for (const [i, body] of bodies.entries()) {
      expect(Buffer.compare(readFileSync(await f.take(i)), body)).toBe(0);
      f.release(i);
      most = Math.max(most, readdirSync(scratch).length);
      await Bun.sleep(5); // the next download takes the slot (and the spare)
      most = Math.max(most, readdirSync(scratch).length);
    }
    expect(most).toBeGreaterThanOrEqual(1);
    expect(most).toBeLessThanOrEqual(2);
    expect(readdirSync(scratch)).toEqual([]);
    rmSync(scratch, { recursive: true, force: true });
  });

  test("once the downloads are stopped (a failed step), a part released after is deleted, not kept for a download that will not come", async () => {
    const bodies = Array.from({ length: 4 }, (_, i) => randomBytes(200_000 + i));
    const { local, m } = await storedParts("stopped", bodies);
    const scratch = mkdtempSync(join(dir, "stopped-"));
    const f = new PartFetcher(local, m, scratch, 1, threads, undefined, { connections: 1 });
    expect(Buffer.compare(readFileSync(await f.take(0)), bodies[0]!)).toBe(0);
    f.stop();
    f.release(0);
    await Bun.sleep(20);
    expect(readdirSync(scratch)).toEqual([]);
    rmSync(scratch, { recursive: true, force: true });
  });
});
