/**
 * Local retention (src/pipeline/prune/local.ts planLocal): the rules that keep a pool snapshot
 * whatever retention.local says, each on its own. The head rule matters when nothing else
 * protects the base of the next incremental: its hold was released by hand (or never placed by
 * an older zrb), and a newer snapshot of its level exists that was never backed up (that
 * level's backup failed). Destroying it would force the next run to a full.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_LOCAL_POLICY, destroySnapshots, planLocal } from "../../../src/pipeline/prune/local.ts";
import { HEADS_FORMAT, type Heads } from "../../../src/records/heads.ts";
import type { Snapshot } from "../../../src/zfs/zfs.ts";
import type { BackupState } from "../../../src/state/rundir.ts";
import { standInDir } from "./helpers.ts";

const FS = "tank/home";
let txg = 100n;
const snap = (short: string, guid: string): Snapshot => ({ name: `${FS}@${short}`, short, guid, createtxg: txg++ });

describe("local retention keeps the base of the next backups", () => {
  // Oldest first, as zfs lists them.
  const l0old = snap("zrb_level0_20270301T020000Z", "101"); // the level-0 head: backed up, not held
  const l0new = snap("zrb_level0_20270308T020000Z", "102"); // its level-0 backup failed: never in the bucket
  const l1old = snap("zrb_level1_20270309T020000Z", "103");
  const l1 = snap("zrb_level1_20270310T020000Z", "104"); // the level-1 head
  const mine = snap("before-upgrade", "105"); // not a zrb name
  const snaps = [l0old, l0new, l1old, l1, mine];
  const heads: Heads = {
    format: HEADS_FORMAT,
    updatedAt: "2027-03-10T03:00:00.000Z",
    levels: {
      "0": { backupId: "20270301T020000Z-L0-000001", snapshot: { name: l0old.name, guid: l0old.guid }, finishedAt: "2027-03-01T03:00:00.000Z" },
      "1": { backupId: "20270310T020000Z-L1-000004", snapshot: { name: l1.name, guid: l1.guid }, finishedAt: "2027-03-10T03:00:00.000Z" },
    },
  };

  test("a head with no hold, not the newest of its level and outside the policy is kept by the head rule alone", () => {
    const plan = planLocal(snaps, new Map(), heads, null, { last: 1 }, new Date("2027-03-11T00:00:00Z"));
    const by = (s: Snapshot) => plan.find((d) => d.name === s.name)!;
    expect(by(l0old)).toMatchObject({ action: "keep", reasons: [{ rule: "head", level: 0 }] });
    // The same kind of snapshot without that rule goes: the newer level-1 snapshot's older sibling.
    expect(by(l1old)).toMatchObject({ action: "destroy", reasons: [] });
    expect(by(l0new)).toMatchObject({ action: "keep", reasons: [{ rule: "newest-of-level", level: 0 }] });
    expect(by(l1).reasons.map((r) => r.rule)).toEqual(["last", "head", "newest-of-level"]);
    expect(plan.map((d) => d.name)).not.toContain(mine.name);
  });

  test("the head is matched by guid: a snapshot of the same name with another guid is not the head", () => {
    const recreated = { ...l0old, guid: "999" };
    const plan = planLocal([recreated, l0new, l1old, l1], new Map(), heads, null, { last: 1 }, new Date("2027-03-11T00:00:00Z"));
    expect(plan.find((d) => d.name === recreated.name)).toMatchObject({ action: "destroy", reasons: [] });
  });

  test("another store's interrupted backup (issue 25): its snapshot and base stay, as this store's own would", () => {
    const other = { snapshot: { name: l1old.name, guid: l1old.guid }, parent: { name: l0old.name, guid: l0old.guid } } as unknown as BackupState;
    const plan = planLocal(snaps, new Map(), heads, null, { last: 1 }, new Date("2027-03-11T00:00:00Z"), [other]);
    expect(plan.find((d) => d.name === l1old.name)).toMatchObject({ action: "keep", reasons: [{ rule: "resumable" }] });
  });

  test("this store's interrupted backup: its base (the snapshot it sends from) stays too", () => {
    const headless: Heads = { ...heads, levels: {} };
    const state = { snapshot: { name: l1.name, guid: l1.guid }, parent: { name: l0old.name, guid: l0old.guid } } as unknown as BackupState;
    const plan = planLocal(snaps, new Map(), headless, state, { last: 1 }, new Date("2027-03-11T00:00:00Z"));
    expect(plan.find((d) => d.name === l0old.name)).toMatchObject({ action: "keep", reasons: [{ rule: "resumable" }] });
  });

  test("a held snapshot (anyone's hold) stays, and the plan says so rather than leaving it to zfs to refuse", () => {
    const plan = planLocal(snaps, new Map([[l1old.name, 2]]), heads, null, { last: 1 }, new Date("2027-03-11T00:00:00Z"));
    expect(plan.find((d) => d.name === l1old.name)).toMatchObject({ action: "keep", reasons: [{ rule: "held", userrefs: 2 }] });
    // One hold is enough (zrb's own base hold, or a send hold of a running backup).
    const one = planLocal(snaps, new Map([[l1old.name, 1]]), heads, null, { last: 1 }, new Date("2027-03-11T00:00:00Z"));
    expect(one.find((d) => d.name === l1old.name)).toMatchObject({ action: "keep", reasons: [{ rule: "held", userrefs: 1 }] });
  });

  test("a user's snapshot whose name only looks like zrb's is never a candidate, whatever the policy keeps", () => {
    // Older than zrb's, and outside every rule: a zrb-named one in their place would go.
    const lookalikes = [snap("zrb_level0_before-upgrade", "201"), snap("zrb_level1_20270301T020000Z.old", "202"), snap("zrb_level2_20270231T020000Z", "203"), snap("zrb_level0_20270301T020000", "204")];
    const plan = planLocal([...lookalikes, ...snaps], new Map(), heads, null, { last: 1 }, new Date("2027-03-11T00:00:00Z"));
    expect(plan.map((d) => d.name)).toEqual([l0old, l0new, l1old, l1].map((s) => s.name));
  });
});

describe("without retention.local", () => {
  test("the last 7 days of zrb's snapshots stay (docs: retention), older ones outside every rule go", () => {
    const at = (d: string) => snap(`zrb_level2_2027031${d}T020000Z`, `3${d}`);
    // Now is 2027-03-19T03:00Z: day 12 is 7 days and 1 hour old, day 13 6 days and 1 hour.
    const [d11, d12, d13, d14] = ["1", "2", "3", "4"].map(at);
    const plan = planLocal([d11!, d12!, d13!, d14!], new Map(), { format: HEADS_FORMAT, updatedAt: "2027-03-19T03:00:00.000Z", levels: {} }, null, DEFAULT_LOCAL_POLICY, new Date("2027-03-19T03:00:00Z"));
    const action = (s: Snapshot) => plan.find((d) => d.name === s.name)!.action;
    expect([d11, d12, d13].map((s) => action(s!))).toEqual(["destroy", "destroy", "keep"]);
    expect(action(d14!)).toBe("keep");
  });
});

describe("destroying", () => {
  test("only the snapshots the plan gives up are destroyed, one `zfs destroy` each, in order; one zfs refuses is reported, not thrown", async () => {
    // A stand-in zfs (ZRB_ZFS) that logs its arguments, and refuses one snapshot as a hold placed meanwhile would.
    const { dir, done } = standInDir("zrb-fakezfs-", (d) => `#!/bin/sh\necho "$*" >> '${d}/log'\ncase "$2" in *@zrb_level1_20270303T020000Z) echo "cannot destroy snapshot $2: dataset is busy" >&2; exit 1;; esac\nexit 0\n`);
    const ds = "zrbunitpool/nowhere";
    const s = (short: string, guid: string): Snapshot => ({ name: `${ds}@${short}`, short, guid, createtxg: txg++ });
    const l0 = s("zrb_level0_20270301T020000Z", "301");
    const l1a = s("zrb_level1_20270302T020000Z", "302");
    const l1b = s("zrb_level1_20270303T020000Z", "303");
    const l1c = s("zrb_level1_20270304T020000Z", "304");
    const held = s("zrb_level1_20270305T020000Z", "305");
    const l1d = s("zrb_level1_20270306T020000Z", "306");
    try {
      const none: Heads = { format: HEADS_FORMAT, updatedAt: "", levels: {} };
      const plan = planLocal([l0, l1a, l1b, l1c, held, l1d], new Map([[held.name, 1]]), none, null, { last: 1 }, new Date("2027-03-11T00:00:00Z"));
      expect(plan.filter((d) => d.action === "destroy").map((d) => d.name)).toEqual([l1a.name, l1b.name, l1c.name]);
      expect(await destroySnapshots(plan)).toEqual([l1b.name]);
      expect(readFileSync(join(dir, "log"), "utf8").trim().split("\n")).toEqual([l1a, l1b, l1c].map((x) => `destroy ${x.name}`));
      // Interrupted (SIGTERM) before it starts: nothing more is destroyed.
      const stop = new AbortController();
      stop.abort();
      await expect(destroySnapshots(plan, stop.signal)).rejects.toThrow();
      expect(readFileSync(join(dir, "log"), "utf8").trim().split("\n").length).toBe(3);
    } finally {
      done();
    }
  });
});
