/** Helpers for the store tests: request recording (SDK middleware, not a mock) and a tiny fault-injecting TCP proxy. */
import type { S3Client } from "@aws-sdk/client-s3";
import type { Socket, TCPSocketListener } from "bun";

export interface RecordedCall {
  command: string;
  input: Record<string, unknown>;
}

/** Record every command the client sends (before retries/serialisation). Real requests still go out. */
export function recordCalls(client: S3Client): RecordedCall[] {
  const calls: RecordedCall[] = [];
  client.middlewareStack.add(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    ((next: any, context: any) => async (args: any) => {
      calls.push({ command: String(context.commandName), input: args.input });
      return next(args);
    }) as never,
    { step: "initialize", name: `zrbTestRecorder${Math.random()}` },
  );
  return calls;
}

/** Deterministic pseudo-random bytes (xorshift), fast enough for tens of MiB. */
export function pseudoRandom(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, Math.floor(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = (i * 31 + seed) & 255;
  return out;
}

export function sha256Hex(b: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(b).digest("hex");
}

export async function readAll(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

type Mode = "head" | "reply" | "forward";
interface ConnState {
  mode: Mode;
  head: string;
  pending: Uint8Array[];
  upstream?: Socket<unknown>;
  outQueue: Uint8Array[];
  upQueue: Uint8Array[];
}

export interface FaultProxy {
  endpoint: string;
  /** Requests answered with the canned reply so far. */
  replied: number;
  /** Connections forwarded to the upstream so far. */
  forwarded: number;
  stop(): void;
}

/**
 * A TCP proxy on 127.0.0.1: the first `failFirst` connections whose first request line matches
 * `match` (default: any) get `reply`; other connections are piped to the upstream. Every request
 * is rewritten to `Connection: close`, so each connection carries exactly one request.
 */
export function faultProxy(opts: { upstreamPort: number; failFirst: number; reply: string; match?: RegExp }): FaultProxy {
  const state = { replied: 0, forwarded: 0 };
  const writeAll = (s: Socket<ConnState> | Socket<unknown>, q: Uint8Array[], chunk?: Uint8Array) => {
    if (chunk) q.push(chunk);
    while (q.length > 0) {
      const c = q[0]!;
      const n = s.write(c);
      if (n < c.byteLength) {
        q[0] = c.subarray(Math.max(0, n));
        return;
      }
      q.shift();
    }
  };
  const server: TCPSocketListener<ConnState> = Bun.listen<ConnState>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { mode: "head", head: "", pending: [], outQueue: [], upQueue: [] };
      },
      async data(s, chunk) {
        const d = s.data;
        const bytes = new Uint8Array(chunk);
        if (d.mode === "reply") return; // discard the rest of a refused request
        if (d.mode === "forward") {
          if (d.upstream) writeAll(d.upstream, d.upQueue, bytes);
          else d.pending.push(bytes);
          return;
        }
        d.head += Buffer.from(bytes).toString("latin1");
        d.pending.push(bytes);
        if (!d.head.includes("\r\n\r\n")) return;
        const requestLine = d.head.slice(0, d.head.indexOf("\r\n"));
        if (state.replied < opts.failFirst && (!opts.match || opts.match.test(requestLine))) {
          state.replied++;
          d.mode = "reply";
          s.write(opts.reply);
          s.end();
          return;
        }
        d.mode = "forward";
        state.forwarded++;
        // Force one request per connection (Connection: close), so every request is inspected.
        const all = Buffer.concat(d.pending.map((b) => Buffer.from(b)));
        const end = all.indexOf("\r\n\r\n");
        const headLines = all.subarray(0, end).toString("latin1").split("\r\n").filter((l) => !/^connection\s*:/i.test(l));
        headLines.push("Connection: close");
        d.pending = [Buffer.from(headLines.join("\r\n") + "\r\n\r\n", "latin1"), all.subarray(end + 4)];
        const up = await Bun.connect({
          hostname: "127.0.0.1",
          port: opts.upstreamPort,
          socket: {
            data(_u, resp) {
              writeAll(s, d.outQueue, new Uint8Array(resp));
            },
            drain(u) {
              writeAll(u, d.upQueue);
            },
            close() {
              s.end();
            },
            error() {
              s.end();
            },
          },
        });
        d.upstream = up;
        for (const p of d.pending) writeAll(up, d.upQueue, p);
        d.pending = [];
      },
      drain(s) {
        writeAll(s, s.data.outQueue);
      },
      close(s) {
        s.data.upstream?.end();
      },
      error(s) {
        s.data.upstream?.end();
      },
    },
  });
  return {
    endpoint: `http://127.0.0.1:${server.port}`,
    get replied() {
      return state.replied;
    },
    get forwarded() {
      return state.forwarded;
    },
    stop() {
      server.stop(true);
    },
  };
}

export function s3ErrorReply(status: string, code: string, message: string): string {
  const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>zrbtest</RequestId></Error>`;
  return (
    `HTTP/1.1 ${status}\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `x-amz-request-id: zrbtest\r\nConnection: close\r\n\r\n${body}`
  );
}
