/**
 * `tasks[].exclude` of a recursive task: globs over child names relative to the task's dataset
 * (`scratch`, `*\/cache`, `vm/**`). Written as users write paths, matched the way they expect:
 *   `*`  any characters within one name component (not '/'),
 *   `?`  one character within a component,
 *   `**` any number of whole components (also none: `a/**` is a and everything below it).
 * Excluding a child excludes everything below it too: a restore rebuilds parents before
 * children, so a kept child under an excluded parent would have nowhere to go.
 */
import { COMPONENT_RE } from "./names.ts";

/** Why `p` is not a usable exclude pattern, or undefined. */
export function excludePatternProblem(p: string): string | undefined {
  if (p.startsWith("/")) return `must be relative to the task's dataset (e.g. ${JSON.stringify(p.replace(/^\/+/, ""))}), not start with '/'`;
  if (p.endsWith("/")) return "must not end with '/'";
  if (p.includes("@")) return "must not contain '@': it names child datasets, not snapshots";
  for (const part of p.split("/")) {
    if (part === "") return "has an empty component ('//')";
    if (part === "." || part === "..") return `has a ${JSON.stringify(part)} component`;
    if (part.includes("**") && part !== "**") return "may use '**' only as a whole component (a/**/b)";
    if (!COMPONENT_RE.test(part.replace(/[*?]/g, "x"))) {
      const c = /[^A-Za-z0-9_.: *?-]/.exec(part)![0];
      return `contains ${JSON.stringify(c)} (dataset names have letters, digits, '_', '-', '.', ':' and space; globs add '*', '?' and '**')`;
    }
  }
  return undefined;
}

/** The pattern as a regex over "/" + the child's name: each component is "/name", `**` any run of them. */
function regexOf(pattern: string): RegExp {
  const re = pattern
    .split("/")
    .map((part) => (part === "**" ? "(?:/[^/]+)*" : "/" + part.replace(/[.*?+^${}()|[\]\\ :-]/g, (c) => (c === "*" ? "[^/]*" : c === "?" ? "[^/]" : `\\${c}`))))
    .join("");
  return new RegExp(`^${re}$`);
}

export interface Excluder {
  /** Whether the child `rel` ("" is the task's own dataset, never excluded) is excluded. */
  excludes(rel: string): boolean;
  /** The patterns that matched none of the names given to `excludes` so far. */
  unmatched(): string[];
}

/** An excluder for the patterns (validated by the config reader). */
export function compileExclude(patterns: readonly string[]): Excluder {
  const compiled = patterns.map((p) => ({ p, re: regexOf(p), hit: false }));
  return {
    excludes(rel: string): boolean {
      if (rel === "") return false;
      const parts = rel.split("/");
      let out = false;
      for (const c of compiled) {
        // The child itself, or any of its ancestors below the root.
        for (let n = parts.length; n >= 1; n--) {
          if (c.re.test("/" + parts.slice(0, n).join("/"))) {
            if (n === parts.length) c.hit = true;
            out = true;
            break;
          }
        }
      }
      return out;
    },
    unmatched: () => compiled.filter((c) => !c.hit).map((c) => c.p),
  };
}
