/**
 * A loopback TCP proxy in front of radosgw that attacks zrb's S3 traffic the way a bad
 * uplink or a struggling provider would: per request it forwards, forwards late, answers
 * with a canned S3 error (503 SlowDown, 500 InternalError…), resets the connection, or cuts
 * the request off halfway through its body. Real HTTP, real radosgw behind it: no SDK mocks.
 *
 * Every forwarded request is rewritten to `Connection: close`, so each connection carries
 * exactly one request and every request passes through `decide`.
 */
import type { Socket, TCPSocketListener } from "bun";

export interface ProxyRequest {
  /** 1-based sequence number of the request. */
  n: number;
  method: string;
  /** Path and query, e.g. /bucket/zrb/data/...?partNumber=2&uploadId=... */
  path: string;
}

export type ProxyAction =
  | { kind: "forward"; delayMs?: number }
  /** Answer with a raw HTTP response (see s3Error) and close. */
  | { kind: "reply"; response: string }
  /** Close the client connection without answering (the client sees a reset / hang-up). */
  | { kind: "reset" }
  /** Forward the head and `afterBytes` bytes of the body, then cut both connections. */
  | { kind: "cut"; afterBytes: number };

export interface LoggedRequest extends ProxyRequest {
  action: ProxyAction["kind"];
}

export interface FaultProxy {
  endpoint: string;
  port: number;
  log: LoggedRequest[];
  /** Replace the decision function (e.g. to switch faults off for a rerun). */
  setDecide(d: (r: ProxyRequest) => ProxyAction): void;
  stop(): void;
}

interface Conn {
  mode: "head" | "wait" | "forward" | "drain" | "dead";
  /** For "reply" in "drain" mode: called once the request body has been read. */
  onDrained?: () => void;
  head: string;
  pending: Uint8Array[];
  toClient: Uint8Array[];
  toUpstream: Uint8Array[];
  upstream?: Socket<undefined>;
  /** For "cut": body bytes still allowed through. */
  budget: number;
}

function writeAll(s: Socket<any>, q: Uint8Array[], chunk?: Uint8Array): void {
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
}

export const forward: ProxyAction = { kind: "forward" };

export function startFaultProxy(opts: { upstreamPort: number; decide?: (r: ProxyRequest) => ProxyAction }): FaultProxy {
  let decide = opts.decide ?? (() => forward);
  const log: LoggedRequest[] = [];
  let seq = 0;

  const toUpstream = (d: Conn, bytes: Uint8Array) => {
    if (d.budget !== Infinity) {
      if (d.budget <= 0) return;
      if (bytes.length > d.budget) bytes = bytes.subarray(0, d.budget);
      d.budget -= bytes.length;
    }
    if (d.upstream) writeAll(d.upstream, d.toUpstream, bytes);
    else d.pending.push(bytes);
  };

  const server: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { mode: "head", head: "", pending: [], toClient: [], toUpstream: [], budget: Infinity };
      },
      data(s, chunk) {
        const d = s.data;
        const bytes = new Uint8Array(chunk);
        if (d.mode === "dead") return;
        if (d.mode === "drain") {
          d.budget -= bytes.length;
          if (d.budget <= 0) d.onDrained?.();
          return;
        }
        if (d.mode === "forward" || d.mode === "wait") {
          toUpstream(d, bytes);
          return;
        }
        d.head += Buffer.from(bytes).toString("latin1");
        d.pending.push(bytes);
        const end = d.head.indexOf("\r\n\r\n");
        if (end < 0) return;
        const [method = "", path = ""] = d.head.slice(0, d.head.indexOf("\r\n")).split(" ");
        const req: ProxyRequest = { n: ++seq, method, path };
        let act: ProxyAction;
        try {
          act = decide(req);
        } catch {
          act = forward;
        }
        log.push({ ...req, action: act.kind });
        if (act.kind === "reply") {
          // Like a real server: answer once the request body is in (unless the client waits
          // for "100 Continue"), so the client reads the answer instead of a reset mid-write.
          const head = d.head.slice(0, end);
          const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
          const waits = /\r\nexpect:\s*100-continue/i.test(head);
          const have = Buffer.byteLength(d.head, "latin1") - (end + 4);
          const answer = () => {
            d.mode = "dead";
            s.write(act.response);
            s.end();
          };
          if (waits || have >= len) answer();
          else {
            d.mode = "drain";
            d.budget = len - have;
            d.onDrained = answer;
          }
          return;
        }
        if (act.kind === "reset") {
          d.mode = "dead";
          s.terminate();
          return;
        }
        // Forward: one request per connection, so every request is seen by decide().
        const all = Buffer.concat(d.pending.map((b) => Buffer.from(b)));
        const hEnd = all.indexOf("\r\n\r\n");
        const lines = all.subarray(0, hEnd).toString("latin1").split("\r\n").filter((l) => !/^connection\s*:/i.test(l));
        lines.push("Connection: close");
        d.pending = [];
        const headBytes = new Uint8Array(Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1"));
        const body = new Uint8Array(all.subarray(hEnd + 4));
        d.pending.push(headBytes);
        if (act.kind === "cut") d.budget = act.afterBytes;
        d.mode = "wait";
        if (body.length) toUpstream(d, body);
        const connect = async () => {
          if (d.mode === "dead") return;
          try {
            const up = await Bun.connect({
              hostname: "127.0.0.1",
              port: opts.upstreamPort,
              socket: {
                data(_u, resp) {
                  if (d.mode !== "dead") writeAll(s, d.toClient, new Uint8Array(resp));
                },
                drain(u) {
                  writeAll(u, d.toUpstream);
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
            d.mode = "forward";
            for (const p of d.pending) writeAll(up, d.toUpstream, p);
            d.pending = [];
            if (act.kind === "cut") {
              // Let the allowed bytes go out, then cut both sides.
              setTimeout(() => {
                d.mode = "dead";
                up.terminate();
                s.terminate();
              }, 50);
            }
          } catch {
            s.end();
          }
        };
        const delay = act.kind === "forward" ? act.delayMs ?? 0 : 0;
        if (delay > 0) setTimeout(connect, delay);
        else void connect();
      },
      drain(s) {
        writeAll(s, s.data.toClient);
      },
      close(s) {
        s.data.mode = "dead";
        s.data.upstream?.end();
      },
      error(s) {
        s.data.mode = "dead";
        s.data.upstream?.end();
      },
    },
  });
  return {
    endpoint: `http://127.0.0.1:${server.port}`,
    port: server.port,
    log,
    setDecide(d) {
      decide = d;
    },
    stop() {
      server.stop(true);
    },
  };
}

/** A raw S3 error response, e.g. s3Error(503, "Slow Down", "SlowDown", "Please reduce your request rate."). */
export function s3Error(status: number, reason: string, code: string, message: string): string {
  const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>zrbfault</RequestId></Error>`;
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `x-amz-request-id: zrbfault\r\nConnection: close\r\n\r\n${body}`
  );
}

export const slowDown = () => s3Error(503, "Slow Down", "SlowDown", "Please reduce your request rate.");
export const internalError = () => s3Error(500, "Internal Server Error", "InternalError", "We encountered an internal error. Please try again.");

/** Seeded PRNG (mulberry32) so that fault schedules are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
