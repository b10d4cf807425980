/** renameat2 with RENAME_NOREPLACE through libc: what restore --path moves entries into place with. */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renameNoReplace } from "../../../src/util/rename-noreplace.ts";

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe("renameNoReplace", () => {
  test("moves onto a free name; refuses (EEXIST) a file or an empty directory in the way, leaving both; names other failures", () => {
    const d = mkdtempSync(join(tmpdir(), "zrb-noreplace-"));
    try {
      writeFileSync(join(d, "a"), "a");
      writeFileSync(join(d, "b"), "b");
      mkdirSync(join(d, "da"));
      mkdirSync(join(d, "db"));
      expect(code(() => renameNoReplace(join(d, "a"), join(d, "b")))).toBe("EEXIST");
      expect(code(() => renameNoReplace(join(d, "da"), join(d, "db")))).toBe("EEXIST");
      expect(readFileSync(join(d, "a"), "utf8")).toBe("a");
      expect(readFileSync(join(d, "b"), "utf8")).toBe("b");
      expect(readdirSync(d).sort()).toEqual(["a", "b", "da", "db"]);
      expect(renameNoReplace(join(d, "a"), join(d, "c"))).toBe("done");
      expect(renameNoReplace(join(d, "da"), join(d, "dc"))).toBe("done");
      expect(readdirSync(d).sort()).toEqual(["b", "c", "db", "dc"]);
      expect(code(() => renameNoReplace(join(d, "missing"), join(d, "x")))).toBe("ENOENT");
      let msg = "";
      try {
        renameNoReplace(join(d, "c"), join(d, "b"));
      } catch (err) {
        msg = (err as Error).message;
      }
      expect(msg).toBe(`EEXIST: File exists, rename '${join(d, "c")}' -> '${join(d, "b")}'`);
      // Across file systems it is EXDEV, as rename(2) says (the caller copies instead).
      if (statSync("/dev/shm").dev !== statSync(d).dev) expect(code(() => renameNoReplace(join(d, "c"), "/dev/shm/zrb-noreplace-never"))).toBe("EXDEV");
      expect(readFileSync(join(d, "c"), "utf8")).toBe("a");
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
