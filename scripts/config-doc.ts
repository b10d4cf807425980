/**
 * `bun run config-doc`: rewrite the reference tables in docs/config.md from the config schema
 * (src/config/schema.ts). `--check` only reports whether they are up to date (exit 1 if not).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { updateReference } from "../src/config/doc.ts";

const path = join(import.meta.dir, "..", "docs", "config.md");
const before = readFileSync(path, "utf8");
const after = updateReference(before);
if (process.argv.includes("--check")) {
  console.log(after === before ? "docs/config.md is up to date" : "docs/config.md is out of date: run bun run config-doc");
  process.exit(after === before ? 0 : 1);
}
if (after !== before) writeFileSync(path, after);
console.log(after === before ? "docs/config.md was already up to date" : "docs/config.md: reference tables rewritten from src/config/schema.ts");
