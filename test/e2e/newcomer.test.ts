/**
 * What a newcomer meets first. The README's two first commands are read from the README
 * itself; CI (.ci/run) must run the second; and the first must work on a fresh clone: a
 * `git clone` of this repository's HEAD (so: committed files only) with no node_modules and
 * no dist/, where it installs what is missing (the apt packages are already on this
 * machine; npm ci comes from npm's cache), builds the binary and completes the backup and
 * restore round trip on a zfs-fuse pool.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { run, tmpDir, zfsRig } from "../helpers/rig.ts";

const ROOT = join(import.meta.dir, "..", "..");
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** The commands of the first code block under "## The first two commands", comments dropped. */
function readmeFirstCommands(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const at = readme.indexOf("\n## The first two commands\n");
  if (at < 0) throw new Error('README.md has no "## The first two commands" section');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!block) throw new Error('no ```sh block under "## The first two commands" in README.md');
  return block[1]!.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean);
}

describe("the README's first two commands", () => {
  test("are the demo and the test command, and CI runs that test command", () => {
    const cmds = readmeFirstCommands();
    expect(cmds).toEqual(["bash scripts/demo.sh", "bash scripts/test.sh"]);
    const ci = readFileSync(join(ROOT, ".ci/run"), "utf8").split("\n").filter((l) => !l.trim().startsWith("#"));
    expect(ci.some((l) => l.includes(cmds[1]!))).toBe(true);
  });

  test("the first one works on a fresh clone without node_modules or dist/", async () => {
    await zfsRig();
    const parent = tmpDir("zrb-newcomer-");
    dirs.push(parent);
    const dir = join(parent, "zrb");
    const head = (await run(["git", "-C", ROOT, "rev-parse", "HEAD"])).stdout.trim();
    await run(["git", "clone", "--quiet", ROOT, dir]);
    await run(["git", "-C", dir, "checkout", "--quiet", "--detach", head]);
    expect(existsSync(join(dir, "node_modules"))).toBe(false);
    expect(existsSync(join(dir, "dist"))).toBe(false);

    const r = await run(["bash", "-c", readmeFirstCommands()[0]!], { cwd: dir, allowFail: true });
    const out = r.stdout + r.stderr;
    if (r.code !== 0) console.error(out);
    expect(r.code).toBe(0);
    // it bootstrapped itself: node_modules from npm ci, then the host binary
    expect(r.stdout).toContain("install-deps.sh: npm ci");
    expect(r.stdout).toContain("building dist/zrb-linux-x64 (missing or older than the sources)");
    expect(existsSync(join(dir, "dist", "zrb-linux-x64"))).toBe(true);
    // the round trip: every file restored with its original content, from two backup levels
    const restored = /restored (zrbdemo\d+)\/restored@zrb_level1_\S+ \(2 step\(s\): level 0 → level 1\)/.exec(out);
    expect(restored).not.toBeNull();
    expect(r.stdout).toContain("holiday.raw: OK\nreadme.txt: OK\nnew.txt: OK\n");
    expect(r.stdout.trimEnd().split("\n").at(-1)).toBe("demo: backup and restore round trip OK (local directory)");
    // and cleaned up after itself
    expect((await run(["zpool", "list", "-H", "-o", "name"])).stdout.split("\n")).not.toContain(restored![1]!);
  }, 600_000);
});
