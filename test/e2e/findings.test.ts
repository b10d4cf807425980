/**
 * The smaller findings of issue 20's review, each on real parts (zfs-fuse, radosgw behind the
 * loopback fault proxy, the compiled binary) and each failing on 0.1.0+b2f33e4:
 *   - monitoring.metrics_file in a directory other users can write: refused without the sticky
 *     bit (exit 9); with it, links planted at the .prom, its temp file and its lock are never
 *     followed (no file created or overwritten elsewhere, no secret copied into the .prom);
 *   - a lock file left by a kill -9 on a host renamed since: stale for backup and status (the
 *     kernel's flock decides, not the host name); a live flock holder still locks;
 *   - prune of a recursive task leaves an excluded child's snapshots alone (another task backs
 *     it up with a retention of its own);
 *   - SIGTERM/SIGINT while prune reads manifests: exit 143/130, no advice to remove a manifest;
 *   - retention counts written 0x10 in the config: exit 3, as --keep-daily 0x10 is exit 2;
 *   - a restore target whose URI-encoded lock name exceeds 255 bytes restores.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { forward, type FaultProxy } from "../helpers/faultproxy.ts";
import { mountpointOf, run, waitFor, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, expectFailed, expectZrbFail, sigtermGracefully, spawnZrb, zrb, jsonResult } from "../helpers/zrb.ts";

let sc: Scene;
let proxy: FaultProxy;
let base: string;
let cfg: string;

/** A config of the scene's tasks (through the proxy), edited by `edit`, written as `<name>.yaml`. */
function writeConfig(name: string, edit: (doc: any) => void = () => {}): string {
  const doc = YAML.parse(configYaml({ baseDir: base, recipients: [sc.recipient], bucket: sc.bucket, s3: sc.s3, chunkSize: "256KiB", tasks: [{ name: "t", pool: sc.pool.pool, dataset: "src" }] }));
  doc.s3.endpoint = proxy.endpoint;
  doc.tasks.push(
    { name: "home", pool: sc.pool.pool, dataset: "home", enabled: true, recursive: true, exclude: ["shared"], retention: { keep_last: 1, local: { keep_last: 1 } } },
    { name: "shared", pool: sc.pool.pool, dataset: "home/shared", enabled: true, retention: { keep_last: 5, local: { keep_last: 5 } } },
  );
  edit(doc);
  const path = join(sc.work, `${name}.yaml`);
  writeFileSync(path, YAML.stringify(doc));
  return path;
}

const snapsOf = async (fs: string) => (await run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", fs])).stdout.split("\n").filter(Boolean);

beforeAll(async () => {
  sc = await scene({ name: "findings", poolMiB: 128, dataset: "src", proxy: true });
  proxy = sc.proxy!;
  base = join(sc.work, "base");
  for (const ds of ["home", "home/shared"]) await run(["zfs", "create", `${sc.pool.pool}/${ds}`]);
  await writeRandomFile(join(sc.mnt, "f.bin"), 600_000, 1);
  await writeRandomFile(join(await mountpointOf(`${sc.pool.pool}/home/shared`), "f.bin"), 50_000, 2);
  cfg = writeConfig("main");
  await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "0"], { env: sc.env });
  await zrb(["backup", "--config", cfg, "--task", "t", "--level", "0"], { env: sc.env });
}, 300_000);

afterEach(() => {
  proxy.setDecide(() => forward);
  proxy.check();
});
afterAll(() => sc?.close(), 120_000);

