/** The pure rules of drill and restore --path: which paths are accepted, the pool's size, the output line, the exit-7 message. */
import { describe, expect, spyOn, test } from "bun:test";
import { parseRelPath } from "../../../src/pipeline/drill/paths.ts";
import { checkDirSafe, checkFreeSpace, cloneName, drillNames, poolSize } from "../../../src/pipeline/drill/pool.ts";
import * as fs from "node:fs";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { copyAll, removeStaleStages } from "../../../src/pipeline/drill/stage.ts";
import * as rn from "../../../src/util/rename-noreplace.ts";
import { log } from "../../../src/util/log.ts";
import { replaceableProblem } from "../../../src/state/basedir.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drillError, drillLine, unlessSourceGone, type DrillResult } from "../../../src/pipeline/drill/index.ts";
import { checkTo, conflict } from "../../../src/pipeline/drill/extract.ts";
import type { Entry } from "../../../src/pipeline/drill/compare.ts";
import { ExitCode, type ZrbError } from "../../../src/util/errors.ts";

/** The record of drill `id`'s stages, as copyAll and removeStaleStages take it. */
type StageRecord = { id: string; stages: string };

/**
 * `fn` in a fresh directory `top` (its real path, so no link leads into it) holding an empty `to`,
 * with the stage record of drill 0123456789ab in `top` and log.warn silenced and spied on; the spy
 * is restored and `top` removed afterwards. Throws what `fn` throws, or if `top` cannot be made.
 */
async function withStaleStages(prefix: string, fn: (s: { top: string; to: string; id: string; rec: StageRecord; warn: ReturnType<typeof spyOn<typeof log, "warn">> }) => Promise<void>): Promise<void> {
  const top = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  const id = "0123456789ab";
  const rec = { id, stages: join(top, `zrbdrill${id}.stages`) };
  const warn = spyOn(log, "warn").mockImplementation(() => {});
  try {
    const to = join(top, "to");
    mkdirSync(to);
    await fn({ top, to, id, rec, warn });
  } finally {
    warn.mockRestore();
    rmSync(top, { recursive: true, force: true });
  }
}

describe("restore --path", () => {
  test("relative paths are normalised; absolute, '..', .zfs and empty ones are usage errors (exit 2)", () => {
    expect(parseRelPath("./docs//a.txt/")).toBe("docs/a.txt");
    expect(parseRelPath("a b/c")).toBe("a b/c");
    for (const bad of ["/etc/passwd", "../x", "docs/../../x", ".", "", ".zfs/snapshot/x"]) {
      let err: unknown;
      try {
        parseRelPath(bad);
      } catch (e) {
        err = e;
      }
      expect((err as ZrbError | undefined)?.exitCode).toBe(ExitCode.USAGE);
    }
  });
});

describe("restore --path: all or nothing", () => {
  test("an interrupt stops the copy: --to as it was, no stage left; without one, the paths are moved in", async () => {
    const root = mkdtempSync(join(tmpdir(), "zrb-extract-root-"));
    const to = mkdtempSync(join(tmpdir(), "zrb-extract-to-"));
    const rec = { id: "0123456789ab", stages: join(root, "stages") };
    try {
      mkdirSync(join(root, "docs/deep"), { recursive: true });
      writeFileSync(join(root, "docs/deep/a.txt"), "a\n");
      writeFileSync(join(root, "b.txt"), "b\n");
      writeFileSync(join(to, "keep.txt"), "mine\n");
      const ac = new AbortController();
      ac.abort(new Error("interrupted by SIGTERM"));
      await expect(copyAll(root, ["docs", "b.txt"], to, rec, ac.signal)).rejects.toThrow("interrupted by");
      expect(readdirSync(to)).toEqual(["keep.txt"]);
      expect(existsSync(rec.stages)).toBe(false);
      await copyAll(root, ["docs/deep/a.txt", "b.txt"], to, rec);
      expect(existsSync(rec.stages)).toBe(false);
      expect(readdirSync(to).sort()).toEqual(["b.txt", "docs", "keep.txt"]);
      expect(readFileSync(join(to, "docs/deep/a.txt"), "utf8")).toBe("a\n");
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(to, { recursive: true, force: true });
    }
  });
});

/** Spy on readdirSync: right when moving in starts (the stage is read), someone writes `path` (in --to). Restore the spy after. */
function appearsWhenMovingIn(path: string) {
  const real = fs.readdirSync;
  let done = false;
  return spyOn(fs, "readdirSync").mockImplementation(((p: fs.PathLike, o?: unknown) => {
    if (!done && String(p).includes(".zrb-restore-")) {
      done = true;
      writeFileSync(path, "the user's, made meanwhile\n");
    }
    return (real as (p: fs.PathLike, o?: unknown) => string[])(p, o);
  }) as typeof fs.readdirSync);
}

/** What `p` rejects with, or null when it resolves. */
const failure = (p: Promise<unknown>): Promise<ZrbError | null> =>
  p.then(
    () => null,
    (e) => e as ZrbError,
  );

