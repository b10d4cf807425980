/**
 * `zrb prune` on real parts (zfs-fuse, radosgw, the compiled binary, ZRB_NOW for the days): the
 * policy over restore points with chain safety, the explanation of the dry run, the local
 * snapshots, and the runs that must fail or skip on purpose — kill -9 between a manifest and its
 * parts, a lock held by a running backup, a delete the store refuses (a bucket policy), an
 * unreadable manifest, parts younger than their storage class's minimum duration.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { DeleteBucketPolicyCommand, DeleteObjectCommand, PutBucketPolicyCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import YAML from "yaml";
import { audit, cleanAudit, getText, listKeys, manifests } from "../helpers/audit.ts";
import { forward, type FaultProxy } from "../helpers/faultproxy.ts";
import { History } from "../helpers/history.ts";
import { run, s3Client, waitFor } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { expectZrbFail, jsonResult } from "../helpers/zrb.ts";

let sc: Scene;
let client: S3Client;
let proxy: FaultProxy;
let seq = 0;

beforeAll(async () => {
  sc = await scene({ name: "prune", poolMiB: 256, dataset: "unused", proxy: true });
  client = await s3Client(sc.s3);
  proxy = sc.proxy!;
}, 300_000);

afterEach(() => proxy.check());
afterAll(() => sc?.close(), 120_000);

/** 2027-03-01 is a Monday; day d at 02:00 UTC. */
const at = (d: number, hh = "02") => new Date(Date.UTC(2027, 2, d, Number(hh))).toISOString().replace(".000Z", "Z");

async function history(o: { retention?: Record<string, unknown>; viaProxy?: boolean; backupData?: string[] } = {}): Promise<History> {
  const n = ++seq;
  return History.create({
    pool: sc.pool.pool,
    name: `p${n}`,
    bucket: sc.bucket,
    s3: sc.s3,
    endpoint: o.viaProxy ? proxy.endpoint : undefined,
    prefix: `t${n}/`,
    work: sc.work,
    recipient: sc.recipient,
    keyFile: sc.keyFile,
    env: sc.env,
    retention: o.retention,
    backupData: o.backupData,
  });
}

/** L0 on day 1, L2 daily, L1 on day 8, L0 again on day 15, L2 on day 16: 16 backups. */
async function sixteenDays(h: History): Promise<string[]> {
  const ids: string[] = [];
  for (let d = 1; d <= 16; d++) {
    const level = d === 1 || d === 15 ? 0 : d === 8 ? 1 : 2;
    ids.push((await h.day(level, at(d), 1000 * seq + d)).id);
  }
  return ids;
}

