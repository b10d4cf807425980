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

/** Normalise a configured prefix: no leading '/', exactly one trailing '/' unless empty. */
export function normalizePrefix(prefix: string | undefined): string {
  let p = (prefix ?? "").trim();
  p = p.replace(/^\/+/, "").replace(/\/+$/, "");
  if (p === "") return "";
  check("s3.prefix", p, false);
  return p + "/";
}
