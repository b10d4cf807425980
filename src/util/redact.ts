/**
 * What a user typed, echoed back in a message without leaking a secret they typed by mistake:
 * an age private key, an AWS access key id or a 40-character secret access key put under the
 * wrong key. Used wherever zrb quotes a config value back (the config reader, the recipient
 * check), so a "got …" in an error is never the secret itself.
 */

/** Blank out what must never reach a log: age private keys and AWS-style keys. */
export function redact(s: string): string {
  return s
    .replace(/AGE-SECRET-KEY-\S*/gi, "AGE-SECRET-KEY-…")
    .replace(/ZRB-SIGNING-KEY-\S*/gi, "ZRB-SIGNING-KEY-…")
    .replace(/\b(AKIA|ASIA)[A-Z0-9]{16}\b/g, "$1…")
    .replace(/(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/g, "(a 40-character secret?)");
}

/** Quote a value for a message: JSON string syntax (so one line), redacted, truncated to `max`. */
export function quote(s: string, max = 80): string {
  const safe = redact(s);
  return JSON.stringify(safe.length > max ? `${safe.slice(0, max)}…` : safe);
}

/** The first line of a message, redacted. */
export function oneLine(s: string): string {
  return redact(s.replace(/\s*\n[\s\S]*$/, ""));
}
