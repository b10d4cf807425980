/**
 * `zrb plan`'s figures and text without zfs or S3: a bucket in a local directory whose listing
 * is given storage classes and upload times (as S3 reports them), a price file with round
 * numbers, and every expected figure worked out here by hand from those inputs — bytes ÷ rate,
 * GiB × price, GiB-days ÷ 30 — and the lines and keys docs/plan.md promises. The CLI itself
 * (header, total line, warnings, exit codes, which flag wins) runs on a local-store config.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import type { Config, Task } from "../../../src/config/config.ts";
import { estimateTask, downloadCost, taskPolicy, type TaskEstimate } from "../../../src/pipeline/estimate.ts";
import { money, resolveRate, taskLines } from "../../../src/cli/plan.ts";
import { resolvePricing } from "../../../src/report/pricing.ts";
import { BUILT_IN, parsePriceFile, type ProviderPrices } from "../../../src/report/prices.ts";
import { MANIFEST_FORMAT, type Manifest } from "../../../src/records/manifest.ts";
import { NO_TRUST } from "../../../src/records/trust.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { manifestKey, partKey } from "../../../src/store/layout.ts";
import type { ObjectInfo } from "../../../src/store/store.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import { run } from "../../helpers/rig.ts";
import { zrbCommand } from "../../helpers/zrb.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const DAY = 86_400_000;
const R = "age1s62wnrwx7zjapdan08a5x3dy78wd44lzw0ln7arneqt740qupfvs8kgvh9";
const T0 = Date.UTC(2027, 2, 1, 2);
/** a ≈ b to nine significant digits (the figures are small fractions of a currency unit). */
const near = (a: number | null | undefined, b: number) => expect(Math.abs((a ?? NaN) - b)).toBeLessThanOrEqual(Math.abs(b) * 1e-9 + 1e-15);

const PRICE_FILE = `date: 2026-11-30
currency: EUR
providers:
  lab:
    title: Lab Ceph
    egress_per_gb: 0.5
    free_egress_ratio: 0.1
    minimum_monthly: 0.000005
    classes:
      STANDARD: { per_gb_month: 2, min_days: 90 }
      DEEP_ARCHIVE:
        per_gb_month: 1
        min_days: 180
        thaw:
          Standard: { hours: 12, per_gb: 4 }
          Bulk: { hours: 48, per_gb: 1 }
`;
const LAB = parsePriceFile(PRICE_FILE, "/lab.yaml").providers.lab!;

/** A LocalStore whose listing carries a storage class and an upload time per key, as S3's does. */
class ClassedStore extends LocalStore {
  classOf = new Map<string, string>();
  uploaded = new Map<string, Date>();
  override async list(prefix: string): Promise<ObjectInfo[]> {
    return (await super.list(prefix)).map((o) => ({ ...o, storageClass: this.classOf.get(o.key) ?? "STANDARD", lastModified: this.uploaded.get(o.key) ?? o.lastModified }));
  }
}

let seq = 0;
interface Put {
  m: Manifest;
  /** Ciphertext bytes of its parts. */
  cipher: number;
  /** Size of its manifest object. */
  manifestBytes: number;
}

