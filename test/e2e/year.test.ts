/**
 * A simulated year of a NAS living with zrb (zfs-fuse, radosgw behind the fault proxy, the
 * compiled binary, ZRB_NOW per invocation): every day at 02:00 some files change and a backup
 * runs (level 0 on the 1st of the month, level 1 on Mondays, level 2 on the other days), at 05:00
 * `zrb prune` by the task's retention, at 06:00 `zrb verify --rotate`. On the way: kill -9 and
 * SIGTERM mid-backup, a day of random S3 faults, kill -9 of prune between a manifest and its
 * parts, kill -9 of verify, a prune whose deletes all fail past the retry budget.
 *
 * At the end, judged independently of zrb's own code: the bucket holds exactly the backups the
 * policy implies (an oracle of restic's rules, the heads and their chains), every one of them
 * restores byte-identical with its guid, every other backup is gone without an orphan object,
 * the pool keeps exactly the snapshots retention.local implies, and every stored part was read
 * by a verify run at least once per rotation period (from the proxy's log of GETs).
 *
 * CI runs ZRB_YEAR_DAYS (default 45) days; scripts/year.sh runs all 365. It prints
 * "year: N days, K kept points, all restored, 0 orphans, B bytes stored".
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { S3Client } from "@aws-sdk/client-s3";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { audit, cleanAudit, listKeys, manifests } from "../helpers/audit.ts";
import { forward, prng, slowDown, type FaultProxy, type LoggedRequest } from "../helpers/faultproxy.ts";
import { History, type Recorded } from "../helpers/history.ts";
import { run, s3Client, waitFor } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { sigtermGracefully, jsonResult } from "../helpers/zrb.ts";

const DAYS = Number(process.env.ZRB_YEAR_DAYS || 45);
/** verify --rotate DAYS */
const ROTATE = 14;
const POLICY = { keep_daily: 4, keep_weekly: 2, keep_monthly: 2 };
const LOCAL = { keep_daily: 3 };
const START = Date.UTC(2027, 0, 1); // a Friday
const DAY = 86_400_000;

let sc: Scene;
let client: S3Client;
let proxy: FaultProxy;
let h: History;

beforeAll(async () => {
  sc = await scene({ name: "year", poolMiB: 256, dataset: "unused", proxy: true });
  client = await s3Client(sc.s3);
  proxy = sc.proxy!;
  h = await History.create({
    pool: sc.pool.pool,
    name: "nas",
    bucket: sc.bucket,
    s3: sc.s3,
    endpoint: proxy.endpoint,
    prefix: "year/",
    work: sc.work,
    recipient: sc.recipient,
    keyFile: sc.keyFile,
    env: sc.env,
    maxAttempts: 8,
    retention: { ...POLICY, local: LOCAL },
  });
}, 300_000);
afterAll(() => sc?.close(), 300_000);

const iso = (t: number) => new Date(t).toISOString().replace(".000Z", "Z");
const isData = (r: { path: string }) => r.path.includes(`/year/data/`);
/** The part key (relative to the prefix) a request addresses. */
const partOf = (r: LoggedRequest) => decodeURIComponent(r.path.split("?")[0]!.slice(`/${sc.bucket}/year/`.length));

type Event = "kill-backup" | "s3-faults" | "kill-prune" | "kill-verify" | "deletes-fail" | "sigterm-backup";
/** What happens on which day (of every 60). */
const EVENTS: Record<number, Event> = { 4: "kill-backup", 9: "s3-faults", 12: "kill-prune", 17: "kill-verify", 23: "deletes-fail", 30: "sigterm-backup" };

/** Day index → when each part was read by a verify run. */
const verifyReads = new Map<string, number[]>();
const partBorn = new Map<string, number>();
const done = { killedBackups: 0, killedPrunes: 0, killedVerifies: 0, faultsHit: 0, failedPrunes: 0 };

