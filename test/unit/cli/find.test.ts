/**
 * `zrb find`'s own parts (cli/find.ts) without a store: the lines a user reads (deleted since,
 * a version's span, not restorable, nothing found, points without a catalog), --since, and a
 * pattern refused before any store is opened.
 */
import { describe, expect, test } from "bun:test";
import findCommand, { findLines, parseSince } from "../../../src/cli/find.ts";
import type { FindResult, FoundPoint } from "../../../src/pipeline/files/find.ts";
import { now } from "../../../src/util/clock.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const point = (i: number, restorable = true): FoundPoint => ({
  backupId: `2027030${i}T020000Z-L${i}-abcde${i}`,
  snapshot: `tank/ds@zrb-${i}`,
  level: i,
  finishedAt: `2027-03-0${i}T02:30:00.000Z`,
  restorable,
});
const [p1, p2, p3] = [point(1), point(2), point(3)];
const T = 1_700_000_000; // 2023-11-14T22:13:20Z
/** The answer for tank/ds: `matches` of `pattern` among `searched` points, the newest `newest`. */
const result = (pattern: string, searched: number, newest: FoundPoint, matches: FindResult["matches"]): FindResult => ({ dataset: "tank/ds", pattern, searched, newest, noCatalog: [], matches });

describe("zrb find: the answer's lines", () => {
  test("a path per match; a file deleted since says where it was last seen; a version in several points says how far back", () => {
    const r = result("*.jpg", 3, p3, [
      { path: "a.jpg", deleted: false, lastSeen: p3, versions: [{ type: "f", size: 2048, mtime: T, newest: p3, oldest: p1, points: 3 }] },
      { path: "gone.jpg", deleted: true, lastSeen: p2, versions: [{ type: "f", size: 5, mtime: T, newest: p2, oldest: p2, points: 1 }] },
    ]);
    const lines = findLines(r);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe("tank/ds: a.jpg");
    expect(lines[1]).toContain("mtime 2023-11-14T22:13:20Z");
    expect(lines[1]).toContain(`in ${p3.backupId} (zrb-3), in 3 points back to ${p1.backupId}`);
    expect(lines[2]).toBe(`tank/ds: gone.jpg  (deleted since; last seen in ${p2.backupId} (zrb-2))`);
    expect(lines[3]).toContain(`in ${p2.backupId} (zrb-2)`);
    expect(lines[3]).not.toContain("points back");
    expect(lines.join("\n")).not.toContain("NOT restorable");
  });

  test("a version whose newest point cannot be restored says so; directories and links are named, not sized", () => {
    const broken = point(2, false);
    const r = result("d*", 2, broken, [
      { path: "d", deleted: false, lastSeen: broken, versions: [{ type: "d", size: 4, mtime: T, newest: broken, oldest: broken, points: 1 }] },
      { path: "dl", deleted: false, lastSeen: broken, versions: [{ type: "l", size: 9, mtime: T, newest: broken, oldest: p1, points: 2 }] },
    ]);
    const [, dir, , link] = findLines(r);
    expect(dir).toMatch(/^ {2}directory {2}mtime .* \(NOT restorable: zrb list says why\)$/);
    expect(link).toMatch(/^ {2}symlink {2}mtime .*, in 2 points back to .* \(NOT restorable/);
  });

  test("nothing found says so with the number of points searched; points without a catalog are listed (five, then …)", () => {
    const noCatalog = [1, 2, 3, 4, 5, 6].map((i) => ({ backupId: `b${i}`, why: "it has no catalog" }));
    const lines = findLines({ dataset: "tank/ds", pattern: "x.txt", searched: 2, newest: p2, noCatalog, matches: [] });
    expect(lines[0]).toBe('tank/ds: nothing matches "x.txt" in 2 restore point(s)');
    expect(lines[1]).toStartWith("tank/ds: 6 restore point(s) have no file catalog and were not searched: b1 (it has no catalog), ");
    expect(lines[1]).toContain("b5 (it has no catalog), …");
    expect(lines[1]).not.toContain("b6");
    expect(findLines({ dataset: "tank/ds", pattern: "x", searched: 0, newest: null, noCatalog: [], matches: [] })).toEqual(['tank/ds: nothing matches "x" in 0 restore point(s)']);
  });
});

describe("zrb find: its arguments", () => {
  test("--since: a duration back from now, or a date; anything else is a usage error", () => {
    const back = now().getTime() - parseSince("7d").getTime();
    expect(Math.abs(back - 7 * 86_400_000)).toBeLessThan(60_000);
    expect(parseSince("2026-11-01").toISOString()).toBe("2026-11-01T00:00:00.000Z");
    expect(parseSince("2026-11-01T12:00:00Z").toISOString()).toBe("2026-11-01T12:00:00.000Z");
    for (const bad of ["yesterday", "11/01/2026", "2026-13-45"]) {
      const e = (() => {
        try {
          parseSince(bad);
        } catch (err) {
          return err;
        }
      })();
      expect(e).toBeInstanceOf(ZrbError);
      expect((e as ZrbError).exitCode).toBe(ExitCode.USAGE);
      expect((e as Error).message).toContain("is neither a duration (7d, 24h) nor a date");
    }
  });

  test("an empty, blank or '..' pattern is refused (exit 2) before a config or key is read", async () => {
    const run = (pattern: string | undefined) => (findCommand.run as (c: { args: Record<string, unknown> }) => Promise<void>)({ args: { _: [], pattern } });
    for (const [pattern, why] of [
      ["", "is empty"],
      ["   ", "is empty"],
      ["../etc/*", "has a '..' component"],
      ["photos/../../x", "has a '..' component"],
      [undefined, "zrb find needs a PATTERN"],
    ] as const) {
      const e = await run(pattern).catch((err) => err);
      expect(e).toBeInstanceOf(ZrbError);
      expect((e as ZrbError).exitCode).toBe(ExitCode.USAGE);
      expect((e as Error).message).toContain(why);
    }
  });
});
