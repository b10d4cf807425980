/**
 * Several stores per task (issue 25) on real parts: one zfs-fuse dataset, two radosgw buckets
 * ("hot" and "cold"), the compiled binary. One story, each step checking several things: level 0
 * to both; an incremental while cold's endpoint never answers (hot gets it, exit 6, one summary
 * line per store); the next run catches cold up on its own chain; kill -9 mid-run and resume per
 * store; restore from each store byte-identical (and without --store, from the first store that
 * can); prune per store with each store's retention; base holds released once no store needs
 * them; status --max-age stale per store. One `zfs send` feeds both stores when they need the
 * same stream (counted by a wrapper around the real zfs), and a store failing mid-stream is
 * dropped from it while the other completes. --bwlimit caps the stores' sum.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { ageKeyPair, hashTree, makeBucket, mountpointOf, run, userrefs, waitFor, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { startStallServer, type StallServer } from "../helpers/stallserver.ts";
import { s3Error, startFaultProxy, type FaultProxy } from "../helpers/faultproxy.ts";
import { jsonEvents, spawnZrb, zrb } from "../helpers/zrb.ts";

let sc: Scene;
let cold: string;
let stall: StallServer;
let proxy: FaultProxy;
let sendLog: string;
let base: string;
let metrics: string;
const snaps: Record<string, string> = {};

/**
 * A config with the stores hot and cold; `down` puts the stall server in place of that store's
 * endpoint, `proxied` the fault proxy.
 */
function config(name: string, o: { down?: "hot" | "cold"; proxied?: "cold"; coldLimit?: string } = {}): string {
  const s3 = (bucket: string, store: string) => ({
    bucket,
    prefix: "zrb/",
    region: sc.s3.region,
    endpoint: o.down === store ? stall.endpoint : o.proxied === store ? proxy.endpoint : sc.s3.endpoint,
    request_timeout: "1s",
    retry: { max_attempts: 1 },
    ...(store === "cold" && o.coldLimit ? { bandwidth_limit: o.coldLimit } : {}),
  });
  const doc = {
    base_dir: base,
    age_public_key: sc.recipient,
    chunk_size: "256KiB",
    workers: 2,
    monitoring: { metrics_file: metrics },
    stores: [
      { name: "hot", s3: s3(sc.bucket, "hot"), retention: { keep_last: 1 } },
      { name: "cold", s3: s3(cold, "cold") },
    ],
    tasks: [
      { name: "main", pool: sc.pool.pool, dataset: sc.fs.split("/").slice(1).join("/"), enabled: true, retention: { keep_last: 10 } },
      { name: "tree", pool: sc.pool.pool, dataset: "tree", enabled: true, recursive: true },
    ],
  };
  const path = join(sc.work, `${name}.yaml`);
  writeFileSync(path, YAML.stringify(doc));
  return path;
}

let up: string;
const task = (cfg: string) => ["--config", cfg, "--task", "main"];

async function snapshot(level: number, key: string): Promise<string> {
  const name = (await zrb(["snapshot", ...task(up), "--level", String(level)], { env: sc.env })).stdout.trim();
  snaps[key] = name;
  return name;
}

async function list(store: string): Promise<any[]> {
  return JSON.parse((await zrb(["list", ...task(up), "--store", store, "--json"], { env: sc.env })).stdout);
}

/** The files of a restored dataset (restore leaves it unmounted). */
async function treeOf(ds: string): Promise<Record<string, string>> {
  await run(["zfs", "mount", `${sc.pool.pool}/${ds}`]);
  return hashTree(await mountpointOf(`${sc.pool.pool}/${ds}`));
}

/** The `zfs send` runs of `snap` so far (not the size estimates, `send -n`), as the wrapper logged them. */
const sendsOf = (snap: string) =>
  readFileSync(sendLog, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("send ") && !/ -n/.test(l) && l.endsWith(` ${snap}`)).length;

/** The `store NAME: …` summary lines of a run's stderr. */
const summary = (stderr: string) => stderr.split("\n").filter((l) => /store (hot|cold): (ok|failed|skipped)/.test(l));

