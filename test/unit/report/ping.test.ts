/**
 * Pings (report/ping.ts) against a loopback listener: the URLs of start, success and fail,
 * credentials sent as a header (never in the request line, never printed), and a ping that
 * fails or hangs costs one warning line after its timeout, never an exception. The listener
 * listens on 127.0.0.1 and stops by itself.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { ping, pingUrlFor, pingUrlProblem, redactUrl } from "../../../src/report/ping.ts";

const seen: { path: string; auth: string | null }[] = [];
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const url = new URL(req.url);
    seen.push({ path: url.pathname + url.search, auth: req.headers.get("authorization") });
    if (url.pathname.includes("/hang")) await Bun.sleep(3000);
    return new Response(url.pathname.includes("/broken") ? "no" : "OK", { status: url.pathname.includes("/broken") ? 500 : 200 });
  },
});
const lifetime = setTimeout(() => server.stop(true), 60_000);
afterAll(() => {
  clearTimeout(lifetime);
  server.stop(true);
});
const base = `http://127.0.0.1:${server.port}`;

/** Capture what the logger writes (consola → process.stderr) while fn runs. */
async function stderrOf(fn: () => Promise<void>): Promise<string> {
  const orig = process.stderr.write.bind(process.stderr);
  let out = "";
  process.stderr.write = ((s: string | Uint8Array) => ((out += String(s)), true)) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = orig;
  }
  return out;
}

describe("ping URLs", () => {
  test("start and fail are appended to the path, before a query; success is the URL itself", () => {
    expect(pingUrlFor("https://hc-ping.com/abc-123", "start").href).toBe("https://hc-ping.com/abc-123/start");
    expect(pingUrlFor("https://hc-ping.com/abc-123/", "fail").href).toBe("https://hc-ping.com/abc-123/fail");
    expect(pingUrlFor("https://h.example/p?rid=7", "start").href).toBe("https://h.example/p/start?rid=7");
    expect(pingUrlFor("https://h.example/p?rid=7", "success").href).toBe("https://h.example/p?rid=7");
  });

  test("only scheme and host are ever printed", () => {
    expect(redactUrl("https://user:s3cret@hc-ping.com/abc-123/start?x=1")).toBe("https://hc-ping.com/…");
    expect(redactUrl("not a url")).toBe("(the ping URL)");
  });

  test("the config check refuses what is not http(s), without quoting the URL", () => {
    expect(pingUrlProblem("https://hc-ping.com/x")).toBeUndefined();
    expect(pingUrlProblem("ftp://u:secret@h/x")).toBe("must be an http:// or https:// URL, got a ftp: URL");
    expect(pingUrlProblem("hc-ping.com/secret-uuid")).not.toContain("secret-uuid");
    expect(pingUrlProblem("https://h/x#frag")).toBe("must not have a #fragment");
  });
});

describe("ping()", () => {
  test("credentials travel as a Basic header, not in the URL", async () => {
    const before = seen.length;
    const out = await stderrOf(() => ping(`http://backup:s3cret@127.0.0.1:${server.port}/ping/uuid-1`, "start"));
    expect(out).toBe("");
    expect(seen.slice(before)).toEqual([{ path: "/ping/uuid-1/start", auth: `Basic ${Buffer.from("backup:s3cret").toString("base64")}` }]);
  });

  test("an HTTP error, a refused connection and a hang are one warning each, without the secret parts", async () => {
    const dead = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const deadPort = dead.port;
    dead.stop(true);
    const out = await stderrOf(async () => {
      await ping(`${base}/broken/uuid-2`, "success");
      await ping(`http://u:s3cret@127.0.0.1:${deadPort}/uuid-3`, "fail");
      await ping(`${base}/hang/uuid-4`, "start", 300);
    });
    const lines = out.trim().split("\n");
    expect(lines.length).toBe(3);
    expect(lines[0]).toContain(`ping success to ${base}/… answered HTTP 500; the run goes on`);
    expect(lines[1]).toContain(`ping fail to http://127.0.0.1:${deadPort}/… failed: it could not be sent`);
    expect(lines[2]).toContain(`ping start to ${base}/… failed: no answer within 0.3 s; the run goes on`);
    for (const secret of ["s3cret", "uuid-2", "uuid-3", "uuid-4"]) expect(out).not.toContain(secret);
  });

  test("no URL configured: nothing is sent", async () => {
    const before = seen.length;
    await ping(undefined, "start");
    expect(seen.length).toBe(before);
  });
});
