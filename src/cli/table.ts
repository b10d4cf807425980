/**
 * One table printer for the commands: columns padded to their widest cell, every cell printable.
 * Widths are display columns (Bun.stringWidth: a CJK or emoji character in a snapshot name takes
 * two, a combining accent none), so hundreds of rows stay aligned whatever the names hold; number
 * columns (`right`) are right-aligned so that digits line up; the last column is never padded.
 */
import { printable } from "../util/text.ts";

const width = (s: string) => Bun.stringWidth(s);

export function formatTable(head: string[], rows: string[][], indent = "", o: { right?: number[] } = {}): string[] {
  const cells = [head, ...rows].map((r) => r.map((c) => printable(c)));
  const w = head.map((_, i) => Math.max(...cells.map((r) => width(r[i] ?? ""))));
  const right = new Set(o.right ?? []);
  const pad = (c: string, i: number) => {
    const fill = " ".repeat(Math.max(0, w[i]! - width(c)));
    return right.has(i) ? fill + c : c + fill;
  };
  return cells.map((r) => indent + r.map(pad).join("  ").trimEnd());
}
