/**
 * The shape of src/, as src/README.md documents it: every import goes down the layer order (or
 * stays in its folder), and no chain of value imports comes back to where it started. Read
 * from the source text itself, so a new arrow up or a new cycle fails here, naming it.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../../../src");

/** Low to high: a file may import its own folder and any folder of a lower layer. Kept equal to src/README.md. */
const LAYERS: string[][] = [
  ["util", "version.ts", "heap.ts"],
  ["zfs", "crypto", "store"],
  ["config", "workers"],
  ["state", "records", "systemd"],
  ["report"],
  ["pipeline"],
  ["cli"],
  ["main.ts"],
];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

interface Import {
  from: string;
  to: string;
  typeOnly: boolean;
}

/** Every static import and re-export in `text` (of `file`) that names another file of src/. */
function parseImports(file: string, text: string): Import[] {
  const out: Import[] = [];
  const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*["']([^"']+)["']|(?:^|\n)\s*import\s*["']([^"']+)["']/g;
  for (let m; (m = re.exec(text)); ) {
    const spec = m[4] ?? m[5]!;
    if (!spec.startsWith(".")) continue;
    const to = resolve(dirname(file), spec);
    if (!to.startsWith(SRC + "/")) continue; // package.json and the like: not a layer
    const braces = /^\{([\s\S]*)\}$/.exec((m[3] ?? "").trim());
    const allTypes = braces !== null && braces[1]!.split(",").map((s) => s.trim()).filter(Boolean).every((s) => s.startsWith("type "));
    out.push({ from: file, to, typeOnly: m[2] !== undefined || allTypes });
  }
  return out;
}

const top = (file: string) => relative(SRC, file).split("/")[0]!;
function layerOf(file: string): number {
  const i = LAYERS.findIndex((l) => l.includes(top(file)));
  if (i < 0) throw new Error(`${relative(SRC, file)}: ${top(file)} is in no layer (add it to LAYERS here and to src/README.md)`);
  return i;
}

/** Imports into another folder of a higher layer. */
function upArrows(imports: Import[]): string[] {
  return imports.filter((i) => top(i.from) !== top(i.to) && layerOf(i.to) > layerOf(i.from)).map((i) => `${relative(SRC, i.from)} -> ${relative(SRC, i.to)}`);
}

/** Cycles of value imports (type-only imports vanish at run time and are left out). */
function valueCycles(imports: Import[]): string[] {
  const graph = new Map<string, string[]>();
  for (const i of imports) if (!i.typeOnly) graph.set(i.from, [...(graph.get(i.from) ?? []), i.to]);
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      cycles.push([...path.slice(path.indexOf(f)), f].map((x) => relative(SRC, x)).join(" -> "));
      return;
    }
    state.set(f, "open");
    for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
    state.set(f, "done");
  };
  for (const f of graph.keys()) visit(f, []);
  return cycles;
}

const imports = files(SRC).flatMap((f) => parseImports(f, readFileSync(f, "utf8")));

describe("src/ layers", () => {
  test("every import goes to the same folder or a lower layer", () => {
    expect(upArrows(imports)).toEqual([]);
  });

  test("no cycle of value imports", () => {
    expect(valueCycles(imports)).toEqual([]);
  });

  test("the checks see what they must: a planted arrow up, a planted cycle, type-only imports", () => {
    const a = join(SRC, "config", "a.ts");
    const b = join(SRC, "config", "b.ts");
    const planted = [
      ...parseImports(a, 'import {\n  x,\n  y,\n} from "../pipeline/tree/children.ts";\nimport { z } from "./b.ts";\n'),
      ...parseImports(b, 'import type { W } from "../report/progress.ts";\nexport { z } from "./a.ts";\nimport { type Q } from "./a.ts";\n'),
    ];
    expect(planted.map((i) => [relative(SRC, i.from), relative(SRC, i.to), i.typeOnly])).toEqual([
      ["config/a.ts", "pipeline/tree/children.ts", false],
      ["config/a.ts", "config/b.ts", false],
      ["config/b.ts", "report/progress.ts", true],
      ["config/b.ts", "config/a.ts", false],
      ["config/b.ts", "config/a.ts", true],
    ]);
    expect(upArrows(planted)).toEqual(["config/a.ts -> pipeline/tree/children.ts", "config/b.ts -> report/progress.ts"]);
    expect(valueCycles(planted)).toEqual(["config/a.ts -> config/b.ts -> config/a.ts"]);
  });
});
