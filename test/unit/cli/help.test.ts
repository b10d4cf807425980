/** Help layout: wrapping with hanging indents, the width on a pipe and a terminal, colour rules. */
import { describe, expect, test } from "bun:test";
import { columns, helpColours, helpWidth, PIPE_WIDTH, wrap } from "../../../src/cli/help.ts";

const plain = { cyan: (s: string) => s, gray: (s: string) => s, head: (s: string) => s };

describe("help layout", () => {
  test("wrap keeps lines within the width, indents continuation lines, never leaves trailing blanks", () => {
    const text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu";
    const lines = wrap(text, 20, 4);
    expect(lines.every((l) => l.length <= 20 && !/\s$/.test(l))).toBe(true);
    expect(lines.slice(1).every((l) => l.startsWith("    ") && !l.startsWith("     "))).toBe(true);
    expect(lines.join(" ").split(/\s+/).filter(Boolean).join(" ")).toBe(text);
  });
  test("a word longer than the line stays whole on its own line", () => {
    const long = "/a/very/long/path/that/must/stay/copyable";
    expect(wrap(`see ${long} now`, 20)).toEqual(["see", long, "now"]);
  });
  test("colour codes do not count towards the width", () => {
    const c = (s: string) => `\x1b[36m${s}\x1b[39m`;
    expect(wrap(`${c("aaaa")} ${c("bbbb")}`, 9)).toHaveLength(1);
  });
  test("columns: descriptions beside the names with a hanging indent; below them when the width is too narrow", () => {
    const rows: [string, string][] = [["--a", "one two three four five six seven eight nine ten eleven twelve"], ["--bbbbbb=<X>", "short"]];
    const wide = columns(rows, 50, plain);
    expect(wide[0]).toMatch(/^  --a {11}one/);
    expect(wide[1]).toMatch(/^ {16}\S/);
    expect(wide.every((l) => l.length <= 50)).toBe(true);
    const narrow = columns(rows, 40, plain);
    expect(narrow[0]).toBe("  --a");
    expect(narrow[1]).toMatch(/^ {6}one/);
  });
  test("width: 100 on a pipe, the terminal's columns on a TTY (COLUMNS or 80 when unknown, at least 40)", () => {
    expect(helpWidth({ isTTY: false, columns: 300 }, {})).toBe(PIPE_WIDTH);
    expect(helpWidth({ isTTY: true, columns: 132 }, {})).toBe(132);
    expect(helpWidth({ isTTY: true, columns: 0 }, { COLUMNS: "90" })).toBe(90);
    expect(helpWidth({ isTTY: true }, {})).toBe(80);
    expect(helpWidth({ isTTY: true, columns: 20 }, {})).toBe(40);
  });
  test("colours only on a terminal without NO_COLOR, TERM=dumb, CI or TEST", () => {
    expect(helpColours({ isTTY: true }, {})).toBe(true);
    expect(helpColours({ isTTY: false }, {})).toBe(false);
    for (const env of [{ NO_COLOR: "1" }, { TERM: "dumb" }, { CI: "true" }, { TEST: "1" }]) expect(helpColours({ isTTY: true }, env)).toBe(false);
  });
});
