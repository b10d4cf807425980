/**
 * Object key and prefix validation shared by every backend. Keys come from manifests
 * that live in the bucket; a corrupted or hostile manifest must not be able to address
 * anything outside the configured prefix (or, for the local store, outside its root).
 */
import { storeError } from "../util/errors.ts";

// C0 controls, DEL and C1 controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function check(what: string, s: string, allowTrailingSlash: boolean): void {
  const shown = JSON.stringify(s);
  if (CONTROL.test(s)) throw storeError(`invalid ${what} ${shown}: control characters are not allowed`);
  if (s.includes("\\")) throw storeError(`invalid ${what} ${shown}: backslashes are not allowed`);
  if (s.startsWith("/")) throw storeError(`invalid ${what} ${shown}: it must be relative (no leading '/')`);
  const segs = s.split("/");
  if (allowTrailingSlash && segs.length > 1 && segs[segs.length - 1] === "") segs.pop();
  for (const seg of segs) {
    if (seg === "..") throw storeError(`invalid ${what} ${shown}: '..' segments are not allowed`);
    if (seg === ".") throw storeError(`invalid ${what} ${shown}: '.' segments are not allowed`);
    if (seg === "") throw storeError(`invalid ${what} ${shown}: empty path segments are not allowed`);
  }
}

/** Throws a ZrbError unless `key` is a safe relative object key ("a/b/c"). */
export function validateKey(key: string): string {
  if (typeof key !== "string" || key === "") throw storeError("invalid object key: it is empty");
  if (key.endsWith("/")) throw storeError(`invalid object key ${JSON.stringify(key)}: it must not end with '/'`);
  check("object key", key, false);
  return key;
}

/** Like validateKey, but "" and a trailing '/' are allowed (list/listUploads prefixes). */
export function validateListPrefix(prefix: string): string {
  if (prefix === "") return prefix;
  check("key prefix", prefix, true);
  return prefix;
}

/** What is wrong with a configured prefix; one rule for the config reader and the stores. */
export type PrefixProblem = "control" | "backslash" | "empty-segment" | "dot-segment" | "too-long";
export const MAX_PREFIX_BYTES = 512;

/**
 * A configured prefix normalised (surrounding spaces and '/' dropped, exactly one trailing '/'
 * unless empty), or what is wrong with it.
 */
export function checkPrefix(raw: string): { prefix: string } | { problem: PrefixProblem } {
  if (CONTROL.test(raw)) return { problem: "control" };
  const p = raw.trim().replace(/^\/+/, "").replace(/\/+$/, "");
  if (p === "") return { prefix: "" };
  if (p.includes("\\")) return { problem: "backslash" };
  const segs = p.split("/");
  if (segs.includes("")) return { problem: "empty-segment" };
  if (segs.some((s) => s === "." || s === "..")) return { problem: "dot-segment" };
  if (new TextEncoder().encode(p).length + 1 > MAX_PREFIX_BYTES) return { problem: "too-long" };
  return { prefix: `${p}/` };
}

const PREFIX_PROBLEMS: Record<PrefixProblem, string> = {
  control: "control characters are not allowed",
  backslash: "backslashes are not allowed",
  "empty-segment": "empty path segments are not allowed",
  "dot-segment": "'.' and '..' segments are not allowed",
  "too-long": `it is longer than ${MAX_PREFIX_BYTES} bytes`,
};

/** Normalise a configured prefix: no leading '/', exactly one trailing '/' unless empty. */
export function normalizePrefix(prefix: string | undefined): string {
  const c = checkPrefix(prefix ?? "");
  if ("problem" in c) throw storeError(`invalid s3.prefix ${JSON.stringify(prefix)}: ${PREFIX_PROBLEMS[c.problem]}`);
  return c.prefix;
}
