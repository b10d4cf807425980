/**
 * When is a compiled zrb binary out of date? One rule, used by build.ts --if-stale (which
 * scripts/demo.sh and scripts/test.sh call before they run anything) and by the test
 * helpers' ensureBinary(): a binary is stale when it is missing or older than anything it
 * is built from (src/, package.json, package-lock.json, build.ts).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** The repository root (this file lives in scripts/). */
export const ROOT = join(import.meta.dir, "..");

function newestIn(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestIn(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** mtime (ms) of the newest file a binary is built from. */
export function newestSource(root: string = ROOT): number {
  const files = ["package.json", "package-lock.json", "build.ts"].map((f) => join(root, f)).filter(existsSync);
  return Math.max(newestIn(join(root, "src")), ...files.map((f) => statSync(f).mtimeMs));
}

/** True when the binary at `path` is missing or older than its sources. */
export function binaryStale(path: string, root: string = ROOT): boolean {
  return !existsSync(path) || statSync(path).mtimeMs < newestSource(root);
}
