/**
 * The test command itself (scripts/test.sh and .ci/run) cannot be fooled into a green run.
 *
 * Each case runs the real scripts/test.sh, scripts/bootstrap.sh and .ci/run, copied into a
 * skeleton checkout in a temp dir, with the real bun (or, for a summary bun itself cannot be
 * made to print, a stand-in that prints it). The rig scripts and install-deps.sh there are
 * no-ops (or fail on purpose): what is under test is how the scripts count and summarize.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, cpSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { run, tmpDir } from "../helpers/rig.ts";

const ROOT = join(import.meta.dir, "..", "..");
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function put(path: string, text: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

interface Skeleton {
  installDeps?: string;
  bun?: string;
  tests: Record<string, string>;
}

/** A checkout with the real test.sh, bootstrap.sh and .ci/run and the given test files. */
function skeleton(o: Skeleton): string {
  const d = tmpDir("zrb-testsh-");
  dirs.push(d);
  for (const f of ["scripts/test.sh", "scripts/bootstrap.sh", ".ci/run"]) cpSync(join(ROOT, f), join(d, f), { recursive: true });
  put(join(d, "test/rig/install-deps.sh"), o.installDeps ?? "exit 0\n");
  for (const s of ["zfs-fuse.sh", "rgw.sh"]) put(join(d, "test/rig", s), "exit 0\n");
  put(join(d, "build.ts"), "");
  mkdirSync(join(d, "node_modules/.bin"), { recursive: true });
  if (o.bun) put(join(d, "node_modules/.bin/bun"), o.bun, 0o755);
  else symlinkSync(process.execPath, join(d, "node_modules/.bin/bun"));
  for (const [name, text] of Object.entries(o.tests)) put(join(d, "test", name), text);
  return d;
}

const PASSING = `import { test, expect } from "bun:test";\ntest("ok", () => { expect(1 + 1).toBe(2); });\n`;
const EXITS = `import { test } from "bun:test";\ntest("leaves early", () => { process.exit(0); });\n`;

async function testSh(dir: string, ...args: string[]) {
  const r = await run(["bash", join(dir, "scripts/test.sh"), ...args], { cwd: dir, allowFail: true, env: { ZRB_SKIP_VM: "1" } });
  return { ...r, last: r.stdout.trimEnd().split("\n").at(-1) };
}

describe("scripts/test.sh", () => {
  test("a clean run: bun's closing line agrees with the files given, and the summary counts its tests", async () => {
    const d = skeleton({ tests: { "a.test.ts": PASSING, "sub/b.test.ts": PASSING } });
    const r = await testSh(d);
    expect(r.stderr).not.toContain("FAIL");
    expect(r.last).toBe("2 passed, 0 failed");
    expect(r.code).toBe(0);
  });

  test("a test that calls process.exit(0) turns the run red (bun exits 0 with no summary)", async () => {
    const d = skeleton({ tests: { "a.test.ts": PASSING, "b.test.ts": EXITS, "c.test.ts": PASSING } });
    const r = await testSh(d);
    expect(r.stderr).toContain("without its closing 'Ran N tests across M files' line");
    expect(r.last).toBe("0 passed, 1 failed");
    expect(r.code).not.toBe(0);
  });

  test("a closing line with fewer files than were given is a failure", async () => {
    // bun cannot be made to skip a file on demand: a stand-in prints a summary for one of two.
    const fake = `#!/bin/bash\n[ "$1" = run ] && exit 0\necho ' 1 pass'; echo ' 0 fail'; echo 'Ran 1 test across 1 file. [1.00ms]'\n`;
    const d = skeleton({ bun: fake, tests: { "a.test.ts": PASSING, "b.test.ts": PASSING } });
    const r = await testSh(d);
    expect(r.stderr).toContain("bun ran 1 test file(s) but ./test/ hold 2");
    expect(r.last).toBe("1 passed, 1 failed");
    expect(r.code).not.toBe(0);
  });

  test("pass lines printed by a test do not count; only bun's closing block does", async () => {
    const noisy = `import { test } from "bun:test";\ntest("prints", () => { console.log(" 99 pass\\n 0 fail"); });\n`;
    const d = skeleton({ tests: { "a.test.ts": noisy, "b.test.ts": EXITS } });
    const r = await testSh(d);
    expect(r.last).toBe("0 passed, 1 failed");
  });

  test("test files are counted the way bun counts them: patterns, filters, named files, no node_modules or hidden dirs", async () => {
    const d = skeleton({
      tests: {
        "unit/a.test.ts": PASSING,
        "unit/b_test.ts": PASSING,
        "unit/c.spec.mts": PASSING,
        "e2e/d.test.ts": PASSING,
        "unit/node_modules/x/e.test.ts": EXITS,
        "unit/.hidden/f.test.ts": EXITS,
        "unit/helper.ts": EXITS,
      },
    });
    expect((await testSh(d, "./test/unit/")).last).toBe("3 passed, 0 failed");
    expect((await testSh(d, "test/e2e", "./test/unit/a.test.ts")).last).toBe("2 passed, 0 failed");
    // bun counts a file named on the command line again when a directory also holds it
    expect((await testSh(d, "./test/unit/", "./test/unit/a.test.ts")).last).toBe("3 passed, 0 failed");
    expect((await testSh(d, "b_test")).last).toBe("1 passed, 0 failed");
  });
});

describe(".ci/run", () => {
  test("a failing install-deps.sh still ends the output with the summary line", async () => {
    const d = skeleton({ installDeps: "echo 'E: Unable to locate package zfs-fuse' >&2\nexit 1\n", tests: { "a.test.ts": PASSING } });
    const r = await run(["bash", join(d, ".ci/run")], { cwd: d, allowFail: true, env: { ZRB_SKIP_VM: "1" } });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("E: Unable to locate package zfs-fuse");
    expect(r.stdout).toContain("test.sh: FAIL: bootstrap");
    expect(r.stdout.trimEnd().split("\n").at(-1)).toBe("0 passed, 1 failed");
  });

  test("a test.sh that ends without a summary is reported as a failure, summary last", async () => {
    const d = skeleton({ tests: {} });
    put(join(d, "scripts/test.sh"), "echo 'half a run'\nexit 0\n");
    const r = await run(["bash", join(d, ".ci/run")], { cwd: d, allowFail: true });
    expect(r.code).toBe(1);
    expect(r.stdout.trimEnd().split("\n").slice(-2)).toEqual(["ci: scripts/test.sh ended (exit 0) without its summary line", "0 passed, 1 failed"]);
  });
});
