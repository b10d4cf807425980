/** One table printer for the commands: columns padded to their widest cell, every cell printable. */
import { printable } from "../util/text.ts";

export function formatTable(head: string[], rows: string[][], indent = ""): string[] {
  const cells = [head, ...rows].map((r) => r.map((c) => printable(c)));
  const w = head.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)));
  return cells.map((r) => indent + r.map((c, i) => c.padEnd(w[i]!)).join("  ").trimEnd());
}