/** A backup of tank/<dataset> started at `t`: parts of the given ciphertext sizes (each 200 bytes over its plaintext), uploaded `lag` (or part i `lags[i]`) ms after the start. */
async function put(store: ClassedStore, o: { dataset?: string; level: number; t: number; parent?: Manifest; sizes: number[]; cls?: string; lag?: number; lags?: number[]; dropPart?: boolean }): Promise<Put> {
  const dataset = o.dataset ?? "photos";
  const id = `${new Date(o.t).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}-L${o.level}-${(++seq).toString(16).padStart(6, "0")}`;
  const cls = o.cls ?? "STANDARD";
  const parts = o.sizes.map((s, i) => ({ index: i, key: partKey("tank", dataset, o.level, id, i), plainSize: s - 200, cipherSize: s, sha256: "a".repeat(64), blake3: "c".repeat(64) }));
  const m: Manifest = {
    format: MANIFEST_FORMAT,
    backupId: id,
    pool: "tank",
    dataset,
    level: o.level,
    snapshot: { name: `tank/${dataset}@zrb_level${o.level}_${seq}`, guid: String(5000 + seq) },
    parent: o.parent ? { name: o.parent.snapshot.name, guid: o.parent.snapshot.guid, backupId: o.parent.backupId, level: o.parent.level } : null,
    send: { flags: [], zfs: "test" },
    stream: { size: parts.reduce((a, p) => a + p.plainSize, 0), blake3: "b".repeat(64) },
    recipients: [R],
    storageClass: cls,
    chunkSize: 65536,
    parts,
    tool: { name: "zrb", version: "t" },
    host: "h",
    startedAt: new Date(o.t).toISOString(),
    finishedAt: new Date(o.t + 60_000).toISOString(),
  };
  for (const p of parts) {
    if (!(o.dropPart && p.index === parts.length - 1)) await store.put(p.key, new Uint8Array(p.cipherSize));
    store.classOf.set(p.key, cls);
    store.uploaded.set(p.key, new Date(o.t + (o.lags?.[p.index] ?? o.lag ?? 0)));
  }
  const mk = manifestKey("tank", dataset, id);
  await store.put(mk, YAML.stringify(m));
  return { m, cipher: o.sizes.reduce((a, b) => a + b, 0), manifestBytes: statSync(join(store.root, mk)).size };
}

function task(retention?: Task["retention"]): Task {
  return { name: "photos", description: "", pool: "tank", dataset: "photos", enabled: true, recursive: false, sendProperties: false, fileCatalog: true, fullName: "tank/photos", ...(retention ? { retention } : {}) } as Task;
}

