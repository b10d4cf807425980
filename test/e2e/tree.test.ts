/**
 * Recursive tasks on real parts (zfs-fuse, radosgw, the compiled binary): a tree of nested
 * datasets backed up child by child, an excluded child and an exclude that matches nothing, a
 * child added between runs (its level 0), a child destroyed (reported once, its backups kept),
 * a child created after the run's snapshot (skipped, says why), a child zrb cannot name in a key
 * (refused, the others go on; --child another one ignores it), the tree restored as of one run
 * and one child alone, a run whose root backup was pruned (the root fails, nothing below it is
 * restored); list, status, verify, prune and cleanup by child; a tree rooted at a pool, with a
 * catalog clone a killed backup left in it (not a child), restored without one child's backup,
 * and as of a run its parent is skipped in (the child below it is skipped too, nothing fails).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { S3Client } from "@aws-sdk/client-s3";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { hashTree, makePool, mountpointOf, run, s3Client, snapshotGuid, waitFor, writeRandomFile } from "../helpers/rig.ts";
import { cloneName } from "../../src/zfs/snapfiles.ts";
import { parseSamples } from "../../src/report/metrics.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, expectZrbFail, jsonEvents, jsonResult, spawnZrb, zrb } from "../helpers/zrb.ts";
import { audit, cleanAudit, getText, listKeys, manifests } from "../helpers/audit.ts";

const PREFIX = "zrb/";
let sc: Scene;
let client: S3Client;
let cfg: string;
let base: string;
/** Every run's snapshot name and the files of each child at that run. */
const runs: { snapshot: string; files: Record<string, Record<string, string>> }[] = [];

const child = (rel: string) => (rel === "" ? sc.fs : `${sc.fs}/${rel}`);

async function zrbJson(args: string[], allowFail = false, task = "home"): Promise<{ code: number; result: any; events: any[]; stderr: string }> {
  const r = await zrb([...args, "--config", cfg, "--task", task, "--json"], { env: sc.env, allowFail });
  return { code: r.code, result: jsonResult(r.stdout), events: jsonEvents(r.stdout), stderr: r.stderr };
}

async function snapshot(level: number): Promise<{ name: string; stderr: string }> {
  const r = await zrb(["snapshot", "--config", cfg, "--task", "home", "--level", String(level)], { env: sc.env });
  const name = r.stdout.trim();
  expect(name).toStartWith(`${sc.fs}@zrb_level${level}_`);
  return { name: name.slice(name.indexOf("@") + 1), stderr: r.stderr };
}

/** Every dataset ever made below the tree's root (relative names): their mountpoints are not their parent's files. */
const made = new Set(["alice", "alice/docs", "alice/cache", "bob x", "scratch", "carol", "x.yaml", "dave"]);

/** The files of dataset `rel` in a hashTree of its mountpoint: without its children's mountpoints and what is mounted there. */
function own(rel: string, files: Record<string, string>): Record<string, string> {
  const inChild = (k: string) => [...made].some((m) => {
    const full = rel ? `${rel}/${k}` : k;
    return m.startsWith(rel ? `${rel}/` : "") && m !== rel && (full === m || full.startsWith(m + "/"));
  });
  return Object.fromEntries(Object.entries(files).filter(([k]) => !inChild(k)));
}

/** Record the files of every child (by mountpoint) as of the run about to be backed up. */
async function remember(snap: string, rels: string[]): Promise<void> {
  const files: Record<string, Record<string, string>> = {};
  for (const rel of rels) files[rel] = own(rel, await hashTree(await mountpointOf(child(rel))));
  runs.push({ snapshot: snap, files });
}

