/**
 * removeStaleDrills (pipeline/drill/stale.ts) and removeDrill / removeEmptyDirs (pool.ts): what
 * a killed drill left is removed, and nothing else — with stand-in `zpool` and `zfs` binaries
 * (ZRB_ZPOOL, ZRB_ZFS) that answer from files and record every call. Removed: a dead drill's pool
 * whose vdev is its .img in drill.dir, a dead drill's clone (name and zrb:drill property), its
 * files and empty mount directories. Kept: anything of a live drill (its lock held), a pool of
 * that name on something else, a clone-like dataset without the marker, a look-alike file name,
 * a mount directory that still holds a file, the file of a pool that could not be destroyed, and
 * everything on a dry run.
 */
import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import * as fs from "node:fs";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeStaleDrills } from "../../../src/pipeline/drill/stale.ts";
import { drillNames, removeDrill, removeEmptyDirs } from "../../../src/pipeline/drill/pool.ts";
import { acquireLock } from "../../../src/state/lock.ts";
import { log } from "../../../src/util/log.ts";
import { standIn } from "./helpers.ts";

/** Answers from files in its own directory; logs "<bin> <args>" to calls. */
const STAND_IN = `#!/bin/sh
D=$(dirname "$0")
B=$(basename "$0")
echo "$B $*" >> "$D/calls"
for last; do :; done
case "$B $1" in
  "zpool list") cat "$D/pools" 2>/dev/null; exit 0 ;;
  "zpool status") [ -f "$D/status-$2" ] || { echo "cannot open '$2': no such pool" >&2; exit 1; }; cat "$D/status-$2"; exit 0 ;;
  "zpool destroy"|"zfs destroy")
    k=$(echo "$last" | tr / _)
    if [ -f "$D/refuse-$k" ]; then echo "cannot destroy '$last': permission denied" >&2; exit 1; fi
    exit 0 ;;
  "zfs list") k=$(echo "$last" | tr / _); cat "$D/children-$k" 2>/dev/null; exit 0 ;;
esac
echo "unexpected: $B $*" >&2
exit 1
`;

let top = "";
let bin = "";
let restore: (() => void)[] = [];
beforeEach(() => {
  top = realpathSync(mkdtempSync(join(tmpdir(), "zrb-stale-drills-")));
  bin = join(top, "bin");
  mkdirSync(bin);
  restore = [standIn(bin, STAND_IN, "zfs"), standIn(bin, STAND_IN, "zpool")];
});
afterEach(() => {
  for (const r of restore) r();
  rmSync(top, { recursive: true, force: true });
});

const calls = () => (existsSync(join(bin, "calls")) ? readFileSync(join(bin, "calls"), "utf8").split("\n").filter((l) => l !== "") : []);
const destroys = () => calls().filter((c) => / destroy /.test(c)).sort();
/** `zpool status` as it prints a pool on one file vdev. */
const status = (pool: string, vdev: string) => `  pool: ${pool}\n state: ONLINE\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\t${pool}  ONLINE       0     0     0\n\t  ${vdev}  ONLINE       0     0     0\n\nerrors: No known data errors\n`;