describe("monitoring.metrics_file in a directory others can write", () => {
  test("writable by others without the sticky bit: backup and check refuse it (exit 9, naming the directory) before doing anything", async () => {
    const open = join(sc.work, "open-textfile");
    mkdirSync(open);
    chmodSync(open, 0o777);
    const c = writeConfig("open-metrics", (d) => (d.monitoring = { metrics_file: join(open, "zrb.prom") }));
    await expectZrbFail(["backup", "--config", c, "--task", "t", "--level", "0"], sc.env, 9, `monitoring.metrics_file ${open}/zrb.prom: directory ${open} is writable by other users (mode 0777) without the sticky bit`, `chmod go-w ${open}`);
    await expectZrbFail(["check", "--config", c], sc.env, 9, `directory ${open} is writable by other users`);
    expect(existsSync(join(open, "zrb.prom"))).toBe(false);
  }, 120_000);

  test("sticky and world-writable: links planted at the .prom, its temp file and its lock are never followed", async () => {
    const dir = join(sc.work, "sticky-textfile");
    mkdirSync(dir);
    chmodSync(dir, 0o1777);
    const prom = join(dir, "zrb.prom");
    const secret = join(sc.work, "root-only.txt");
    writeFileSync(secret, 'api_token{value="hunter2"} 1\n', { mode: 0o600 });
    const victim = join(sc.work, "victim.txt");
    writeFileSync(victim, "root only\n", { mode: 0o600 });
    const chosen = join(sc.work, "created-by-root");
    symlinkSync(secret, prom);
    symlinkSync(chosen, `${prom}.lock`);
    // The temp file's name carries the pid: plant it for the pids the next processes will get.
    const last = Number(readFileSync("/proc/sys/kernel/ns_last_pid", "utf8"));
    for (let pid = last + 1; pid <= last + 3000; pid++) symlinkSync(victim, `${prom}.tmp-${pid}`);
    const c = writeConfig("sticky-metrics", (d) => (d.monitoring = { metrics_file: prom }));
    const verify = async () => {
      const p = await spawnZrb(["verify", "--config", c, "--task", "t", "--sample", "1"], sc.env);
      const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
      expect(p.pid).toBeLessThanOrEqual(last + 3000); // its temp name was planted
      expect(code).toBe(0);
      return stderr;
    };
    const first = await verify();
    expect(existsSync(chosen)).toBe(false);
    expect(readFileSync(victim, "utf8")).toBe("root only\n");
    expect(readFileSync(secret, "utf8")).toBe('api_token{value="hunter2"} 1\n');
    expect(first).toContain(`metrics: cannot update ${prom}: ${prom}.lock is a symbolic link, which zrb does not follow; remove it`);

    await run(["rm", `${prom}.lock`]);
    const second = await verify();
    expect(readFileSync(victim, "utf8")).toBe("root only\n");
    expect(readFileSync(secret, "utf8")).toBe('api_token{value="hunter2"} 1\n');
    expect(lstatSync(prom).isFile()).toBe(true);
    const text = readFileSync(prom, "utf8");
    expect(text).toContain("zrb_verify_last_exit_code");
    expect(text).not.toContain("hunter2");
    expect(lstatSync(prom).mode & 0o777).toBe(0o644);
    expect(second).toContain(`metrics: ${prom} is a symbolic link, not the file zrb wrote: replaced, not followed`);
  }, 120_000);
});

describe("a lock's liveness is the kernel's flock, not the host name", () => {
  const lockPath = () => join(base, "run", sc.pool.pool, "src", "zrb.lock");
  const statusOf = async () => (JSON.parse((await zrb(["status", "--config", cfg, "--task", "t", "--json"], { env: sc.env })).stdout) as any[])[0];

  test("kill -9 of a backup, then the host renamed: status says stale, the next backup runs (exit 0)", async () => {
    await writeRandomFile(join(sc.mnt, "g.bin"), 400_000, 3);
    await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "1"], { env: sc.env });
    const p = await spawnZrb(["backup", "--config", cfg, "--task", "t", "--level", "1", "--bwlimit", "64KiB/s"], sc.env);
    await waitFor("the backup's lock", () => existsSync(lockPath()) && readFileSync(lockPath(), "utf8").includes('"pid"'));
    p.kill(9);
    await p.exited;
    const left = JSON.parse(readFileSync(lockPath(), "utf8"));
    expect(left.pid).toBe(p.pid);
    // The NAS got a new host name before the next run.
    writeFileSync(lockPath(), JSON.stringify({ ...left, host: "nas-before-rename" }));
    const s = await statusOf();
    expect(s.running).toBeNull();
    expect(s.staleLock).toBe(true);
    const r = await zrb(["backup", "--config", cfg, "--task", "t", "--level", "1"], { env: sc.env, allowFail: true });
    if (r.code !== 0) console.error(r.stderr);
    expect(r.code).toBe(0);
    expect(existsSync(lockPath())).toBe(false);
  }, 180_000);

  test("a live holder of the flock locks, whatever host its file names: backup exits 4, status says running", async () => {
    mkdirSync(join(base, "run", sc.pool.pool, "src"), { recursive: true });
    writeFileSync(lockPath(), JSON.stringify({ pid: 999999, start: "1", host: "another-host", command: "zrb backup --level 0", since: "2026-12-01T00:00:00Z" }), { mode: 0o600 });
    // One process holds the flock: bash takes it on fd 9, then becomes `sleep` with fd 9 open.
    const holder = Bun.spawn(["bash", "-c", 'exec 9<"$1" && flock -x 9 && exec sleep 60', "_", lockPath()]);
    try {
      await waitFor("the flock", async () => (await run(["flock", "-n", "-s", lockPath(), "true"], { allowFail: true })).code !== 0, 10_000);
      await expectZrbFail(["backup", "--config", cfg, "--task", "t", "--level", "1"], sc.env, 4, "locked by 'zrb backup --level 0' (pid 999999 on another-host");
      expect((await statusOf()).running).toMatchObject({ pid: 999999, command: "zrb backup --level 0 on another-host" });
      holder.kill(9);
      await holder.exited;
      expect((await statusOf()).staleLock).toBe(true);
    } finally {
      holder.kill(9);
      await holder.exited;
      rmSync(lockPath(), { force: true }); // the tests below need the dataset unlocked, on any zrb
    }
  }, 120_000);
});

