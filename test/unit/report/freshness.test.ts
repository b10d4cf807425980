/**
 * Freshness (report/freshness.ts), the judgement behind `zrb status --max-age`: the newest
 * backup at any level, or at each level given (that level or a lower one), against the limit.
 */
import { describe, expect, test } from "bun:test";
import { ageInWords, checkFreshness, describeStale, newestLine } from "../../../src/report/freshness.ts";
import type { Heads } from "../../../src/records/heads.ts";

const H = 3600_000;
const now = new Date("2027-03-10T12:00:00Z");
const head = (id: string, finishedAt: string) => ({ backupId: id, snapshot: { name: `tank/p@${id}`, guid: "1" }, finishedAt });
const heads: Heads = {
  format: "zrb-heads/1",
  updatedAt: "2027-03-10T02:30:00Z",
  levels: {
    "0": head("full", "2027-03-07T02:00:00Z"), // 3 d 10 h old
    "1": head("incr", "2027-03-10T02:30:00Z"), // 9.5 h old
  },
};

describe("checkFreshness", () => {
  test("any level: the newest backup counts", () => {
    const [c] = checkFreshness("photos", "tank/p", heads, null, 26 * H, now);
    expect(c).toMatchObject({ level: null, newest: { backupId: "incr", level: 1 }, ageSeconds: 9.5 * 3600, stale: false });
    expect(checkFreshness("photos", "tank/p", heads, null, 9 * H, now)[0]!.stale).toBe(true);
  });

  test("each level given: that level or a lower one", () => {
    const [l0, l1] = checkFreshness("photos", "tank/p", heads, [0, 1], 26 * H, now);
    expect(l0).toMatchObject({ level: 0, newest: { backupId: "full" }, stale: true });
    expect(l1).toMatchObject({ level: 1, newest: { backupId: "incr" }, stale: false });
    // after a new full the heads drop level 1: the full answers for level 1 too
    const afterFull: Heads = { ...heads, levels: { "0": head("new-full", "2027-03-10T02:00:00Z") } };
    expect(checkFreshness("photos", "tank/p", afterFull, [1], 26 * H, now)[0]).toMatchObject({ newest: { backupId: "new-full", level: 0 }, stale: false });
  });

  test("no backup at all is stale, and says so", () => {
    const [c] = checkFreshness("photos", "tank/p", { ...heads, levels: {} }, [0], 26 * H, now);
    expect(c).toMatchObject({ newest: null, ageSeconds: null, stale: true });
    expect(describeStale(c!, "26h")).toBe("task photos (tank/p) has no backup at level ≤ 0 at all");
  });

  test("with a verification key known, only signed backups count: 'no signed backup', 'the newest signed backup'", () => {
    const [none] = checkFreshness("photos", "tank/p", { ...heads, levels: {} }, null, 26 * H, now, true);
    expect(describeStale(none!, "26h")).toStartWith("task photos (tank/p) has no signed backup at all (unsigned backups");
    const [old] = checkFreshness("photos", "tank/p", heads, [0], 48 * H, now, true);
    expect(describeStale(old!, "2d")).toStartWith("task photos (tank/p): the newest signed backup at level ≤ 0 (full, level 0)");
  });

  test("the message names the task, the backup, its age and the limit", () => {
    const [c] = checkFreshness("photos", "tank/p", heads, [0], 48 * H, now);
    expect(describeStale(c!, "2d")).toBe(
      "task photos (tank/p): the newest backup at level ≤ 0 (full, level 0) finished 2027-03-07T02:00:00Z, 3d 10h ago, more than --max-age 2d",
    );
  });

  test("status's age in words, and the newest backup marked STALE past the limit", () => {
    expect([2, 45, 600, 3 * 3600 + 59, 4 * 86_400 + 5, -7200].map(ageInWords)).toEqual(["just now", "45 s ago", "10 min ago", "3 h ago", "4 d ago", "in 2 h"]);
    const at = new Date("2027-03-10T12:00:00Z");
    const hs = [
      { level: 0, finishedAt: "2027-03-01T02:00:00Z" },
      { level: 1, finishedAt: "2027-03-10T09:00:00Z" },
    ];
    expect(newestLine(hs, at, 2 * 86_400_000, "2d")).toBe("newest backup 3 h ago (level 1)");
    expect(newestLine(hs.slice(0, 1), at, 2 * 86_400_000, "2d")).toBe("newest backup 9 d ago (level 0)  STALE: older than 2d");
    expect(newestLine([], at, 1, "2d")).toBe("no backup yet");
  });
});