describe("stale drills", () => {
  test("only a dead drill's pool (its vdev our .img), clone (name and zrb:drill) and files go; the rest stays, and a dry run removes nothing", async () => {
    const dir = join(top, "drill");
    mkdirSync(dir, { mode: 0o700 });
    const cfg = { baseDir: top, drill: { dir } } as Parameters<typeof removeStaleDrills>[0];
    const dead = drillNames(dir, "aaaaaaaaaaaa"); // killed: pool, clone, file, mount tree
    const live = drillNames(dir, "bbbbbbbbbbbb"); // running now: its lock is held
    const starting = drillNames(dir, "222222222222"); // running now, its pool not made yet
    const foreign = drillNames(dir, "cccccccccccc"); // a pool of that name on a disk, not our file
    const stuck = drillNames(dir, "000000000003"); // killed, but its pool cannot be destroyed
    const leftFiles = drillNames(dir, "ffffffffffff"); // killed after its pool went
    const busyMnt = drillNames(dir, "000000000001"); // a mount directory that still holds a file
    writeFileSync(join(bin, "pools"), ["tank", dead.pool, live.pool, foreign.pool, stuck.pool, "zrbdrillnotours"].join("\n") + "\n");
    writeFileSync(join(bin, `status-${dead.pool}`), status(dead.pool, dead.file));
    writeFileSync(join(bin, `status-${live.pool}`), status(live.pool, live.file));
    writeFileSync(join(bin, `status-${foreign.pool}`), status(foreign.pool, "/dev/sdz1"));
    writeFileSync(join(bin, `status-${stuck.pool}`), status(stuck.pool, stuck.file));
    writeFileSync(join(bin, `refuse-${stuck.pool}`), "");
    writeFileSync(
      join(bin, "children-tank"),
      [
        ["tank", "-"],
        ["tank/zrbdrillaaaaaaaaaaaa-src", "aaaaaaaaaaaa"], // the dead drill's clone
        ["tank/zrbdrillbbbbbbbbbbbb-src", "bbbbbbbbbbbb"], // the live drill's clone
        ["tank/zrbdrilldddddddddddd-src", "dddddddddddd"], // a dead drill's clone (its pool already gone)
        ["tank/photos", "eeeeeeeeeeee"], // the marker on a dataset not named as a clone
        ["tank/zrbdrill--src", "-"], // named like one, no marker
        ["tank/zrbdrill0123456789abc-src", "0123456789abc"], // 13 digits: no drill's id
      ]
        .map((r) => r.join("\t"))
        .join("\n") + "\n",
    );
    for (const n of [dead, live, starting, foreign, stuck, leftFiles]) writeFileSync(n.file, "");
    writeFileSync(leftFiles.lock, "");
    for (const n of [dead, live, stuck, leftFiles]) mkdirSync(join(n.mnt, "sub"), { recursive: true });
    mkdirSync(busyMnt.mnt);
    writeFileSync(join(busyMnt.mnt, "data.bin"), "a file: maybe a mount that did not go");
    const lookAlikes = [join(dir, "zrbdrillaaaaaaaaaaaa.img.keep"), join(dir, "zrbdrill0123456789abcd.img"), join(dir, "zrbdrillffffffffffff-notes.txt")];
    for (const f of lookAlikes) writeFileSync(f, "mine");
    const locks = [live, starting].map((n) => acquireLock(n.lock, `drill pool ${n.pool}`, "zrb drill"));
    const info = spyOn(log, "info").mockImplementation(() => {});
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      const everything = [dead.file, dead.mnt, live.file, live.lock, live.mnt, foreign.file, stuck.file, stuck.mnt, leftFiles.file, leftFiles.lock, leftFiles.mnt, join(busyMnt.mnt, "data.bin"), ...lookAlikes];
      const dry = await removeStaleDrills(cfg, ["tank", "tank"], { dryRun: true });
      expect(dry.pools.sort()).toEqual([stuck.pool, dead.pool]);
      expect(dry.clones.sort()).toEqual(["tank/zrbdrillaaaaaaaaaaaa-src", "tank/zrbdrilldddddddddddd-src"]);
      expect(destroys()).toEqual([]);
      for (const p of everything) expect(existsSync(p)).toBe(true);

      const r = await removeStaleDrills(cfg, ["tank"]);
      expect(r.pools).toEqual([dead.pool]);
      expect(r.clones.sort()).toEqual(["tank/zrbdrillaaaaaaaaaaaa-src", "tank/zrbdrilldddddddddddd-src"]);
      expect(destroys()).toEqual([`zfs destroy tank/zrbdrillaaaaaaaaaaaa-src`, `zfs destroy tank/zrbdrilldddddddddddd-src`, `zpool destroy -f ${stuck.pool}`, `zpool destroy -f ${dead.pool}`]);
      for (const gone of [dead.file, dead.mnt, leftFiles.file, leftFiles.lock, leftFiles.mnt]) expect(existsSync(gone)).toBe(false);
      // The live drill's, the foreign pool's .img, the file and mount of the pool still there, the busy mount, the look-alikes.
      for (const kept of [live.file, live.lock, join(live.mnt, "sub"), starting.file, starting.lock, foreign.file, stuck.file, join(stuck.mnt, "sub"), join(busyMnt.mnt, "data.bin"), ...lookAlikes]) expect(existsSync(kept)).toBe(true);
      expect(warn.mock.calls.some((c) => String(c[0]).includes(`cannot destroy the drill pool ${stuck.pool}`))).toBe(true);
    } finally {
      for (const l of locks) l.release();
      info.mockRestore();
      warn.mockRestore();
    }
  });

  test("a clone names its drill's lock: another store's running drill (its lock in another drill.dir) keeps its clone; a dead one's goes", async () => {
    const dir = join(top, "drill");
    const otherDir = join(top, "stores", "cold", "drill"); // another store's drill.dir
    mkdirSync(dir, { mode: 0o700 });
    mkdirSync(otherDir, { recursive: true, mode: 0o700 });
    const running = drillNames(otherDir, "aaaaaaaaaaa1");
    const killed = drillNames(otherDir, "aaaaaaaaaaa2");
    writeFileSync(join(bin, "pools"), "tank\n");
    writeFileSync(
      join(bin, "children-tank"),
      [
        ["tank", "-", "-"],
        ["tank/zrbdrillaaaaaaaaaaa1-src", "aaaaaaaaaaa1", running.lock],
        ["tank/zrbdrillaaaaaaaaaaa2-src", "aaaaaaaaaaa2", killed.lock],
      ]
        .map((r) => r.join("\t"))
        .join("\n") + "\n",
    );
    writeFileSync(killed.lock, "");
    const lock = acquireLock(running.lock, `drill pool ${running.pool}`, "zrb drill");
    const info = spyOn(log, "info").mockImplementation(() => {});
    try {
      const r = await removeStaleDrills({ baseDir: top, drill: { dir } } as Parameters<typeof removeStaleDrills>[0], ["tank"]);
      expect(r.clones).toEqual(["tank/zrbdrillaaaaaaaaaaa2-src"]);
      expect(destroys()).toEqual(["zfs destroy tank/zrbdrillaaaaaaaaaaa2-src"]);
      expect(calls()).toContain("zfs list -H -d 1 -t filesystem,volume -o name,zrb:drill,zrb:drill-lock tank");
    } finally {
      lock.release();
      info.mockRestore();
    }
  });

  test("a stages record of a dead drill goes only once every stage it lists is gone", async () => {
    const dir = join(top, "drill");
    mkdirSync(dir, { mode: 0o700 });
    const cfg = { baseDir: top, drill: { dir } } as Parameters<typeof removeStaleDrills>[0];
    const n = drillNames(dir, "000000000002");
    const to = join(top, "to");
    mkdirSync(to);
    const stage = join(to, ".zrb-restore-000000000002-0");
    mkdirSync(join(stage, "mnt"), { recursive: true, mode: 0o700 });
    chmodSync(stage, 0o700);
    writeFileSync(n.stages, `${JSON.stringify(stage)}\n`);
    writeFileSync(join(bin, "pools"), "");
    const info = spyOn(log, "info").mockImplementation(() => {});
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    // A file system mounted inside the stage: rm does not cross it, the stage stays, so does its record.
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", join(stage, "mnt")]).exitCode).toBe(0);
    try {
      writeFileSync(join(stage, "mnt/theirs.txt"), "x");
      const r = await removeStaleDrills(cfg, []);
      expect(r.stages).toEqual([]);
      expect(existsSync(n.stages)).toBe(true);
      expect(readFileSync(join(stage, "mnt/theirs.txt"), "utf8")).toBe("x");
    } finally {
      Bun.spawnSync(["umount", join(stage, "mnt")]);
    }
    try {
      // Unmounted: the next run removes the stage, then the record.
      const r = await removeStaleDrills(cfg, []);
      expect(r.stages).toEqual([stage]);
      expect(existsSync(stage)).toBe(false);
      expect(existsSync(n.stages)).toBe(false);
    } finally {
      info.mockRestore();
      warn.mockRestore();
    }
  });
});

