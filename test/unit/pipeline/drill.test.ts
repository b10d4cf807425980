/** The pure rules of drill and restore --path: which paths are accepted, the pool's size, the output line, the exit-7 message. */
import { describe, expect, test } from "bun:test";
import { parseRelPath } from "../../../src/pipeline/drill/paths.ts";
import { checkDirSafe, checkFreeSpace, cloneName, drillNames, poolSize } from "../../../src/pipeline/drill/pool.ts";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { copyAll } from "../../../src/pipeline/drill/stage.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drillError, drillLine, type DrillResult } from "../../../src/pipeline/drill/index.ts";
import { ExitCode, type ZrbError } from "../../../src/util/errors.ts";

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
    try {
      mkdirSync(join(root, "docs/deep"), { recursive: true });
      writeFileSync(join(root, "docs/deep/a.txt"), "a\n");
      writeFileSync(join(root, "b.txt"), "b\n");
      writeFileSync(join(to, "keep.txt"), "mine\n");
      const ac = new AbortController();
      ac.abort(new Error("interrupted by SIGTERM"));
      await expect(copyAll(root, ["docs", "b.txt"], to, ac.signal)).rejects.toThrow("interrupted by");
      expect(readdirSync(to)).toEqual(["keep.txt"]);
      await copyAll(root, ["docs/deep/a.txt", "b.txt"], to);
      expect(readdirSync(to).sort()).toEqual(["b.txt", "docs", "keep.txt"]);
      expect(readFileSync(join(to, "docs/deep/a.txt"), "utf8")).toBe("a\n");
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(to, { recursive: true, force: true });
    }
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