describe("prune of a recursive task", () => {
  test("leaves an excluded child's snapshots alone: another task backs it up with its own retention", async () => {
    const shared = `${sc.pool.pool}/home/shared`;
    await zrb(["snapshot", "--config", cfg, "--task", "shared", "--level", "0"], { env: sc.env });
    for (let i = 0; i < 2; i++) await zrb(["snapshot", "--config", cfg, "--task", "home", "--level", "0"], { env: sc.env });
    await zrb(["backup", "--config", cfg, "--task", "home", "--level", "0"], { env: sc.env });
    const before = await snapsOf(shared);
    expect(before.length).toBe(3);
    expect((await snapsOf(`${sc.pool.pool}/home`)).length).toBe(2);
    const r = await zrb(["prune", "--config", cfg, "--task", "home", "--allow-unsigned", "--json"], { env: sc.env });
    expect(await snapsOf(shared)).toEqual(before);
    expect((await snapsOf(`${sc.pool.pool}/home`)).length).toBe(1); // the tree's own child is pruned by its policy
    const children = jsonResult(r.stdout).children;
    expect(children.find((c: any) => c.child === "shared")).toMatchObject({ status: "skipped", message: expect.stringContaining("excluded: its snapshots and backups are left alone") });
  }, 180_000);
});

describe("an interrupt while prune reads the manifests", () => {
  const stallManifests = () => proxy.setDecide((r) => (r.method === "GET" && r.path.includes(".manifest.yaml") ? { kind: "stall" } : forward));
  const spawnPrune = () => spawnZrb(["prune", "--config", cfg, "--task", "t", "--keep-last", "50", "--allow-unsigned"], sc.env);
  const stalled = (from: number) => waitFor("a manifest read", () => proxy.log.slice(from).some((q) => q.action === "stall"), 30_000);

  test("SIGTERM: exit 143, one line, no advice to remove a good manifest", async () => {
    stallManifests();
    const from = proxy.log.length;
    const p = await spawnPrune();
    await stalled(from);
    const stderr = await sigtermGracefully(p);
    expect(stderr).not.toContain("truly gone");
    expect(stderr).not.toContain("cannot be read");
  }, 120_000);

  test("SIGINT: exit 130, the same", async () => {
    stallManifests();
    const from = proxy.log.length;
    const p = await spawnPrune();
    await stalled(from);
    p.kill("SIGINT");
    const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    await expectFailed({ code, stderr }, 130, "interrupted by SIGINT");
    expect(stderr).not.toContain("truly gone");
  }, 120_000);
});

describe("retention counts and long restore targets", () => {
  test("keep_daily: 0x10 in the config is exit 3 naming the key, as --keep-daily 0x10 is exit 2", async () => {
    const hex = writeConfig("hex", (d) => (d.tasks[0].retention = { keep_daily: "HEX" }));
    writeFileSync(hex, readFileSync(hex, "utf8").replace("HEX", "0x10"));
    await expectZrbFail(["prune", "--config", hex, "--task", "t", "--allow-unsigned"], sc.env, 3, "tasks[0].retention.keep_daily must be a whole number from 0 to 1000000 written in decimal digits (like 16), got 0x10");
    await expectZrbFail(["prune", "--config", cfg, "--task", "t", "--keep-daily", "0x10", "--allow-unsigned"], sc.env, 2, "--keep-daily must be a whole number");
  }, 60_000);

  test("a target whose URI-encoded lock name exceeds 255 bytes restores", async () => {
    const target = `${sc.pool.pool}/r${":".repeat(190)}`;
    expect(encodeURIComponent(target).length).toBeGreaterThan(255);
    await zrb(["restore", "--config", cfg, "--task", "t", "--level", "0", "--target", target, "--private-key", sc.keyFile, "--allow-unsigned"], { env: sc.env });
    expect((await snapsOf(target)).length).toBe(1);
  }, 120_000);
});
