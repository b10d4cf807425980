/**
 * The two other release targets run what users run: dist/zrb-linux-arm64 under
 * qemu-aarch64-static with Debian's own arm64 glibc (the sysroot test/rig/install-deps.sh
 * unpacks), and dist/zrb-linux-x64-baseline natively. Each binary (built here when missing
 * or stale) must
 *   - be the architecture it claims (ELF machine) and load its native BLAKE3 and libsodium
 *     addons (zrb --version --verbose names the path it runs on, and why a fallback ran);
 *   - make a key pair that the stock age-keygen and age agree with;
 *   - verify, with the private key, a local-directory backup chain made by the x64 binary on
 *     zfs-fuse (every part decrypted, per-part and whole-stream BLAKE3), and refuse it
 *     (exit 7) once one byte of one part is flipped;
 *   - back up an increment of that chain (its own pipe to zfs send: libc through bun:ffi),
 *     which the x64 binary then verifies.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, cpSync, existsSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ageKeyPair, makePool, run, tmpDir, writeRandomFile, type TestPool } from "../helpers/rig.ts";
import { configYaml, ensureTargets, jsonResult, zrb } from "../helpers/zrb.ts";

const ROOT = join(import.meta.dir, "..", "..");
const SYSROOT = process.env.ZRB_ARM64_SYSROOT ?? "/var/cache/zrb-arm64-sysroot";
const QEMU = "qemu-aarch64-static";

interface Target {
  name: string;
  /** ELF e_machine: 0xB7 aarch64, 0x3E x86-64 */
  machine: number;
  platform: string;
  command(): string[];
}

const TARGETS: Target[] = [
  { name: "linux-arm64", machine: 0xb7, platform: "linux-arm64", command: () => [QEMU, "-L", SYSROOT, bin("linux-arm64")] },
  { name: "linux-x64-baseline", machine: 0x3e, platform: "linux-x64", command: () => [bin("linux-x64-baseline")] },
];

function bin(target: string): string {
  return join(ROOT, "dist", `zrb-${target}`);
}

function elfMachine(path: string): number {
  const fd = openSync(path, "r");
  try {
    const h = Buffer.alloc(20);
    readSync(fd, h, 0, 20, 0);
    if (h.subarray(0, 4).toString("latin1") !== "\x7fELF") throw new Error(`${path} is not an ELF file`);
    return h.readUInt16LE(18);
  } finally {
    closeSync(fd);
  }
}

let work: string;
let pool: TestPool;
let keyFile: string;
let cfg: string;
let badCfg: string;
let partCount: number;
let recipient: string;
const tasks = () => [{ name: "t", pool: pool.pool, dataset: "" }];

beforeAll(async () => {
  if (!existsSync(join(SYSROOT, "lib", "ld-linux-aarch64.so.1")) || Bun.which(QEMU) === null)
    throw new Error(`no ${QEMU} or arm64 sysroot in ${SYSROOT}: run bash test/rig/install-deps.sh`);
  await ensureTargets(["linux-x64", ...TARGETS.map((t) => t.name)]);
  work = tmpDir("zrb-targets-");
  pool = await makePool({ sizeMiB: 128 });
  const pair = await ageKeyPair(join(work, "key.txt"));
  keyFile = pair.keyFile;
  recipient = pair.recipient;
  cfg = join(work, "zrb.yaml");
  writeFileSync(cfg, configYaml({ baseDir: join(work, "base"), recipients: [recipient], tasks: tasks() }));
  // a level-0 + level-1 chain of several 1 MiB parts, made by the x64 binary
  await writeRandomFile(join(pool.dir, "photo.raw"), 3_500_000, 17);
  await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "0"]);
  await zrb(["backup", "--config", cfg, "--task", "t", "--level", "0"]);
  await writeRandomFile(join(pool.dir, "later.raw"), 1_200_000, 18);
  await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "1"]);
  await zrb(["backup", "--config", cfg, "--task", "t", "--level", "1"]);
  const backups: { parts: number }[] = JSON.parse((await zrb(["list", "--config", cfg, "--task", "t", "--json"])).stdout);
  partCount = backups.reduce((n, b) => n + b.parts, 0);
  expect(partCount).toBeGreaterThanOrEqual(5);
  // the same store with one byte of one part flipped
  cpSync(join(work, "base"), join(work, "bad"), { recursive: true });
  badCfg = join(work, "bad.yaml");
  writeFileSync(badCfg, configYaml({ baseDir: join(work, "bad"), recipients: [recipient], tasks: tasks() }));
  const part = (await run(["sh", "-c", `find ${join(work, "bad", "store", "data")} -name 'part-000001.age' | head -1`])).stdout.trim();
  const bytes = readFileSync(part);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  writeFileSync(part, bytes);
}, 300_000);

