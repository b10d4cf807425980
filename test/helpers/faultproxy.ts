/**
 * A loopback TCP proxy in front of radosgw that attacks zrb's S3 traffic the way a bad
 * uplink or a struggling provider would: per request it forwards, forwards late, answers
 * with a canned S3 error (503 SlowDown, 500 InternalError…), resets the connection, stalls
 * (never answers), cuts the request off halfway through its body, cuts the RESPONSE body off
 * after some bytes, drips the response body a byte a second, or lets the server do the work and
 * drops its answer. Real HTTP, real radosgw behind it: no SDK mocks.
 *
 * Every forwarded request is rewritten to `Connection: close`, so each connection carries
 * exactly one request and every request passes through `decide`.
 *
 * Honest bookkeeping, because tests count faults:
 *   - a forward delivers every byte: when upstream closes, the queue of bytes not yet written
 *     to the client is flushed before the client socket is ended;
 *   - the log says whether a planned fault actually took effect (`fault`): a cut of a body
 *     shorter than its budget is no fault, it is a forward;
 *   - a `decide()` that throws is a bug in the test: the request is reset, the error is kept
 *     in `errors`, and `check()` / `stop()` throw it so the test fails.
 */
import type { Socket, TCPSocketListener } from "bun";

export interface ProxyRequest {
  /** 1-based sequence number of the request. */
  n: number;
  method: string;
  /** Path and query, e.g. /bucket/zrb/data/...?partNumber=2&uploadId=... */
  path: string;
  /** Request headers, names lower-cased (the last one wins when repeated). */
  headers: Record<string, string>;
}

export type ProxyAction =
  | { kind: "forward"; delayMs?: number }
  /** Answer with a raw HTTP response (see s3Error) and close. */
  | { kind: "reply"; response: string }
  /** Close the client connection without answering (the client sees a reset / hang-up). */
  | { kind: "reset" }
  /** Never answer and never forward; the connection stays open until the client gives up. */
  | { kind: "stall" }
  /** Forward the head and `afterBytes` bytes of the request body, then cut both connections. */
  | { kind: "cut"; afterBytes: number }
  /**
   * Forward the request; pass the response head and `afterBytes` bytes of the response body,
   * then end the client connection cleanly (FIN, after those bytes): the client sees a body
   * shorter than its Content-Length, having received exactly `afterBytes` bytes of it.
   */
  | { kind: "cutResponse"; afterBytes: number }
  /**
   * Forward the request, then drop the connection as soon as the response starts, passing none
   * of it: the server did the work, the client never hears of it (a "reply lost").
   */
  | { kind: "dropResponse" }
  /**
   * Forward the request; pass the response head at once (or drip it too, `head: true`), then its
   * body one byte every `intervalMs` (default 1000): a valid response that trickles, until the
   * client gives up.
   */
  | { kind: "dripResponse"; intervalMs?: number; head?: boolean };

export interface LoggedRequest extends ProxyRequest {
  action: ProxyAction["kind"] | "error";
  /**
   * The fault took effect: always for reply/reset/stall; for cut/cutResponse only once bytes
   * beyond the budget were really withheld; for dropResponse once the server's answer began
   * (and was dropped). Updated while the request runs.
   */
  fault: boolean;
  /** cutResponse: response body bytes delivered to the client before the cut. */
  delivered?: number;
  /** Every byte the server answered (head and body), as the proxy received it: what a client downloaded, counted outside it. */
  responseBytes: number;
}

export interface FaultProxy {
  endpoint: string;
  port: number;
  log: LoggedRequest[];
  /** Errors thrown by decide() (each request it threw on was reset). */
  errors: Error[];
  /** Replace the decision function (e.g. to switch faults off for a rerun). */
  setDecide(d: (r: ProxyRequest) => ProxyAction): void;
  /** Throw if decide() ever threw. Call it from afterEach. */
  check(): void;
  /** Stop listening; throws like check(). */
  stop(): void;
}