/** A destroyable child: release zrb's holds on its snapshots first (they protect the next incremental's base). */
async function destroyChild(rel: string): Promise<void> {
  const snaps = (await run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", child(rel)])).stdout.split("\n").filter(Boolean);
  for (const s of snaps) await run(["zfs", "release", "zrb", s], { allowFail: true });
  for (let i = 0; i < 40; i++) {
    const r = await run(["zfs", "destroy", "-r", child(rel)], { allowFail: true });
    if (r.code === 0) return;
    await Bun.sleep(250);
  }
  throw new Error(`cannot destroy ${child(rel)}`);
}

/** The files of child `rel` restored as `snap`, through a clone of it (the target stays unmounted). */
async function filesOf(snap: string, rel: string): Promise<Record<string, string>> {
  const clone = `${sc.pool.pool}/chk${Math.random().toString(16).slice(2, 8)}`;
  await run(["zfs", "clone", snap, clone]);
  try {
    return own(rel, await hashTree(await mountpointOf(clone)));
  } finally {
    for (let i = 0; i < 40 && (await run(["zfs", "destroy", clone], { allowFail: true })).code !== 0; i++) await Bun.sleep(250);
  }
}

beforeAll(async () => {
  sc = await scene({ name: "tree", poolMiB: 256, dataset: "home" });
  client = await s3Client(sc.s3);
  for (const rel of ["alice", "alice/docs", "alice/cache", "bob x", "scratch"]) await run(["zfs", "create", child(rel)]);
  base = join(sc.work, "base");
  const doc = YAML.parse(
    configYaml({ baseDir: base, recipients: [sc.recipient], bucket: sc.bucket, s3: sc.s3, prefix: PREFIX, chunkSize: "256KiB", tasks: [{ name: "home", pool: sc.pool.pool, dataset: "home" }] }),
  );
  Object.assign(doc.tasks[0], { recursive: true, exclude: ["scratch", "*/cache", "nomatch"], send_properties: true });
  doc.monitoring = { metrics_file: join(sc.work, "zrb.prom") };
  doc.prune = { orphan_grace: "0s" }; // the orphan cleanup removes is seconds old
  doc.tasks.push({ name: "crash", pool: sc.pool.pool, dataset: "crash", enabled: true, recursive: true });
  cfg = join(sc.work, "zrb.yaml");
  writeFileSync(cfg, YAML.stringify(doc));
  await run(["zfs", "set", "org.zrb:owner=alice", child("alice")]); // sent with send_properties
  let seed = 1;
  for (const rel of ["", "alice", "alice/docs", "alice/cache", "bob x", "scratch"]) {
    const m = await mountpointOf(child(rel));
    mkdirSync(join(m, "d"), { recursive: true });
    await writeRandomFile(join(m, "d", "f.bin"), 300_000 + seed * 1000, seed++);
  }
}, 300_000);

afterAll(async () => {
  await sc?.close();
}, 120_000);

describe("a recursive task on zfs-fuse + radosgw", () => {
  test("one atomic snapshot of the tree; every child its own chain; excluded children never sent", async () => {
    const s = await snapshot(0);
    expect(s.stderr).toContain(`exclude pattern "nomatch" of task home matches no child of ${sc.fs}`);
    for (const rel of ["", "alice", "alice/docs", "alice/cache", "bob x", "scratch"]) {
      const snaps = (await run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", "-d", "1", child(rel)])).stdout;
      expect(snaps).toContain(`${child(rel)}@${s.name}`); // excluded children are in the atomic snapshot too
    }
    await remember(s.name, ["", "alice", "alice/docs", "bob x"]);
    const r = await zrbJson(["backup", "--level", "0"]);
    expect(r.stderr).toContain('exclude pattern "nomatch"');
    expect(r.result.snapshot).toBe(s.name);
    expect(r.result.children.map((c: any) => [c.child, c.status, c.level])).toEqual([
      ["", "ok", 0],
      ["alice", "ok", 0],
      ["alice/docs", "ok", 0],
      ["bob x", "ok", 0],
    ]);
    expect(r.result.excluded).toEqual(["alice/cache", "scratch"]);
    for (const c of r.result.children) {
      expect(c.snapshot).toBe(`${c.dataset}@${s.name}`);
      expect(c.parts).toBeGreaterThan(1);
      const ms = await manifests(client, sc.bucket, PREFIX, c.dataset);
      expect(ms.map((m) => m.backupId)).toEqual([c.backupId]);
      expect(ms[0].dataset).toBe(c.dataset.slice(sc.pool.pool.length + 1));
      expect(await audit({ client, bucket: sc.bucket, prefix: PREFIX, fs: c.dataset, runDir: join(base, "run", c.dataset) })).toEqual(cleanAudit);
    }
    // Nothing of the excluded children in the bucket.
    for (const ex of ["alice/cache", "scratch"]) {
      expect(await listKeys(client, sc.bucket, `${PREFIX}data/${child(ex)}/`)).toEqual([]);
      expect(await listKeys(client, sc.bucket, `${PREFIX}manifests/${child(ex)}/`)).toEqual([]);
    }
    // Events name the child they are about: child, start … part, child-done; the done event has the summary.
    const starts = r.events.filter((e) => e.event === "start").map((e) => e.dataset);
    expect(starts).toEqual([child(""), child("alice"), child("alice/docs"), child("bob x")]);
    expect(r.events.filter((e) => e.event === "child-done").map((e) => [e.child, e.status, e.dataset])).toEqual(r.result.children.map((c: any) => [c.child, "ok", c.dataset]));
    expect(r.events.at(-1).dataset).toBe(sc.fs);
    const tree = YAML.parse(await getText(client, sc.bucket, `${PREFIX}manifests/${sc.fs}/tree.yaml`));
    expect(tree.children.map((c: any) => c.name)).toEqual(["", "alice", "alice/docs", "bob x"]);
    // send_properties: zfs send -p, recorded in each manifest.
    expect((await manifests(client, sc.bucket, PREFIX, child("alice")))[0].send.flags).toContain("-p");
    // One metrics series per child, labelled with the child's dataset.
    const prom = readFileSync(join(sc.work, "zrb.prom"), "utf8");
    for (const rel of ["", "alice", "alice/docs", "bob x"])
      expect(prom).toContain(`zrb_backup_last_exit_code{task="home",pool="${sc.pool.pool}",dataset="${child(rel).slice(sc.pool.pool.length + 1)}",level="0"} 0`);
    expect(prom).not.toContain("scratch");
  }, 300_000);

  test("a child added between runs gets its level 0 (and says so); the others go on incrementally", async () => {
    await run(["zfs", "create", child("carol")]);
    await writeRandomFile(join(await mountpointOf(child("carol")), "c.bin"), 200_000, 40);
    await writeRandomFile(join(await mountpointOf(child("alice")), "d", "new.bin"), 50_000, 41);
    const s = await snapshot(1);
    await remember(s.name, ["", "alice", "alice/docs", "bob x", "carol"]);
    // A child created after `zrb snapshot` has no snapshot of the run: skipped, not failed (exit 0).
    await run(["zfs", "create", child("dave")]);
    const before = (await manifests(client, sc.bucket, PREFIX, child("alice")))[0].backupId;
    const r = await zrbJson(["backup", "--level", "1"]);
    const byChild = Object.fromEntries(r.result.children.map((c: any) => [c.child, c]));
    expect(Object.keys(byChild)).toEqual(["", "alice", "alice/docs", "bob x", "carol", "dave"]);
    expect(byChild.dave).toMatchObject({ status: "skipped", exitCode: 0, message: `no snapshot @${s.name} (created after zrb snapshot ran?); the next run backs it up` });
    expect(await listKeys(client, sc.bucket, `${PREFIX}manifests/${child("dave")}/`)).toEqual([]);
    await destroyChild("dave");
    expect(byChild.carol.level).toBe(0);
    expect(byChild.carol.note).toContain("new since the last run, no backup yet: level 0 instead of level 1");
    expect(r.stderr).toContain(`${child("carol")}: new since the last run`);
    expect(byChild.alice.level).toBe(1);
    expect(byChild.alice.parentBackupId).toBe(before);
    expect(r.events.find((e) => e.event === "child" && e.child === "carol").note).toContain("level 0 instead of level 1");
  }, 300_000);

  test("a child destroyed is reported once and its backups kept; a name zrb cannot use is refused, the others go on", async () => {
    await destroyChild("bob x");
    await run(["zfs", "create", child("x.yaml")]);
    // zrb check sees it first: exit 3, naming the child and why.
    await expectZrbFail(["check", "--config", cfg], sc.env, 3, `task home: child ${child("x.yaml")} cannot be backed up`, "ends in .yaml or .age");
    const s = await snapshot(1);
    await remember(s.name, ["", "alice", "alice/docs", "carol"]);
    const r = await zrbJson(["backup", "--level", "1"], true);
    expect(r.code).toBe(3); // the worst child's: the refused name (config)
    expect(r.result.gone).toEqual([{ child: "bob x", reason: "destroyed", since: expect.any(String) }]);
    expect(r.stderr).toContain(`${child("bob x")} is gone from the pool: its backups are kept`);
    const refused = r.result.children.find((c: any) => c.child === "x.yaml");
    expect(refused).toMatchObject({ status: "failed", exitCode: 3 });
    expect(refused.message).toContain("ends in .yaml or .age");
    // In tree order, the refused child among the others (it is found before they run).
    expect(r.result.children.map((c: any) => [c.child, c.status])).toEqual([["", "ok"], ["alice", "ok"], ["alice/docs", "ok"], ["carol", "ok"], ["x.yaml", "failed"]]);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("zrb: "));
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("1 of 5 children failed; x.yaml");
    // The refused child's metrics series says it failed: its exit code, a run time, and no success
    // time (it never had one), so an alert per child fires while its siblings succeed.
    const prom = parseSamples(readFileSync(join(sc.work, "zrb.prom"), "utf8"));
    const sample = (name: string, rel: string) =>
      prom.filter((x) => x.name === `zrb_backup_${name}` && x.labels.some(([k, v]) => k === "dataset" && v === child(rel).slice(sc.pool.pool.length + 1))).map((x) => x.value);
    expect(sample("last_exit_code", "x.yaml")).toEqual(["3"]);
    expect(sample("last_run_timestamp_seconds", "x.yaml").length).toBe(1);
    expect(sample("last_success_timestamp_seconds", "x.yaml")).toEqual([]);
    for (const rel of ["", "alice", "alice/docs", "carol"]) {
      expect(sample("last_exit_code", rel).every((v) => v === "0")).toBe(true);
      expect(sample("last_success_timestamp_seconds", rel).length).toBeGreaterThan(0);
    }
    expect((await manifests(client, sc.bucket, PREFIX, child("bob x"))).length).toBe(2); // kept
    // --child takes that child alone: the refused sibling is not reported (exit 0); a name that is no child is refused.
    const alone = await zrbJson(["backup", "--level", "1", "--child", "alice"]);
    expect(alone.result.children.map((c: any) => [c.child, c.status])).toEqual([["alice", "ok"]]);
    await expectZrbFail(["backup", "--config", cfg, "--task", "home", "--level", "1", "--child", "nosuch"], sc.env, 2, `--child nosuch: ${child("nosuch")} is not a child that task home backs up`);
    await destroyChild("x.yaml");
    // The next run does not report it again.
    const s2 = await snapshot(2);
    await remember(s2.name, ["", "alice", "alice/docs", "carol"]);
    const r2 = await zrbJson(["backup", "--level", "2"]);
    expect(r2.result.gone).toEqual([]);
    expect(r2.stderr).not.toContain("bob x");
    const tree = YAML.parse(await getText(client, sc.bucket, `${PREFIX}manifests/${sc.fs}/tree.yaml`));
    expect(tree.children.find((c: any) => c.name === "bob x")).toMatchObject({ reason: "destroyed" });
  }, 300_000);

  test("restore rebuilds the tree as of one run; a child not in that run is skipped with the reason; --child restores one alone", async () => {
    const target = `${sc.pool.pool}/restored`;
    const r = await zrbJson(["restore", "--target", target, "--private-key", sc.keyFile]);
    const last = runs.at(-1)!;
    expect(r.result.snapshot).toBe(last.snapshot);
    expect(r.result.children.map((c: any) => [c.child, c.status])).toEqual([
      ["", "ok"],
      ["alice", "ok"],
      ["alice/docs", "ok"],
      ["bob x", "skipped"],
      ["carol", "ok"],
    ]);
    expect(r.result.children.find((c: any) => c.child === "bob x").message).toContain("gone from the pool since");
    for (const [rel, files] of Object.entries(last.files)) expect(await filesOf(`${rel ? `${target}/${rel}` : target}@${last.snapshot}`, rel)).toEqual(files);

    // The first run, named by the task's own backup of it (each child takes its backup of that
    // run, not a backup of that id): bob x was there, carol was not yet.
    const first = runs[0]!;
    const old = `${sc.pool.pool}/restored-old`;
    const rootFirst = (await manifests(client, sc.bucket, PREFIX, sc.fs)).find((m) => m.snapshot.name === `${sc.fs}@${first.snapshot}`).backupId;
    const r2 = await zrbJson(["restore", "--target", old, "--private-key", sc.keyFile, "--backup-id", rootFirst]);
    expect(r2.result.snapshot).toBe(first.snapshot);
    expect(r2.result.children.map((c: any) => [c.child, c.status])).toEqual([
      ["", "ok"],
      ["alice", "ok"],
      ["alice/docs", "ok"],
      ["bob x", "ok"],
      ["carol", "skipped"],
    ]);
    expect(r2.result.children.find((c: any) => c.child === "carol").message).toContain("its first backup is newer");
    expect(await filesOf(`${old}/bob x@${first.snapshot}`, "bob x")).toEqual(first.files["bob x"]!);
    expect(await filesOf(`${old}@${first.snapshot}`, "")).toEqual(first.files[""]!);

    // One child alone, into a target of its own.
    const one = `${sc.pool.pool}/just-docs`;
    const r3 = await zrbJson(["restore", "--target", one, "--private-key", sc.keyFile, "--child", "alice/docs"]);
    expect(r3.result.restored).toBe(`${one}@${last.snapshot}`);
    expect(await filesOf(`${one}@${last.snapshot}`, "alice/docs")).toEqual(last.files["alice/docs"]!);
    // The property sent with -p came back with the data.
    expect((await run(["zfs", "get", "-H", "-o", "value,source", "org.zrb:owner", `${target}/alice`])).stdout.trim()).toBe("alice\treceived");
  }, 300_000);

  test("list, status, verify and cleanup go child by child; --child picks one", async () => {
    const l = await zrb(["list", "--config", cfg, "--task", "home"], { env: sc.env });
    const rows = l.stdout.split("\n").slice(2).filter(Boolean).map((r) => r.split(/\s{2,}/));
    expect(rows.map((r) => [r[0], r[1]])).toEqual([
      [".", "backed up"],
      ["alice", "backed up"],
      ["alice/docs", "backed up"],
      ["bob x", expect.stringMatching(/^gone \(destroyed\) since /)],
      ["carol", "backed up"],
    ]);
    const lj = JSON.parse((await zrb(["list", "--config", cfg, "--task", "home", "--json"], { env: sc.env })).stdout);
    expect(lj.children.find((c: any) => c.child === "carol").entries.map((e: any) => e.level)).toEqual([0, 1, 2]);
    const one = JSON.parse((await zrb(["list", "--config", cfg, "--task", "home", "--child", "alice/docs", "--json"], { env: sc.env })).stdout);
    expect(one.map((e: any) => e.level)).toEqual([0, 1, 1, 2]);

    const st = JSON.parse((await zrb(["status", "--config", cfg, "--task", "home", "--json", "--max-age", "1d"], { env: sc.env })).stdout)[0];
    expect(st.recursive).toBe(true);
    const states = Object.fromEntries(st.children.map((c: any) => [c.child, c.state]));
    expect(states).toMatchObject({ "": "backed up", alice: "backed up", "alice/cache": "excluded", scratch: "excluded", carol: "backed up" });
    expect(states["bob x"]).toMatch(/^gone/);
    expect(st.children.find((c: any) => c.child === "carol").freshness[0].stale).toBe(false);
    expect(st.children.find((c: any) => c.child === "bob x").freshness).toBeUndefined(); // gone: not judged

    const v = await zrbJson(["verify", "--private-key", sc.keyFile]);
    expect(v.result.snapshot).toBe(runs.at(-1)!.snapshot);
    expect(v.result.children.map((c: any) => [c.child, c.status])).toEqual([
      ["", "ok"],
      ["alice", "ok"],
      ["alice/docs", "ok"],
      ["bob x", "skipped"],
      ["carol", "ok"],
    ]);
    expect(v.events.filter((e) => e.event === "start").map((e) => e.dataset)).toEqual([child(""), child("alice"), child("alice/docs"), child("carol")]);
    const rot = await zrbJson(["verify", "--rotate", "30"]);
    expect(rot.result.children.map((c: any) => [c.child, c.status])).toEqual([["", "ok"], ["alice", "ok"], ["alice/docs", "ok"], ["bob x", "ok"], ["carol", "ok"]]);

    // A damaged part of one child fails that child, the others are still verified; exit 7.
    const victim = (await manifests(client, sc.bucket, PREFIX, child("alice/docs"))).at(-1).parts[0].key;
    const { PutObjectCommand } = await import("@aws-sdk/client-s3");
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: PREFIX + victim, Body: "damaged" }));
    const bad = await zrbJson(["verify"], true);
    expect(bad.code).toBe(7);
    expect(bad.result.children.map((c: any) => [c.child, c.status])).toEqual([["", "ok"], ["alice", "ok"], ["alice/docs", "failed"], ["bob x", "skipped"], ["carol", "ok"]]);
    expect(bad.stderr.split("\n").filter((x) => x.startsWith("zrb: "))[0]).toContain("verify of " + sc.fs + ": 1 of 5 children failed; alice/docs");

    // cleanup: an orphan in one child's prefix is removed, nothing else is touched.
    const orphan = `${PREFIX}data/${child("carol")}/level1/20200101T000000Z-L1-000000/part-000000.age`;
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: orphan, Body: "x" }));
    const c = await zrb(["cleanup", "--allow-unsigned", "--config", cfg, "--task", "home", "--json"], { env: sc.env });
    const cj = jsonResult(c.stdout);
    expect(cj.children.flatMap((x: any) => x.result.orphans.map((o: any) => o.key))).toEqual([orphan.slice(PREFIX.length)]);
    expect(await listKeys(client, sc.bucket, orphan)).toEqual([]);
  }, 300_000);

  test("prune keeps a gone child's backups and says how to prune them; --child prunes them", async () => {
    const bobBefore = (await manifests(client, sc.bucket, PREFIX, child("bob x"))).length;
    const r = await zrb(["prune", "--allow-unsigned", "--config", cfg, "--task", "home", "--keep-last", "1", "--json"], { env: sc.env });
    const pj = jsonResult(r.stdout);
    const bob = pj.children.find((x: any) => x.child === "bob x");
    expect(bob.status).toBe("skipped");
    expect(bob.message).toContain(`its ${bobBefore} backup(s) are kept; prune them by name: zrb prune --task home --child bob x`);
    expect((await manifests(client, sc.bucket, PREFIX, child("bob x"))).length).toBe(bobBefore);
    const alice = pj.children.find((x: any) => x.child === "alice");
    expect(alice.result.summary.deleted).toBeGreaterThan(0);
    const p2 = await zrb(["prune", "--allow-unsigned", "--config", cfg, "--task", "home", "--child", "bob x", "--keep-last", "1", "--json"], { env: sc.env });
    // By name it is pruned by the policy like any dataset: its level 1 is the newest, its level 0 that one's base.
    const named = jsonResult(p2.stdout);
    expect(named.dataset).toBe(child("bob x"));
    expect(named.local).toBeNull(); // not on the pool: its snapshots are not this run's business
    expect(named.backups.map((b: any) => [b.level, b.action, b.reasons.map((x: any) => x.rule).sort()])).toEqual([
      [0, "keep", ["ancestor", "head"]],
      [1, "keep", ["head", "last"]],
    ]);
    // The run where carol was new: carol and bob x still have its backups, the task's dataset no
    // longer (pruned). It was in the tree then, so it fails (never restored from another run), and
    // every child below it is skipped: it would have nowhere to go. Nothing is created.
    const gap = `${sc.pool.pool}/restored-gap`;
    const g = await zrbJson(["restore", "--target", gap, "--private-key", sc.keyFile, "--snapshot", runs[1]!.snapshot], true);
    expect(g.code).toBe(7);
    expect(g.result.children.map((c: any) => [c.child, c.status])).toEqual([["", "failed"], ["alice", "skipped"], ["alice/docs", "skipped"], ["bob x", "skipped"], ["carol", "skipped"]]);
    expect(g.result.children[0].message).toStartWith(`${sc.fs} has no backup of @${runs[1]!.snapshot}, although it was in the tree at that run`);
    for (const c of g.result.children.slice(1)) expect(c.message).toBe(`not restored: ${sc.fs} above it was not restored, so it has nowhere to go`);
    expect((await run(["zfs", "list", "-H", "-o", "name", "-r", sc.pool.pool])).stdout).not.toContain(gap);
  }, 300_000);

  test("kill -9 in the middle of the third child, then the next run resumes it, backs up its own snapshot on it too, and finishes the tree", async () => {
    const root = `${sc.pool.pool}/crash`;
    for (const ds of [root, `${root}/a`, `${root}/b`, `${root}/c`]) await run(["zfs", "create", ds]);
    for (const [i, rel] of ["", "a", "b", "c"].entries()) {
      const size = rel === "b" ? 6 * 1024 * 1024 : 100_000;
      await writeRandomFile(join(await mountpointOf(rel ? `${root}/${rel}` : root), "f.bin"), size, 100 + i);
    }
    const snap = (await zrb(["snapshot", "--config", cfg, "--task", "crash", "--level", "0"], { env: sc.env })).stdout.trim();
    const short = snap.slice(snap.indexOf("@") + 1);
    const filesB = own("", await hashTree(await mountpointOf(`${root}/b`)));
    const stateB = join(base, "run", root, "b", "backup_state.yaml");
    const p = await spawnZrb(["backup", "--config", cfg, "--task", "crash", "--level", "0", "--bwlimit", "1MiB/s", "--json"], sc.env);
    await waitFor("child b half uploaded", () => existsSync(stateB) && (YAML.parse(readFileSync(stateB, "utf8"))?.chunks ?? []).filter((c: any) => c?.uploaded).length >= 3);
    p.kill(9);
    await p.exited;
    const out = await new Response(p.stdout).text();
    expect(out).toContain('"child":"a","status":"ok"');
    expect(out).not.toContain('"child":"c"');
    const stored = YAML.parse(readFileSync(stateB, "utf8")).chunks.filter((c: any) => c?.uploaded).length;

    // The next run comes with a snapshot of its own, as a scheduled one does: b first finishes the
    // interrupted backup of the killed run's snapshot, then backs up the run's, like every other child.
    const snap2 = (await zrb(["snapshot", "--config", cfg, "--task", "crash", "--level", "0"], { env: sc.env })).stdout.trim();
    const short2 = snap2.slice(snap2.indexOf("@") + 1);
    const r = await zrbJson(["backup", "--level", "0"], false, "crash");
    const byChild = Object.fromEntries(r.result.children.map((c: any) => [c.child, c]));
    for (const rel of ["", "a", "b", "c"]) expect(byChild[rel]).toMatchObject({ status: "ok", skipped: false, level: 0, snapshot: `${rel ? `${root}/${rel}` : root}@${short2}` });
    expect(r.stderr).toContain(`${root}/b: finished the interrupted backup of ${root}/b@${short}; now the run's snapshot @${short2}`);
    expect((await manifests(client, sc.bucket, PREFIX, `${root}/b`)).map((m) => m.snapshot.name).sort()).toEqual([`${root}/b@${short}`, `${root}/b@${short2}`]);
    // The parts stored before the kill were not sent again.
    expect(r.events.find((e) => e.event === "start" && e.dataset === `${root}/b`).partsDone).toBeGreaterThanOrEqual(stored);
    for (const rel of ["", "a", "b", "c"]) {
      const fs = rel ? `${root}/${rel}` : root;
      expect(await audit({ client, bucket: sc.bucket, prefix: PREFIX, fs, runDir: join(base, "run", fs) })).toEqual(cleanAudit);
    }
    expect(existsSync(join(base, "run", root, "tree.lock"))).toBe(false);
    // Run again on the same snapshot: every child already has its backup of it and is skipped.
    const again = await zrbJson(["backup", "--level", "0"], false, "crash");
    for (const c of again.result.children) expect(c).toMatchObject({ status: "ok", skipped: true });
    expect(again.result.children.map((c: any) => c.child)).toEqual(["", "a", "b", "c"]);
    const target = `${sc.pool.pool}/b-back`;
    await zrbJson(["restore", "--target", target, "--private-key", sc.keyFile, "--child", "b", "--snapshot", short], false, "crash");
    expect(await filesOf(`${target}@${short}`, "")).toEqual(filesB);
  }, 300_000);

  test("a child re-created by renaming a sibling into its place (the old snapshot name, another guid) gets its level 0, and says so", async () => {
    // After the test above every child of crash has a level 0 of the same recursive snapshot (its newest backup).
    const root = `${sc.pool.pool}/crash`;
    const baseOfA = (await manifests(client, sc.bucket, PREFIX, `${root}/a`)).at(-1).snapshot;
    const snapsOfA = (await run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", `${root}/a`])).stdout.split("\n").filter(Boolean);
    for (const s of snapsOfA) await run(["zfs", "release", "zrb", s], { allowFail: true });
    for (let i = 0; i < 40 && (await run(["zfs", "destroy", "-r", `${root}/a`], { allowFail: true })).code !== 0; i++) await Bun.sleep(250);
    // zfs-fuse calls a mounted file system busy now and then: rename it unmounted.
    await run(["zfs", "unmount", `${root}/b`], { allowFail: true });
    let mv = { code: 1, stderr: "" };
    for (let i = 0; i < 40 && (mv = await run(["zfs", "rename", `${root}/b`, `${root}/a`], { allowFail: true })).code !== 0; i++) await Bun.sleep(250);
    expect(mv.stderr).toBe("");
    await run(["zfs", "mount", `${root}/a`]);
    // The base's name is on the new a (b's snapshot of the same recursive run), with b's guid.
    expect(await snapshotGuid(baseOfA.name)).not.toBe(baseOfA.guid);
    await zrb(["snapshot", "--config", cfg, "--task", "crash", "--level", "1"], { env: sc.env });
    const r = await zrbJson(["backup", "--level", "1"], false, "crash");
    const byChild = Object.fromEntries(r.result.children.map((c: any) => [c.child, c]));
    expect(byChild.a).toMatchObject({ status: "ok", level: 0, parentBackupId: null });
    expect(byChild.a.note).toBe(`its base snapshot ${baseOfA.name} is no longer on the pool (created again?): level 0 instead of level 1`);
    expect(r.stderr).toContain(`${root}/a: its base snapshot ${baseOfA.name} is no longer on the pool`);
    expect(byChild.c).toMatchObject({ status: "ok", level: 1 });
    expect(r.result.gone).toEqual([{ child: "b", reason: "destroyed", since: expect.any(String) }]);
    // The new level 0 of a restores as what is now a.
    const target = `${sc.pool.pool}/a-back`;
    const expected = own("", await hashTree(await mountpointOf(`${root}/a`)));
    await zrbJson(["restore", "--target", target, "--private-key", sc.keyFile, "--child", "a"], false, "crash");
    expect(await filesOf(`${target}@${byChild.a.snapshot.split("@")[1]}`, "")).toEqual(expected);
  }, 300_000);

  test("a tree rooted at a pool: a stale catalog clone in it is no child; a child whose backup of the run is gone fails alone, its sibling of a longer name is restored; a child excluded later is reported as excluded", async () => {
    const p = await makePool({ sizeMiB: 64 });
    try {
      const ds = (rel: string) => (rel ? `${p.pool}/${rel}` : p.pool);
      for (const rel of ["kid", "kid/sub", "kid2"]) await run(["zfs", "create", ds(rel)]);
      for (const [i, rel] of ["", "kid", "kid/sub", "kid2"].entries()) await writeRandomFile(join(await mountpointOf(ds(rel)), "f.bin"), 20_000, 300 + i);
      await run(["zfs", "snapshot", `${ds("kid")}@old`]);
      // What a backup killed while it listed kid's files leaves: a clone at the pool's top, marked as kid's.
      const clone = cloneName(ds("kid"));
      await run(["zfs", "clone", "-o", `zrb:catalog-clone=${ds("kid")}`, "-o", `mountpoint=${join(sc.work, "stale")}`, `${ds("kid")}@old`, clone]);
      const doc = YAML.parse(readFileSync(cfg, "utf8"));
      doc.tasks = [{ name: "whole", pool: p.pool, dataset: "", enabled: true, recursive: true }];
      const cfgWhole = join(sc.work, "whole.yaml");
      writeFileSync(cfgWhole, YAML.stringify(doc));
      const whole = async (args: string[], allowFail = false) => {
        const r = await zrb([...args, "--config", cfgWhole, "--task", "whole", "--json"], { env: sc.env, allowFail });
        return { code: r.code, result: jsonResult(r.stdout) };
      };
      const snaps: string[] = [];
      for (const level of [0, 1]) {
        const sn = await zrb(["snapshot", "--config", cfgWhole, "--task", "whole", "--level", String(level)], { env: sc.env });
        snaps.push(sn.stdout.trim().split("@")[1]!);
        const b = await whole(["backup", "--level", String(level)]);
        expect(b.result.children.map((c: any) => [c.child, c.status])).toEqual([["", "ok"], ["kid", "ok"], ["kid/sub", "ok"], ["kid2", "ok"]]);
      }
      expect(await listKeys(client, sc.bucket, `${PREFIX}manifests/${clone}/`)).toEqual([]);
      // kid's backup of the second run is gone (pruned by hand): kid fails, kid/sub below it is
      // skipped, and kid2 — its name begins with kid's, but it is no child of kid — is restored.
      const { DeleteObjectCommand } = await import("@aws-sdk/client-s3");
      const last = (await manifests(client, sc.bucket, PREFIX, ds("kid"))).find((m) => m.level === 1);
      await client.send(new DeleteObjectCommand({ Bucket: sc.bucket, Key: `${PREFIX}manifests/${ds("kid")}/${last.backupId}.manifest.yaml` }));
      const back = `${p.pool}/back`;
      const r = await whole(["restore", "--target", back, "--private-key", sc.keyFile], true);
      expect(r.code).toBe(7);
      expect(r.result.children.map((c: any) => [c.child, c.status])).toEqual([["", "ok"], ["kid", "failed"], ["kid/sub", "skipped"], ["kid2", "ok"]]);
      expect(r.result.children[2].message).toBe(`not restored: ${ds("kid")} above it was not restored, so it has nowhere to go`);
      const names = (await run(["zfs", "list", "-H", "-o", "name", "-r", back])).stdout.split("\n").filter(Boolean);
      expect(names).toEqual([back, `${back}/kid2`]);
      // kid2 excluded now (and the restored copy): reported once as excluded, not as destroyed.
      doc.tasks[0].exclude = ["kid2", "back"];
      writeFileSync(cfgWhole, YAML.stringify(doc));
      await zrb(["snapshot", "--config", cfgWhole, "--task", "whole", "--level", "1"], { env: sc.env });
      const b3 = await whole(["backup", "--level", "1"]);
      expect(b3.result.gone).toEqual([{ child: "kid2", reason: "excluded", since: expect.any(String) }]);
      // Still on the pool, with backups: prune leaves it alone as excluded, not as gone from the pool.
      const pr = await whole(["prune", "--allow-unsigned", "--dry-run", "--keep-last", "1"]);
      expect(pr.result.children.find((c: any) => c.child === "kid2")).toMatchObject({ status: "skipped", message: expect.stringMatching(/^excluded: its snapshots and backups are left alone/) });
      // Given a task of its own, kid2 is that task's to prune: --child kid2 of the tree is refused.
      doc.tasks.push({ name: "kid2", pool: p.pool, dataset: "kid2", enabled: true });
      writeFileSync(cfgWhole, YAML.stringify(doc));
      const other = await zrb(["prune", "--config", cfgWhole, "--task", "whole", "--child", "kid2", "--allow-unsigned", "--keep-last", "1"], { env: sc.env, allowFail: true });
      expect(other.code).toBe(2);
      expect(other.stderr).toContain(`--child kid2: ${ds("kid2")} is backed up by task kid2 of ${cfgWhole}, whose retention decides for it; run zrb prune --task kid2`);
      // The first run, after kid's backup of it is gone too: kid was not restored (skipped: its
      // first backup now is newer than that run), so kid/sub below it, which has its backup of
      // that run, is skipped as well — it would have nowhere to go — and nothing fails.
      const first = (await manifests(client, sc.bucket, PREFIX, ds("kid"))).find((m) => m.level === 0);
      await client.send(new DeleteObjectCommand({ Bucket: sc.bucket, Key: `${PREFIX}manifests/${ds("kid")}/${first.backupId}.manifest.yaml` }));
      const back0 = `${p.pool}/back0`;
      const r0 = await whole(["restore", "--target", back0, "--private-key", sc.keyFile, "--snapshot", snaps[0]!], true);
      expect(r0.result.children.map((c: any) => [c.child, c.status])).toEqual([["", "ok"], ["kid", "skipped"], ["kid/sub", "skipped"], ["kid2", "ok"]]);
      expect(r0.result.children[1].message).toContain("its first backup is newer");
      expect(r0.result.children[2].message).toBe(`not restored: ${ds("kid")} above it was not restored, so it has nowhere to go`);
      expect(r0.code).toBe(0);
      expect((await run(["zfs", "list", "-H", "-o", "name", "-r", back0])).stdout.split("\n").filter(Boolean)).toEqual([back0, `${back0}/kid2`]);
    } finally {
      await p.destroy();
    }
  }, 120_000);
});
