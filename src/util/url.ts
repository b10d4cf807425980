/**
 * The rule for a healthchecks-style ping URL (config `monitoring.ping_url`), apart from the
 * pinging itself (report/ping.ts), so that the config schema can check it without importing
 * the reporting layer. A ping URL may carry a credential: no message here ever quotes it.
 */

/** Why `raw` is not a usable ping URL (the rest of a sentence), or undefined. Never quotes the URL. */
export function pingUrlProblem(raw: string): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return "must be an http:// or https:// URL (not shown: it may hold a credential)";
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return `must be an http:// or https:// URL, got a ${u.protocol} URL`;
  if (u.hash) return "must not have a #fragment";
  return undefined;
}
