/**
 * Loopback servers that stall an S3 client the two ways the issue measured:
 *   - "silent": accepts the connection, reads the request, never answers;
 *   - "drip":   answers a valid HTTP response (a 200 with a Content-Length and an XML body)
 *               one byte every `intervalMs` (1 s) — headers included, or only the body
 *               ("drip-body": the headers come at once, as from a server whose disk stalls).
 * Real sockets on 127.0.0.1 only. Each stops by itself after `lifetimeMs` (default 120 s),
 * closing every connection, and stop() ends it sooner. `connections` counts the requests seen.
 */
import type { Socket, TCPSocketListener } from "bun";

export type StallMode = "silent" | "drip" | "drip-body";

export interface StallServer {
  endpoint: string;
  port: number;
  /** Connections accepted (each carries one request: the client's retries open new ones or reuse them). */
  connections: number;
  /** Request heads seen (method and path). */
  requests: string[];
  stop(): void;
}

const BODY = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>${" ".repeat(4000)}</ListBucketResult>\n`;

function response(): Uint8Array {
  const head = `HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\nx-amz-request-id: zrbstall\r\n\r\n`;
  return new Uint8Array(Buffer.from(head + BODY, "latin1"));
}

interface Conn {
  head: string;
  timer?: ReturnType<typeof setInterval>;
}

export function startStallServer(o: { mode: StallMode; intervalMs?: number; lifetimeMs?: number }): StallServer {
  const interval = o.intervalMs ?? 1000;
  const sockets = new Set<Socket<Conn>>();
  const state: StallServer = { endpoint: "", port: 0, connections: 0, requests: [], stop };

  /** Write the response one byte every `interval` ms; with drip-body the head goes at once first. */
  const drip = (s: Socket<Conn>, headAtOnce: boolean) => {
    const all = response();
    let i = 0;
    if (headAtOnce) {
      i = Buffer.from(all).indexOf("\r\n\r\n") + 4;
      s.write(all.subarray(0, i));
    }
    s.data.timer = setInterval(() => {
      if (i >= all.length) return clearInterval(s.data.timer);
      s.write(all.subarray(i, i + 1));
      i++;
    }, interval);
  };

  const server: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { head: "" };
        sockets.add(s);
        state.connections++;
      },
      data(s, chunk) {
        const d = s.data;
        if (d.head.includes("\r\n\r\n")) return; // the body of a request: swallowed
        d.head += Buffer.from(chunk).toString("latin1");
        const end = d.head.indexOf("\r\n\r\n");
        if (end < 0) return;
        const line = d.head.slice(0, d.head.indexOf("\r\n"));
        state.requests.push(line);
        // A HEAD response has no body: its headers drip, whatever the mode.
        if (o.mode !== "silent" && !d.timer) drip(s, o.mode === "drip-body" && !line.startsWith("HEAD "));
      },
      close(s) {
        clearInterval(s.data.timer);
        sockets.delete(s);
      },
      error(s) {
        clearInterval(s.data.timer);
        sockets.delete(s);
      },
    },
  });
  const lifetime = setTimeout(stop, o.lifetimeMs ?? 120_000);
  lifetime.unref?.();

  function stop(): void {
    clearTimeout(lifetime);
    for (const s of sockets) {
      clearInterval(s.data.timer);
      s.terminate();
    }
    sockets.clear();
    server.stop(true);
  }

  state.endpoint = `http://127.0.0.1:${server.port}`;
  state.port = server.port;
  return state;
}
