/** `zrb list`'s text for a long chain: hundreds of backups stay aligned, numbers right-aligned, wide names measured by display width. */
import { describe, expect, test } from "bun:test";
import { listLines } from "../../../src/cli/list.ts";
import type { CatalogEntry } from "../../../src/pipeline/catalog.ts";

function entry(i: number): CatalogEntry {
  const level = i === 0 ? 0 : 1 + (i % 3);
  const id = `2027${String(1 + (i % 12)).padStart(2, "0")}01T${String(i % 24).padStart(2, "0")}0000Z-L${level}-${i.toString(16).padStart(6, "0")}`;
  return {
    backupId: id,
    level,
    // Some names hold characters two columns wide.
    snapshot: `tank/photos@${i % 50 === 7 ? "照片_" : ""}zrb_level${level}_2027${i}`,
    snapshotGuid: String(i),
    parentBackupId: i === 0 ? null : "20270101T000000Z-L0-000000",
    parentSnapshot: null,
    finishedAt: new Date(Date.UTC(2027, 0, 1) + i * 3_600_000).toISOString(),
    parts: 1 + ((i * 37) % 250),
    bytes: i === 0 ? 3 * 1024 ** 4 : (i * 7919) ** 2,
    storedBytes: 1000,
    storageClass: i % 2 ? "DEEP_ARCHIVE" : "STANDARD",
    signed: i % 5 !== 0,
    chain: ["20270101T000000Z-L0-000000", id],
    restorable: i !== 123,
    ...(i === 123 ? { problem: { at: id, kind: "part-missing" as const, message: "part 3 is missing" } } : {}),
  };
}

/** Each cell's first and last display column (cells are 2+ spaces apart). */
function cells(line: string): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const m of line.matchAll(/\S+(?: \S+)*/g)) {
    const start = Bun.stringWidth(line.slice(0, m.index));
    out.push({ start, end: start + Bun.stringWidth(m[0]) });
  }
  return out;
}

describe("zrb list text", () => {
  test("300 backups: every column starts (text) or ends (numbers) in the same display column; one line of totals", () => {
    const lines = listLines(Array.from({ length: 300 }, (_, i) => entry(i)), "tank/photos", "s3://b/zrb/");
    expect(lines).toHaveLength(302);
    const table = lines.slice(0, 301);
    const rows = table.map(cells);
    expect(rows.every((r) => r.length === 9)).toBe(true);
    const right = new Set([1, 4, 5]);
    for (let col = 0; col < 9; col++) {
      const at = new Set(rows.map((r) => (right.has(col) ? r[col]!.end : r[col]!.start)));
      expect({ col, positions: at.size }).toEqual({ col, positions: 1 });
    }
    expect(table.every((l) => !/\s$/.test(l))).toBe(true);
    expect(lines[0]).toStartWith("BACKUP ID");
    expect(lines[1]).toMatch(/^20270101T000000Z-L0-000000 +0 .* 3 TiB  STANDARD/);
    expect(lines.at(-1)).toBe("300 backup(s) in 1 chain(s), 292.97 KiB stored; 1 NOT restorable");
  });

  test("no backups: one line saying where it looked", () => {
    expect(listLines([], "tank/photos", "s3://b/zrb/")).toEqual(["no backups of tank/photos in s3://b/zrb/"]);
  });
});
