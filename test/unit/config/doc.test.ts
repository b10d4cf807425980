/**
 * docs/config.md's reference tables are generated from the schema (`bun run config-doc`).
 * This fails, printing the diff, when someone changes one without the other.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BEGIN, END, renderReference, updateReference } from "../../../src/config/doc.ts";
import { ROOT } from "../../../src/config/schema.ts";
import { keysOf } from "../../../src/config/walk.ts";

const DOC = join(import.meta.dir, "../../../docs/config.md");

/** `diff -u` of two texts, for the failure message. */
function unifiedDiff(a: string, b: string): string {
  const dir = mkdtempSync(join(tmpdir(), "zrb-doc-"));
  try {
    writeFileSync(join(dir, "docs-config.md"), a);
    writeFileSync(join(dir, "from-schema.md"), b);
    const r = Bun.spawnSync(["diff", "-u", "docs-config.md", "from-schema.md"], { cwd: dir, stdout: "pipe" });
    return r.stdout.toString();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("docs/config.md's generated section is what the schema renders (else: bun run config-doc)", async () => {
  const md = await Bun.file(DOC).text();
  const want = updateReference(md);
  const diff = md === want ? "" : unifiedDiff(md, want);
  expect(diff, `docs/config.md is out of date; run bun run config-doc\n${diff}`).toBe("");
});

test("the check notices a drift, and every key of the schema has its row", async () => {
  const md = await Bun.file(DOC).text();
  const drifted = md.replace("| `chunk_size` *(new)* | size | `3GiB` |", "| `chunk_size` *(new)* | size | `1GiB` |");
  expect(drifted).not.toBe(md);
  expect(unifiedDiff(drifted, updateReference(drifted))).toContain("+| `chunk_size` *(new)* | size | `3GiB` |");
  const section = renderReference();
  expect(section.startsWith(BEGIN) && section.endsWith(END)).toBe(true);
  const rows = section.split("\n").filter((l) => l.startsWith("| `"));
  for (const { path, field } of keysOf(ROOT)) {
    if (field.type.info.shape) continue; // a sub-mapping is its own rows
    expect(rows.some((r) => r.startsWith(`| \`${path}\``)), path).toBe(true);
  }
});