describe("removeDrill and removeEmptyDirs", () => {
  test("a pool that cannot be destroyed keeps its file and mount directory; a destroyed one's go", async () => {
    const dir = join(top, "drill");
    mkdirSync(dir);
    const n = drillNames(dir, "aaaaaaaaaaaa");
    writeFileSync(n.file, "");
    mkdirSync(n.mnt);
    writeFileSync(join(bin, `refuse-${n.pool}`), "");
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      expect(await removeDrill(n)).toBe(false);
      expect(existsSync(n.file)).toBe(true);
      expect(existsSync(n.mnt)).toBe(true);
      rmSync(join(bin, `refuse-${n.pool}`));
      expect(await removeDrill(n)).toBe(true);
      expect(existsSync(n.file)).toBe(false);
      expect(existsSync(n.mnt)).toBe(false);
    } finally {
      warn.mockRestore();
    }
  });

  test("only a tree of empty directories is removed; a directory holding a file stays, with the file", () => {
    const d = join(top, "mnt");
    mkdirSync(join(d, "a/b"), { recursive: true });
    mkdirSync(join(d, "c"));
    writeFileSync(join(d, "c/file.txt"), "keep");
    removeEmptyDirs(d);
    expect(existsSync(join(d, "a"))).toBe(false);
    expect(readFileSync(join(d, "c/file.txt"), "utf8")).toBe("keep");
    rmSync(join(d, "c/file.txt"));
    removeEmptyDirs(d);
    expect(existsSync(d)).toBe(false);
  });
});

