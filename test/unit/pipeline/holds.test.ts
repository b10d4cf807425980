/**
 * The holds a backup puts on and takes off snapshots (pipeline/backup/holds.ts), against a
 * stand-in `zfs` (ZRB_ZFS) that answers `zfs get userrefs` from a file and records every hold
 * and release: only the store's own tag is ever released, never on the snapshots a run keeps
 * (its own send and base, the heads), never on a snapshot that is not zrb's (zrb_level…), and
 * base holds are only ever taken on snapshots of the task's own dataset.
 */
import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SendHolds, moveBaseHolds, releaseStraySendHolds } from "../../../src/pipeline/backup/holds.ts";
import { HEADS_FORMAT, type Heads } from "../../../src/records/heads.ts";
import { log } from "../../../src/util/log.ts";
import { standInDir } from "./helpers.ts";

let dir = "";
let done = () => {};
beforeEach(() => {
  ({ dir, done } = standInDir(
    "zrb-holds-",
    `#!/bin/sh
D=$(dirname "$0")
case "$1" in
  get) cat "$D/userrefs"; exit 0 ;;
  hold|release) echo "$*" >> "$D/calls"; exit 0 ;;
esac
echo "unexpected: $*" >&2
exit 1
`,
  ));
});
afterEach(() => done());

/** `zfs get -H -p -r -d 1 -o name,value userrefs` as it prints the dataset and its snapshots. */
const userrefs = (rows: [string, number | "-"][]) => writeFileSync(join(dir, "userrefs"), rows.map((r) => r.join("\t")).join("\n") + "\n");
const calls = () => (existsSync(join(dir, "calls")) ? readFileSync(join(dir, "calls"), "utf8").split("\n").filter((l) => l !== "") : []);
const head = (name: string) => ({ backupId: "B", snapshot: { name, guid: "1" }, finishedAt: new Date(0).toISOString() });

describe("send holds", () => {
  test("stray ones are released with the store's own tag from held snapshots only, never from the run's snapshot or its base", async () => {
    userrefs([
      ["tank/ds", "-"],
      ["tank/ds@zrb_level1_now", 2], // the run's snapshot
      ["tank/ds@zrb_level0_base", 1], // its base
      ["tank/ds@zrb_level1_killed", 1], // a killed run's
      ["tank/ds@zrb_level1_free", 0], // no hold at all
    ]);
    const tried = await releaseStraySendHolds("tank/ds", ["tank/ds@zrb_level1_now", "tank/ds@zrb_level0_base", undefined], "zrb-send.offsite");
    expect(tried).toEqual(["tank/ds@zrb_level1_killed"]);
    expect(calls()).toEqual(["release zrb-send.offsite tank/ds@zrb_level1_killed"]);
  });

  test("a run's send holds are taken and released with its store's tag", async () => {
    const h = new SendHolds("zrb-send.offsite");
    await h.take(["tank/ds@zrb_level1_now", undefined, "tank/ds@zrb_level0_base"]);
    await h.releaseAll();
    expect(calls()).toEqual([
      "hold zrb-send.offsite tank/ds@zrb_level1_now",
      "hold zrb-send.offsite tank/ds@zrb_level0_base",
      "release zrb-send.offsite tank/ds@zrb_level0_base",
      "release zrb-send.offsite tank/ds@zrb_level1_now",
    ]);
  });
});

describe("base holds", () => {
  test("held on every head of the dataset, released with the store's tag from zrb's snapshots that are no longer heads; nothing else touched", async () => {
    const heads: Heads = {
      format: HEADS_FORMAT,
      updatedAt: new Date(0).toISOString(),
      levels: {
        "0": head("tank/ds@zrb_level0_a"),
        "1": head("tank/ds@zrb_level1_b"),
        "2": head("tank/ds/child@zrb_level2_c"), // not a snapshot of tank/ds
      },
    };
    userrefs([
      ["tank/ds", "-"],
      ["tank/ds@zrb_level0_a", 1], // a head, already held
      ["tank/ds@zrb_level1_b", 0], // a head, not held yet
      ["tank/ds@zrb_level0_old", 1], // a head no more
      ["tank/ds@zrb_level1_older", 0], // no hold to release
      ["tank/ds@before-upgrade", 1], // the admin's own snapshot, held by the admin
    ]);
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      await moveBaseHolds("tank/ds", heads, "zrb.offsite");
    } finally {
      warn.mockRestore();
    }
    expect(calls()).toEqual(["hold zrb.offsite tank/ds@zrb_level0_a", "hold zrb.offsite tank/ds@zrb_level1_b", "release zrb.offsite tank/ds@zrb_level0_old"]);
  });
});
