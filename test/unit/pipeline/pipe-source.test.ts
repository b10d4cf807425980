/**
 * zrb's own pipe for the sender's stdout (pipe-source.ts, util/os-pipe.ts): the bytes come
 * through exactly, from a fast sender (reads made at once) and a slow one (reads that wait);
 * the descriptor is closed at the end, on cancel (only once a waiting read has returned), and
 * when the spawn fails; the child does not keep zrb's write end, so its exit ends the stream.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PipeReader, readerOf, spawnPiped } from "../../../src/pipeline/backup/pipe-source.ts";
import { openPipe } from "../../../src/util/os-pipe.ts";

let dir: string;
let file: string;
let data: Uint8Array;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "zrb-pipe-"));
  file = join(dir, "src.bin");
  data = new Uint8Array(5 * (1 << 20) + 12345);
  for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(data.length, i + 65536)));
  writeFileSync(file, data);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Our pipes: the descriptors of this process that are pipes. */
const pipes = () =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith("pipe:");
    } catch {
      return false;
    }
  }).length;

const piped = (argv: string[]) => spawnPiped((fd) => Bun.spawn(argv, { stdin: "ignore", stdout: fd, stderr: "pipe" }))!;

/** Everything the reader gives, copied before the next read (as the chunker does). */
async function drain(r: { read(): Promise<{ done: boolean; value?: Uint8Array }> }): Promise<{ bytes: Uint8Array; reads: number }> {
  const parts: Uint8Array[] = [];
  let reads = 0;
  for (;;) {
    const { done, value } = await r.read();
    if (done) break;
    reads++;
    parts.push(value!.slice());
  }
  return { bytes: Buffer.concat(parts), reads };
}

describe("zrb's own pipe for the sender's stdout", () => {
  test("a fast sender: every byte, in order; the pipe is closed at the end", async () => {
    const before = pipes();
    const s = piped(["cat", file]);
    expect("own" in s.stdout).toBe(true);
    const { bytes } = await drain(readerOf(s.stdout));
    expect(await s.exited).toBe(0);
    expect(Buffer.compare(Buffer.from(bytes), Buffer.from(data))).toBe(0);
    // stderr's pipe is the runtime's: read it to its end so it is closed too.
    await new Response(s.stderr).text();
    expect(pipes()).toBe(before);
  });

  test("a slow sender: reads that wait for bytes give them as they come, and the end", async () => {
    const s = piped(["sh", "-c", "printf one; sleep 0.3; printf two; sleep 0.3; printf three"]);
    const r = readerOf(s.stdout);
    const got: string[] = [];
    for (;;) {
      const { done, value } = await r.read();
      if (done) break;
      got.push(new TextDecoder().decode(value));
    }
    expect(got.join("")).toBe("onetwothree");
    expect(got.length).toBeGreaterThanOrEqual(3);
    expect(await s.exited).toBe(0);
  });

  test("the child's exit ends the stream: zrb keeps no write end (a grandchild that outlives it would)", async () => {
    const s = piped(["sh", "-c", "printf x"]);
    const { bytes } = await drain(readerOf(s.stdout));
    expect(new TextDecoder().decode(bytes)).toBe("x");
  });

  test("cancel while a read waits: the descriptor is closed only when that read has returned", async () => {
    const before = pipes();
    const s = piped(["sleep", "30"]);
    const r = readerOf(s.stdout) as PipeReader;
    const pending = r.read();
    await Bun.sleep(100);
    await r.cancel();
    // The read is still waiting in another thread: its descriptor must not be reused yet.
    expect(pipes()).toBeGreaterThan(before);
    s.kill("SIGKILL");
    expect(await pending).toEqual({ done: true, value: undefined });
    await s.exited;
    await new Response(s.stderr).text();
    expect(pipes()).toBe(before);
    expect(await r.read()).toEqual({ done: true, value: undefined });
  });

  test("cancel before any read closes the pipe; the sender then gets EPIPE", async () => {
    const before = pipes();
    const s = piped(["sh", "-c", "sleep 0.2; while :; do printf xxxxxxxxxxxxxxxx || exit 7; done"]);
    await readerOf(s.stdout).cancel();
    expect(await s.exited).not.toBe(0);
    await new Response(s.stderr).text();
    expect(pipes()).toBe(before);
  });

  test("a spawn that throws leaves no descriptor behind", () => {
    const before = pipes();
    expect(() => piped(["/nonexistent/zrb-no-such-program"])).toThrow();
    expect(pipes()).toBe(before);
  });

  test("the pipe is a MiB deep, so one read takes up to a MiB from a sender that is ahead", async () => {
    const p = openPipe()!;
    const { closeSync, writeSync } = await import("node:fs");
    const chunk = new Uint8Array(1 << 20);
    // A 64 KiB pipe would block this write (no reader yet); a MiB-deep one takes all of it.
    expect(writeSync(p.write, chunk)).toBe(chunk.length);
    closeSync(p.write);
    const r = new PipeReader(p.read);
    const first = await r.read();
    expect(first.done).toBe(false);
    expect(first.value!.length).toBe(1 << 20);
    expect((await r.read()).done).toBe(true);
  });
});