const auditOf = (h: History) => audit({ client, bucket: sc.bucket, prefix: h.o.prefix, fs: h.fs, runDir: h.runDir });
const manifestIds = async (h: History) => (await manifests(client, sc.bucket, h.o.prefix, h.fs)).map((m) => m.backupId as string).sort();
const dataKeysOf = async (h: History, id: string) => (await listKeys(client, sc.bucket, `${h.o.prefix}data/${h.fs}/`)).filter((o) => o.key.includes(`/${id}/`));
const snapsOf = async (fs: string) =>
  (await run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", fs])).stdout.split("\n").filter((l) => l.startsWith(`${fs}@`));
const pruneArgs = (...more: string[]) => ["prune", "--allow-unsigned", ...more];
const fail = (h: History, args: string[], code: number, ...needles: string[]) => expectZrbFail([...args, "--config", h.cfg, "--task", "t"], { ...sc.env, ZRB_NOW: at(20) }, code, ...needles);

describe("the policy, chain safety and the explanation", () => {
  test("keep-daily 3 + keep-weekly 2 over 16 days: the dry run explains and changes nothing; prune deletes exactly the rest; every kept point restores", async () => {
    const h = await history({ retention: { keep_daily: 3, keep_weekly: 2, local: { keep_last: 2 } } });
    const ids = await sixteenDays(h);
    const d = (n: number) => ids[n - 1]!;
    // Something of the user's on the pool that prune must never touch.
    await run(["zfs", "snapshot", `${h.fs}@manual`]);
    await run(["zfs", "snapshot", `${h.fs}@zrb_level2_by-hand`]);
    const heldByUser = h.byId(d(3)).snap;
    await run(["zfs", "hold", "keepme", heldByUser]);
    const before = await listKeys(client, sc.bucket, h.o.prefix);

    const dry = jsonResult((await h.run(pruneArgs("--dry-run", "--json"), at(16, "05"))).stdout);
    expect(dry.dryRun).toBe(true);
    const by = (id: string) => dry.backups.find((b: any) => b.backupId === id);
    const kept = [d(1), d(8), d(14), d(15), d(16)];
    expect(dry.backups.filter((b: any) => b.action === "keep").map((b: any) => b.backupId).sort()).toEqual([...kept].sort());
    expect(by(d(14)).reasons).toEqual([
      { rule: "daily", period: "2027-03-14" },
      { rule: "weekly", period: "2027-W10" },
    ]);
    expect(by(d(8)).reasons).toEqual([{ rule: "ancestor", of: d(14) }]);
    expect(by(d(1)).reasons).toEqual([{ rule: "ancestor", of: d(14) }]);
    expect(by(d(15)).reasons).toEqual([{ rule: "daily", period: "2027-03-15" }, { rule: "head", level: 0 }, { rule: "ancestor", of: d(16) }]);
    expect(by(d(16)).reasons).toEqual([{ rule: "daily", period: "2027-03-16" }, { rule: "weekly", period: "2027-W11" }, { rule: "head", level: 2 }]);
    expect(by(d(2)).action).toBe("delete");
    expect(dry.summary.deleted).toBe(11);
    const goneParts = dry.backups.filter((b: any) => b.action === "delete").reduce((a: number, b: any) => a + b.parts, 0);
    expect(dry.summary.objects).toBe(goneParts + 11 * 2); // parts, and each backup's manifest and file catalog
    // Local: keep_last 2 (d16, d15), the newest of each level (d8 for L1), heads, held; never the user's.
    const destroy = dry.local.filter((s: any) => s.action === "destroy").map((s: any) => s.name);
    expect(destroy.length).toBe(12);
    expect(destroy).not.toContain(heldByUser);
    expect(dry.local.find((s: any) => s.name === heldByUser).reasons).toEqual([{ rule: "held", userrefs: 1 }]);
    expect(dry.local.find((s: any) => s.name === h.byId(d(8)).snap).reasons).toEqual([{ rule: "newest-of-level", level: 1 }]);
    expect(dry.local.some((s: any) => s.name.endsWith("@manual") || s.name.endsWith("by-hand"))).toBe(false);
    // The human form says the same, per backup, with the rule.
    const text = (await h.run(pruneArgs("--dry-run"), at(16, "05"))).stdout;
    expect(text).toContain("would delete");
    expect(text).toMatch(new RegExp(`keep\\s+${d(14)}\\s+L2\\s+\\S+\\s+keep-daily 2027-03-14; keep-weekly 2027-W10`));
    expect(text).toMatch(new RegExp(`keep\\s+${d(1)}\\s+L0\\s+\\S+\\s+ancestor of ${d(14)}`));
    expect(text).toContain("head of level 0");
    expect(await listKeys(client, sc.bucket, h.o.prefix)).toEqual(before);
    expect((await snapsOf(h.fs)).length).toBe(18);

    const r = jsonResult((await h.run(pruneArgs("--json"), at(16, "05"))).stdout);
    expect(r.dryRun).toBe(false);
    expect(await manifestIds(h)).toEqual([...kept].sort());
    for (const id of ids.filter((x) => !kept.includes(x))) expect(await dataKeysOf(h, id)).toEqual([]);
    const left = await snapsOf(h.fs);
    await run(["zfs", "release", "keepme", heldByUser]);
    expect(await auditOf(h)).toEqual(cleanAudit);
    expect(left.sort()).toEqual([h.byId(d(3)).snap, h.byId(d(8)).snap, h.byId(d(15)).snap, h.byId(d(16)).snap, `${h.fs}@manual`, `${h.fs}@zrb_level2_by-hand`].sort());
    for (const id of kept) await h.restoreAndCompare(id, at(16, "06"));

    // Prune is idempotent; the next day's backups still chain onto the kept heads.
    const again = jsonResult((await h.run(pruneArgs("--json"), at(16, "07"))).stdout);
    expect(again.summary.deleted).toBe(0);
    const next = await h.day(2, at(17), 1000 * seq + 17);
    expect(next.parent).toBe(d(15));
  }, 300_000);

  test("a backup that cannot be restored is reported and kept, never counted as a point; the policy counts the intact ones", async () => {
    const h = await history();
    const ids: string[] = [];
    for (const [d, level] of [[1, 0], [2, 1], [3, 2], [4, 0], [5, 1]] as const) ids.push((await h.day(level, at(d), 2000 + d)).id);
    // The level-1 of day 2 loses its manifest: day 3's level 2 cannot be restored.
    const lostKey = `${h.o.prefix}manifests/${h.fs}/${ids[1]}.manifest.yaml`;
    const lostManifest = await getText(client, sc.bucket, lostKey);
    await client.send(new DeleteObjectCommand({ Bucket: sc.bucket, Key: lostKey }));
    const r = jsonResult((await h.run(pruneArgs("--keep-last", "1", "--json"), at(6))).stdout);
    const by = (id: string) => r.backups.find((b: any) => b.backupId === id);
    expect(by(ids[2]!).action).toBe("keep");
    expect(by(ids[2]!).reasons[0].rule).toBe("not-restorable");
    expect(by(ids[2]!).reasons[0].problem).toContain(`parent backup ${ids[1]} (level 1) is missing`);
    // What remains of its chain stays for a repair: the lost level 1's parts, and the level 0 it was built on.
    expect(by(ids[0]!).reasons).toEqual([{ rule: "probable-ancestor", of: ids[2], lost: ids[1] }]);
    expect(by(ids[4]!).reasons.map((x: any) => x.rule)).toEqual(["last", "head"]);
    expect(by(ids[3]!).reasons).toEqual([{ rule: "head", level: 0 }, { rule: "ancestor", of: ids[4] }]);
    expect(r.orphans).toEqual([]);
    expect(await manifestIds(h)).toEqual([ids[0]!, ids[2]!, ids[3]!, ids[4]!].sort());
    expect((await dataKeysOf(h, ids[1]!)).length).toBeGreaterThan(0);
    const text = (await h.run(pruneArgs("--keep-last", "1", "--dry-run"), at(6))).stdout;
    expect(text).toContain("NOT RESTORABLE, kept for repair");
    expect(text).toContain(`probably an ancestor of ${ids[2]}`);
    // The manifest put back repairs the chain: day 3's level 2 restores.
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: lostKey, Body: lostManifest }));
    await h.restoreAndCompare(ids[2]!, at(6));
  }, 300_000);
});

