/**
 * A tree run's Worker pool (src/pipeline/parallel/pool.ts): a clean lease is handed back and
 * reused by the next child; a lease handed back dirty (a run buffer still out) stops the
 * Workers and the next child gets fresh ones; two leases at once are a bug; close() stops it.
 * A spare file one child kept for its next part (FileWriter.recycle) goes when its lease does.
 * Also the ranked Semaphore the shared connections use: lower ranks first, FIFO within a rank.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ThreadPool, withThreadPool } from "../../../src/pipeline/parallel/pool.ts";
import { Semaphore } from "../../../src/util/semaphore.ts";

test("a clean lease is reused; a dirty one is replaced; leases do not overlap; the pool closes", async () => {
  let fatal = 0;
  let kept: ThreadPool | undefined;
  await withThreadPool(1, async (pool) => {
    kept = pool;
    const a = await pool.lease(() => fatal++);
    const digest = a.crypto.digest(a.crypto.newHasher());
    expect(await digest).toMatch(/^[0-9a-f]{64}$/);
    await expect(pool.lease(() => {})).rejects.toThrow(/two runs at once/);
    a.terminate();
    a.terminate(); // twice is harmless
    const b = await pool.lease(() => fatal++);
    expect(b.crypto).toBe(a.crypto); // the same Workers
    const slot = await b.buffers.take(); // a run buffer left out: not clean
    expect(slot).toBeGreaterThanOrEqual(0);
    b.terminate();
    const c = await pool.lease(() => fatal++);
    expect(c.crypto).not.toBe(a.crypto); // fresh Workers
    expect(c.buffers.idle).toBe(true);
    expect(await c.crypto.digest(c.crypto.newHasher())).toBe(await digest);
    c.terminate();
  });
  await expect(kept!.lease(() => {})).rejects.toThrow(/after it was closed/);
  expect(fatal).toBe(0);
}, 30_000);

test("a spare file kept by one child's run is deleted when its lease is handed back, not overwritten by the next child", async () => {
  const dir = mkdtempSync(join(tmpdir(), "zrb-pool-"));
  try {
    await withThreadPool(1, async (pool) => {
      const a = await pool.lease(() => {});
      const f = a.files.create(join(dir, "part-a"));
      const slot = await a.buffers.take();
      a.buffers.view(slot, 3).set([1, 2, 3]);
      f.write(slot, 3);
      expect((await f.close()).size).toBe(3);
      a.files.recycle(join(dir, "part-a"), true);
      expect(readdirSync(dir).filter((n) => n.startsWith(".zrb-spare-")).length).toBe(1);
      a.terminate();
      expect(readdirSync(dir)).toEqual([]);
      const b = await pool.lease(() => {});
      expect(b.files).toBe(a.files); // the same Workers: the spare was theirs
      const g = b.files.create(join(dir, "part-b"));
      expect((await g.close()).size).toBe(0);
      expect(existsSync(join(dir, "part-b"))).toBe(true);
      b.terminate();
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);

test("Semaphore: lower ranks first, FIFO within a rank and without ranks", async () => {
  const s = new Semaphore(1);
  await s.acquire();
  const order: string[] = [];
  const wait = (name: string, rank?: number) => s.acquire(rank).then(() => order.push(name));
  const all = [wait("plain"), wait("r5a", 5), wait("r2", 2), wait("r5b", 5), wait("plain2")];
  for (let i = 0; i < 5; i++) {
    s.release();
    await Bun.sleep(1);
  }
  await Promise.all(all);
  expect(order).toEqual(["r2", "r5a", "r5b", "plain", "plain2"]);
});
