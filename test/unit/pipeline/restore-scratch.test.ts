/**
 * restore/scratch.ts: each restore step claims a scratch directory of its own, so that two runs
 * restoring the same backup at once (a drill and a restore to another target) do not empty or
 * remove each other's downloaded parts; a killed run's directory is taken over and emptied.
 * `zrb verify` claims its scratch the same way, so cleanup's sweep removes a killed verify's too.
 */
import { afterEach, beforeEach, expect, spyOn, test } from "bun:test";
import * as fs from "node:fs";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { claimScratch, removeStaleScratch, VERIFY_SCRATCH } from "../../../src/pipeline/restore/scratch.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import { lockHeld } from "../../../src/state/lock.ts";
import { log } from "../../../src/util/log.ts";

const ID = "20270310T020000Z-L1-00aaaa";
let root = "";
beforeEach(() => void (root = mkdtempSync(join(tmpdir(), "zrb-scratch-"))));
afterEach(() => rmSync(root, { recursive: true, force: true }));

test("two runs of one backup get two directories; each release removes only its own", () => {
  const a = claimScratch(root, ID);
  writeFileSync(join(a.dir, "part-000000.age"), "a's verified part");
  const b = claimScratch(root, ID);
  expect([a.dir, b.dir]).toEqual([join(root, ID), join(root, `${ID}.1`)]);
  expect(readdirSync(a.dir)).toEqual(["part-000000.age"]); // b did not empty a's
  b.release();
  expect(existsSync(b.dir)).toBe(false);
  expect(existsSync(join(a.dir, "part-000000.age"))).toBe(true);
  a.release();
  expect(readdirSync(root)).toEqual([]); // no directory, no lock file left
});

test("a killed run's directory (its lock held by no process) is taken over and emptied", () => {
  mkdirSync(join(root, ID, "sub"), { recursive: true });
  writeFileSync(join(root, ID, "part-000003.age"), "left by a run killed with -9");
  writeFileSync(join(root, `${ID}.lock`), JSON.stringify({ pid: 999999, start: "", host: "nas", command: "zrb restore", since: "2027-01-01T00:00:00Z" }));
  const c = claimScratch(root, ID);
  expect(c.dir).toBe(join(root, ID));
  expect(readdirSync(c.dir)).toEqual([]);
  c.release();
});

test("a directory release cannot remove stays, named in a warning, and its claim goes: the next run takes it (not a .1) and empties it", () => {
  const a = claimScratch(root, ID);
  writeFileSync(join(a.dir, "part-000000.age"), "a verified part");
  const real = fs.rmSync;
  const rm = spyOn(fs, "rmSync").mockImplementation(((p: fs.PathLike, o?: fs.RmOptions) => {
    if (String(p) === a.dir) throw Object.assign(new Error(`EACCES: permission denied, rm '${a.dir}'`), { code: "EACCES" });
    return real(p, o);
  }) as typeof fs.rmSync);
  const warn = spyOn(log, "warn").mockImplementation(() => {});
  try {
    a.release();
    expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([`cannot remove the restore scratch directory ${a.dir}: EACCES: permission denied, rm '${a.dir}'; the next run or zrb cleanup removes it`]);
  } finally {
    rm.mockRestore();
    warn.mockRestore();
  }
  expect(existsSync(join(a.dir, "part-000000.age"))).toBe(true);
  expect(lockHeld(`${a.dir}.lock`)).toBe(false);
  const b = claimScratch(root, ID);
  expect(b.dir).toBe(a.dir);
  expect(readdirSync(b.dir)).toEqual([]);
  b.release();
  expect(readdirSync(root)).toEqual([]);
});

test("when every directory is held, the next run is refused as locked (exit 4), naming the backup", () => {
  const held = Array.from({ length: 16 }, () => claimScratch(root, ID));
  try {
    let err: unknown;
    try {
      claimScratch(root, ID);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ZrbError);
    expect((err as ZrbError).exitCode).toBe(ExitCode.LOCKED);
    expect((err as ZrbError).message).toContain(`restoring backup ${ID} on this host already`);
  } finally {
    for (const h of held) h.release();
  }
});

test("cleanup's sweep: a killed run's directory goes, a live run's and anything not named as zrb names them stay; a dry run removes nothing", () => {
  const killed = join(root, ID);
  mkdirSync(killed);
  writeFileSync(join(killed, "part-000001.age"), "ciphertext of a drill killed with -9");
  const live = claimScratch(root, "20270310T020000Z-L0-00bbbb");
  writeFileSync(join(live.dir, "part-000000.age"), "a running restore's part");
  const mine = join(root, "notes");
  mkdirSync(mine);
  const odd = join(root, "verify-AbC123"); // not a name claimScratch gives
  mkdirSync(odd);
  // A verify killed with -9 (its parts stay: a 3 GiB part each) and one running now.
  const killedVerify = join(root, `${VERIFY_SCRATCH}.1`);
  mkdirSync(killedVerify);
  writeFileSync(join(killedVerify, "part-000002.age"), "ciphertext of a verify killed with -9");
  const liveVerify = claimScratch(root, VERIFY_SCRATCH);
  expect(liveVerify.dir).toBe(join(root, "verify"));
  const stale = [killed, killedVerify].sort();
  try {
    expect(removeStaleScratch(root, true).sort()).toEqual(stale);
    expect(existsSync(killed)).toBe(true);
    expect(removeStaleScratch(root).sort()).toEqual(stale);
    for (const p of [join(live.dir, "part-000000.age"), mine, odd, liveVerify.dir]) expect({ p, there: existsSync(p) }).toEqual({ p, there: true });
    expect(existsSync(killed)).toBe(false);
    expect(existsSync(killedVerify)).toBe(false);
    expect(existsSync(`${killed}.lock`)).toBe(false);
  } finally {
    live.release();
    liveVerify.release();
  }
  expect(readdirSync(root).sort()).toEqual([mine, odd].map((p) => p.slice(root.length + 1)).sort());
});
