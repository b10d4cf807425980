import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic, writeFileAtomicAsync } from "../../../src/state/atomic.ts";
import { ZrbError } from "../../../src/util/errors.ts";

const dir = () => mkdtempSync(join(tmpdir(), "zrb-atomic-"));

describe.each([
  ["writeFileAtomic", async (p: string, d: string) => writeFileAtomic(p, d)],
  ["writeFileAtomicAsync", (p: string, d: string) => writeFileAtomicAsync(p, d)],
] as const)("%s", (_name, write) => {
  test("a killed run's temp file (longer than the new text) is replaced, not written into", async () => {
    const d = dir();
    const p = join(d, "backup_state.yaml");
    writeFileSync(p, "old\n");
    writeFileSync(`${p}.tmp-${process.pid}`, "x".repeat(4096));
    await write(p, "new\n");
    expect(readFileSync(p, "utf8")).toBe("new\n");
    expect(readdirSync(d)).toEqual(["backup_state.yaml"]);
  });

  test("a symlink planted at the temp name is never followed", async () => {
    const d = dir();
    const p = join(d, "s.yaml");
    const victim = join(dir(), "victim");
    writeFileSync(victim, "root only\n");
    symlinkSync(victim, `${p}.tmp-${process.pid}`);
    await write(p, "new\n");
    expect(readFileSync(victim, "utf8")).toBe("root only\n");
    expect(readFileSync(p, "utf8")).toBe("new\n");
    expect(readdirSync(d)).toEqual(["s.yaml"]);
  });

  test("a write that fails leaves what was at the path and no temp file", async () => {
    const d = dir();
    const p = join(d, "s.yaml");
    // rename(2) of a file over a non-empty directory fails
    mkdirSync(p);
    writeFileSync(join(p, "kept"), "kept\n");
    const err = await Promise.resolve(write(p, "new\n")).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ZrbError);
    expect((err as ZrbError).exitCode).toBe(9);
    expect(readFileSync(join(p, "kept"), "utf8")).toBe("kept\n");
    expect(readdirSync(d)).toEqual(["s.yaml"]);
  });

  test("the file is 0600 and a directory it creates 0700", async () => {
    const d = dir();
    const p = join(d, "run", "tank", "s.yaml");
    await write(p, "new\n");
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(statSync(join(d, "run")).mode & 0o777).toBe(0o700);
    expect(statSync(join(d, "run", "tank")).mode & 0o777).toBe(0o700);
    expect(existsSync(`${p}.tmp-${process.pid}`)).toBe(false);
  });
});