/** copyAll of `path` ("d") with --force while `before` runs right before each move (placing); what it rejects with, or null. */
async function forcedWhile(root: string, to: string, rec: StageRecord, before: (dest: string) => void, path = "d"): Promise<ZrbError | null> {
  const undo = placing(null, before);
  try {
    return await failure(copyAll(root, [path], to, rec, undefined, true));
  } finally {
    undo();
  }
}

/** copyAll is refused (exit 9) because `dest` appeared while the paths were copied. */
async function refusedAppeared(p: Promise<void>, dest: string): Promise<void> {
  const err = (await failure(p))!;
  expect(err?.exitCode).toBe(ExitCode.IO);
  expect(err.message).toContain(`${dest} appeared while the paths were copied; it is not overwritten without --force`);
}

describe("restore --path: what appears in --to while the paths are copied", () => {
  test("a file made in --to after the conflict check is not replaced without --force (exit 9, naming it); with --force it is", async () => {
    await withStaleStages("zrb-appears-", async ({ top, to, rec }) => {
      const root = join(top, "root");
      mkdirSync(root);
      writeFileSync(join(root, "b.txt"), "from the backup\n");
      writeFileSync(join(root, "c.txt"), "c from the backup\n");
      let spy = appearsWhenMovingIn(join(to, "b.txt"));
      try {
        await refusedAppeared(copyAll(root, ["b.txt"], to, rec), join(to, "b.txt"));
      } finally {
        spy.mockRestore();
      }
      expect(readFileSync(join(to, "b.txt"), "utf8")).toBe("the user's, made meanwhile\n");
      expect(readdirSync(to)).toEqual(["b.txt"]); // and no stage left
      spy = appearsWhenMovingIn(join(to, "c.txt"));
      try {
        await copyAll(root, ["c.txt"], to, rec, undefined, true);
      } finally {
        spy.mockRestore();
      }
      expect(readFileSync(join(to, "c.txt"), "utf8")).toBe("c from the backup\n");
    });
  });
});

describe("restore --path: the checks before anything is copied (conflict)", () => {
  const dir = { type: "dir", mode: 0o755, uid: 0, gid: 0, size: 0 } as const;
  const file = { type: "file", mode: 0o644, uid: 0, gid: 0, size: 3 } as const;
  test("a directory on the way or merged into that another user could change is named; root's are fine; an existing file needs --force", () => {
    const to = realpathSync(mkdtempSync(join(tmpdir(), "zrb-conflict-")));
    try {
      mkdirSync(join(to, "home/alice/docs"), { recursive: true });
      const entries = new Map<string, Entry>([["home/alice/docs", dir], ["home/alice/docs/a.txt", file]]);
      expect(conflict(to, "home/alice/docs", entries, false)).toBeUndefined();
      // A directory on the way (the stage is made there) owned by another user.
      chownSync(join(to, "home/alice"), 4242, 4242);
      expect(conflict(to, "home/alice/docs", entries, false)).toBe(`${join(to, "home/alice")} is owned by uid 4242, who could replace the restored files; move the restored files under directories owned by root or by this user (uid ${process.getuid!()})`);
      chownSync(join(to, "home/alice"), 0, 0);
      // The directory merged into, writable by its group.
      chmodSync(join(to, "home/alice/docs"), 0o775);
      expect(conflict(to, "home/alice/docs", entries, false)).toContain(`${join(to, "home/alice/docs")} is writable by its group (gid 0) without the sticky bit (mode 0775)`);
      chmodSync(join(to, "home/alice/docs"), 0o755);
      writeFileSync(join(to, "home/alice/docs/a.txt"), "mine");
      expect(conflict(to, "home/alice/docs", entries, false)).toBe(`${join(to, "home/alice/docs/a.txt")} exists; rerun with --force to overwrite it, or choose another --to`);
      expect(conflict(to, "home/alice/docs", entries, true)).toBeUndefined();
      // A closed --to (0700): nobody else reaches inside, so a directory of alice's there (restored
      // before, with its owner) is no risk.
      rmSync(join(to, "home/alice/docs/a.txt"));
      chownSync(join(to, "home/alice"), 4242, 4242);
      expect(conflict(to, "home/alice/docs", entries, false)).toContain("is owned by uid 4242");
      expect(conflict(to, "home/alice/docs", entries, false, true)).toBeUndefined();
    } finally {
      rmSync(to, { recursive: true, force: true });
    }
  });
});

/**
 * How an entry is placed: renameat2's no-replace; on a file system without it, a hard link (or,
 * without hard links either, EPERM: a check right before rename); or a mount point on the way
 * (the first move fails with EXDEV).
 */
const HOW = [
  ["renameat2 RENAME_NOREPLACE", null],
  ["a file system without RENAME_NOREPLACE: hard links", "unsupported"],
  ["a file system without RENAME_NOREPLACE or hard links (EPERM)", "EPERM"],
  ["a mount point on the way (EXDEV)", "EXDEV"],
] as const;
type How = (typeof HOW)[number][1];
/** The ways with no window between the last check and the move (the EPERM way has one: docs/restore.md). */
const ATOMIC = HOW.filter(([, h]) => h !== "EPERM");