async function backupDay(day: number, level: number, ev: Event | undefined): Promise<Recorded> {
  const at = iso(START + day * DAY + 2 * 3_600_000);
  await h.snapshotOnly(level, at, 100_000 + day);
  const args = ["backup", "--level", String(level), "--json"];
  if (ev === "kill-backup" || ev === "sigterm-backup") {
    const mark = proxy.log.length;
    proxy.setDecide((r) => (r.method === "PUT" && isData(r) ? { kind: "stall" } : forward));
    const p = await h.spawn(args, at);
    await waitFor("a part upload in flight", () => proxy.log.slice(mark).some((r) => r.method === "PUT" && isData(r)));
    if (ev === "kill-backup") {
      p.kill("SIGKILL");
      await p.exited;
    } else await sigtermGracefully(p);
    proxy.setDecide(() => forward);
    const state = YAML.parse(readFileSync(join(h.runDir, "backup_state.yaml"), "utf8"));
    const out = jsonResult((await h.run(args, at)).stdout);
    expect({ id: out.backupId, resumed: out.resumed }).toEqual({ id: state.backupId, resumed: true });
    done.killedBackups++;
    return h.record(out, at);
  }
  return h.record(jsonResult((await h.run(args, at)).stdout), at);
}

async function pruneDay(day: number, ev: Event | undefined): Promise<Event | undefined> {
  const at = iso(START + day * DAY + 5 * 3_600_000);
  if (ev === "kill-prune") {
    const dry = jsonResult((await h.run(["prune", "--allow-unsigned", "--dry-run", "--json"], at)).stdout);
    if (!dry.backups.some((b: any) => b.action === "delete" && b.parts > 0)) {
      await h.run(["prune", "--allow-unsigned"], at);
      return ev; // nothing to interrupt today: try tomorrow
    }
    const mark = proxy.log.length;
    const isPartDelete = (r: { method: string; path: string }) => r.method === "DELETE" && isData(r);
    proxy.setDecide((r) => (isPartDelete(r) ? { kind: "stall" } : forward));
    const p = await h.spawn(["prune", "--allow-unsigned"], at);
    await waitFor("a part delete after its manifest's", () => proxy.log.slice(mark).some(isPartDelete));
    p.kill("SIGKILL");
    await p.exited;
    proxy.setDecide(() => forward);
    // Only orphan parts are left, and every remaining backup is restorable.
    expect((await auditOf()).orphans.length).toBeGreaterThan(0);
    const list = JSON.parse((await h.run(["list", "--json"], at)).stdout);
    expect(list.filter((e: any) => !e.restorable)).toEqual([]);
    await h.run(["prune", "--allow-unsigned"], at);
    expect((await auditOf()).orphans).toEqual([]);
    done.killedPrunes++;
    return undefined;
  }
  if (ev === "deletes-fail") {
    proxy.setDecide((r) => (r.method === "DELETE" ? { kind: "reply", response: slowDown() } : forward));
    const r = await h.run(["prune", "--allow-unsigned"], at, { allowFail: true });
    proxy.setDecide(() => forward);
    if (r.code === 0) return ev; // nothing was to be deleted: try tomorrow
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("failed after 8 attempts");
    done.failedPrunes++; // the next day's prune does both days' work
    return undefined;
  }
  await h.run(["prune", "--allow-unsigned"], at);
  return undefined;
}

async function verifyDay(day: number, ev: Event | undefined): Promise<void> {
  const at = iso(START + day * DAY + 6 * 3_600_000);
  const args = ["verify", "--rotate", String(ROTATE), "--json"];
  const mark = proxy.log.length;
  if (ev === "kill-verify") {
    let stalled = false;
    proxy.setDecide((r) => (r.method === "GET" && isData(r) && !stalled ? ((stalled = true), { kind: "stall" }) : forward));
    const p = await h.spawn(args, at);
    await waitFor("a part download in flight", () => stalled);
    p.kill("SIGKILL");
    await p.exited;
    proxy.setDecide(() => forward);
    done.killedVerifies++;
  }
  const out = jsonResult((await h.run(args, at)).stdout);
  expect(out.ok).toBe(true);
  for (const r of proxy.log.slice(mark)) {
    if (r.method !== "GET" || !isData(r) || r.action !== "forward") continue;
    const k = partOf(r);
    verifyReads.set(k, [...(verifyReads.get(k) ?? []), day]);
  }
}

