/**
 * The parts of zfs.ts and snapfiles.ts that read what zfs prints or build its arguments, run
 * against a stand-in `zfs` (ZRB_ZFS) that prints fixed text: usage, `zfs get`, `zfs diff`.
 */
import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as zfs from "../../../src/zfs/zfs.ts";
import { log } from "../../../src/util/log.ts";
import { cloneName, removeStaleClone, walk, zfsDiff } from "../../../src/zfs/snapfiles.ts";

const dirs: string[] = [];
const savedBin = process.env.ZRB_ZFS;
afterEach(() => {
  if (savedBin === undefined) delete process.env.ZRB_ZFS;
  else process.env.ZRB_ZFS = savedBin;
  zfs.resetCaps();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A stand-in zfs: `version` answers `version` (exit 1 when null), no arguments prints `usage` (exit 2), anything else prints `out`. */
function fakeZfs(p: { usage?: string; version?: string | null; out?: string }): void {
  const d = mkdtempSync(join(tmpdir(), "zrb-fakezfs-"));
  dirs.push(d);
  for (const [k, v] of Object.entries({ usage: p.usage ?? "", version: p.version ?? "", out: p.out ?? "" })) writeFileSync(join(d, k), v);
  const bin = join(d, "zfs");
  writeFileSync(
    bin,
    `#!/bin/sh\nif [ "$1" = version ]; then cat '${d}/version'; exit ${p.version === null ? 1 : 0}; fi\n` +
      `if [ $# -eq 0 ]; then cat '${d}/usage' >&2; exit 2; fi\ncat '${d}/out'\n`,
  );
  chmodSync(bin, 0o755);
  process.env.ZRB_ZFS = bin;
  zfs.resetCaps();
}

// As OpenZFS 2.x prints them (abridged to the commands zrb reads).
const OPENZFS_USAGE = `usage: zfs command args ...
where 'command' is one of the following:

\tlist [-Hp] [-r|-d max] [-o property[,...]] [-s property]...
\t    [-S property]... [-t type[,...]] [filesystem|volume|snapshot] ...

\tsend [-DLPbcehnpsVvw] [-i|-I snapshot]
\t     [-R [-X dataset[,dataset]...]]     <snapshot>
\tsend [-DnVvPLecw] [-i snapshot|bookmark] <filesystem|volume|snapshot>
\tsend [-nVvPe] -t <receive_resume_token>
\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ...
\t    <filesystem|volume|snapshot>
\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ... 
\t    [-d | -e] <filesystem>
\treceive -A <filesystem|volume>
`;
const FUSE_USAGE = `usage: zfs command args ...
\tlist [-rH] [-o property[,...]] [-t type[,...]] [-s property] ...
\tsend [-vR] [-[iI] snapshot] <snapshot>
\treceive [-vnF] <filesystem|volume|snapshot>
\treceive [-vnF] -d <filesystem>
`;

describe("capabilities from zfs's usage text", () => {
  test("OpenZFS: every flag zrb uses, -A of `receive -A` too (it stands outside brackets)", async () => {
    fakeZfs({ usage: OPENZFS_USAGE, version: "zfs-2.1.5-1\nzfs-kmod-2.1.5-1\n" });
    const c = await zfs.detectCaps();
    expect(c).toMatchObject({ openzfs: true, version: "zfs-2.1.5-1", listParsable: true, holds: true });
    for (const f of "LecpwnP") expect(c.sendFlags.has(f)).toBe(true);
    for (const f of "sFuA") expect(c.recvFlags.has(f)).toBe(true);
  });
  test("zfs-fuse: no version, no -p, -s or -A; `send` lines do not lend flags to `receive`", async () => {
    fakeZfs({ usage: FUSE_USAGE, version: null });
    const c = await zfs.detectCaps();
    expect(c).toMatchObject({ openzfs: false, listParsable: false, holds: false });
    expect([...c.sendFlags].sort()).toEqual(["I", "R", "i", "v"]);
    expect([...c.recvFlags].sort()).toEqual(["F", "d", "n", "v"]);
  });
});

describe("arguments", () => {
  const caps = (send: string, recv: string): zfs.ZfsCaps => ({ openzfs: false, version: "t", sendFlags: new Set(send), recvFlags: new Set(recv), listParsable: false, holds: false });
  test("send: the flags, -i (not -I: one snapshot's changes only) with the base, then the snapshot", async () => {
    expect(zfs.sendArgs({ snapshot: "t/a@2", from: "t/a@1", flags: ["-L", "-c"] })).toEqual(["send", "-L", "-c", "-i", "t/a@1", "t/a@2"]);
    expect(zfs.sendArgs({ snapshot: "t/a@2", flags: [] })).toEqual(["send", "t/a@2"]);
    expect((await zfs.planSend("t/a@2", undefined, caps("Lecp", ""), { properties: true })).flags).toEqual(["-p", "-L", "-e", "-c"]);
    expect((await zfs.planSend("t/a@2", undefined, caps("L", ""), { properties: true })).flags).toEqual(["-L"]); // no -p here
  });
  test("receive: always -u; -F only when forced; -s only when asked and this zfs has it", () => {
    expect(zfs.recvArgs("t/b", { force: true, resumable: true }, caps("", "sF"))).toEqual(["receive", "-u", "-F", "-s", "t/b"]);
    expect(zfs.recvArgs("t/b", { force: false, resumable: true }, caps("", "F"))).toEqual(["receive", "-u", "t/b"]);
    expect(zfs.recvArgs("t/b", { force: false, resumable: false }, caps("", "s"))).toEqual(["receive", "-u", "t/b"]);
  });
});

describe("snapshot names", () => {
  const snap = (short: string, txg: number): zfs.Snapshot => ({ name: `t/a@${short}`, short, guid: String(txg), createtxg: BigInt(txg) });
  test("the newest of a level: zrb_level1_ is not zrb_level10_", () => {
    const snaps = [snap("zrb_level1_a", 1), snap("zrb_level1_b", 2), snap("zrb_level10_c", 3)];
    expect(zfs.newestLevelSnapshot(snaps, 1)?.short).toBe("zrb_level1_b");
    expect(zfs.newestLevelSnapshot([snap("zrb_level10_c", 3)], 1)).toBeUndefined();
  });
  test("timestamps: seconds, no fraction; a minute or second of 60 is no zrb name", () => {
    expect(zfs.snapshotTimestamp(new Date("2026-11-24T11:22:33.456Z"))).toBe("20261124T112233Z");
    expect(zfs.parseZrbSnapshotName("zrb_level1_20260101T106000Z")).toBeNull();
    expect(zfs.parseZrbSnapshotName("zrb_level1_20260101T100060Z")).toBeNull();
    expect(zfs.parseZrbSnapshotName("zrb_level1_20260101T105959Z")).toEqual({ level: 1, time: new Date("2026-01-01T10:59:59Z") });
  });
});

describe("zfs output", () => {
  test("listSnapshots: only snapshots of the dataset itself (not the dataset, not a child), by createtxg", async () => {
    const rows = [
      ["t/a", "guid", "1"], ["t/a", "createtxg", "1"],
      ["t/a@new", "guid", "30"], ["t/a@new", "createtxg", "30"],
      ["t/a/child", "guid", "5"], ["t/a/child", "createtxg", "5"],
      ["t/a@old", "guid", "20"], ["t/a@old", "createtxg", "9"],
    ];
    fakeZfs({ out: rows.map((r) => r.join("\t")).join("\n") + "\n" });
    expect(await zfs.listSnapshots("t/a")).toEqual([
      { name: "t/a@old", short: "old", guid: "20", createtxg: 9n },
      { name: "t/a@new", short: "new", guid: "30", createtxg: 30n },
    ]);
  });
  test("mountInfo: type and a mounted filesystem's path from one `zfs get`; not mounted, no path, or missing is no path", async () => {
    const get = (type: string, mp: string, mounted: string) => `type\t${type}\nmountpoint\t${mp}\nmounted\t${mounted}\n`;
    fakeZfs({ out: get("filesystem", "/mnt/my data", "yes") });
    expect(await zfs.mountInfo("t/a")).toEqual({ type: "filesystem", mountpoint: "/mnt/my data" });
    fakeZfs({ out: get("filesystem", "/mnt/a", "no") });
    expect(await zfs.mountInfo("t/a")).toEqual({ type: "filesystem", mountpoint: null });
    for (const mp of ["legacy", "none", "-"]) {
      fakeZfs({ out: get("filesystem", mp, "yes") });
      expect((await zfs.mountInfo("t/a"))?.mountpoint).toBeNull();
    }
    fakeZfs({ out: "type\tvolume\nmountpoint\t-\nmounted\t-\n" });
    expect(await zfs.mountInfo("t/v")).toEqual({ type: "volume", mountpoint: null });
    const d = mkdtempSync(join(tmpdir(), "zrb-fakezfs-"));
    dirs.push(d);
    writeFileSync(join(d, "zfs"), "#!/bin/sh\necho \"cannot open '$6': dataset does not exist\" >&2\nexit 1\n");
    chmodSync(join(d, "zfs"), 0o755);
    process.env.ZRB_ZFS = join(d, "zfs");
    expect(await zfs.mountInfo("t/gone")).toBeNull();
  });
  test("zfs diff: octal escapes decoded, paths made relative, the mountpoint itself and paths outside it left out", async () => {
    fakeZfs({
      out: [
        "M\t/\t/mnt/a",
        "+\tF\t/mnt/a/new\\040file",
        "M\tF\t/mnt/a/caf\\303\\251",
        "-\tF\t/mnt/ab/other",
        "R\tF\t/mnt/a/x\t/mnt/a/d/y",
        "R\tF\t/mnt/a/z\t/elsewhere/z",
        "",
      ].join("\n"),
    });
    expect(await zfsDiff("t/a@1", "t/a@2", "/mnt/a")).toEqual([
      { change: "+", path: "new file" },
      { change: "M", path: "café" },
      { change: "R", path: "x", to: "d/y" },
    ]);
  });
});

describe("datasetSurelyMissing: what a failed restore step may destroy", () => {
  /** A stand-in zfs whose `list` exits `code` with `stderr`. */
  function listSays(code: number, stderr: string): void {
    const d = mkdtempSync(join(tmpdir(), "zrb-fakezfs-"));
    dirs.push(d);
    const bin = join(d, "zfs");
    writeFileSync(bin, `#!/bin/sh\n[ "$1" = list ] || exit 2\necho '${stderr}' >&2\nexit ${code}\n`);
    chmodSync(bin, 0o755);
    process.env.ZRB_ZFS = bin;
  }
  test("true only when zfs says the dataset does not exist; false when it lists it", async () => {
    listSays(1, "cannot open tank/restored: dataset does not exist");
    expect(await zfs.datasetSurelyMissing("tank/restored")).toBe(true);
    listSays(0, "");
    expect(await zfs.datasetSurelyMissing("tank/restored")).toBe(false);
  });
  test("any other failure (an I/O error, a pool busy) throws instead of guessing 'missing' (exit 5)", async () => {
    listSays(1, "cannot open tank/restored: I/O error");
    const err = await zfs.datasetSurelyMissing("tank/restored").then(
      () => null,
      (e) => e as { exitCode?: number; message: string },
    );
    expect(err?.exitCode).toBe(5);
    expect(err?.message).toContain("cannot tell whether tank/restored exists: cannot open tank/restored: I/O error");
    // The old test, datasetExists, calls it "missing": a failed step would then destroy -r a target that was there.
    expect(await zfs.datasetExists("tank/restored")).toBe(false);
  });
});

describe("walk: a snapshot's files for the catalog", () => {
  /** A tree: docs/deep/a.txt, b.txt, and a file whose name is not valid UTF-8. */
  async function tree(): Promise<string> {
    const { mkdirSync: mk, writeFileSync: wr } = await import("node:fs");
    const root = mkdtempSync(join(tmpdir(), "zrb-walk-"));
    dirs.push(root);
    mk(join(root, "docs/deep"), { recursive: true });
    wr(join(root, "docs/deep/a.txt"), "a");
    wr(join(root, "b.txt"), "bb");
    return root;
  }
  const listed = (es: { type: string; path: string; size: number }[]) => es.map((e) => `${e.type} ${e.path} ${e.size}`).sort();

  test("lists every entry below the root", async () => {
    expect(listed(await walk(await tree()))).toEqual(["d docs 0", "d docs/deep 0", "f b.txt 2", "f docs/deep/a.txt 1"]);
  });

  test("an entry that cannot be read (a name not valid UTF-8, an I/O error) is left out with one warning; the rest is listed", async () => {
    const root = await tree();
    const { writeFileSync: wr } = await import("node:fs");
    wr(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0x63, 0xe9])]), "latin-1 name");
    const fsp = await import("node:fs/promises");
    const real = fsp.readdir;
    const spy = spyOn(fsp, "readdir").mockImplementation(((p: string, o?: unknown) =>
      String(p).endsWith("/docs/deep") ? Promise.reject(Object.assign(new Error("EIO: i/o error, scandir"), { code: "EIO" })) : (real as (p: string, o?: unknown) => Promise<string[]>)(p, o)) as typeof fsp.readdir);
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      expect(listed(await walk(root))).toEqual(["d docs 0", "d docs/deep 0", "f b.txt 2"]);
      expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([expect.stringMatching(/^2 entries of the snapshot could not be read and are not in its file catalog \(the first: .*\); zrb find will not find them$/)]);
    } finally {
      spy.mockRestore();
      warn.mockRestore();
    }
  });

  test("when the view itself goes away under the walk (a clone destroyed: the root is another file system now), the walk fails (exit 5)", async () => {
    const root = await tree();
    const fsp = await import("node:fs/promises");
    const realLstat = fsp.lstat;
    let rootLooks = 0;
    const spy = spyOn(fsp, "lstat").mockImplementation((async (p: string, o?: unknown) => {
      const st = await (realLstat as (p: string, o?: unknown) => Promise<{ dev: number }>)(p, o);
      if (p === root && rootLooks++ > 0) return { ...st, dev: st.dev + 1 };
      if (String(p).endsWith("/b.txt")) throw Object.assign(new Error("ENOENT: no such file or directory, lstat"), { code: "ENOENT" });
      return st;
    }) as unknown as typeof fsp.lstat);
    try {
      const err = await walk(root).then(
        () => null,
        (e) => e as { exitCode?: number; message: string },
      );
      expect(err?.exitCode).toBe(5);
      expect(err?.message).toBe(`reading ${join(root, "b.txt")} in the snapshot's files failed: ENOENT: no such file or directory, lstat (the snapshot's view went away under the walk)`);
    } finally {
      spy.mockRestore();
    }
  });
});