describe("bad input: one line, a documented exit code, nothing deleted", () => {
  test("no policy, a policy that keeps nothing, negative or fractional counts, unknown units", async () => {
    const h = await history();
    await h.day(0, at(1), 3001);
    await fail(h, pruneArgs(), 2, "no retention policy for task t: give --keep-* flags", "zrb never prunes without one");
    await fail(h, pruneArgs("--keep-last", "0"), 2, "the --keep-* flags keep nothing", "prune never deletes every backup");
    await fail(h, pruneArgs("--keep-daily", "-1"), 2, '--keep-daily must be a whole number ≥ 0 (0 turns the rule off), got "-1"');
    await fail(h, pruneArgs("--keep-weekly", "1.5"), 2, "--keep-weekly must be a whole number ≥ 0");
    await fail(h, pruneArgs("--keep-within", "1y"), 2, '--keep-within must be a duration like 30m, 24h or 7d, got "1y"; months and years vary in length');
    await fail(h, pruneArgs("--keep-within", "3fortnights"), 2, "--keep-within must be a duration like 30m, 24h or 7d");
    await fail(h, pruneArgs("--keep-daily", "3", "--keep-daily", "4"), 2, "option --keep-daily given twice");
    h.writeConfig({ keep_daily: 0 });
    await fail(h, pruneArgs(), 3, "tasks[0].retention keeps nothing");
    h.writeConfig(undefined);
    expect((await manifestIds(h)).length).toBe(1);
  }, 120_000);

  test("a manifest that cannot be read stops prune before it deletes anything (exit 7), dry run included", async () => {
    const h = await history();
    const ids = [(await h.day(0, at(1), 3101)).id, (await h.day(1, at(2), 3102)).id, (await h.day(1, at(3), 3103)).id];
    const key = `${h.o.prefix}manifests/${h.fs}/${ids[1]}.manifest.yaml`;
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: key, Body: "format: zrb-manifest/9\n" }));
    const before = await listKeys(client, sc.bucket, h.o.prefix);
    for (const dry of [["--dry-run"], []])
      await fail(h, pruneArgs("--keep-last", "1", ...dry), 7, `prune of ${h.fs} stopped, nothing was deleted: manifest manifests/${h.fs}/${ids[1]}.manifest.yaml cannot be read`, "written by a newer zrb");
    expect(await listKeys(client, sc.bucket, h.o.prefix)).toEqual(before);
    expect((await snapsOf(h.fs)).length).toBe(3);
  }, 120_000);
});