describe("stale drills: links in drill.dir", () => {
  // removeEmptyDirs follows no symbolic link, and a drill.dir others can write is left alone
  // altogether: otherwise whoever can write it makes root remove every empty directory below any
  // path (a link to / reaches /run/sshd, mount points, …).
  const system = () => {
    const target = join(top, "system");
    for (const d of ["run/sshd", "mnt/backup", "srv"]) mkdirSync(join(target, d), { recursive: true });
    return target;
  };
  const stale = async (dir: string) => {
    writeFileSync(join(bin, "pools"), "");
    const info = spyOn(log, "info").mockImplementation(() => {});
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      await removeStaleDrills({ baseDir: top, drill: { dir } } as Parameters<typeof removeStaleDrills>[0], []);
      return warn.mock.calls.map((c) => String(c[0]));
    } finally {
      info.mockRestore();
      warn.mockRestore();
    }
  };

  test("a drill.dir others can write: a link named like a killed drill's mount directory is not followed, and the refusal is said", async () => {
    const dir = join(top, "drill");
    mkdirSync(dir);
    chmodSync(dir, 0o777); // zrb refuses it for a drill too
    const target = system();
    const link = join(dir, "zrbdrill0123456789ab");
    fs.symlinkSync(target, link);
    fs.lchownSync(link, 65534, 65534); // planted by another user
    const warned = await stale(dir);
    for (const d of ["run/sshd", "mnt/backup", "srv"]) expect(existsSync(join(target, d))).toBe(true);
    expect(warned.some((w) => w.includes(`drill.dir ${dir} is writable by other users (mode 0777)`) && w.includes("left alone"))).toBe(true);
  });

  test("a drill.dir under a directory others can write: nothing there is removed, and the parent is named", async () => {
    const parent = join(top, "shared");
    const dir = join(parent, "drill");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(parent, 0o777);
    mkdirSync(join(dir, "zrbdrillaaaaaaaaaaaa", "empty"), { recursive: true }); // a killed drill's mount tree
    const warned = await stale(dir);
    expect(existsSync(join(dir, "zrbdrillaaaaaaaaaaaa", "empty"))).toBe(true);
    expect(warned.some((w) => w.includes(`drill.dir ${dir} is not safe: ${parent} (a parent of drill.dir) is writable by every user`) && w.includes("left alone"))).toBe(true);
    expect(destroys()).toEqual([]);
  });

  test("no drill.dir (or a file where it should be): nothing to do, no error, no zfs call", async () => {
    for (const dir of [join(top, "none"), join(top, "file", "drill")]) {
      writeFileSync(join(top, "file"), "");
      expect(await stale(dir)).toEqual([]);
    }
    expect(calls()).toEqual([]);
  });

  test("a safe drill.dir: a link at a mount directory, or below one, is never followed (nor removed)", async () => {
    const dir = join(top, "drill");
    mkdirSync(dir, { mode: 0o700 });
    const target = system();
    fs.symlinkSync(target, join(dir, "zrbdrill0123456789ab"));
    // A killed drill's real mount directory, with a link planted inside it.
    mkdirSync(join(dir, "zrbdrillaaaaaaaaaaaa", "empty"), { recursive: true });
    fs.symlinkSync(target, join(dir, "zrbdrillaaaaaaaaaaaa", "inner"));
    await stale(dir);
    for (const d of ["run/sshd", "mnt/backup", "srv"]) expect(existsSync(join(target, d))).toBe(true);
    expect(fs.lstatSync(join(dir, "zrbdrill0123456789ab")).isSymbolicLink()).toBe(true);
    expect(existsSync(join(dir, "zrbdrillaaaaaaaaaaaa", "empty"))).toBe(false); // the empty part of the tree went
    expect(fs.lstatSync(join(dir, "zrbdrillaaaaaaaaaaaa", "inner")).isSymbolicLink()).toBe(true);
  });
});
