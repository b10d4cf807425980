/**
 * What an S3 bucket name and an S3 endpoint URL may look like, checked when the config is read
 * so a typo is a one-line config error and not a failed request an hour into a backup. Bucket
 * names follow the portable subset every provider accepts. Endpoints are http(s) URLs without
 * credentials, query or fragment; those are never echoed back (a presigned-style query carries
 * secrets). Credentials come from the AWS credential chain only (CREDENTIAL_HINT says where).
 */
import { quote } from "../util/redact.ts";

export const CREDENTIAL_HINT =
  "use the AWS credential chain instead (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment, ~/.aws/credentials, or AWS_PROFILE)";

export const BUCKET_RULES = "3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit";

/** Why `b` is not a portable bucket name (see BUCKET_RULES), or undefined. */
export function bucketProblem(b: string): string | undefined {
  if (b.length < 3 || b.length > 63) return `it has ${b.length} characters, expected 3 to 63`;
  const badChar = /[^a-z0-9.-]/.exec(b);
  if (badChar) {
    const c = badChar[0];
    return /[A-Z]/.test(c) ? `it has an uppercase letter ${quote(c)}` : `it contains ${quote(c)}`;
  }
  if (!/^[a-z0-9]/.test(b) || !/[a-z0-9]$/.test(b)) return "it must start and end with a letter or digit";
  if (b.includes("..")) return "it has two periods in a row";
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(b)) return "it is formatted like an IP address";
  return undefined;
}

/**
 * The endpoint in its canonical form (no trailing '/'), or the problem as the rest of a sentence
 * that starts with the key's name. The query and fragment are never part of the problem text.
 */
export function checkEndpoint(raw: string): { endpoint: string } | { problem: string } {
  const notUrl = { problem: `must be an http(s) URL such as https://s3.example.com, got ${quote(raw.replace(/[?#].*$/s, "?…"))}` };
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return notUrl;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return notUrl;
  if (u.username !== "" || u.password !== "") return { problem: `must not contain a user name or password; ${CREDENTIAL_HINT}` };
  if (u.search !== "" || u.hash !== "") {
    const shown = quote(`${u.protocol}//${u.host}${u.pathname}`);
    return { problem: `must not have a query (?…) or fragment (#…), got ${shown} followed by one; remove it` };
  }
  return { endpoint: raw.trim().replace(/\/+$/, "") };
}