const auditOf = () => audit({ client, bucket: sc.bucket, prefix: h.o.prefix, fs: h.fs, runDir: h.runDir });

// ---- The oracle: what the policy implies, written without zrb's code ----

const ymd = (t: number) => new Date(t).toISOString().slice(0, 10);
/** ISO 8601 week: the week of the Thursday of t's week; number from that year's first Thursday. */
function week(t: number): string {
  const d = new Date(t);
  const thursday = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) + (3 - ((d.getUTCDay() + 6) % 7)) * DAY;
  const y = new Date(thursday).getUTCFullYear();
  let first = Date.UTC(y, 0, 1);
  while (new Date(first).getUTCDay() !== 4) first += DAY;
  return `${y}-${Math.round((thursday - first) / DAY / 7) + 1}`;
}
const snapTime = (b: Recorded) => {
  const m = /_(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(b.snap)!;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
};

/** The newest of each of the last n periods that have one. */
function newestPerPeriod<T>(items: T[], time: (x: T) => number, period: (t: number) => string, n: number): T[] {
  const out: T[] = [];
  const seen = new Set<string>();
  for (const x of [...items].sort((a, b) => time(b) - time(a))) {
    const p = period(time(x));
    if (seen.has(p)) continue;
    seen.add(p);
    if (seen.size > n) break;
    out.push(x);
  }
  return out;
}

function expectedBackups(all: Recorded[]): Set<string> {
  const keep = new Set<string>();
  for (const b of newestPerPeriod(all, snapTime, ymd, POLICY.keep_daily)) keep.add(b.id);
  for (const b of newestPerPeriod(all, snapTime, week, POLICY.keep_weekly)) keep.add(b.id);
  for (const b of newestPerPeriod(all, snapTime, (t) => ymd(t).slice(0, 7), POLICY.keep_monthly)) keep.add(b.id);
  for (const b of Object.values(heads(all))) keep.add(b.id);
  for (const id of [...keep]) for (const a of h.chainOf(id)) keep.add(a);
  return keep;
}

/** dump(8): a level-N backup clears the heads above N. */
function heads(all: Recorded[]): Record<number, Recorded> {
  const out: Record<number, Recorded> = {};
  for (const b of all) {
    for (const l of Object.keys(out).map(Number)) if (l > b.level) delete out[l];
    out[b.level] = b;
  }
  return out;
}

function expectedSnapshots(all: Recorded[]): Set<string> {
  const keep = new Set(newestPerPeriod(all, snapTime, ymd, LOCAL.keep_daily).map((b) => b.snap));
  for (const b of Object.values(heads(all))) keep.add(b.snap);
  for (const level of new Set(all.map((b) => b.level))) keep.add(all.filter((b) => b.level === level).at(-1)!.snap);
  return keep;
}

test(`a simulated year: ${DAYS} days of daily L2, weekly L1, monthly L0 with prune and verify --rotate ${ROTATE} after each day, kills and S3 faults on the way`, async () => {
  const t0 = performance.now();
  const pending = new Set<Event>();
  for (let day = 0; day < DAYS; day++) {
    const date = new Date(START + day * DAY);
    const level = date.getUTCDate() === 1 ? 0 : date.getUTCDay() === 1 ? 1 : 2;
    const ev = EVENTS[day % 60];
    if (ev) pending.add(ev);
    const today = (e: Event) => (pending.delete(e) ? e : undefined);
    if (pending.has("s3-faults")) {
      pending.delete("s3-faults");
      const rnd = prng(day);
      proxy.setDecide(() => (rnd() < 0.12 ? (rnd() < 0.5 ? { kind: "reply", response: slowDown() } : { kind: "reset" }) : forward));
    }
    const mark = proxy.log.length;
    const b = await backupDay(day, level, today("kill-backup") ?? today("sigterm-backup"));
    for (const p of (await manifests(client, sc.bucket, h.o.prefix, h.fs)).find((m) => m.backupId === b.id)!.parts) partBorn.set(p.key, day);
    const again = await pruneDay(day, today("kill-prune") ?? today("deletes-fail"));
    if (again) pending.add(again);
    await verifyDay(day, today("kill-verify"));
    done.faultsHit += proxy.log.slice(mark).filter((r) => r.fault).length;
    proxy.setDecide(() => forward);
  }
  const simulated = performance.now() - t0;
  // The last day's prune may have been one that failed on purpose: a final one settles it.
  await h.run(["prune", "--allow-unsigned"], iso(START + DAYS * DAY));

  // 1. Exactly what the policy implies, and nothing else: no orphan, no upload, no hold, no state.
  const all = h.backups;
  const want = expectedBackups(all);
  const ms = await manifests(client, sc.bucket, h.o.prefix, h.fs);
  expect(ms.map((m) => m.backupId).sort()).toEqual([...want].sort());
  expect(await auditOf()).toEqual(cleanAudit);
  const objects = await listKeys(client, sc.bucket, h.o.prefix);
  const allowed = new Set([
    ...ms.flatMap((m) => [`${h.o.prefix}manifests/${h.fs}/${m.backupId}.manifest.yaml`, ...m.parts.map((p: any) => h.o.prefix + p.key), ...(m.catalog ? [h.o.prefix + m.catalog.key] : [])]),
    `${h.o.prefix}manifests/${h.fs}/heads.yaml`,
    `${h.o.prefix}manifests/${h.fs}/verify-rotation.yaml`,
  ]);
  expect(objects.map((o) => o.key).filter((k) => !allowed.has(k))).toEqual([]);
  // 2. Every deleted backup is gone, manifest, parts and file catalog.
  for (const b of all.filter((x) => !want.has(x.id))) expect(objects.filter((o) => o.key.includes(b.id))).toEqual([]);
  // 3. The pool keeps exactly what retention.local implies (and nothing zrb did not name was touched).
  const snaps = (await run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", h.fs])).stdout.split("\n").filter((l) => l.startsWith(`${h.fs}@`));
  expect(snaps.sort()).toEqual([...expectedSnapshots(all)].sort());
  // 4. Every stored part was read by a verify run at least once per ROTATE days of its life.
  for (const m of ms)
    for (const p of m.parts) {
      const born = partBorn.get(p.key)!;
      const reads = verifyReads.get(p.key) ?? [];
      const life = [born, ...reads, DAYS - 1];
      const longest = Math.max(...life.slice(1).map((d, i) => d - life[i]!));
      expect({ part: p.key, born, reads, longest: longest <= ROTATE ? "ok" : longest }).toEqual({ part: p.key, born, reads, longest: "ok" });
    }
  // 5. The events happened.
  if (DAYS > 31) {
    expect(done.killedBackups).toBeGreaterThanOrEqual(2);
    expect(done.killedPrunes).toBeGreaterThanOrEqual(1);
    expect(done.killedVerifies).toBeGreaterThanOrEqual(1);
    expect(done.failedPrunes).toBeGreaterThanOrEqual(1);
    expect(done.faultsHit).toBeGreaterThan(3);
  }
  // 6. Every kept point restores byte-identical, with its guid.
  for (const id of [...want].sort()) await h.restoreAndCompare(id, iso(START + (DAYS + 1) * DAY));
  const bytes = objects.reduce((a, o) => a + o.size, 0);
  console.log(`year: ${DAYS} days, ${want.size} kept points, all restored, 0 orphans, ${bytes} bytes stored`);
  console.log(
    `(the year in detail: ${all.length} backups made; simulation ${Math.round(simulated / 1000)} s, with the checks and restores ${Math.round((performance.now() - t0) / 1000)} s; events ${JSON.stringify(done)})`,
  );
  expect(existsSync(join(h.runDir, "backup_state.yaml"))).toBe(false);
}, 36_000_000);