afterAll(async () => {
  await pool?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function runTarget(t: Target, args: string[], allowFail = false) {
  return run([...t.command(), ...args], { allowFail });
}

for (const t of TARGETS) {
  describe(`dist/zrb-${t.name}${t.name === "linux-arm64" ? " under qemu-aarch64-static" : ""}`, () => {
    test("is built for its CPU and runs on the native BLAKE3 addon, the host's OpenSSL and, without it, the libsodium addon", async () => {
      expect(elfMachine(bin(t.name))).toBe(t.machine);
      const r = await runTarget(t, ["--version", "--verbose"]);
      const lines = r.stdout.trim().split("\n");
      expect(lines[0]).toMatch(/^zrb \d+\.\d+\.\d+\+[0-9a-f]{7,}/);
      // Under qemu the arm64 libcrypto is the sysroot's (Debian's libssl3:arm64, install-deps.sh).
      expect(lines[3]).toMatch(/^ChaCha20-Poly1305: openssl \(libcrypto\.so\.3, OpenSSL 3\.\d+\.\d+ .+\)$/);
      const sodium = await run([...t.command(), "--version", "--verbose"], { env: { ZRB_NO_OPENSSL: "1" } });
      expect(sodium.stdout.split("\n")[3]).toBe("ChaCha20-Poly1305: native (libsodium, sodium-native; OpenSSL not used: ZRB_NO_OPENSSL is set)");
      expect(lines.toSpliced(3, 1).slice(1)).toEqual([
        `runtime: bun ${Bun.version}, ${t.platform}`,
        "BLAKE3: native (@napi-rs/blake-hash)",
        "zfs send read through: zrb's own pipe (pipe2 from libc.so.6, 1 MiB deep)",
        // src/heap.ts restarts the binary with a small heap; not under qemu-user here, where the
        // arm64 dynamic loader exists only in the sysroot qemu was given.
        t.name === "linux-arm64" ? "heap: the runtime's default (sized by the machine's RAM)" : "heap: sized for 128 MiB of RAM (BUN_JSC_forceRAMSize)",
      ]);
    });

    test("genkey writes a key pair that the stock age-keygen and age agree with", async () => {
      const d = join(work, `keys-${t.name}`);
      const r = await runTarget(t, ["genkey", "--out-dir", d]);
      const pub = r.stdout.trim();
      expect(pub).toMatch(/^age1[0-9a-z]{58}$/);
      expect(statSync(join(d, "zrb_private.key")).mode & 0o777).toBe(0o600);
      expect((await run(["age-keygen", "-y", join(d, "zrb_private.key")])).stdout.trim()).toBe(pub);
      const msg = join(d, "msg");
      writeFileSync(msg, "family photos\n");
      await run(["age", "-r", pub, "-o", `${msg}.age`, msg]);
      expect((await run(["age", "-d", "-i", join(d, "zrb_private.key"), `${msg}.age`])).stdout).toBe("family photos\n");
    });

    test("verify --private-key checks every part of the x64 binary's backup chain", async () => {
      const r = await runTarget(t, ["verify", "--config", cfg, "--task", "t", "--private-key", keyFile, "--json"]);
      const report = jsonResult(r.stdout);
      expect(report.ok).toBe(true);
      expect(report.decrypted).toBe(true);
      expect(report.parts.length).toBe(partCount);
      expect(report.parts.every((p: { ok: boolean }) => p.ok)).toBe(true);
      expect(report.backups.map((b: { level: number; checked: number; parts: number; streamBlake3: string }) => [b.level, b.checked === b.parts, b.streamBlake3])).toEqual([
        [0, true, "ok"],
        [1, true, "ok"],
      ]);
    });

    test("backs up an increment of that chain (zfs send read through zrb's own pipe, src/util/os-pipe.ts), which the x64 binary verifies", async () => {
      // A copy of the chain's store and state, so the chain the other tests check stays as it is.
      const base = join(work, `base-${t.name}`);
      cpSync(join(work, "base"), base, { recursive: true });
      const c = join(work, `${t.name}.yaml`);
      writeFileSync(c, configYaml({ baseDir: base, recipients: [recipient], tasks: tasks() }));
      await writeRandomFile(join(pool.dir, `${t.name}.raw`), 1_500_000, 19);
      await zrb(["snapshot", "--config", c, "--task", "t", "--level", "2"]);
      await runTarget(t, ["backup", "--config", c, "--task", "t", "--level", "2"]);
      const report = jsonResult((await zrb(["verify", "--config", c, "--task", "t", "--private-key", keyFile, "--json"])).stdout);
      expect(report.ok).toBe(true);
      expect(report.backups.map((b: { level: number; checked: number; parts: number; streamBlake3: string }) => [b.level, b.checked === b.parts && b.parts > 0, b.streamBlake3])).toEqual([
        [0, true, "ok"],
        [1, true, "ok"],
        [2, true, "ok"],
      ]);
    });

    test("verify refuses the same chain with one flipped byte (exit 7)", async () => {
      const r = await runTarget(t, ["verify", "--config", badCfg, "--task", "t", "--private-key", keyFile], true);
      expect(r.code).toBe(7);
      expect(r.stdout).toMatch(/^FAILED .*part-000001\.age: /m);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^zrb: error: verification failed: 1 problem\(s\) in /);
    });
  });
}