interface Conn {
  mode: "head" | "wait" | "forward" | "drain" | "stall" | "dead";
  /** For "reply" in "drain" mode: called once the request body has been read. */
  onDrained?: () => void;
  head: string;
  pending: Uint8Array[];
  toClient: Uint8Array[];
  toUpstream: Uint8Array[];
  /** End the client socket as soon as toClient is flushed (upstream is done). */
  endClient: boolean;
  /** End the upstream socket as soon as toUpstream is flushed (client is done). */
  endUpstream: boolean;
  upstream?: Socket<undefined>;
  /** For "cut": request body bytes still allowed through. */
  budget: number;
  entry?: LoggedRequest;
  /** For "cutResponse": response body bytes still allowed through (after the head). */
  respBudget: number;
  /** For "dropResponse". */
  dropResponse: boolean;
  respHead: string | null;
  /** For "dripResponse": ms between two body bytes, the bytes still to drip, and the timer. */
  dripMs?: number;
  dripQueue?: Uint8Array[];
  dripTimer?: ReturnType<typeof setInterval>;
}

/** Write as much of the queue as the socket takes; true when the queue is empty. */
function writeAll(s: Socket<any>, q: Uint8Array[], chunk?: Uint8Array): boolean {
  if (chunk) q.push(chunk);
  while (q.length > 0) {
    const c = q[0]!;
    const n = s.write(c);
    if (n < c.byteLength) {
      q[0] = c.subarray(Math.max(0, n));
      return false;
    }
    q.shift();
  }
  return true;
}

function parseHead(head: string): { method: string; path: string; headers: Record<string, string> } {
  const lines = head.split("\r\n");
  const [method = "", path = ""] = (lines[0] ?? "").split(" ");
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { method, path, headers };
}

export const forward: ProxyAction = { kind: "forward" };

/** The requests of a log slice whose planned fault took effect. */
export function faultsHit(log: LoggedRequest[]): LoggedRequest[] {
  return log.filter((r) => r.fault);
}

