/**
 * A tree run's Worker pool (src/pipeline/parallel/pool.ts): a clean lease is handed back and
 * reused by the next child; a lease handed back dirty (a run buffer still out) stops the
 * Workers and the next child gets fresh ones; two leases at once are a bug; close() stops it.
 * Also the ranked Semaphore the shared connections use: lower ranks first, FIFO within a rank.
 */
import { expect, test } from "bun:test";
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
