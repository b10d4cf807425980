/**
 * The shared sender of a backup to several stores (pipeline/backup/shared-send.ts), with real
 * processes in the sender's place: every branch gets every byte; a branch dropped mid-stream
 * leaves the others whole; the sender runs only as fast as its slowest reader; the stores meet
 * before their sends, and only the stores asking for the same stream share one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { SendHub, tee } from "../../../src/pipeline/backup/shared-send.ts";
import type { StreamedSource } from "../../../src/pipeline/backup/send.ts";

let dir: string;
let file: string;
let want: string;
const SIZE = 6 << 20;

const spawn = (argv: string[]): StreamedSource => Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Read a branch to its end (or `limit` bytes, then cancel it). */
async function drain(s: ReadableStream<Uint8Array>, limit = Infinity): Promise<Uint8Array> {
  const r = s.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { value, done } = await r.read();
    if (done) break;
    parts.push(value);
    n += value.length;
    if (n >= limit) {
      await r.cancel();
      break;
    }
  }
  return Buffer.concat(parts);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "zrb-tee-"));
  file = join(dir, "stream");
  const bytes = randomBytes(SIZE);
  writeFileSync(file, bytes);
  want = sha(bytes);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("tee", () => {
  test("three readers each get the whole stream and the sender's exit status", async () => {
    const bs = tee(spawn(["cat", file]), 3, 1 << 20);
    const got = await Promise.all(bs.map((b) => drain(b.stdout)));
    expect(got.map(sha)).toEqual([want, want, want]);
    expect(await Promise.all(bs.map((b) => b.exited))).toEqual([0, 0, 0]);
  });

  test("a reader dropped mid-stream: the others get every byte, the dropped one stops waiting at once", async () => {
    const bs = tee(spawn(["cat", file]), 2, 1 << 20);
    const [cut, whole] = await Promise.all([drain(bs[0]!.stdout, 1 << 20), drain(bs[1]!.stdout)]);
    expect(cut.length).toBeLessThan(SIZE);
    expect(sha(whole)).toBe(want);
    expect(await bs[0]!.exited).toBe(143);
    expect(await bs[1]!.exited).toBe(0);
  });

  test("kill of one branch drops it; kill of the last stops the sender", async () => {
    const src = Bun.spawn(["cat", "/dev/zero"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const bs = tee(src, 2, 1 << 20);
    bs[0]!.kill();
    expect(await bs[0]!.exited).toBe(143);
    const r = bs[1]!.stdout.getReader();
    for (let n = 0; n < 4 << 20; ) n += (await r.read()).value!.length;
    expect(src.exitCode).toBeNull(); // the other branch still reads it
    bs[1]!.kill();
    expect(await src.exited).not.toBe(0);
  });

  test("the sender is read only as fast as the slowest reader: an idle branch holds the others at the queue's size", async () => {
    const queue = 1 << 20;
    const src = spawn(["cat", "/dev/zero"]);
    const bs = tee(src, 2, queue);
    const r = bs[0]!.stdout.getReader();
    let n = 0;
    for (;;) {
      const next = await Promise.race([r.read(), Bun.sleep(300).then(() => "idle" as const)]);
      if (next === "idle") break;
      n += next.value!.length;
      if (n > 64 << 20) break;
    }
    // Branch 1 never read: the fast branch got the queue's worth and a read more, not the stream.
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(queue + (2 << 20));
    bs[0]!.kill();
    bs[1]!.kill();
    await src.exited;
  });

  test("a failing sender: every branch ends and reports its exit status and stderr", async () => {
    const bs = tee(spawn(["sh", "-c", `head -c 100000 ${file}; echo 'cannot send: dataset is busy' >&2; exit 3`]), 2, 1 << 20);
    const got = await Promise.all(bs.map((b) => drain(b.stdout)));
    expect(got.map((g) => g.length)).toEqual([100000, 100000]);
    expect(await Promise.all(bs.map((b) => b.exited))).toEqual([3, 3]);
    expect(await Promise.all(bs.map((b) => new Response(b.stderr).text()))).toEqual(["cannot send: dataset is busy\n", "cannot send: dataset is busy\n"]);
  });
});

describe("SendHub", () => {
  const plan = (snapshot: string, from?: string) => ({ snapshot, from, flags: [] as string[] });
  function hub(names: string[], waitMs = 10_000) {
    const spawned: string[] = [];
    const h = new SendHub(names, {
      waitMs,
      spawn: (p) => {
        spawned.push(p.snapshot);
        return spawn(["cat", file]);
      },
    });
    return { h, spawned };
  }

  test("two stores asking for the same stream: one sender, both get it; a third with another base gets its own", async () => {
    const { h, spawned } = hub(["hot", "cold", "far"]);
    const [a, b, c] = ["hot", "cold", "far"].map((n) => h.member(n));
    const pa = a!.open(plan("p/d@l1"));
    const pb = b!.open(plan("p/d@l1"));
    await Bun.sleep(50);
    expect(spawned).toEqual([]); // far has not asked yet
    const pc = c!.open(plan("p/d@l1", "p/d@l0"));
    const [sa, sb, sc] = await Promise.all([pa, pb, pc]);
    expect(spawned).toEqual(["p/d@l1", "p/d@l1"]);
    expect(h.started.map((s) => s.stores)).toEqual([["hot", "cold"], ["far"]]);
    const got = await Promise.all([sa!, sb!, sc!].map((s) => drain(s.stdout)));
    expect(got.map(sha)).toEqual([want, want, want]);
  });

  test("a store that ends without a send (already backed up, failed) does not hold the others", async () => {
    const { h, spawned } = hub(["hot", "cold"]);
    const p = h.member("hot").open(plan("p/d@l1"));
    await Bun.sleep(50);
    expect(spawned).toEqual([]);
    h.member("cold").leave();
    expect(sha(await drain((await p).stdout))).toBe(want);
    expect(h.started).toEqual([{ key: expect.any(String), stores: ["hot"] }]);
  });

  test("a store that never gets to its send: the others start without it after the wait", async () => {
    const { h } = hub(["hot", "cold"], 200);
    const t0 = performance.now();
    const s = await h.member("hot").open(plan("p/d@l1"));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    expect(sha(await drain(s.stdout))).toBe(want);
  });

  test("an interrupt while waiting rejects the request and starts nothing", async () => {
    const { h, spawned } = hub(["hot", "cold"]);
    const ac = new AbortController();
    const p = h.member("hot").open(plan("p/d@l1"), ac.signal);
    ac.abort(new Error("SIGTERM"));
    await expect(p).rejects.toThrow();
    h.member("cold").leave();
    expect(spawned).toEqual([]);
  });
});
