/**
 * A WAN on loopback, of our own (the kernel here has no netem): a TCP proxy on 127.0.0.1 that
 * makes every connection to it look like one across a long, thin link to `target`.
 *
 * Each direction of each connection is a little link: bytes are serialised at the connection's
 * rate (a token bucket per connection and direction) and at the whole link's (one bucket per
 * direction shared by every connection: a full-duplex line), then propagate for `delayMs`
 * before they are written out. So a request's first byte arrives
 * delayMs after it was sent, one connection never carries more than `connBps`, and all of them
 * together never more than `linkBps` each way. The buckets are virtual clocks (the time the
 * link is next free), so waiting connections are served in the order they asked.
 *
 * Backpressure: a socket is paused while more than HIGH_WATER bytes of it wait to be
 * serialised, or while its peer's write buffer is full — so a slow reader slows the sender, as
 * TCP would. The proxy listens on loopback only and closes itself after `idleMs` without a
 * connection (and on close()), so a bench that dies does not leave it behind.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface WanOptions {
  /** Where connections go (the real server). */
  targetHost: string;
  targetPort: number;
  /** One-way delay, each direction (ms). Default 20. */
  delayMs?: number;
  /** Bytes/s per connection and direction (0 = uncapped). */
  connBps?: number;
  /** Bytes/s of the whole link, each direction (0 = uncapped). */
  linkBps?: number;
  /** Close the proxy after this long without an open connection (ms). Default 120 000. */
  idleMs?: number;
  /** Hears the request line of each HTTP request sent through it (diagnosis: where a run's round trips go). */
  trace?: (requestLine: string) => void;
}

export interface Wan {
  port: number;
  endpoint: string;
  /** Bytes carried client → server and server → client so far. */
  bytes(): { up: number; down: number };
  /** Client connections open now. */
  connections(): number;
  close(): Promise<void>;
}

/** Serialisation slice: the bucket is charged this much at a time. */
const SLICE = 16 * 1024;
/** Bytes a direction may hold before its source is paused. */
const HIGH_WATER = 256 * 1024;
/** A bucket may run ahead of the clock by this much (its burst), in seconds. */
const BURST_S = 0.004;

/** A token bucket as a virtual clock: `take(n)` returns when the n bytes have been "sent". */
export class Bucket {
  private free = 0;
  constructor(private readonly bps: number) {}
  /** The time (performance.now ms) at which n more bytes are through. */
  reserve(n: number): number {
    if (!(this.bps > 0)) return 0;
    const now = performance.now();
    this.free = Math.max(this.free, now - BURST_S * 1000) + (n * 1000) / this.bps;
    return this.free;
  }
}

/** One direction of one connection: from `src` through the buckets, delayed, into `dst`. */
function direction(src: Socket, dst: Socket, buckets: Bucket[], delayMs: number, count: (n: number) => void): void {
  const waiting: Buffer[] = [];
  let waitingBytes = 0;
  let serialising = false;
  let ended = false;
  const flying: { at: number; buf: Buffer | null }[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;

  const deliver = () => {
    timer = undefined;
    const now = performance.now();
    while (flying.length && flying[0]!.at <= now + 0.5) {
      const f = flying.shift()!;
      if (f.buf === null) dst.end();
      else if (!dst.destroyed) dst.write(f.buf);
    }
    if (flying.length) timer = setTimeout(deliver, Math.max(0, flying[0]!.at - performance.now()));
  };
  const launch = (buf: Buffer | null, sentAt: number) => {
    flying.push({ at: sentAt + delayMs, buf });
    if (!timer) timer = setTimeout(deliver, Math.max(0, flying[0]!.at - performance.now()));
  };
  const serialise = async () => {
    if (serialising) return;
    serialising = true;
    while (waiting.length) {
      // The peer is not reading: hold on (TCP's window would fill).
      while (dst.writableLength > HIGH_WATER && !dst.destroyed) await new Promise((r) => dst.once("drain", r));
      const head = waiting[0]!;
      const buf = head.length > SLICE ? head.subarray(0, SLICE) : head;
      if (buf === head) waiting.shift();
      else waiting[0] = head.subarray(SLICE);
      waitingBytes -= buf.length;
      const doneAt = Math.max(0, ...buckets.map((b) => b.reserve(buf.length)));
      const wait = doneAt - performance.now();
      if (wait > 1) await Bun.sleep(wait);
      count(buf.length);
      launch(buf, performance.now());
      if (waitingBytes < HIGH_WATER && src.isPaused()) src.resume();
    }
    serialising = false;
    if (ended) launch(null, performance.now());
  };
  src.on("data", (b: Buffer) => {
    waiting.push(b);
    waitingBytes += b.length;
    if (waitingBytes >= HIGH_WATER) src.pause();
    void serialise();
  });
  src.on("end", () => {
    ended = true;
    if (!serialising) launch(null, performance.now());
  });
}

/** Start the emulator; resolves once it listens (on an ephemeral loopback port). */
export async function startWan(o: WanOptions): Promise<Wan> {
  const delayMs = o.delayMs ?? 20;
  const up = new Bucket(o.linkBps ?? 0);
  const down = new Bucket(o.linkBps ?? 0);
  const totals = { up: 0, down: 0 };
  const open = new Set<Socket>();
  let idle: ReturnType<typeof setTimeout> | undefined;
  let server!: Server;
  const close = () =>
    new Promise<void>((resolve) => {
      clearTimeout(idle);
      for (const s of open) s.destroy();
      server.close(() => resolve());
    });
  const armIdle = () => {
    clearTimeout(idle);
    if (open.size === 0) idle = setTimeout(() => void close(), o.idleMs ?? 120_000);
  };
  server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = connect({ port: o.targetPort, host: o.targetHost, allowHalfOpen: true });
    // Half-open allowed: each side's end is passed on after the bytes before it (direction()).
    for (const s of [client, upstream]) {
      open.add(s);
      s.setNoDelay(true);
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      s.on("close", () => {
        open.delete(s);
        armIdle();
      });
    }
    clearTimeout(idle);
    if (o.trace) client.on("data", (b: Buffer) => /^(GET|PUT|POST|HEAD|DELETE) /.test(b.toString("latin1", 0, 8)) && o.trace!(b.toString("latin1", 0, Math.max(0, b.indexOf(13)))));
    direction(client, upstream, [new Bucket(o.connBps ?? 0), up], delayMs, (n) => (totals.up += n));
    direction(upstream, client, [new Bucket(o.connBps ?? 0), down], delayMs, (n) => (totals.down += n));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  armIdle();
  const port = (server.address() as { port: number }).port;
  return { port, endpoint: `http://127.0.0.1:${port}`, bytes: () => ({ ...totals }), connections: () => open.size / 2, close };
}
