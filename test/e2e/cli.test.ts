/** The CLI surface a user meets first: check, snapshot by pool/dataset, help, version, usage errors. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ageKeyPair, makeBucket, makePool, run, s3Rig, tmpDir, writeRandomFile, zfsRig, type S3Rig, type TestPool } from "../helpers/rig.ts";
import { configYaml, jsonResult, s3Env, zrb, zrbCommand } from "../helpers/zrb.ts";

let s3: S3Rig;
let pool: TestPool;
let work: string;
let recipient: string;
let env: Record<string, string>;

beforeAll(async () => {
  await zfsRig();
  s3 = await s3Rig();
  pool = await makePool({ sizeMiB: 128 });
  work = tmpDir("zrb-e2e-cli-");
  ({ recipient } = await ageKeyPair(join(work, "key.txt")));
  env = s3Env(s3);
  await run(["zfs", "create", `${pool.pool}/data`]);
}, 300_000);

afterAll(async () => {
  await pool?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

function cfg(name: string, o: Partial<Parameters<typeof configYaml>[0]>): string {
  const p = join(work, name);
  writeFileSync(p, configYaml({ baseDir: join(work, "base"), recipients: [recipient], s3, tasks: [{ name: "t", pool: pool.pool, dataset: "data" }], ...o }));
  return p;
}

describe("zrb check", () => {
  test("a good config, an existing dataset and a reachable bucket pass", async () => {
    const bucket = await makeBucket(s3);
    const r = await zrb(["check", "--config", cfg("ok.yaml", { bucket }), "--json"], { env });
    const j = JSON.parse(r.stdout);
    expect(j.storeOk).toBe(true);
    expect(j.problems).toEqual([]);
    expect(j.tasks).toEqual([{ name: "t", dataset: `${pool.pool}/data`, enabled: true, exists: true }]);
  });
  test("a missing dataset and a missing bucket are both reported; exit 5, the first problem's (zfs)", async () => {
    const p = cfg("bad.yaml", { bucket: "zrbt-no-such-bucket", tasks: [{ name: "t", pool: pool.pool, dataset: "nope" }] });
    const r = await zrb(["check", "--config", p], { env, allowFail: true });
    expect(r.code).toBe(5);
    expect(r.stderr).toContain(`task t: dataset ${pool.pool}/nope does not exist`);
    expect(r.stderr).toContain("bucket zrbt-no-such-bucket does not exist");
    expect(r.stderr.split("\n").filter((l) => l.startsWith("zrb: error:")).length).toBe(1);
  });
  test("a config error names the file, line and key", async () => {
    const p = join(work, "typo.yaml");
    writeFileSync(p, `base_dir: ${work}\nage_public_key: ${recipient}\ntasks:\n  - name: t\n    pool: ${pool.pool}\n    dataset: data\n    enabled: yes\n`);
    const r = await zrb(["check", "--config", p], { allowFail: true });
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toBe(`zrb: error: ${p}:7:14: tasks[0].enabled must be true or false, got "yes"`);
  });
});

describe("zrb snapshot", () => {
  test("--pool/--dataset and --prefix work without a config", async () => {
    const r = await zrb(["snapshot", "--pool", pool.pool, "--dataset", "data", "--level", "2"]);
    expect(r.stdout.trim()).toMatch(new RegExp(`^${pool.pool}/data@zrb_level2_\\d{8}T\\d{6}Z$`));
    const c = await zrb(["snapshot", "--pool", pool.pool, "--dataset", "data", "--level", "0", "--prefix", "manual_", "--json"]);
    expect(JSON.parse(c.stdout).snapshot).toMatch(new RegExp(`^${pool.pool}/data@manual_\\d{8}T\\d{6}Z$`));
  });
  test("bad levels and missing datasets are usage errors with one line", async () => {
    for (const [args, code, msg] of [
      [["--level", "-1"], 2, "--level must be a whole number 0–99"],
      [["--level", "1.5"], 2, "--level must be a whole number 0–99"],
      [["--level", "x"], 2, "--level must be a whole number 0–99"],
      [[], 2, "--level is required"],
    ] as const) {
      const r = await zrb(["snapshot", "--pool", pool.pool, "--dataset", "data", ...args], { allowFail: true });
      expect(r.code).toBe(code);
      expect(r.stderr).toContain(msg);
    }
    const r = await zrb(["snapshot", "--pool", pool.pool, "--dataset", "gone", "--level", "0"], { allowFail: true });
    expect(r.code).toBe(5);
    expect(r.stderr.trim()).toBe(`zrb: error: dataset ${pool.pool}/gone does not exist`);
  });
});

describe("help and version", () => {
  test("--version prints the baked-in version", async () => {
    const r = await zrb(["--version"]);
    expect(r.stdout.trim()).toMatch(/^zrb \d+\.\d+\.\d+\+[0-9a-f]{7,}/);
  });
  test("--version --verbose names the runtime, the crypto paths (OpenSSL and the BLAKE3 addon here, libsodium under ZRB_NO_OPENSSL, the fallbacks and why under ZRB_NO_NATIVE) and the heap's sizing; a .env or bunfig.toml where it runs changes nothing", async () => {
    const fromSource = process.env.ZRB_TEST_FROM_SOURCE === "1";
    const version = (await zrb(["--version"])).stdout.trim();
    const r = await zrb(["--version", "--verbose"]);
    const lines = r.stdout.trim().split("\n");
    // The host's OpenSSL, named with its version (Debian 12's libssl3 here).
    expect(lines[3]).toMatch(/^ChaCha20-Poly1305: openssl \(libcrypto\.so\.3, OpenSSL 3\.\d+\.\d+ .+\)$/);
    expect(lines.toSpliced(3, 1)).toEqual([
      version,
      `runtime: bun ${Bun.version}, linux-x64`,
      "BLAKE3: native (@napi-rs/blake-hash)",
      "zfs send read through: zrb's own pipe (pipe2 from libc.so.6, 1 MiB deep)",
      // The compiled binary starts itself again with a small heap (src/heap.ts); from source it does not.
      fromSource ? "heap: the runtime's default (sized by the machine's RAM)" : "heap: sized for 128 MiB of RAM (BUN_JSC_forceRAMSize)",
    ]);
    const own = await zrb(["--version", "--verbose"], { env: { BUN_JSC_forceRAMSize: "268435456" } });
    expect(own.stdout.trim().split("\n").at(-1)).toBe("heap: sized for 256 MiB of RAM (BUN_JSC_forceRAMSize, from the environment)");
    const sodium = await zrb(["--version", "--verbose"], { env: { ZRB_NO_OPENSSL: "1" } });
    expect(sodium.stdout.split("\n")[3]).toBe("ChaCha20-Poly1305: native (libsodium, sodium-native; OpenSSL not used: ZRB_NO_OPENSSL is set)");
    const runtimePipe = await zrb(["--version", "--verbose"], { env: { ZRB_NO_OS_PIPE: "1" } });
    expect(runtimePipe.stdout.split("\n")[4]).toBe("zfs send read through: the runtime's pipe (zrb's own not used: ZRB_NO_OS_PIPE is set)");
    const slow = await zrb(["--version", "--verbose"], { env: { ZRB_NO_NATIVE: "1" } });
    expect(slow.stdout.trim().split("\n").slice(2, 4)).toEqual([
      "BLAKE3: wasm (hash-wasm; native addon not used: ZRB_NO_NATIVE is set)",
      "ChaCha20-Poly1305: js (@noble/ciphers; native addon not used: ZRB_NO_NATIVE is set)",
    ]);
    // A compiled Bun binary reads .env from its working directory unless built not to: zrb is.
    if (!fromSource) {
      const dir = mkdtempSync(join(tmpdir(), "zrb-dotenv-"));
      try {
        writeFileSync(join(dir, ".env"), "ZRB_NO_NATIVE=1\n");
        writeFileSync(join(dir, "bunfig.toml"), "smol = true\n");
        const p = Bun.spawnSync([...zrbCommand(), "--version", "--verbose"], { cwd: dir });
        expect(p.stdout.toString().split("\n")[2]).toBe("BLAKE3: native (@napi-rs/blake-hash)");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const bad = await zrb(["--version", "--verbos"], { allowFail: true });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('zrb: error: zrb --version: unexpected argument "--verbos"; the only option is --verbose');
  });
  test("every command's --help describes it, its flags and the exit codes", async () => {
    for (const cmd of ["genkey", "snapshot", "backup", "restore", "list", "verify", "drill", "check", "cleanup", "prune", "iam-policy"]) {
      const r = await zrb([cmd, "--help"]);
      expect(r.stdout).toContain(`zrb ${cmd}`);
      expect(r.stdout).toContain("Exit codes:");
      expect(r.stdout).toMatch(/--config|--out-dir/);
    }
  });
  const COMMANDS = ["genkey", "snapshot", "backup", "restore", "verify", "drill", "list", "find", "status", "plan", "check", "systemd", "cleanup", "prune", "rekey", "iam-policy"];
  const tooWide = (text: string, width: number) => text.split("\n").filter((l) => l.length > width || /\s$/.test(l));
  test("--help on a pipe: one short line per command, every line within 100 columns, no trailing blanks", async () => {
    const top = (await zrb(["--help"])).stdout;
    expect(tooWide(top, 100)).toEqual([]);
    const listed = top.split("\n").filter((l) => /^  [a-z-]+  +\S/.test(l));
    expect(listed.map((l) => l.trim().split(/\s+/)[0])).toEqual(COMMANDS);
    // The command list has summaries, not the manual paragraphs: those stay in each command's --help.
    expect(top).not.toContain("dump(8) semantics");
    expect((await zrb(["backup", "--help"])).stdout).toContain("dump(8) semantics");
    for (const cmd of [...COMMANDS.map((c) => [c]), ["systemd", "install"], ["systemd", "run"], ["systemd", "uninstall"]]) {
      const r = await zrb([...cmd, "--help"]);
      expect({ cmd, lines: tooWide(r.stdout, 100) }).toEqual({ cmd, lines: [] });
    }
  });
  test("--help on a terminal is wrapped to its width (a 64-column pty), colours and all", async () => {
    for (const args of [["--help"], ["restore", "--help"]]) {
      const cmd = ["stty cols 64;", ...[...zrbCommand(), ...args].map((w) => `'${w}'`)].join(" ");
      const tty = await run(["script", "-qfec", cmd, "/dev/null"], { env: { NO_COLOR: "", TERM: "xterm", CI: "", TEST: "" } });
      expect(tty.stdout).toContain("\x1b[");
      const text = tty.stdout.replace(/\r/g, "").replace(/\x1b\[[0-9;]*m/g, "");
      expect(text).toContain("Exit codes:");
      // Long words (a path, an option name) are never split; the prose around them is wrapped.
      expect(tooWide(text, 64)).toEqual([]);
    }
  }, 60_000);
  test("unknown commands and options suggest the right one", async () => {
    const a = await zrb(["backpu"], { allowFail: true });
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("did you mean backup?");
    const b = await zrb(["backup", "--levle", "0"], { allowFail: true });
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("did you mean --level?");
  });
});

describe("hostile review: small CLI defects", () => {
  test("an option given twice is a usage error, not the last one silently winning", async () => {
    for (const args of [["-l", "0", "-l", "1"], ["--level", "0", "--level=1"], ["--level", "1", "-l", "1"]]) {
      const r = await zrb(["backup", "--config", "/nonexistent.yaml", "--task", "t", ...args], { allowFail: true });
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toMatch(/^zrb: error: zrb backup: option --level given twice/);
    }
  });
  test("an endpoint with a query string is refused without echoing the query", async () => {
    const p = join(work, "query.yaml");
    writeFileSync(
      p,
      `base_dir: ${work}/q\nage_public_key: ${recipient}\ns3:\n  enabled: true\n  bucket: b-q\n  endpoint: "http://127.0.0.1:7480/?X-Amz-Credential=SUPERSECRET&sig=abc"\ntasks:\n  - {name: t, pool: ${pool.pool}, dataset: data}\n`,
    );
    const r = await zrb(["check", "--config", p], { allowFail: true });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("must not have a query");
    expect(r.stderr).not.toContain("SUPERSECRET");
    expect(r.stderr).not.toContain("sig=abc");
  });
  test("genkey into a directory that takes no files says so (not 'does not exist')", async () => {
    const r = await zrb(["genkey", "--out-dir", "/proc"], { allowFail: true });
    expect(r.code).toBe(9);
    expect(r.stderr).toContain("does not accept new files");
    expect(r.stderr).not.toContain("does not exist");
  });
  test("a private key file readable by others is used, with a warning to chmod it", async () => {
    const { keyFile } = await ageKeyPair(join(work, "open-key.txt"));
    require("node:fs").chmodSync(keyFile, 0o644);
    const bucket = await makeBucket(s3);
    const c = cfg("keymode.yaml", { bucket, baseDir: join(work, "keymode-base") });
    const r = await zrb(["verify", "--config", c, "--task", "t", "--private-key", keyFile], { env, allowFail: true });
    expect(r.stderr).toContain(`identity file ${keyFile} can be read by other users (mode 0644)`);
    expect(r.stderr).toContain(`chmod 600 ${keyFile}`);
  });
});

describe("zrb list on a terminal", () => {
  test("taller than the terminal: through $ZRB_PAGER; fitting, or on a pipe, or with --json: written as it is", async () => {
    const bucket = await makeBucket(s3);
    const c = cfg("list-pager.yaml", { bucket, baseDir: join(work, "pager-base") });
    await zrb(["snapshot", "--config", c, "--task", "t", "--level", "0"], { env });
    const b = jsonResult((await zrb(["backup", "--config", c, "--task", "t", "--level", "0", "--json"], { env })).stdout);
    const paged = join(work, "paged.txt");
    const pager = join(work, "pager.sh");
    writeFileSync(pager, `#!/bin/sh\ncat > '${paged}'\n`, { mode: 0o755 });
    const onTty = async (rows: number, ...more: string[]) => {
      rmSync(paged, { force: true });
      const cmd = [`stty rows ${rows} cols 200;`, ...[...zrbCommand(), "list", "--config", c, "--task", "t", ...more].map((w) => `'${w}'`)].join(" ");
      return (await run(["script", "-qfec", cmd, "/dev/null"], { env: { ...env, ZRB_PAGER: pager, CI: "", TEST: "" } })).stdout;
    };
    // Header, one backup, the totals line: 3 lines on a 2-row terminal go to the pager.
    const shown = await onTty(2);
    expect(readFileSync(paged, "utf8")).toContain(b.backupId);
    expect(shown).not.toContain(b.backupId);
    // On a 40-row terminal they fit: no pager.
    expect(await onTty(40)).toContain(b.backupId);
    expect(existsSync(paged)).toBe(false);
    // --json is for programs: never paged.
    expect(await onTty(2, "--json")).toContain(b.backupId);
    expect(existsSync(paged)).toBe(false);
    // A pipe is never paged.
    const piped = await zrb(["list", "--config", c, "--task", "t"], { env: { ...env, ZRB_PAGER: pager } });
    expect(piped.stdout).toContain(b.backupId);
    expect(existsSync(paged)).toBe(false);
  }, 120_000);
});

describe("zrb status", () => {
  test("shows the newest backup per level from the store, and a stale lock left by a dead run", async () => {
    const bucket = await makeBucket(s3);
    const c = cfg("status.yaml", { bucket, baseDir: join(work, "status-base") });
    const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", `${pool.pool}/data`])).stdout.trim();
    await writeRandomFile(join(mnt, "s.bin"), 300_000, 21);
    const before = JSON.parse((await zrb(["status", "--config", c, "--json"], { env })).stdout);
    expect(before[0].heads).toEqual([]);
    await zrb(["snapshot", "--config", c, "--task", "t", "--level", "0"], { env });
    const b = jsonResult((await zrb(["backup", "--config", c, "--task", "t", "--level", "0", "--json"], { env })).stdout);
    const lockDir = join(work, "status-base", "run", pool.pool, "data");
    mkdirSync(lockDir, { recursive: true });
    writeFileSync(join(lockDir, "zrb.lock"), JSON.stringify({ pid: 999999, start: "1", host: require("node:os").hostname(), command: "zrb backup --level 1", since: "x" }));
    const s = JSON.parse((await zrb(["status", "--config", c, "--json"], { env })).stdout);
    expect(s[0].task).toBe("t");
    expect(s[0].running).toBeNull();
    expect(s[0].staleLock).toBe(true);
    expect(s[0].interrupted).toBeNull();
    expect(s[0].heads).toEqual([{ level: 0, backupId: b.backupId, snapshot: b.snapshot, finishedAt: expect.any(String) }]);
    const text = (await zrb(["status", "--config", c], { env })).stdout;
    expect(text).toContain(`level 0: ${b.snapshot.split("@")[1]}  backup ${b.backupId}`);
    expect(text).toContain("stale lock left by a dead run");
    // Every task's header says how old its newest backup is, in words; three days on it is marked STALE.
    expect(text).toMatch(new RegExp(`^t \\(${pool.pool}/data\\)  newest backup (just now|\\d+ s ago) \\(level 0\\)$`, "m"));
    const later = new Date(Date.now() + 3 * 86_400_000 + 60_000).toISOString();
    const old = (await zrb(["status", "--config", c], { env: { ...env, ZRB_NOW: later } })).stdout;
    expect(old).toContain(`t (${pool.pool}/data)  newest backup 3 d ago (level 0)  STALE: older than 2d`);
    expect((await zrb(["status", "--config", c, "--max-age", "4d"], { env: { ...env, ZRB_NOW: later } })).stdout).toContain("newest backup 3 d ago (level 0)\n");
  });
});