async function withBucket<T>(fn: (store: ClassedStore, dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "zrb-plan-"));
  try {
    return await fn(new ClassedStore(join(dir, "store")), dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("the estimate of a bucket of known content", () => {
  test("bytes per class, monthly cost, what a keep-last-1 prune deletes and still costs, the newest point's download, time, egress and thaw", async () => {
    await withBucket(async (store) => {
      const now = T0 + 30 * DAY;
      // Level 0s superseded by A: one long past its 90 days; one resumed 20 days after it began,
      // its first part past them, its second 10 days short; one within them.
      const old = await put(store, { level: 0, t: now - 400 * DAY, sizes: [5000] });
      const resumed = await put(store, { level: 0, t: now - 100 * DAY, sizes: [6000, 4000], lags: [0, 20 * DAY] });
      const young = await put(store, { level: 0, t: now - 50 * DAY, sizes: [7000, 3000], lag: 2 * DAY });
      const a = await put(store, { level: 0, t: T0, sizes: [40_000, 24_000] });
      const b = await put(store, { level: 1, t: T0 + 10 * DAY, parent: a.m, sizes: [200_000], cls: "DEEP_ARCHIVE", lag: DAY });
      const c = await put(store, { level: 1, t: T0 + 20 * DAY, parent: a.m, sizes: [13_000, 2_000], cls: "DEEP_ARCHIVE" });
      // A child dataset that another task backs up lives under the same prefixes: not this task's.
      await put(store, { dataset: "photos/kids", level: 0, t: T0, sizes: [99_000] });

      const rate = { bytesPerSecond: 1500, source: "--rate" };
      const e = await estimateTask({ config: {} as Config, task: task({ keepLast: 1 }), store, trust: NO_TRUST, prices: LAB, rate, now: new Date(now) });

      const all = [old, resumed, young, a, b, c];
      const deep = b.cipher + c.cipher;
      const standard = old.cipher + resumed.cipher + young.cipher + a.cipher + all.reduce((s, x) => s + x.manifestBytes, 0);
      // Largest class first.
      expect(e.stored.map((u) => [u.storageClass, u.bytes, u.objects])).toEqual([
        ["DEEP_ARCHIVE", deep, 3],
        ["STANDARD", standard, 1 + 2 + 2 + 2 + 6],
      ]);
      expect(deep).toBeGreaterThan(standard);
      expect(e.storedBytes).toBe(standard + deep);
      near(e.monthly, (standard / GiB) * 2 + (deep / GiB) * 1);

      // keep_last 1 keeps C and its level 0 A; the other four go. GiB-days still billed: the
      // young level 0 uploaded 48 days ago (STANDARD: 90 days here) → 42; the resumed one's
      // second part → 10, its first nothing (never less than nothing); B uploaded 19 days ago
      // (DEEP_ARCHIVE: 180) → 161; the old one nothing.
      const gibDays = (young.cipher / GiB) * 42 + (4000 / GiB) * 10 + (b.cipher / GiB) * 161;
      expect(e.earlyDelete).toMatchObject({ policy: "keep-last 1", deletes: 4, bytes: old.cipher + resumed.cipher + young.cipher + b.cipher });
      near(e.earlyDelete.gibDays, Math.round(gibDays * 1e6) / 1e6);
      expect(e.earlyDelete.gibDays).toBeGreaterThan(0);
      near(e.earlyDelete.cost, (((young.cipher / GiB) * 42 + (4000 / GiB) * 10) * 2 + (b.cipher / GiB) * 161 * 1) / 30);

      // The newest point: C on A.
      const r = e.restore;
      expect(r.points).toEqual([{ dataset: "tank/photos", backupId: c.m.backupId, level: 1, snapshot: c.m.snapshot.name, finishedAt: c.m.finishedAt, chain: 2 }].map((p) => expect.objectContaining(p)));
      expect(r.downloadBytes).toBe(a.cipher + c.cipher);
      // The send streams: each part's plaintext, 200 bytes under its ciphertext.
      expect(r.streamBytes).toBe(a.cipher - 2 * 200 + c.cipher - 2 * 200);
      near(r.seconds, (a.cipher + c.cipher) / 1500);
      // Egress beyond a tenth of what is stored, at 0.5 a GB; no retrieval fee.
      near(r.downloadCost, (Math.max(0, a.cipher + c.cipher - 0.1 * (standard + deep)) / GiB) * 0.5);
      expect(r.downloadCost).toBeGreaterThan(0);
      expect(r.archived).toEqual([{ storageClass: "DEEP_ARCHIVE", bytes: c.cipher }]);
      expect(r.thaw.map((t) => [t.tier, t.hours])).toEqual([["Standard", 12], ["Bulk", 48]]);
      near(r.thaw[0]!.cost, (c.cipher / GiB) * 4);
      near(r.thaw[1]!.cost, (c.cipher / GiB) * 1);
    });
  });

  test("a newer backup that cannot be restored is not the point; no rate: no time; no retention: nothing deleted", async () => {
    await withBucket(async (store) => {
      const a = await put(store, { level: 0, t: T0, sizes: [1000] });
      await put(store, { level: 1, t: T0 + DAY, parent: a.m, sizes: [300, 300], dropPart: true });
      const e = await estimateTask({ config: {} as Config, task: task(), store, trust: NO_TRUST, now: new Date(T0 + 2 * DAY) });
      expect(e.restore.points.map((p) => [p.backupId, p.chain])).toEqual([[a.m.backupId, 1]]);
      expect(e.restore.downloadBytes).toBe(1000);
      expect(e.restore.seconds).toBeNull();
      expect(e.earlyDelete).toMatchObject({ policy: null, deletes: 0 });
    });
  });

  test("the task's retention as prune reads it: any one key is a policy, counts as written", () => {
    expect(taskPolicy(task())).toBeNull();
    expect(taskPolicy(task({ keepLast: 3 }))).toMatchObject({ last: 3 });
    expect(taskPolicy(task({ keepDaily: 7, keepWeekly: 4 }))).toMatchObject({ daily: 7, weekly: 4 });
  });

  test("downloads within the free allowance cost nothing, never less", () => {
    expect(downloadCost(new Map([["STANDARD", 2 * GiB]]), 10 * GiB, BUILT_IN.providers.b2!)).toBe(0);
  });
});

describe("the price file and the built-in table as docs/plan.md states them", () => {
  test("a price file's optional keys are kept", () => {
    expect(LAB).toMatchObject({ title: "Lab Ceph", egressPerGb: 0.5, freeEgressRatio: 0.1, minimumMonthly: 0.000005 });
    expect(LAB.classes.STANDARD).toEqual({ perGbMonth: 2, minDays: 90 });
    expect(LAB.classes.DEEP_ARCHIVE!.minDays).toBe(180);
  });

  test("minimum days: AWS 30 for the IA classes, 90 for GLACIER_IR/GLACIER, 180 for DEEP_ARCHIVE; Wasabi 90; thaw hours", () => {
    const days = (p: string) => Object.fromEntries(Object.entries(BUILT_IN.providers[p]!.classes).filter(([, c]) => c.minDays !== undefined).map(([k, c]) => [k, c.minDays]));
    expect(days("aws")).toEqual({ STANDARD_IA: 30, ONEZONE_IA: 30, GLACIER_IR: 90, GLACIER: 90, DEEP_ARCHIVE: 180 });
    expect(days("wasabi")).toEqual({ STANDARD: 90 });
    expect(days("r2")).toEqual({ STANDARD_IA: 30 });
    const aws = BUILT_IN.providers.aws!.classes;
    expect(Object.fromEntries(Object.entries(aws.DEEP_ARCHIVE!.thaw!).map(([t, p]) => [t, p.hours]))).toEqual({ Standard: 12, Bulk: 48 });
  });
});

/** An estimate written out by hand: one point, a chain of 2, 3 GiB to download. */
function estimate(o: { gibDays?: number; archived?: boolean; prices?: ProviderPrices }): TaskEstimate {
  return {
    task: "photos",
    dataset: "tank/photos",
    recursive: false,
    stored: [{ storageClass: "STANDARD", objects: 4, bytes: 4 * GiB, monthly: 0.092 }],
    storedBytes: 4 * GiB,
    monthly: 0.092,
    earlyDelete: { policy: "keep-last 1", deletes: 1, bytes: GiB, gibDays: o.gibDays ?? 0, cost: o.gibDays ? o.gibDays * 0.01 : 0 },
    restore: {
      points: [{ dataset: "tank/photos", backupId: "20270301T020000Z-L1-3fa9c2", level: 1, snapshot: "tank/photos@zrb_level1_x", finishedAt: "2027-03-01T02:01:00.000Z", chain: 2, downloadBytes: 3 * GiB, streamBytes: 3 * GiB }],
      missing: [],
      downloadBytes: 3 * GiB,
      streamBytes: 3 * GiB,
      seconds: (3 * GiB) / (2 * MiB),
      downloadCost: 0.27,
      archived: o.archived ? [{ storageClass: "GLACIER", bytes: GiB }] : [],
      // GLACIER's tiers from the docs' table for 1 GiB: Expedited ≤ 5 min 0.03, Standard ≤ 5 h 0.01, Bulk ≤ 12 h free.
      thaw: o.archived
        ? Object.entries(BUILT_IN.providers.aws!.classes.GLACIER!.thaw!).map(([tier, p]) => ({ tier: tier as "Standard", hours: p.hours, cost: p.perGb }))
        : [],
    },
  };
}

describe("the text of a task", () => {
  test("money: cents from a dollar up, two significant digits below, and a cost under a hundredth of a cent as an upper bound, never in exponent form", () => {
    expect(money(1234.5, "USD")).toBe("$1234.50");
    expect(money(0.0031, "USD")).toBe("$0.0031");
    expect(money(0, "EUR")).toBe("0 EUR");
    expect(money(8.3e-8, "USD")).toBe("< $0.0001");
    expect(money(2e-9, "EUR")).toBe("< 0.0001 EUR");
    expect(money(null, "USD")).toBe("no price");
  });

  const aws = { table: BUILT_IN, provider: "aws", prices: BUILT_IN.providers.aws! };
  const rate = { bytesPerSecond: 2 * MiB, source: "--rate" };

  test("the point, its size, its time at the rate (3 GiB at 2 MiB/s: 1536 s), the download's cost, no early-delete charges", () => {
    const lines = taskLines(estimate({}), aws, rate);
    expect(lines[0]).toBe("task photos (tank/photos)");
    expect(lines).toContain("  prune now (keep-last 1): would delete 1 backup(s), 1 GiB; no early-delete charges");
    expect(lines).toContain("  restore of the newest point: backup 20270301T020000Z-L1-3fa9c2 (level 1, tank/photos@zrb_level1_x, finished 2027-03-01T02:01:00.000Z), a chain of 2 backup(s)");
    expect(lines).toContain("    3 GiB to download, 3 GiB to receive");
    expect(lines).toContain("    time ≈ 25m 36s at 2 MiB/s (--rate)");
    expect(lines).toContain("    download ≈ $0.27 (egress and retrieval fees)");
  });

  test("early-delete charges and the thaw tiers as the docs word them", () => {
    const lines = taskLines(estimate({ gibDays: 12.5, archived: true }), aws, rate);
    expect(lines.find((l) => l.startsWith("  prune now"))).toContain("; early-delete charges ≈ $0.13 (12.5 GiB-days still billed before the minimum storage duration;");
    expect(lines).toContain("    archived (GLACIER 1 GiB): thawed first (zrb restore --thaw): Expedited ≤ 5 min ≈ $0.03, Standard ≤ 5 h ≈ $0.01, Bulk ≤ 12 h ≈ $0");
  });
});

describe("prices and rate: which flag wins", () => {
  const config = (plan: Config["plan"]) => ({ path: "/etc/zrb.yaml", plan, s3: { enabled: false }, monitoring: {} }) as unknown as Config;

  test("--provider over plan.provider; --prices over plan.prices; a price file's only provider; an unknown one is exit 2 by flag, 3 by config", () => {
    const dir = mkdtempSync(join(tmpdir(), "zrb-prices-"));
    try {
      const one = join(dir, "one.yaml");
      const two = join(dir, "two.yaml");
      writeFileSync(one, PRICE_FILE);
      writeFileSync(two, PRICE_FILE.replace("providers:\n", "providers:\n  other:\n    egress_per_gb: 0\n    classes: { STANDARD: { per_gb_month: 1 } }\n"));
      expect(resolvePricing(config({ provider: "b2" }), { provider: "aws" }).provider).toBe("aws");
      expect(resolvePricing(config({ prices: two }), { prices: one }).table.source).toBe(one);
      expect(resolvePricing(config({}), { prices: one }).provider).toBe("lab");
      expect(resolvePricing(config({}), { prices: two }).provider).toBeUndefined();
      const code = (f: () => unknown) => {
        try {
          f();
        } catch (e) {
          expect(e).toBeInstanceOf(ZrbError);
          return (e as ZrbError).exitCode;
        }
        return 0;
      };
      expect(code(() => resolvePricing(config({}), { provider: "nope" }))).toBe(ExitCode.USAGE);
      expect(code(() => resolvePricing(config({ provider: "nope" }), {}))).toBe(ExitCode.CONFIG);
      expect(code(() => resolveRate(config({}), task(), "0MiB/s"))).toBe(ExitCode.USAGE);
      expect(resolveRate(config({}), task(), "20MiB/s")).toEqual({ bytesPerSecond: 20 * MiB, source: "--rate" });
      // Without --rate: the last verify of the metrics file moved 60 MiB in 12 s, 5 MiB/s.
      const metrics = join(dir, "zrb.prom");
      const labels = 'task="photos",pool="tank",dataset="photos"';
      writeFileSync(metrics, [`zrb_verify_last_bytes{${labels}} ${60 * MiB}`, `zrb_verify_last_duration_seconds{${labels}} 12`, `zrb_verify_last_exit_code{${labels}} 0`, `zrb_verify_last_run_timestamp_seconds{${labels}} ${Date.UTC(2027, 1, 26, 3, 12, 9) / 1000}`, ""].join("\n"));
      const measured = { ...config({}), monitoring: { metricsFile: metrics } } as Config;
      expect(resolveRate(measured, task(), undefined)).toEqual({ bytesPerSecond: 5 * MiB, source: "the last verify (tank/photos, 2027-02-26T03:12:09.000Z)" });
      expect(resolveRate(config({}), task(), undefined)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("zrb plan on a local store", () => {
  test("the header, the total line, the no-prices warning and --json's keys", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zrb-plan-cli-"));
    try {
      const store = new ClassedStore(join(dir, "store"));
      const a = await put(store, { level: 0, t: T0, sizes: [3 * 1024] });
      const cfg = join(dir, "config.yaml");
      writeFileSync(
        cfg,
        YAML.stringify({ base_dir: join(dir, "base"), age_public_key: R, local_store: join(dir, "store"), s3: { enabled: false }, tasks: [{ name: "photos", pool: "tank", dataset: "photos" }, { name: "empty", pool: "tank", dataset: "empty" }] }),
      );
      const plan = (...more: string[]) => run([...zrbCommand(), "plan", "--config", cfg, ...more], { allowFail: true });
      const aws = await plan("--provider", "aws");
      expect(aws.code).toBe(0);
      expect(aws.stdout.split("\n")[0]).toBe(
        `ESTIMATE, read from ${store.location}: AWS S3 (us-east-1), the built-in list prices of ${BUILT_IN.date} in USD (GB = 2^30 bytes; requests, taxes and discounts left out; check the provider's price page)`,
      );

      const file = join(dir, "prices.yaml");
      // STANDARD at 2000 EUR a GB-month: a few KiB then cost more than a hundredth of a cent
      // (below that a cost prints as "< 0.0001 EUR").
      writeFileSync(file, PRICE_FILE.replace("STANDARD: { per_gb_month: 2,", "STANDARD: { per_gb_month: 2000,"));
      const priced = await plan("--prices", file, "--rate", "1KiB/s");
      expect(priced.code).toBe(0);
      const lines = priced.stdout.split("\n");
      expect(lines[0]).toStartWith(`ESTIMATE, read from ${store.location}: Lab Ceph, prices from ${file} of 2026-11-30 in EUR (GB = 2^30 bytes;`);
      // 3 KiB of part and the manifest at 2000 EUR a GB-month (over the file's 0.000005 minimum a
      // month, which the bill as a whole pays once: the empty task adds nothing); the part at 1 KiB/s: 3 s.
      const total = a.cipher + a.manifestBytes;
      const kib = `${Number((total / 1024).toFixed(2))} KiB`;
      const monthly = (total / GiB) * 2000;
      const shown = (line: string | undefined) => Number(/≈ ([\d.]+) EUR a month/.exec(line ?? "")?.[1]);
      const stored = lines.find((l) => l.startsWith("  stored: "));
      expect(stored).toStartWith(`  stored: ${kib} in 2 object(s), ≈ `);
      expect(Math.abs(shown(stored) / monthly - 1)).toBeLessThan(0.05);
      expect(lines).toContain("    time ≈ 3s at 1 KiB/s (--rate)");
      expect(lines.at(-1)).toBe("");
      const last = lines.at(-2)!;
      expect(last).toStartWith(`total: ${kib} stored, ≈ `);
      expect(last).toEndWith(" EUR a month (an estimate)");
      expect(Math.abs(shown(last) / monthly - 1)).toBeLessThan(0.05);

      const bare = await plan();
      expect(bare.stdout).toStartWith(`ESTIMATE, read from ${store.location}; no prices (the endpoint's provider is not known: give --provider aws|b2|wasabi|r2 or --prices FILE)`);
      expect(bare.stderr).toContain("give --provider or --prices FILE for costs");

      const j = JSON.parse((await plan("--json", "--provider", "aws")).stdout);
      expect(Object.keys(j)).toEqual(expect.arrayContaining(["estimate", "note", "prices", "total", "tasks"]));
      expect(j.total.storedBytes).toBe(total);

      // A provider without a price for STANDARD: the task that stores some has no monthly cost,
      // the empty one costs 0, and the total is unknown — not the 0 of the tasks it could price.
      const cold = join(dir, "cold.yaml");
      writeFileSync(cold, "date: 2026-11-30\ncurrency: USD\nproviders:\n  cold:\n    egress_per_gb: 0\n    classes: { DEEP_ARCHIVE: { per_gb_month: 1 } }\n");
      // Wasabi bills at least 6.99 a month for the whole account: each task alone would cost that
      // much, the two together too — not twice as much.
      const w = JSON.parse((await plan("--json", "--provider", "wasabi")).stdout);
      expect(w.tasks.map((t: TaskEstimate) => t.monthly)).toEqual([6.99, 6.99]);
      expect(w.total.monthly).toBe(6.99);
      const c = JSON.parse((await plan("--json", "--prices", cold)).stdout);
      expect(c.prices.provider).toBe("cold");
      expect(c.tasks.map((t: TaskEstimate) => [t.task, t.monthly])).toEqual([["photos", null], ["empty", 0]]);
      expect(c.total).toEqual({ storedBytes: total, monthly: null });
      expect(Object.keys(j.tasks[0])).toEqual(expect.arrayContaining(["stored", "monthly", "earlyDelete", "restore", "rate"]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