export function startFaultProxy(opts: { upstreamPort: number; decide?: (r: ProxyRequest) => ProxyAction }): FaultProxy {
  let decide = opts.decide ?? (() => forward);
  const log: LoggedRequest[] = [];
  const errors: Error[] = [];
  let seq = 0;

  const toUpstream = (d: Conn, bytes: Uint8Array) => {
    if (d.budget !== Infinity) {
      if (bytes.length > d.budget) {
        // More body than the cut allows: the fault takes effect now.
        bytes = bytes.subarray(0, Math.max(0, d.budget));
        d.budget = 0;
        if (d.entry) d.entry.fault = true;
        if (bytes.length) queueUpstream(d, bytes);
        cutBoth(d);
        return;
      }
      d.budget -= bytes.length;
    }
    queueUpstream(d, bytes);
  };
  const queueUpstream = (d: Conn, bytes: Uint8Array) => {
    if (d.upstream) writeAll(d.upstream, d.toUpstream, bytes);
    else d.pending.push(bytes);
  };
  const clientOf = new Map<Conn, Socket<Conn>>();
  /** The request was cut mid-body: the client sees a reset, upstream a truncated request. */
  const cutBoth = (d: Conn) => {
    d.mode = "dead";
    clientOf.get(d)?.terminate();
    d.upstream?.terminate();
  };
  /** End the client socket once every queued byte is written. */
  const endClientWhenFlushed = (s: Socket<Conn>) => {
    const d = s.data;
    if (d.endClient) return; // the drain handler ends it
    d.endClient = true;
    if (writeAll(s, d.toClient)) s.end();
  };
  /** Response bytes from upstream to the client, honouring a cutResponse budget. */
  const fromUpstream = (s: Socket<Conn>, up: Socket<undefined>, bytes: Uint8Array) => {
    const d = s.data;
    if (d.entry) d.entry.responseBytes += bytes.length;
    if (d.mode === "dead" || d.endClient) return;
    if (d.dropResponse) {
      if (d.entry) d.entry.fault = true;
      cutBoth(d);
      return;
    }
    if (d.dripMs !== undefined) return dripFromUpstream(s, bytes);
    if (d.respBudget === Infinity) {
      writeAll(s, d.toClient, bytes);
      return;
    }
    let body = bytes;
    if (d.respHead !== null) {
      // Still reading the response head: pass it through whole, then count body bytes.
      d.respHead += Buffer.from(bytes).toString("latin1");
      const end = d.respHead.indexOf("\r\n\r\n");
      if (end < 0) {
        writeAll(s, d.toClient, bytes);
        return;
      }
      const headLen = end + 4 - (Buffer.byteLength(d.respHead, "latin1") - bytes.length);
      writeAll(s, d.toClient, bytes.subarray(0, headLen));
      body = bytes.subarray(headLen);
      d.respHead = null;
    }
    const pass = body.subarray(0, Math.min(body.length, d.respBudget));
    d.respBudget -= pass.length;
    if (d.entry) d.entry.delivered = (d.entry.delivered ?? 0) + pass.length;
    if (pass.length) writeAll(s, d.toClient, pass);
    if (pass.length < body.length) {
      // Bytes beyond the budget exist: withhold them, end the client cleanly after what it got.
      if (d.entry) d.entry.fault = true;
      up.terminate();
      endClientWhenFlushed(s);
    }
  };

  const dripTimers = new Set<ReturnType<typeof setInterval>>();
  const stopDrip = (d: Conn) => {
    if (d.dripTimer) {
      clearInterval(d.dripTimer);
      dripTimers.delete(d.dripTimer);
    }
    d.dripTimer = undefined;
  };
  /** Response bytes for a "dripResponse": the head passes at once (unless it drips too), the body a byte per tick. */
  const dripFromUpstream = (s: Socket<Conn>, bytes: Uint8Array) => {
    const d = s.data;
    let body = bytes;
    if (d.respHead !== null) {
      d.respHead += Buffer.from(bytes).toString("latin1");
      const end = d.respHead.indexOf("\r\n\r\n");
      if (end < 0) return void writeAll(s, d.toClient, bytes);
      const headLen = end + 4 - (Buffer.byteLength(d.respHead, "latin1") - bytes.length);
      writeAll(s, d.toClient, bytes.subarray(0, headLen));
      body = bytes.subarray(headLen);
      d.respHead = null;
    }
    if (body.length) d.dripQueue!.push(body);
    if (d.dripTimer) return;
    d.dripTimer = setInterval(() => {
      const q = d.dripQueue!;
      if (d.mode === "dead" || q.length === 0) return;
      if (d.entry) d.entry.fault = true;
      writeAll(s, d.toClient, q[0]!.subarray(0, 1));
      d.entry && (d.entry.delivered = (d.entry.delivered ?? 0) + 1);
      q[0] = q[0]!.subarray(1);
      if (q[0].length === 0) q.shift();
    }, d.dripMs);
    dripTimers.add(d.dripTimer);
  };

  const server: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = {
          mode: "head",
          head: "",
          pending: [],
          toClient: [],
          toUpstream: [],
          endClient: false,
          endUpstream: false,
          budget: Infinity,
          respBudget: Infinity,
          respHead: null,
          dropResponse: false,
        };
        clientOf.set(s.data, s);
      },
      data(s, chunk) {
        const d = s.data;
        const bytes = new Uint8Array(chunk);
        if (d.mode === "dead" || d.mode === "stall") return;
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
        const req: ProxyRequest = { n: ++seq, ...parseHead(d.head.slice(0, end)) };
        let act: ProxyAction;
        const entry: LoggedRequest = { ...req, action: "forward", fault: false, responseBytes: 0 };
        try {
          act = decide(req);
        } catch (err) {
          errors.push(new Error(`fault proxy: decide() threw on request ${req.n} (${req.method} ${req.path}): ${(err as Error)?.stack ?? err}`));
          entry.action = "error";
          log.push(entry);
          d.mode = "dead";
          s.terminate();
          return;
        }
        entry.action = act.kind;
        entry.fault = act.kind === "reply" || act.kind === "reset" || act.kind === "stall";
        d.entry = entry;
        log.push(entry);
        if (act.kind === "reply") {
          // Like a real server: answer once the request body is in (unless the client waits
          // for "100 Continue"), so the client reads the answer instead of a reset mid-write.
          const len = Number(req.headers["content-length"] ?? 0);
          const waits = /100-continue/i.test(req.headers["expect"] ?? "");
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
        if (act.kind === "stall") {
          d.mode = "stall";
          return;
        }
        // Forward: one request per connection, so every request is seen by decide().
        const all = Buffer.concat(d.pending.map((b) => Buffer.from(b)));
        const hEnd = all.indexOf("\r\n\r\n");
        const lines = all.subarray(0, hEnd).toString("latin1").split("\r\n").filter((l) => !/^connection\s*:/i.test(l));
        lines.push("Connection: close");
        d.pending = [new Uint8Array(Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1"))];
        const body = new Uint8Array(all.subarray(hEnd + 4));
        if (act.kind === "cut") d.budget = act.afterBytes;
        if (act.kind === "cutResponse") {
          d.respBudget = act.afterBytes;
          d.respHead = "";
        }
        if (act.kind === "dropResponse") d.dropResponse = true;
        if (act.kind === "dripResponse") {
          d.dripMs = act.intervalMs ?? 1000;
          d.dripQueue = [];
          d.respHead = act.head ? null : "";
        }
        d.mode = "wait";
        if (body.length) toUpstream(d, body);
        const connect = async () => {
          if (d.mode === "dead") return;
          try {
            const up = await Bun.connect({
              hostname: "127.0.0.1",
              port: opts.upstreamPort,
              socket: {
                data(u, resp) {
                  fromUpstream(s, u, new Uint8Array(resp));
                },
                drain(u) {
                  if (writeAll(u, d.toUpstream) && d.endUpstream) u.end();
                },
                // A drip goes on after upstream is done, until the client gives up.
                close() {
                  if (d.mode !== "dead" && d.dripMs === undefined) endClientWhenFlushed(s);
                },
                error() {
                  if (d.mode !== "dead" && d.dripMs === undefined) endClientWhenFlushed(s);
                },
              },
            });
            // The client may have gone while connecting (TS keeps the narrowing across await).
            if ((d.mode as Conn["mode"]) === "dead") {
              up.terminate();
              return;
            }
            d.upstream = up;
            d.mode = "forward";
            for (const p of d.pending) writeAll(up, d.toUpstream, p);
            d.pending = [];
            if (d.endUpstream && d.toUpstream.length === 0) up.end();
          } catch {
            endClientWhenFlushed(s);
          }
        };
        const delay = act.kind === "forward" ? act.delayMs ?? 0 : 0;
        if (delay > 0) setTimeout(connect, delay);
        else void connect();
      },
      drain(s) {
        const d = s.data;
        if (writeAll(s, d.toClient) && d.endClient) s.end();
      },
      close(s) {
        const d = s.data;
        clientOf.delete(d);
        stopDrip(d);
        if (d.mode === "dead") return d.upstream?.terminate();
        d.mode = "dead";
        // The client is gone: let upstream have what it was sent, then end it.
        d.endUpstream = true;
        if (d.upstream && d.toUpstream.length === 0) d.upstream.end();
      },
      error(s) {
        const d = s.data;
        clientOf.delete(d);
        stopDrip(d);
        d.mode = "dead";
        d.upstream?.terminate();
      },
    },
  });
  const check = () => {
    if (errors.length) throw new AggregateError(errors, errors.map((e) => e.message).join("\n"));
  };
  return {
    endpoint: `http://127.0.0.1:${server.port}`,
    port: server.port,
    log,
    errors,
    setDecide(d) {
      decide = d;
    },
    check,
    stop() {
      for (const t of dripTimers) clearInterval(t);
      dripTimers.clear();
      server.stop(true);
      check();
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