describe("runs that must fail or skip on purpose", () => {
  test("a lock held by a running backup: exit 4, naming the holder; nothing deleted", async () => {
    const h = await history({ viaProxy: true });
    for (let d = 1; d <= 3; d++) await h.day(d === 1 ? 0 : 1, at(d), 4000 + d);
    await h.snapshotOnly(1, at(4), 4004);
    const before = await listKeys(client, sc.bucket, h.o.prefix);
    proxy.setDecide((r) => (r.method === "PUT" ? { kind: "forward", delayMs: 4000 } : forward));
    const bk = await h.spawn(["backup", "--level", "1"], at(4));
    await waitFor("the backup's lock", () => existsSync(join(h.runDir, "zrb.lock")));
    await fail(h, pruneArgs("--keep-last", "1"), 4, `dataset ${h.fs} is locked by 'zrb backup --level 1'`);
    proxy.setDecide(() => forward);
    expect(await bk.exited).toBe(0);
    expect((await listKeys(client, sc.bucket, h.o.prefix)).filter((o) => before.some((b) => b.key === o.key)).length).toBe(before.length);
  }, 120_000);

  test("kill -9 between a manifest and its parts: only orphan parts are left, every chain stays restorable, and the next prune (or cleanup) finishes the job", async () => {
    for (const finisher of ["prune", "cleanup"] as const) {
      const h = await history({ viaProxy: true, retention: { keep_last: 1 } });
      const ids: string[] = [];
      for (let d = 1; d <= 4; d++) ids.push((await h.day(d === 1 ? 0 : 1, at(d), 5000 + d + (finisher === "cleanup" ? 50 : 0))).id);
      const isPartDelete = (r: { method: string; path: string }) => r.method === "DELETE" && r.path.includes(`/data/`);
      proxy.setDecide((r) => (isPartDelete(r) ? { kind: "stall" } : forward));
      const mark = proxy.log.length;
      const p = await h.spawn(["prune", "--allow-unsigned"], at(5));
      await waitFor("a part delete after its manifest's", () => proxy.log.slice(mark).some(isPartDelete), 60_000);
      p.kill("SIGKILL");
      await p.exited;
      proxy.setDecide(() => forward);
      // The newest-first order: the first backup to go is the newest given up (day 3's level 1).
      const gone = proxy.log.slice(mark).filter((r) => r.method === "DELETE" && r.path.includes("/manifests/"));
      expect(gone.length).toBe(1);
      expect(gone[0]!.path).toContain(ids[2]!);
      const a = await auditOf(h);
      expect(a.orphans.length).toBeGreaterThan(0);
      expect(a.orphans.every((k) => k.includes(`/${ids[2]}/`) || k.endsWith(`/${ids[2]}.catalog.age`))).toBe(true); // its parts, and its file catalog
      const list = JSON.parse((await h.run(["list", "--json"], at(5))).stdout);
      expect(list.map((e: any) => e.backupId).sort()).toEqual([ids[0], ids[1], ids[3]].sort());
      expect(list.every((e: any) => e.restorable)).toBe(true);
      if (finisher === "prune") await h.run(["prune", "--allow-unsigned"], at(5, "03"));
      else await h.run(["cleanup", "--allow-unsigned"], at(5, "03"));
      expect(await auditOf(h)).toEqual(cleanAudit);
      if (finisher === "prune") expect(await manifestIds(h)).toEqual([ids[0]!, ids[3]!].sort());
      await h.restoreAndCompare(ids[3]!, at(5, "04"));
    }
  }, 300_000);

  test("a delete the store refuses (a bucket policy denying s3:DeleteObject) is a reported skip, exit 6: a refused manifest keeps its backup whole; a refused part stays an orphan until the next prune", async () => {
    const h = await history({ retention: { keep_last: 1 } });
    const ids: string[] = [];
    for (let d = 1; d <= 4; d++) ids.push((await h.day(d === 1 ? 0 : 1, at(d), 6000 + d)).id);
    const arn = (k: string) => `arn:aws:s3:::${sc.bucket}/${h.o.prefix}${k}`;
    const deny = async (resources: string[]) =>
      client.send(
        new PutBucketPolicyCommand({
          Bucket: sc.bucket,
          Policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Deny", Principal: "*", Action: "s3:DeleteObject", Resource: resources }] }),
        }),
      );
    try {
      // Day 2's manifest refuses; day 3's first part refuses.
      await deny([arn(`manifests/${h.fs}/${ids[1]}.manifest.yaml`), arn(`data/${h.fs}/level1/${ids[2]}/part-000000.age`)]);
      const r = await h.run(pruneArgs("--json"), at(5), { allowFail: true });
      expect(r.code).toBe(6);
      const lines = r.stderr.split("\n").filter((l) => l.startsWith("zrb: "));
      expect(lines.length).toBe(1);
      for (const n of [`prune of ${h.fs}: the store refused 2 delete(s)`, "everything else was done", "The next prune retries them"]) expect(lines[0]).toContain(n);
      expect(lines[0]).toContain(`${ids[2]}/part-000000.age`); // the first refused: day 3 goes first (newest first)
      const out = jsonResult(r.stdout);
      expect(out.refused.map((x: any) => x.key)).toEqual([`data/${h.fs}/level1/${ids[2]}/part-000000.age`, `manifests/${h.fs}/${ids[1]}.manifest.yaml`]);
      expect(out.summary.deleted).toBe(1); // day 3's manifest went; day 2 stayed whole
      // Freed: day 3's manifest, its file catalog and its parts but the refused one.
      expect(out.summary.objects).toBe(out.backups.find((b: any) => b.backupId === ids[2]).parts + 1);
      expect(await manifestIds(h)).toEqual([ids[0]!, ids[1]!, ids[3]!].sort());
      // The refused backup is whole and restorable; the other lost its manifest first, and only the refused part is left.
      const list = JSON.parse((await h.run(["list", "--json"], at(5))).stdout);
      expect(list.find((e: any) => e.backupId === ids[1]).restorable).toBe(true);
      expect((await dataKeysOf(h, ids[2]!)).map((o) => o.key.split("/").pop())).toEqual(["part-000000.age"]);
      await h.restoreAndCompare(ids[1]!, at(5));
    } finally {
      await client.send(new DeleteBucketPolicyCommand({ Bucket: sc.bucket }));
    }
    const r = jsonResult((await h.run(pruneArgs("--json"), at(5, "03"))).stdout);
    expect(r.refused).toEqual([]);
    expect(await manifestIds(h)).toEqual([ids[0]!, ids[3]!].sort());
    expect(await auditOf(h)).toEqual(cleanAudit);
  }, 300_000);
});

