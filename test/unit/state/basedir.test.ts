import { describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertSafeBaseDir } from "../../../src/state/basedir.ts";
import { ZrbError } from "../../../src/util/errors.ts";

/** A fresh 0700 directory under the temp dir (sticky, 1777: a parent that is allowed). */
const dir = () => mkdtempSync(join(tmpdir(), "zrb-basedir-"));
const root = process.geteuid?.() === 0;

function refusal(baseDir: string, create = true): ZrbError {
  let err: unknown;
  try {
    assertSafeBaseDir(baseDir, { create });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ZrbError);
  expect((err as ZrbError).exitCode).toBe(9);
  return err as ZrbError;
}

describe("base_dir safety", () => {
  test("a missing base_dir is created 0700 under a sticky parent; the check leaves nothing behind", () => {
    const d = dir();
    const b = join(d, "a", "zrb");
    assertSafeBaseDir(b, { create: true });
    expect(statSync(b).mode & 0o777).toBe(0o700);
    expect(readdirSync(b)).toEqual([]);
    assertSafeBaseDir(b, { create: true });
    expect(readdirSync(b)).toEqual([]);
  });

  test("create=false: a missing base_dir is checked without creating it or leaving a probe", () => {
    const d = dir();
    assertSafeBaseDir(join(d, "zrb"), { create: false });
    expect(readdirSync(d)).toEqual([]);
  });

  test("group- or world-writable base_dir is refused, naming the fix", () => {
    for (const mode of [0o770, 0o707]) {
      const b = dir();
      chmodSync(b, mode);
      const { message } = refusal(b);
      expect(message).toContain(`writable by other users (mode 0${mode.toString(8)})`);
      expect(message).toContain(`chmod 700 ${b}`);
    }
  });

  test.skipIf(!root)("a base_dir owned by another user is refused", () => {
    const b = dir();
    chownSync(b, 4242, 4242);
    expect(refusal(b).message).toContain(`${b} is owned by uid 4242`);
  });

  test("a file at base_dir is refused as not a directory", () => {
    const b = join(dir(), "zrb");
    writeFileSync(b, "");
    expect(refusal(b).message).toContain(`${b} is not a directory`);
  });

  test("a parent every user can write without the sticky bit is refused, base_dir there or not", () => {
    const open = dir();
    chmodSync(open, 0o777);
    const b = join(open, "zrb");
    mkdirSync(b, { mode: 0o700 });
    expect(refusal(b).message).toContain(`${open} (a parent of base_dir) is writable by every user without the sticky bit`);
    const missing = join(open, "new");
    expect(refusal(missing).message).toContain(`${open} (a parent of base_dir)`);
    expect(refusal(missing, false).message).toContain(`${open} (a parent of base_dir)`);
    expect(existsSync(missing)).toBe(false);
    // a grandparent too
    const deep = join(b, "x");
    mkdirSync(deep, { mode: 0o700 });
    expect(refusal(deep).message).toContain(`${open} (a parent of base_dir)`);
  });

  test("a parent its group can write is refused without the sticky bit and allowed with it", () => {
    const shared = dir();
    chmodSync(shared, 0o770);
    const b = join(shared, "zrb");
    mkdirSync(b, { mode: 0o700 });
    const { message } = refusal(b);
    expect(message).toContain(`${shared} (a parent of base_dir) is writable by its group`);
    expect(message).toContain("(mode 0770)");
    expect(message).toContain(`chmod g-w ${shared}`);
    expect(refusal(join(shared, "new"), false).message).toContain(`${shared} (a parent of base_dir)`);
    chmodSync(shared, 0o1770);
    assertSafeBaseDir(b, { create: true });
  });

  test.skipIf(!root)("a parent owned by another user is refused, sticky or not, base_dir there or not", () => {
    const theirs = dir();
    chownSync(theirs, 4242, 4242);
    const b = join(theirs, "zrb");
    mkdirSync(b, { mode: 0o700 });
    for (const mode of [0o755, 0o1755]) {
      chmodSync(theirs, mode);
      expect(refusal(b).message).toContain(`${theirs} (a parent of base_dir) is owned by uid 4242, who could replace base_dir`);
      expect(refusal(join(theirs, "new"), false).message).toContain(`${theirs} (a parent of base_dir) is owned by uid 4242`);
    }
  });

  test.skipIf(!root)("a directory nobody can create files in is refused as not writable", () => {
    expect(refusal("/proc/1").message).toContain("base_dir /proc/1 is not writable");
  });
});