/**
 * Fake what `how` says (see HOW); `before(dest)`, if given, runs right before the call that
 * really moves an entry to `dest` (a rename, a no-replace rename, a hard link) — after every
 * check zrb makes, so that what it makes appear lands in the last possible instant. The
 * returned function undoes it.
 */
function placing(how: How, before?: (dest: string) => void): () => void {
  const realNoReplace = rn.renameNoReplace;
  const realRename = fs.renameSync;
  const realLink = fs.linkSync;
  let first = true;
  const rename = spyOn(rn, "renameNoReplace").mockImplementation((src: string, dest: string) => {
    if (how === "EXDEV" && first) {
      first = false;
      throw Object.assign(new Error("EXDEV: cross-device link"), { code: "EXDEV" });
    }
    if (how !== null && how !== "EXDEV") return "unsupported";
    before?.(dest);
    return realNoReplace(src, dest);
  });
  const plain = spyOn(fs, "renameSync").mockImplementation(((src: fs.PathLike, dest: fs.PathLike) => {
    before?.(String(dest));
    return realRename(src, dest);
  }) as typeof fs.renameSync);
  const link = spyOn(fs, "linkSync").mockImplementation(((src: fs.PathLike, dest: fs.PathLike) => {
    if (how === "EPERM") throw Object.assign(new Error("EPERM: link"), { code: "EPERM" });
    before?.(String(dest));
    return realLink(src, dest);
  }) as typeof fs.linkSync);
  return () => {
    rename.mockRestore();
    plain.mockRestore();
    link.mockRestore();
  };
}

/** A restored directory "d" holding x.txt in a fresh root (the snapshot), under `top`. */
function snapshotWithD(top: string): string {
  const root = join(top, "root");
  mkdirSync(join(root, "d"), { recursive: true });
  writeFileSync(join(root, "d/x.txt"), "from the backup\n");
  return root;
}