describe("what prune never deletes", () => {
  test("the interrupted backup's parts, snapshot and base survive a policy that would drop them; the backup then resumes under its id", async () => {
    const h = await history({ viaProxy: true, retention: { keep_last: 1 } });
    const ids = [(await h.day(0, at(1), 7001)).id, (await h.day(1, at(2), 7002)).id, (await h.day(1, at(3), 7003)).id];
    // A level 2 on day 3's level 1, killed with parts uploaded and recorded.
    await writeFile(join(h.mnt, "big.bin"), new Uint8Array(300_000).map((_, i) => (i * 31) % 251));
    const snap = await h.snapshotOnly(2, at(4), 7004);
    proxy.setDecide((r) => (r.method === "PUT" && r.path.includes("part-000002") ? { kind: "stall" } : forward));
    const p = await h.spawn(["backup", "--level", "2"], at(4));
    const stateFile = join(h.runDir, "backup_state.yaml");
    await waitFor("a part uploaded and recorded", () => existsSync(stateFile) && (YAML.parse(readFileSync(stateFile, "utf8"))?.chunks ?? []).some((c: any) => c?.uploaded));
    p.kill("SIGKILL");
    await p.exited;
    proxy.setDecide(() => forward);
    const state = YAML.parse(readFileSync(stateFile, "utf8"));
    const partsBefore = await dataKeysOf(h, state.backupId);
    expect(partsBefore.length).toBeGreaterThan(0);
    const r = jsonResult((await h.run(pruneArgs("--json"), at(4, "05"))).stdout);
    expect(r.backups.find((b: any) => b.backupId === ids[2]).reasons.map((x: any) => x.rule)).toEqual(["last", "head", "resumable-base"]);
    expect(r.backups.find((b: any) => b.backupId === ids[1]).action).toBe("delete");
    expect(r.orphans).toEqual([]); // the interrupted backup's parts have no manifest yet, and are not orphans
    // None of its parts went. (A PUT the kill cut short may still land meanwhile: more, never fewer.)
    const partsAfter = (await dataKeysOf(h, state.backupId)).map((o) => o.key);
    for (const o of partsBefore) expect(partsAfter).toContain(o.key);
    expect(r.local.find((s: any) => s.name === snap).reasons.map((x: any) => x.rule)).toContain("resumable");
    expect((await snapsOf(h.fs)).includes(snap)).toBe(true);
    const done = jsonResult((await h.run(["backup", "--level", "2", "--json"], at(4, "06"))).stdout);
    expect(done.backupId).toBe(state.backupId);
    expect(done.resumed).toBe(true);
    await h.record(done, at(4));
    expect(await auditOf(h)).toEqual(cleanAudit);
    await h.restoreAndCompare(done.backupId, at(4, "07"));
  }, 300_000);

  test("parts younger than their storage class's minimum duration stay, with the day they become free; --allow-early-delete deletes them and says what is billed", async () => {
    const h = await history({ backupData: ["STANDARD", "STANDARD_IA"] });
    // Dated by this machine's clock, as the parts' LastModified are: prune counts from its clock,
    // and a backup more than a day ahead of it would be left alone as "future".
    const day = (d: number) => new Date(Date.now() - (4 - d) * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
    const ids = [(await h.day(0, day(1), 8001)).id, (await h.day(1, day(2), 8002)).id, (await h.day(1, day(3), 8003)).id];
    // The parts were written now (the server's clock); prune 10 days later, then 40 days later.
    const soon = new Date(Date.now() + 10 * 86_400_000).toISOString();
    const late = new Date(Date.now() + 40 * 86_400_000).toISOString();
    const dry = jsonResult((await h.run(pruneArgs("--keep-last", "1", "--dry-run", "--json"), soon)).stdout);
    const ia = dry.backups.find((b: any) => b.backupId === ids[1]);
    expect(ia.action).toBe("keep");
    expect(ia.reasons.length).toBe(1);
    expect(ia.reasons[0]).toMatchObject({ rule: "min-storage", storageClass: "STANDARD_IA", days: 30 });
    expect(Date.parse(ia.reasons[0].freeFrom) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    expect(ia.reasons[0].gbDays).toBeGreaterThan(0);
    expect(dry.summary.keptForMinStorage).toBe(1);
    const text = await h.run(pruneArgs("--keep-last", "1", "--dry-run"), soon);
    expect(text.stdout).toContain("STANDARD_IA bills 30 days: free to delete from");
    expect(text.stderr).toContain("1 backup(s) kept until their storage class's minimum duration");
    const early = jsonResult((await h.run(pruneArgs("--keep-last", "1", "--allow-early-delete", "--dry-run", "--json"), soon)).stdout);
    expect(early.backups.find((b: any) => b.backupId === ids[1]).action).toBe("delete");
    expect(early.summary.earlyDeleteGbDays).toBeGreaterThan(0);
    const later = jsonResult((await h.run(pruneArgs("--keep-last", "1", "--dry-run", "--json"), late)).stdout);
    expect(later.backups.find((b: any) => b.backupId === ids[1]).action).toBe("delete");
    // The provider's minimum, not AWS's: the config names a provider (plan.provider, plan.prices)
    // whose STANDARD_IA bills 60 days, so 40 days on the backup is still kept.
    const original = readFileSync(h.cfg, "utf8");
    const prices = join(sc.work, `prices-${seq}.yaml`);
    writeFileSync(prices, YAML.stringify({ date: "2026-12-01", currency: "EUR", providers: { lab: { title: "Lab", egress_per_gb: 0, classes: { STANDARD: { per_gb_month: 1 }, STANDARD_IA: { per_gb_month: 1, min_days: 60 } } } } }));
    writeFileSync(h.cfg, YAML.stringify({ ...YAML.parse(original), plan: { provider: "lab", prices } }));
    const labRun = await h.run(pruneArgs("--keep-last", "1", "--dry-run", "--json"), late);
    expect(labRun.stderr).not.toContain("AWS's minimum storage durations");
    const lab = jsonResult(labRun.stdout);
    writeFileSync(h.cfg, original);
    const kept = lab.backups.find((b: any) => b.backupId === ids[1]);
    expect(kept.action).toBe("keep");
    expect(kept.reasons).toEqual([expect.objectContaining({ rule: "min-storage", storageClass: "STANDARD_IA", days: 60 })]);
    expect(Date.parse(kept.reasons[0].freeFrom) - Date.now()).toBeGreaterThan(59 * 86_400_000);
    await h.run(pruneArgs("--keep-last", "1", "--allow-early-delete"), soon);
    expect(await manifestIds(h)).toEqual([ids[0]!, ids[2]!].sort());
    expect(await auditOf(h)).toEqual(cleanAudit);
  }, 300_000);
});