describe("removeStaleClone: a killed run's catalog clone", () => {
  /** A stand-in zfs for tank/home's clone, whose lock property reads `locks` in turn; destroy calls are logged. */
  function cloneScene(locks: string[]): { log: string } {
    const d = mkdtempSync(join(tmpdir(), "zrb-fakezfs-"));
    dirs.push(d);
    writeFileSync(join(d, "locks"), locks.join("\n") + "\n");
    const log = join(d, "calls");
    writeFileSync(
      join(d, "zfs"),
      `#!/bin/bash\necho "$*" >> '${log}'\n` +
        `if [ "$1" = get ]; then case "$5" in origin) echo tank/home@old;; zrb:catalog-clone) echo tank/home;; zrb:catalog-lock) head -1 '${d}/locks'; sed -i 1d '${d}/locks';; esac; exit 0; fi\n` +
        `exit 0\n`,
    );
    chmodSync(join(d, "zfs"), 0o755);
    process.env.ZRB_ZFS = join(d, "zfs");
    return { log };
  }
  const calls = (log: string) => readFileSync(log, "utf8");
  test("a clone whose lock no live process holds is destroyed", async () => {
    const s = cloneScene(["/var/lib/zrb/clone.lock", "/var/lib/zrb/clone.lock"]);
    expect(await removeStaleClone("tank/home", () => false)).toBe("removed");
    expect(calls(s.log)).toContain(`destroy -r ${cloneName("tank/home")}`);
  });
  test("one whose lock a live process holds by the second look is left alone", async () => {
    const s = cloneScene(["/var/lib/zrb/clone.lock", "/var/lib/zrb/clone.lock"]);
    let looks = 0;
    expect(await removeStaleClone("tank/home", () => looks++ > 0)).toBe("busy");
    expect(looks).toBe(2);
    expect(calls(s.log)).not.toContain("destroy");
  });
  test("one another process made its own meanwhile (its lock named now) is left alone", async () => {
    const s = cloneScene(["/var/lib/zrb/clone.lock", "/srv/zrb-offsite/clone.lock"]);
    expect(await removeStaleClone("tank/home", () => false)).toBe("busy");
    expect(calls(s.log)).not.toContain("destroy");
  });
});

describe("sourceSurelyGone: when a drill's differences are the source's going", () => {
  test("only zfs's own 'does not exist' says gone; a failed look does not (a real difference stands)", async () => {
    const { sourceSurelyGone } = await import("../../../src/pipeline/drill/index.ts");
    const say = (code: number, stderr: string) => {
      const d = mkdtempSync(join(tmpdir(), "zrb-fakezfs-"));
      dirs.push(d);
      writeFileSync(join(d, "zfs"), `#!/bin/sh\necho "${stderr}" >&2\nexit ${code}\n`);
      chmodSync(join(d, "zfs"), 0o755);
      process.env.ZRB_ZFS = join(d, "zfs");
    };
    say(1, "cannot open tank/home@s1: dataset does not exist");
    expect(await sourceSurelyGone("tank/home@s1")).toBe(true);
    say(1, "cannot open tank/home@s1: I/O error");
    expect(await sourceSurelyGone("tank/home@s1")).toBe(false);
    say(0, "");
    expect(await sourceSurelyGone("tank/home@s1")).toBe(false);
  });
});