describe("restore --path: what appears in a merged directory while the paths are copied", () => {
  for (const [how, fake] of ATOMIC)
    test(`a file made in a directory being merged, right before the move, is not replaced without --force: ${how}`, async () => {
      await withStaleStages("zrb-appears-deep-", async ({ top, to, rec }) => {
        const root = snapshotWithD(top);
        mkdirSync(join(to, "d"));
        const x = join(to, "d/x.txt");
        const undo = placing(fake, (dest) => {
          if (dest === x && !existsSync(x)) writeFileSync(x, "the user's, made meanwhile\n");
        });
        try {
          await refusedAppeared(copyAll(root, ["d"], to, rec), x);
        } finally {
          undo();
        }
        expect(readFileSync(x, "utf8")).toBe("the user's, made meanwhile\n");
        expect(existsSync(rec.stages)).toBe(false);
        expect(readdirSync(join(to, "d"))).toEqual(["x.txt"]);
      });
    });

  test("without RENAME_NOREPLACE or hard links, a file there when moving in starts is not replaced without --force (the check right before the move)", async () => {
    await withStaleStages("zrb-appears-noatomic-", async ({ top, to, rec }) => {
      const root = snapshotWithD(top);
      mkdirSync(join(to, "d"));
      const rd = appearsWhenMovingIn(join(to, "d/x.txt"));
      const undo = placing("EPERM");
      try {
        await refusedAppeared(copyAll(root, ["d"], to, rec), join(to, "d/x.txt"));
      } finally {
        rd.mockRestore();
        undo();
      }
      expect(readFileSync(join(to, "d/x.txt"), "utf8")).toBe("the user's, made meanwhile\n");
    });
  });

  test("across a mount point (EXDEV), a file made while the entry is copied over is not replaced without --force; it is copied beside it first", async () => {
    await withStaleStages("zrb-appears-exdev-", async ({ top, to, rec }) => {
      const root = snapshotWithD(top);
      mkdirSync(join(to, "d"));
      const undo = placing("EXDEV");
      // The file appears right when cp starts copying the entry across.
      const realSpawn = Bun.spawn;
      const sp = spyOn(Bun, "spawn").mockImplementation(((args: string[], o: unknown) => {
        if (args[0] === "cp" && args.includes("--no-target-directory")) writeFileSync(join(to, "d/x.txt"), "the user's, made meanwhile\n");
        return (realSpawn as (a: string[], o: unknown) => ReturnType<typeof Bun.spawn>)(args, o);
      }) as typeof Bun.spawn);
      try {
        await refusedAppeared(copyAll(root, ["d"], to, rec), join(to, "d/x.txt"));
      } finally {
        sp.mockRestore();
        undo();
      }
      expect(readFileSync(join(to, "d/x.txt"), "utf8")).toBe("the user's, made meanwhile\n");
      expect(readdirSync(join(to, "d"))).toEqual(["x.txt"]);
      expect(existsSync(rec.stages)).toBe(false);
    });
  });

  test("across a mount point (EXDEV), a merged directory that is a --path keeps the snapshot's times: the stage beside its entry is gone first", async () => {
    await withStaleStages("zrb-exdev-times-", async ({ top, to, rec }) => {
      const root = snapshotWithD(top);
      utimesSync(join(root, "d"), new Date("2020-01-02T03:04:05Z"), new Date("2020-01-02T03:04:05Z"));
      mkdirSync(join(to, "d"));
      const undo = placing("EXDEV");
      try {
        await copyAll(root, ["d"], to, rec);
      } finally {
        undo();
      }
      expect(readdirSync(join(to, "d"))).toEqual(["x.txt"]);
      expect(statSync(join(to, "d")).mtime.toISOString()).toBe("2020-01-02T03:04:05.000Z");
      expect(existsSync(rec.stages)).toBe(false);
    });
  });

  for (const [how, fake] of ATOMIC.filter(([, h]) => h !== "unsupported"))
    test(`a directory made where a restored one goes, right before the move, is merged into, never replaced: ${how}`, async () => {
      await withStaleStages("zrb-appears-dir-", async ({ top, to, rec }) => {
        const root = join(top, "root");
        mkdirSync(join(root, "d/sub"), { recursive: true });
        writeFileSync(join(root, "d/sub/x.txt"), "from the backup\n");
        let ino = -1;
        const undo = placing(fake, (dest) => {
          if (ino < 0 && dest === join(to, "d")) {
            mkdirSync(dest);
            ino = statSync(dest).ino;
          }
        });
        try {
          await copyAll(root, ["d"], to, rec, undefined, true);
        } finally {
          undo();
        }
        expect(statSync(join(to, "d")).ino).toBe(ino);
        expect(readFileSync(join(to, "d/sub/x.txt"), "utf8")).toBe("from the backup\n");
        expect(readdirSync(to)).toEqual(["d"]);
        expect(existsSync(rec.stages)).toBe(false);
      });
    });

  test("a directory that appeared, then is swapped for a link before it is merged into, is refused: nothing lands where the link leads", async () => {
    await withStaleStages("zrb-appears-swapped-", async ({ top, to, rec }) => {
      chmodSync(to, 0o1777);
      const root = snapshotWithD(top);
      const elsewhere = join(top, "elsewhere");
      mkdirSync(elsewhere);
      const d = join(to, "d");
      // Made right before the move (so the move fails), then swapped once zrb has seen a directory.
      let seen = 0;
      const real = fs.lstatSync;
      const ls = spyOn(fs, "lstatSync").mockImplementation(((p: fs.PathLike, o?: fs.StatOptions) => {
        const r = (real as (p: fs.PathLike, o?: fs.StatOptions) => fs.Stats)(p, o);
        if (String(p) === d && r?.isDirectory?.() && ++seen === 1) {
          rmdirSync(d);
          symlinkSync(elsewhere, d);
        }
        return r;
      }) as typeof fs.lstatSync);
      const err = await forcedWhile(root, to, rec, (dest) => {
        if (dest === d && !existsSync(d)) mkdirSync(d);
      }).finally(() => ls.mockRestore());
      expect(err?.exitCode).toBe(ExitCode.IO);
      expect(err!.message).toContain(`${d} changed while the paths were copied (it is no longer a directory)`);
      expect(readdirSync(elsewhere)).toEqual([]);
    });
  });

  test("a file made where a restored directory goes is not replaced, even with --force (exit 9, naming it)", async () => {
    await withStaleStages("zrb-appears-file-for-dir-", async ({ top, to, rec }) => {
      const root = join(top, "root");
      mkdirSync(join(root, "d"), { recursive: true });
      writeFileSync(join(root, "d/x.txt"), "from the backup\n");
      const err = await forcedWhile(root, to, rec, (dest) => {
        if (dest === join(to, "d") && !existsSync(dest)) writeFileSync(dest, "the user's, made meanwhile\n");
      });
      expect(err?.exitCode).toBe(ExitCode.IO);
      expect(err!.message).toContain(`${join(to, "d")} appeared while the paths were copied; a restored directory never replaces it: move it away`);
      expect(readFileSync(join(to, "d"), "utf8")).toBe("the user's, made meanwhile\n");
      expect(existsSync(rec.stages)).toBe(false);
    });
  });

  test("a directory made where a restored file goes is not replaced with --force either (exit 9, naming it)", async () => {
    await withStaleStages("zrb-appears-dir-for-file-", async ({ top, to, rec }) => {
      const root = snapshotWithD(top);
      const f = join(to, "d/x.txt");
      mkdirSync(join(to, "d"));
      const err = await forcedWhile(root, to, rec, (dest) => {
        if (dest === f && !existsSync(f)) mkdirSync(f);
      }, "d/x.txt");
      expect(err?.exitCode).toBe(ExitCode.IO);
      expect(err!.message).toContain(`${f} appeared while the paths were copied; a directory is never replaced, not even with --force: move it away`);
      expect(statSync(f).isDirectory()).toBe(true);
    });
  });

  test("a directory another user makes where a restored one goes, in a sticky --to, is neither replaced nor merged into (exit 9)", async () => {
    await withStaleStages("zrb-appears-theirs-", async ({ top, to, rec }) => {
      chmodSync(to, 0o1777);
      const root = join(top, "root");
      mkdirSync(join(root, "d"), { recursive: true });
      writeFileSync(join(root, "d/x.txt"), "from the backup\n");
      let made = false;
      const err = await forcedWhile(root, to, rec, (dest) => {
        if (!made && dest === join(to, "d")) {
          made = true;
          mkdirSync(dest);
          chownSync(dest, 4242, 4242);
        }
      });
      expect(err?.exitCode).toBe(ExitCode.IO);
      expect(err!.message).toContain(`${join(to, "d")} is owned by uid 4242, who could replace the restored files`);
      expect(statSync(join(to, "d")).uid).toBe(4242);
      expect(readdirSync(join(to, "d"))).toEqual([]);
    });
  });
});

