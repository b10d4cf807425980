/**
 * The bench's WAN emulator (test/helpers/wan.ts) shapes what it carries: a round trip takes
 * about two one-way delays, one connection stays near its cap, several connections together
 * near the link's. Bounds are generous (a shared 2-core machine); speed claims stay in the bench.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, createServer, type Server } from "node:net";
import { startWan } from "../helpers/wan.ts";

let sink: Server;
let port = 0;

beforeAll(async () => {
  // Answers each connection with the number of bytes it received, once the client has ended.
  sink = createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on("data", (b) => (n += b.length));
    s.on("end", () => s.end(String(n)));
  });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", () => r()));
  port = (sink.address() as { port: number }).port;
});

afterAll(() => sink.close());

/** Send `bytes` through the proxy; the seconds until the sink's count came back, and the count. */
function push(wanPort: number, bytes: number): Promise<{ s: number; got: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const c = connect(wanPort, "127.0.0.1");
    const buf = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    let answer = "";
    const go = () => {
      while (sent < bytes) {
        const b = buf.subarray(0, Math.min(buf.length, bytes - sent));
        sent += b.length;
        if (!c.write(b)) return void c.once("drain", go);
      }
      c.end();
    };
    c.on("connect", go);
    c.on("data", (d) => (answer += d));
    c.on("error", reject);
    c.on("close", () => resolve({ s: (performance.now() - t0) / 1000, got: Number(answer) }));
  });
}

test("delay, the cap per connection and the link's cap hold roughly; every byte arrives", async () => {
  const wan = await startWan({ targetHost: "127.0.0.1", targetPort: port, delayMs: 50, connBps: 4e6, linkBps: 8e6, idleMs: 10_000 });
  try {
    // A tiny exchange: connect, one byte there, the count back ≈ 2 × 50 ms one way at least.
    const rt = await push(wan.port, 1);
    expect(rt.got).toBe(1);
    expect(rt.s).toBeGreaterThanOrEqual(0.095);
    // One connection, 2 MB at 4 MB/s ≈ 0.5 s (+ 0.1 s of delay).
    const one = await push(wan.port, 2e6);
    expect(one.got).toBe(2e6);
    expect(one.s).toBeGreaterThan(0.45);
    expect(one.s).toBeLessThan(2.5);
    // Four connections at 4 MB/s each, but the link carries 8 MB/s: 4 MB ≈ 0.5 s, not 0.25 s.
    const t0 = performance.now();
    const four = await Promise.all(Array.from({ length: 4 }, () => push(wan.port, 1e6)));
    const s = (performance.now() - t0) / 1000;
    expect(four.map((x) => x.got)).toEqual([1e6, 1e6, 1e6, 1e6]);
    expect(s).toBeGreaterThan(0.45);
    expect(s).toBeLessThan(2.5);
    expect(wan.bytes().up).toBe(1 + 2e6 + 4e6);
  } finally {
    await wan.close();
  }
}, 20_000);