beforeAll(async () => {
  sc = await scene({ name: "stores", poolMiB: 96, dataset: "data" });
  cold = await makeBucket(sc.s3);
  stall = startStallServer({ mode: "silent", lifetimeMs: 600_000 });
  proxy = startFaultProxy({ upstreamPort: Number(new URL(sc.s3.endpoint).port) });
  // The real zfs, every call logged: the sends are counted.
  sendLog = join(sc.work, "zfs-calls.log");
  writeFileSync(sendLog, "");
  const wrapper = join(sc.work, "zfs-logged");
  const real = Bun.which("zfs", { PATH: `/usr/sbin:/sbin:${process.env.PATH}` })!;
  writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> '${sendLog}'\nexec '${real}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  sc.env.ZRB_ZFS = wrapper;
  base = join(sc.work, "base");
  metrics = join(sc.work, "zrb.prom");
  up = config("up");
});

afterAll(async () => {
  stall?.stop();
  proxy?.stop();
  await sc?.close();
});

describe("two stores, each with its own chain", () => {
  test("level 0 goes to both: events, metrics, local state and base holds are per store", async () => {
    await writeRandomFile(join(sc.mnt, "a.bin"), 300_000, 1);
    const l0 = await snapshot(0, "l0");
    const r = await zrb(["backup", ...task(up), "--level", "0", "--json"], { env: sc.env });
    const events = jsonEvents(r.stdout);
    // Each store's events carry its name; the run ends with one event carrying every store's outcome.
    expect(new Set(events.filter((e) => e.event === "start" || e.event === "done").map((e) => e.store))).toEqual(new Set(["hot", "cold", undefined]));
    const last = events.at(-1);
    expect([last.event, last.store, events.filter((e) => e.event === "done").length]).toEqual(["done", undefined, 3]);
    const end = last.result;
    expect(end.stores.map((s: any) => [s.store, s.status, s.result.level, s.result.snapshot])).toEqual([
      ["hot", "ok", 0, l0],
      ["cold", "ok", 0, l0],
    ]);
    expect(summary(r.stderr)).toEqual([expect.stringContaining("store hot: ok"), expect.stringContaining("store cold: ok")]);
    expect((await list("hot")).length).toBe(1);
    expect((await list("cold")).length).toBe(1);
    // Without --store, list goes store by store.
    const both = JSON.parse((await zrb(["list", ...task(up), "--json"], { env: sc.env })).stdout);
    expect(both.map((s: any) => [s.store, s.entries.length])).toEqual([["hot", 1], ["cold", 1]]);
    const prom = readFileSync(metrics, "utf8");
    for (const s of ["hot", "cold"]) expect(prom).toMatch(new RegExp(`zrb_backup_last_exit_code\\{[^}]*store="${s}"[^}]*\\} 0`));
    // Each store's local state is its own; nothing under the default store's run dir.
    for (const s of ["hot", "cold"]) expect(existsSync(join(base, "stores", s, "run", sc.fs, "last_backup_manifest.yaml"))).toBe(true);
    expect(existsSync(join(base, "run"))).toBe(false);
    expect(await userrefs(l0)).toBe(2); // zrb.hot and zrb.cold
    // Both stores needed the same stream: one zfs send fed them.
    expect(sendsOf(l0)).toBe(1);
    expect(r.stderr).toContain(`one zfs send of ${l0} fed stores hot, cold`);
  });

  test("an incremental while cold never answers: hot gets it, exit 6, one line per store; the next run catches cold up on its own chain", async () => {
    await writeRandomFile(join(sc.mnt, "b.bin"), 200_000, 2);
    const l1 = await snapshot(1, "l1");
    const down = await zrb(["backup", ...task(config("cold-down", { down: "cold" })), "--level", "1"], { env: sc.env, allowFail: true });
    expect(down.code).toBe(6);
    expect(summary(down.stderr)).toEqual([expect.stringContaining("store hot: ok"), expect.stringContaining("store cold: failed (exit 6)")]);
    const err = down.stderr.split("\n").filter((l) => l.startsWith("zrb: "));
    expect(err.length).toBe(1);
    expect(err[0]).toContain("1 of 2 stores failed; store cold:");
    expect(stall.connections).toBeGreaterThan(0);
    expect((await list("hot")).length).toBe(2);
    expect((await list("cold")).length).toBe(1);
    expect(await userrefs(l1)).toBe(1); // hot's base only
    expect(readFileSync(metrics, "utf8")).toMatch(/zrb_backup_last_exit_code\{[^}]*store="cold"[^}]*\} 6/);

    const again = await zrb(["backup", ...task(up), "--level", "1", "--json"], { env: sc.env });
    const end = jsonEvents(again.stdout).at(-1).result;
    expect(end.stores.map((s: any) => [s.store, s.status, s.result.skipped])).toEqual([
      ["hot", "ok", true],
      ["cold", "ok", false],
    ]);
    const c = await list("cold");
    expect(c.map((e) => [e.level, e.snapshot])).toEqual([
      [0, snaps.l0],
      [1, l1],
    ]);
    expect(c[1].parentBackupId).toBe(c[0].backupId); // cold's own chain, not hot's ids
    expect(c[1].parentBackupId).not.toBe((await list("hot"))[0].backupId);
    expect(await userrefs(l1)).toBe(2);
    // hot's send in the first run, cold's catching up in the second: one each.
    expect(sendsOf(l1)).toBe(2);
  });

  test("kill -9 mid-run: the next run finds hot done and resumes cold from its own state", async () => {
    await writeRandomFile(join(sc.mnt, "c.bin"), 1_200_000, 3);
    const l2 = await snapshot(2, "l2");
    const slow = config("cold-slow", { coldLimit: "200KiB/s" });
    const coldState = join(base, "stores", "cold", "run", sc.fs, "backup_state.yaml");
    const p = await spawnZrb(["backup", ...task(slow), "--level", "2"], sc.env);
    await waitFor("cold's first uploaded part", () => existsSync(coldState) && (YAML.parse(readFileSync(coldState, "utf8"))?.chunks ?? []).some((c: any) => c?.uploaded), 120_000);
    p.kill("SIGKILL");
    expect(await p.exited).toBe(137);
    expect((await list("hot")).at(-1).snapshot).toBe(l2);
    expect((await list("cold")).length).toBe(2);
    const r = await zrb(["backup", ...task(up), "--level", "2", "--json"], { env: sc.env });
    const end = jsonEvents(r.stdout).at(-1).result;
    expect(end.stores.map((s: any) => [s.store, s.result.skipped, s.result.resumed ?? null])).toEqual([
      ["hot", true, null],
      ["cold", false, true],
    ]);
    expect((await list("cold")).at(-1).snapshot).toBe(l2);
    expect(existsSync(coldState)).toBe(false);
    // The killed run's send holds (zrb-send.cold) are gone: l2 carries the two base holds only.
    expect(await userrefs(l2)).toBe(2);
  });

  test("cold fails mid-stream: it is dropped from the shared send and hot completes from it; the next run resumes cold", async () => {
    await writeRandomFile(join(sc.mnt, "d.bin"), 1_200_000, 4);
    const l3 = await snapshot(3, "l3");
    // cold's third part upload (and every one after) is refused: a permanent error mid-stream.
    let parts = 0;
    proxy.setDecide((q) => {
      if (q.method !== "PUT" || !q.path.startsWith(`/${cold}/zrb/data/`)) return { kind: "forward" };
      return ++parts > 2 ? { kind: "reply", response: s3Error(403, "Forbidden", "AccessDenied", "Access Denied") } : { kind: "forward" };
    });
    const r = await zrb(["backup", ...task(config("cold-refused", { proxied: "cold" })), "--level", "3"], { env: sc.env, allowFail: true });
    expect(r.code).not.toBe(0);
    expect(summary(r.stderr)).toEqual([expect.stringContaining("store hot: ok"), expect.stringMatching(/store cold: failed \(exit \d+\)/)]);
    expect(parts).toBeGreaterThan(2);
    expect(sendsOf(l3)).toBe(1);
    expect((await list("hot")).at(-1).snapshot).toBe(l3);
    expect((await list("cold")).at(-1).snapshot).toBe(snaps.l2);
    const again = await zrb(["backup", ...task(up), "--level", "3", "--json"], { env: sc.env });
    const end = jsonEvents(again.stdout).at(-1).result;
    expect(end.stores.map((s: any) => [s.store, s.result.skipped, s.result.resumed ?? null])).toEqual([
      ["hot", true, null],
      ["cold", false, true],
    ]);
    expect((await list("cold")).at(-1).snapshot).toBe(l3);
    expect(sendsOf(l3)).toBe(2);
  });

  test("restore from each store is byte-identical; without --store, the first store that can; verify checks each store", async () => {
    const want = await hashTree(sc.mnt);
    const restoreArgs = (cfg: string, target: string, more: string[] = []) => ["restore", ...task(cfg), "--target", `${sc.pool.pool}/${target}`, "--private-key", sc.keyFile, ...more];
    await zrb(restoreArgs(up, "from-cold", ["--store", "cold"]), { env: sc.env });
    expect(await treeOf("from-cold")).toEqual(want);
    // hot's endpoint never answers: restore says so and reads cold.
    const r = await zrb(restoreArgs(config("hot-down", { down: "hot" }), "picked"), { env: sc.env });
    expect(r.stderr).toContain("store hot cannot be read");
    expect(r.stderr).toContain("restoring from store cold");
    expect(await treeOf("picked")).toEqual(want);
    const h = await zrb(restoreArgs(up, "from-hot"), { env: sc.env });
    expect(h.stderr).toContain("restoring from store hot");
    expect(await treeOf("from-hot")).toEqual(want);
    // verify goes store by store, each outcome on its own line.
    const v = await zrb(["verify", ...task(up), "--private-key", sc.keyFile], { env: sc.env });
    expect(summary(v.stderr)).toEqual([expect.stringContaining("store hot: ok"), expect.stringContaining("store cold: ok")]);
    // find answers store by store from each store's own catalogs; --store one of them.
    const f = await zrb(["find", ...task(up), "--private-key", sc.keyFile, "*"], { env: sc.env });
    expect(f.stdout).toContain("store hot:");
    expect(f.stdout).toContain("store cold:");
    expect(f.stdout).not.toContain("nothing matches");
    const fc = await zrb(["find", ...task(up), "--private-key", sc.keyFile, "--store", "cold", "--json", "*"], { env: sc.env });
    expect(JSON.parse(fc.stdout).matches.length).toBeGreaterThan(0);
    // plan: one estimate per store's bucket, each with what that bucket holds.
    const plan = JSON.parse((await zrb(["plan", "--config", up, "--task", "main", "--json"], { env: sc.env })).stdout);
    expect(plan.stores.map((p: any) => [p.store, p.location.includes(p.store === "hot" ? sc.bucket : cold), p.tasks[0].restore.points.length > 0, p.total.storedBytes > 0])).toEqual([
      ["hot", true, true, true],
      ["cold", true, true, true],
    ]);
    const bad = await zrb(restoreArgs(up, "x", ["--store", "warm"]), { env: sc.env, allowFail: true });
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining('--store "warm" names no store')]);
  });

  test("prune per store with each store's retention; a base is released once no store needs it", async () => {
    const l0b = await snapshot(0, "l0b");
    await zrb(["backup", ...task(up), "--level", "0", "--store", "hot"], { env: sc.env });
    // hot moved on to l0b; cold still needs l0, l1, l2 and l3 as bases.
    for (const k of ["l0", "l1", "l2", "l3"]) expect(await userrefs(snaps[k]!)).toBe(1);
    expect(await userrefs(l0b)).toBe(1);
    const p = await zrb(["prune", ...task(up), "--allow-unsigned"], { env: sc.env });
    expect(summary(p.stderr)).toEqual([expect.stringContaining("store hot: ok"), expect.stringContaining("store cold: ok")]);
    expect((await list("hot")).map((e) => e.snapshot)).toEqual([l0b]); // hot: keep_last 1
    expect((await list("cold")).length).toBe(4); // cold: the task's keep_last 10
    await zrb(["backup", ...task(up), "--level", "0", "--store", "cold"], { env: sc.env });
    for (const k of ["l0", "l1", "l2", "l3"]) expect(await userrefs(snaps[k]!)).toBe(0);
    expect(await userrefs(l0b)).toBe(2);
  });

  test("status goes store by store; --max-age finds the store that stopped receiving backups; rekey covers every store", async () => {
    // cold's newest backup is then over 15 s old, while hot gets a fresh one: a margin that a
    // loaded CI machine (hot's backup and two status runs) stays well within.
    await Bun.sleep(15_000);
    await snapshot(1, "l1b");
    await zrb(["backup", ...task(up), "--level", "1", "--store", "hot"], { env: sc.env });
    const s = await zrb(["status", ...task(up)], { env: sc.env });
    expect(s.stdout).toContain("→ store hot");
    expect(s.stdout).toContain("→ store cold");
    const stale = await zrb(["status", ...task(up), "--max-age", "15s", "--level", "1"], { env: sc.env, allowFail: true });
    expect(stale.code).toBe(10);
    const line = stale.stderr.split("\n").find((l) => l.startsWith("zrb: "))!;
    expect(line).toContain("task main in store cold");
    expect(line).not.toContain("store hot");
    const hotOnly = await zrb(["status", ...task(up), "--max-age", "15s", "--level", "1", "--store", "hot"], { env: sc.env });
    expect(hotOnly.code).toBe(0);
    // A key rotation covers every store: rekey (here a dry run) goes through both.
    const { recipient } = await ageKeyPair(join(sc.work, "new-key.txt"));
    const rk = await zrb(["rekey", ...task(up), "--private-key", sc.keyFile, "--to-recipient", recipient, "--dry-run"], { env: sc.env });
    const total = (await list("hot")).length + (await list("cold")).length;
    expect(rk.stdout).toContain(`of ${total} backups would be rewrapped`);
  });
  test("a recursive task to both stores: the stores meet child by child, one zfs send per child feeds both", async () => {
    for (const d of ["tree", "tree/c1", "tree/c2"]) await run(["zfs", "create", `${sc.pool.pool}/${d}`]);
    await writeRandomFile(join(await mountpointOf(`${sc.pool.pool}/tree/c1`), "x.bin"), 100_000, 5);
    await zrb(["snapshot", "--config", up, "--task", "tree", "--level", "0"], { env: sc.env });
    const r = await zrb(["backup", "--config", up, "--task", "tree", "--level", "0", "--json"], { env: sc.env });
    const end = jsonEvents(r.stdout).at(-1).result;
    const outcome = (s: any) => [s.store, s.status, s.result.children.map((c: any) => [c.child, c.status, c.level])];
    expect(end.stores.map(outcome)).toEqual(["hot", "cold"].map((n) => [n, "ok", [["", "ok", 0], ["c1", "ok", 0], ["c2", "ok", 0]]]));
    const short = end.stores[0].result.snapshot;
    for (const d of ["tree", "tree/c1", "tree/c2"]) expect([d, sendsOf(`${sc.pool.pool}/${d}@${short}`)]).toEqual([d, 1]);
  });
  test("--bwlimit caps the two stores together, not each", async () => {
    await writeRandomFile(join(sc.mnt, "limited.bin"), 5 * 1024 * 1024, 9);
    await snapshot(9, "l9");
    const r = await zrb(["backup", ...task(up), "--level", "9", "--json", "--bwlimit", "2MiB/s"], { env: sc.env });
    const ev = jsonEvents(r.stdout).filter((e) => e.store);
    const starts = ev.filter((e) => e.event === "start").map((e) => Date.parse(e.time));
    const dones = ev.filter((e) => e.event === "done");
    expect(dones.map((e) => e.store).sort()).toEqual(["cold", "hot"]);
    // Both stores' bytes over the time from the first start to the last done: the sum's rate.
    const bytes = dones.reduce((a, e) => a + e.bytes, 0);
    const seconds = (Math.max(...dones.map((e) => Date.parse(e.time))) - Math.min(...starts)) / 1000;
    console.log(`two stores under --bwlimit 2MiB/s: ${(bytes / 2 ** 20).toFixed(1)} MiB in ${seconds.toFixed(1)} s = ${(bytes / seconds / 2 ** 20).toFixed(2)} MiB/s`);
    expect(bytes).toBeGreaterThan(8 * 2 ** 20);
    expect(bytes / seconds / (2 * 2 ** 20)).toBeLessThanOrEqual(1.1);
  });
});