describe("restore --path: --to itself", () => {
  test("checked on its real path: a link on the way does not hide another user's directory above its target; a 0700 --to is closed", () => {
    const top = realpathSync(mkdtempSync(join(tmpdir(), "zrb-checkto-")));
    try {
      mkdirSync(join(top, "alice/safe/restore"), { recursive: true });
      chownSync(join(top, "alice"), 4242, 4242);
      symlinkSync(join(top, "alice/safe"), join(top, "link"));
      expect(() => checkTo(join(top, "link/restore"))).toThrow(`restore --path --to ${join(top, "link/restore")}: ${join(top, "alice")} (a parent of the restored files) is owned by uid 4242`);
      mkdirSync(join(top, "mine"), { mode: 0o700 });
      expect(checkTo(join(top, "mine"))).toEqual({ to: join(top, "mine"), closed: true });
      mkdirSync(join(top, "open"), { mode: 0o755 });
      chmodSync(join(top, "open"), 0o755);
      expect(checkTo(join(top, "open"))).toEqual({ to: join(top, "open"), closed: false });
      expect(() => checkTo(join(top, "link"))).toThrow(`--to ${join(top, "link")} is not a directory; create it first`);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });
  test("a directory another user makes in --to while the paths are copied (a sticky --to) is not merged into", async () => {
    await withStaleStages("zrb-sticky-", async ({ top, to, rec }) => {
      chmodSync(to, 0o1777);
      const root = join(top, "root");
      mkdirSync(join(root, "d"), { recursive: true });
      writeFileSync(join(root, "d/x.txt"), "from the backup\n");
      const real = fs.readdirSync;
      let made = false;
      const spy = spyOn(fs, "readdirSync").mockImplementation(((p: fs.PathLike, o?: unknown) => {
        if (!made && String(p).includes(".zrb-restore-")) {
          made = true;
          mkdirSync(join(to, "d"));
          chownSync(join(to, "d"), 4242, 4242);
        }
        return (real as (p: fs.PathLike, o?: unknown) => string[])(p, o);
      }) as typeof fs.readdirSync);
      try {
        const err = (await copyAll(root, ["d"], to, rec).then(
          () => null,
          (e) => e,
        )) as ZrbError;
        expect(err?.exitCode).toBe(ExitCode.IO);
        expect(err.message).toContain(`${join(to, "d")} is owned by uid 4242, who could replace the restored files`);
        expect(err.message).toContain("it was made or changed while the paths were copied");
      } finally {
        spy.mockRestore();
      }
      expect(readdirSync(join(to, "d"))).toEqual([]);
    });
  });
});

describe("restore --path: directories another user could change", () => {
  test("a directory owned by another user, or writable by group or others without the sticky bit, is named with the fix; root's or a sticky one is fine", () => {
    const top = realpathSync(mkdtempSync(join(tmpdir(), "zrb-to-owner-")));
    try {
      const d = (name: string, mode: number, uid?: number) => {
        const p = join(top, name);
        mkdirSync(p);
        chmodSync(p, mode);
        if (uid !== undefined) chownSync(p, uid, 0);
        return p;
      };
      const me = process.getuid!();
      expect(replaceableProblem(d("mine", 0o755), "the restored files")).toBeUndefined();
      expect(replaceableProblem(d("sticky", 0o1777), "the restored files")).toBeUndefined();
      const alice = d("alice", 0o755, 4242);
      expect(replaceableProblem(alice, "the restored files")).toBe(`${alice} is owned by uid 4242, who could replace the restored files; move the restored files under directories owned by root or by this user (uid ${me})`);
      const open = d("open", 0o777);
      expect(replaceableProblem(open, "the restored files")).toContain(`${open} is writable by every user without the sticky bit (mode 0777); run: chmod o-w ${open}`);
      // Below another user's directory: that user could swap it.
      const under = join(alice, "restore");
      mkdirSync(under);
      expect(replaceableProblem(under, "the restored files")).toBe(`${alice} (a parent of the restored files) is owned by uid 4242, who could replace the restored files; move the restored files under directories owned by root or by this user (uid ${me})`);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });
});

describe("restore --path: the stages a kill -9 left", () => {
  test("removes only recorded directories with the id's name, zrb's owner and mode 0700, reached by no link; --dry-run removes nothing", async () => {
    await withStaleStages("zrb-stale-stage-", async ({ top, to, id, rec, warn }) => {
      const stage = (n: number, mode = 0o700) => {
        const d = join(to, `.zrb-restore-${id}-${n}`);
        mkdirSync(join(d, "docs"), { recursive: true, mode });
        chmodSync(d, mode);
        writeFileSync(join(d, "docs/half.bin"), "partial");
        return d;
      };
      const good = stage(0);
      const loose = stage(1, 0o755); // not a mode zrb makes a stage with
      const theirs = stage(5); // someone else's (the tests run as root: chown works)
      chownSync(theirs, 65534, 65534);
      const other = join(to, ".zrb-restore-ffffffffffff-0"); // another run's name
      mkdirSync(other, { mode: 0o700 });
      // A link now where a stage was: neither it nor where it leads is removed.
      const target = join(top, "elsewhere");
      mkdirSync(target, { mode: 0o700 });
      const link = join(to, `.zrb-restore-${id}-2`);
      symlinkSync(target, link);
      // A parent replaced by a link: the recorded path now leads through it.
      mkdirSync(join(top, "real"));
      const viaLink = join(top, "real", `.zrb-restore-${id}-3`);
      mkdirSync(viaLink, { mode: 0o700 });
      symlinkSync(join(top, "real"), join(top, "moved"));
      const lines = [good, loose, theirs, other, link, join(top, "moved", `.zrb-restore-${id}-3`), join(to, `.zrb-restore-${id}-4`), "not json", JSON.stringify("relative/.zrb-restore-0123456789ab-5")];
      writeFileSync(rec.stages, lines.map((l) => (l.startsWith("/") ? JSON.stringify(l) : l)).join("\n") + "\n");

      expect(await removeStaleStages(rec, true)).toEqual({ stages: [good], done: true });
      expect(existsSync(join(good, "docs/half.bin"))).toBe(true);
      expect((await removeStaleStages(rec)).stages).toEqual([good]);
      expect(existsSync(good)).toBe(false);
      for (const kept of [loose, theirs, other, link, target, viaLink]) expect(existsSync(kept)).toBe(true);
      const said = warn.mock.calls.map((c) => String(c[0]));
      expect(said.some((w) => w.includes(loose) && w.includes("its mode is 0755, not 0700"))).toBe(true);
      expect(said.some((w) => w.includes(link) && w.includes("it is not a directory"))).toBe(true);
      expect(said.some((w) => w.includes(theirs) && w.includes("it is owned by uid 65534"))).toBe(true);
      expect(said.some((w) => w.includes("moved") && w.includes("a symbolic link now leads to it"))).toBe(true);
      expect(said.filter((w) => w.includes("names no staging directory")).length).toBeGreaterThanOrEqual(3 * 2); // other, "not json", relative; in both runs

      // A file system mounted inside a stage is not crossed: the stage stays, and so does the record.
      const mounted = stage(6);
      mkdirSync(join(mounted, "mnt"));
      expect(Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", join(mounted, "mnt")]).exitCode).toBe(0);
      try {
        writeFileSync(join(mounted, "mnt/theirs.txt"), "x");
        writeFileSync(rec.stages, `${JSON.stringify(mounted)}\n`);
        expect(await removeStaleStages(rec)).toEqual({ stages: [], done: false });
        expect(readFileSync(join(mounted, "mnt/theirs.txt"), "utf8")).toBe("x");
        expect(warn.mock.calls.map((c) => String(c[0])).some((w) => w.includes(`removing the stale staging directory ${mounted}`) && w.includes("tries again"))).toBe(true);
      } finally {
        Bun.spawnSync(["umount", join(mounted, "mnt")]);
      }
    });
  });
});

describe("restore --path: merging and a stage that cannot be removed", () => {
  test("a directory below a restored path that --to already has is merged and takes the snapshot's attributes; --to's own entries in it stay", async () => {
    const root = mkdtempSync(join(tmpdir(), "zrb-merge-root-"));
    const to = mkdtempSync(join(tmpdir(), "zrb-merge-to-"));
    const rec = { id: "0123456789ab", stages: join(root, "stages") };
    try {
      mkdirSync(join(root, "docs/sub"), { recursive: true });
      writeFileSync(join(root, "docs/sub/a.txt"), "a\n");
      chmodSync(join(root, "docs/sub"), 0o700);
      chmodSync(join(root, "docs"), 0o750);
      mkdirSync(join(to, "docs/sub"), { recursive: true });
      writeFileSync(join(to, "docs/sub/mine.txt"), "mine\n");
      chmodSync(join(to, "docs/sub"), 0o711); // not the snapshot's 0700 (and writable by nobody else: such a one is refused)
      chmodSync(join(to, "docs"), 0o755);
      await copyAll(root, ["docs"], to, rec);
      expect(readFileSync(join(to, "docs/sub/a.txt"), "utf8")).toBe("a\n");
      expect(readFileSync(join(to, "docs/sub/mine.txt"), "utf8")).toBe("mine\n");
      expect(statSync(join(to, "docs")).mode & 0o7777).toBe(0o750);
      expect(statSync(join(to, "docs/sub")).mode & 0o7777).toBe(0o700);
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(to, { recursive: true, force: true });
    }
  });

  test("a stage that cannot be removed keeps its record, is private (0700) and is removed by the next run", async () => {
    const root = mkdtempSync(join(tmpdir(), "zrb-stuck-root-"));
    const to = realpathSync(mkdtempSync(join(tmpdir(), "zrb-stuck-to-")));
    const rec = { id: "0123456789ab", stages: join(root, "stages") };
    const realRm = fs.rmSync;
    // The stage's removal fails (a file system someone mounted inside it, an I/O error).
    const rm = spyOn(fs, "rmSync").mockImplementation(((p: fs.PathLike, o?: fs.RmOptions) => {
      if (String(p).includes("/.zrb-restore-")) throw Object.assign(new Error(`EBUSY: resource busy or locked, rmdir '${p}'`), { code: "EBUSY" });
      return realRm(p, o);
    }) as typeof fs.rmSync);
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      mkdirSync(join(root, "docs"));
      writeFileSync(join(root, "docs/a.txt"), "a\n");
      await copyAll(root, ["docs"], to, rec);
      rm.mockRestore();
      expect(readFileSync(join(to, "docs/a.txt"), "utf8")).toBe("a\n");
      const stage = join(to, `.zrb-restore-${rec.id}-0`);
      expect(readFileSync(rec.stages, "utf8")).toBe(`${JSON.stringify(stage)}\n`);
      expect(statSync(stage).mode & 0o777).toBe(0o700);
      expect(warn.mock.calls.some((c) => String(c[0]).includes(`could not remove the staging directory ${stage}`))).toBe(true);
      expect(await removeStaleStages(rec)).toEqual({ stages: [stage], done: true });
      expect(readdirSync(to)).toEqual(["docs"]);
    } finally {
      rm.mockRestore();
      warn.mockRestore();
      rmSync(root, { recursive: true, force: true });
      rmSync(to, { recursive: true, force: true });
    }
  });
});

describe("restore --path: look-alikes of a stage", () => {
  test("recorded directories named almost like the run's stages, or with another private mode, are left alone; a stage in a setgid directory is removed", async () => {
    await withStaleStages("zrb-lookalike-", async ({ to, id, rec }) => {
      const dir = (name: string, mode = 0o700) => {
        const d = join(to, name);
        mkdirSync(d);
        chmodSync(d, mode);
        writeFileSync(join(d, "file.txt"), "mine");
        return d;
      };
      const alike = [
        dir(`x.zrb-restore-${id}-0`),
        dir(`.zrb-restore-${id}-0-keep`),
        dir(`Xzrb-restore-${id}-0`),
        dir(`.zrb-restore-${id}-ab`),
        dir(`.zrb-restore-${id}x-0`),
        dir(`.zrb-restore-${id}-1`, 0o500),
      ];
      // A stage made in a setgid directory inherits the bit: still a stage.
      const shared = join(to, "shared");
      mkdirSync(shared);
      chmodSync(shared, 0o2775);
      const stage = join(shared, `.zrb-restore-${id}-2`);
      mkdirSync(stage, { mode: 0o700 });
      expect(statSync(stage).mode & 0o7777).toBe(0o2700);
      writeFileSync(rec.stages, [...alike, stage].map((p) => JSON.stringify(p)).join("\n") + "\n");
      expect(await removeStaleStages(rec)).toEqual({ stages: [stage], done: true });
      for (const d of alike) expect(readFileSync(join(d, "file.txt"), "utf8")).toBe("mine");
      expect(existsSync(stage)).toBe(false);
    });
  });
});

describe("the drill pool", () => {
  test("names: a fixed prefix and 12 hex digits, everything of one drill named after it", () => {
    const n = drillNames("/var/lib/zrb/drill", "0123456789ab");
    expect(n).toEqual({
      id: "0123456789ab",
      pool: "zrbdrill0123456789ab",
      file: "/var/lib/zrb/drill/zrbdrill0123456789ab.img",
      lock: "/var/lib/zrb/drill/zrbdrill0123456789ab.lock",
      mnt: "/var/lib/zrb/drill/zrbdrill0123456789ab",
      srcMnt: "/var/lib/zrb/drill/zrbdrill0123456789ab.src",
      stages: "/var/lib/zrb/drill/zrbdrill0123456789ab.stages",
    });
    expect(cloneName("tank", "0123456789ab")).toBe("tank/zrbdrill0123456789ab-src");
  });

  test("drill.dir writable by others is refused (exit 9, naming it and the fix)", () => {
    const d = mkdtempSync(join(tmpdir(), "zrb-drilldir-"));
    try {
      expect(() => checkDirSafe(d)).not.toThrow();
      chmodSync(d, 0o777);
      let err: ZrbError | undefined;
      try {
        checkDirSafe(d);
      } catch (e) {
        err = e as ZrbError;
      }
      expect(err?.exitCode).toBe(ExitCode.IO);
      expect(err?.message).toContain(`chmod go-w ${d}`);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test("drill.dir writable by its group, or owned by another user, is refused", () => {
    const d = mkdtempSync(join(tmpdir(), "zrb-drilldir-"));
    try {
      chmodSync(d, 0o770);
      expect(() => checkDirSafe(d)).toThrow("writable by other users");
      chmodSync(d, 0o700);
      chownSync(d, 65534, 65534);
      expect(() => checkDirSafe(d)).toThrow("owned by uid 65534");
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test("drill.dir under a directory that lets another user replace it is refused, naming that directory and the fix", () => {
    const top = mkdtempSync(join(tmpdir(), "zrb-drilldir-"));
    try {
      const parent = join(top, "shared");
      const d = join(parent, "drill");
      mkdirSync(d, { recursive: true, mode: 0o700 });
      chmodSync(parent, 0o777); // anyone can rename drill away and put their own there
      const err = (() => {
        try {
          return checkDirSafe(d);
        } catch (e) {
          return e as ZrbError;
        }
      })();
      expect(err?.exitCode).toBe(ExitCode.IO);
      expect(err?.message).toBe(`drill.dir ${d} is not safe: ${parent} (a parent of drill.dir) is writable by every user without the sticky bit (mode 0777); run: chmod o-w ${parent}, or move drill.dir`);
      chmodSync(parent, 0o1777); // the sticky bit: only drill's owner may rename it
      expect(() => checkDirSafe(d)).not.toThrow();
      chmodSync(parent, 0o775);
      expect(() => checkDirSafe(d)).toThrow(`${parent} (a parent of drill.dir) is writable by its group`);
      chmodSync(parent, 0o755);
      chownSync(parent, 65534, 65534);
      expect(() => checkDirSafe(d)).toThrow(`${parent} (a parent of drill.dir) is owned by uid 65534, who could replace drill.dir`);
    } finally {
      rmSync(top, { recursive: true, force: true });
    }
  });

  test("not enough free space in drill.dir: exit 9 before anything is made, naming the directory and both sizes", () => {
    expect(() => checkFreeSpace(tmpdir(), 1024)).not.toThrow();
    let err: ZrbError | undefined;
    try {
      checkFreeSpace(tmpdir(), 2 ** 60);
    } catch (e) {
      err = e as ZrbError;
    }
    expect(err?.exitCode).toBe(ExitCode.IO);
    expect(err?.message).toContain(`drill.dir ${tmpdir()} has`);
    expect(err?.message).toContain("set drill.dir to a larger filesystem");
  });

  test("sized for the streams with headroom, never below 128 MiB, in whole MiB", () => {
    expect(poolSize(0)).toBe(128 * 1024 * 1024);
    expect(poolSize(1e9)).toBeGreaterThan(1.5e9);
    expect(poolSize(1e9) % (1024 * 1024)).toBe(0);
  });
});

describe("the drill's compare when the source snapshot goes meanwhile", () => {
  const diff = (differ: number) => ({ compared: 3, differ, first: differ ? ["a.txt: content differs"] : [] });
  test("differences, or a compare that failed, while the source was destroyed are 'gone', not a verdict on the backup", async () => {
    let asked = 0;
    const gone = async () => (asked++, true);
    expect(await unlessSourceGone(async () => diff(2), gone)).toBe("gone");
    expect(await unlessSourceGone(async () => Promise.reject(new Error("ENOENT: a.txt")), gone)).toBe("gone");
    expect(asked).toBe(2);
  });
  test("with the source still there, differences stay exit-7 material and a failure is thrown; no difference needs no look", async () => {
    let asked = 0;
    const there = async () => (asked++, false);
    expect(await unlessSourceGone(async () => diff(2), there)).toEqual(diff(2));
    await expect(unlessSourceGone(async () => Promise.reject(new Error("EIO: a.txt")), there)).rejects.toThrow("EIO: a.txt");
    expect(asked).toBe(2);
    expect(await unlessSourceGone(async () => diff(0), async () => Promise.reject(new Error("not asked")))).toEqual(diff(0));
    // An interrupt is an interrupt, whatever the source.
    const ac = new AbortController();
    ac.abort(new Error("interrupted by SIGTERM"));
    await expect(unlessSourceGone(async () => Promise.reject(new Error("interrupted by SIGTERM")), async () => true, ac.signal)).rejects.toThrow("interrupted");
  });
});

describe("the drill's verdict", () => {
  const r: DrillResult = {
    dataset: "tank/photos", backupId: "B1", level: 1, snapshot: "tank/photos@zrb_level1_x", source: "clone",
    bytes: 50_000_000, restoreSeconds: 4, compared: 120, differ: 0, first: [],
  };
  test("the output line", () => {
    expect(drillLine(r)).toBe("drill: 120 files compared, 0 differ, restore 4.0 s (12.5 MB/s)");
  });
  test("differences are exit 7 naming the first; none is no error", () => {
    expect(drillError(r)).toBeUndefined();
    const e = drillError({ ...r, differ: 2, first: ["a.jpg: content differs (SHA-256)", "b: missing"] })!;
    expect(e.exitCode).toBe(ExitCode.INTEGRITY);
    expect(e.message).toContain("2 of 120 paths differ");
    expect(e.message).toContain("a.jpg: content differs");
  });
});
