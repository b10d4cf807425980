/**
 * Healthchecks-style pings (monitoring.ping_url), so that something outside zrb notices when
 * backups stop: GET `<url>/start` when a backup starts, `<url>` when it succeeds, `<url>/fail`
 * when it fails. A ping has a short timeout and never fails the backup: a ping that does not
 * get through is one warning line. The URL is a credential (healthchecks' UUID, a user:password):
 * nothing but its scheme and host is ever printed.
 */
import { log } from "../util/log.ts";
export { pingUrlProblem } from "../util/url.ts";

export type PingKind = "start" | "success" | "fail";

export const PING_TIMEOUT_MS = 10_000;

/** The URL of one ping: `/start` or `/fail` appended to the path (before any query), nothing for success. */
export function pingUrlFor(base: string, kind: PingKind): URL {
  const u = new URL(base);
  if (kind !== "success") u.pathname = `${u.pathname.replace(/\/+$/, "")}/${kind}`;
  return u;
}

/** What may be printed of a ping URL: its scheme and host, never its path, query or user. */
export function redactUrl(u: string | URL): string {
  try {
    const url = new URL(String(u));
    return `${url.protocol}//${url.host}/…`;
  } catch {
    return "(the ping URL)";
  }
}

/** Send one ping; never throws. Credentials in the URL go in an Authorization header (fetch refuses them in the URL). */
export async function ping(base: string | undefined, kind: PingKind, timeoutMs = PING_TIMEOUT_MS): Promise<void> {
  if (!base) return;
  const url = pingUrlFor(base, kind);
  const headers: Record<string, string> = { "user-agent": "zrb" };
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
    url.username = "";
    url.password = "";
  }
  try {
    const r = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs), redirect: "follow" });
    await r.arrayBuffer().catch(() => {});
    if (!r.ok) log.warn(`ping ${kind} to ${redactUrl(url)} answered HTTP ${r.status}; the run goes on`);
  } catch (err) {
    // Not err.message: it may quote the URL.
    const code = (err as { code?: string })?.code;
    const why = (err as Error)?.name === "TimeoutError" ? `no answer within ${timeoutMs / 1000} s` : `it could not be sent${code && /^[A-Z_]+$/.test(code) ? ` (${code})` : ""}`;
    log.warn(`ping ${kind} to ${redactUrl(url)} failed: ${why}; the run goes on`);
  }
}
