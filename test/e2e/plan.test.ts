/**
 * `zrb plan` against a bucket of known size (zfs-fuse + radosgw, the compiled binary): three
 * backups — a level 0 in STANDARD and two level 1s in DEEP_ARCHIVE (radosgw's placement has the
 * class) — whose objects are listed independently with the AWS SDK, so every byte figure is
 * checked against the bucket and every cost against a price file's numbers: the monthly cost per
 * class, the early-delete charge of the level 1 a `keep_last: 1` prune would delete, the newest
 * point's chain to download, its time at the rate of the metrics file or --rate, the egress and
 * the thaw tiers. The built-in table too (--provider aws), and the errors (exit 2/3).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { s3Client, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, expectZrbFail, jsonResult, zrb } from "../helpers/zrb.ts";
import { BUILT_IN } from "../../src/report/prices.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
let sc: Scene;
let cfg: string;
let prices: string;
let metrics: string;
const backups: any[] = [];
/** Bytes per storage class of every object of the dataset, from the SDK's own listing. */
const listed: Record<string, number> = {};

const PRICES = {
  date: "2026-11-30",
  currency: "EUR",
  providers: {
    lab: {
      title: "Lab Ceph",
      egress_per_gb: 0.5,
      classes: {
        STANDARD: { per_gb_month: 2 },
        DEEP_ARCHIVE: { per_gb_month: 1, min_days: 180, thaw: { Standard: { hours: 12, per_gb: 4 }, Bulk: { hours: 48, per_gb: 1 } } },
      },
    },
  },
};

beforeAll(async () => {
  sc = await scene({ name: "plan", poolMiB: 128, dataset: "src" });
  metrics = join(sc.work, "zrb.prom");
  const doc = YAML.parse(
    configYaml({ baseDir: join(sc.work, "base"), recipients: [sc.recipient], bucket: sc.bucket, s3: sc.s3, backupData: ["STANDARD", "DEEP_ARCHIVE"], tasks: [{ name: "t", pool: sc.pool.pool, dataset: "src" }] }),
  );
  doc.tasks[0].retention = { keep_last: 1 };
  doc.monitoring = { metrics_file: metrics };
  cfg = join(sc.work, "config.yaml");
  writeFileSync(cfg, YAML.stringify(doc));
  prices = join(sc.work, "prices.yaml");
  writeFileSync(prices, YAML.stringify(PRICES));
  for (const [level, size] of [[0, 1536 * KiB], [1, 300 * KiB], [1, 200 * KiB]] as const) {
    await writeRandomFile(join(sc.mnt, `f${backups.length}.bin`), size, 40 + backups.length);
    await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", String(level)], { env: sc.env });
    backups.push(jsonResult((await zrb(["backup", "--config", cfg, "--task", "t", "--level", String(level), "--json"], { env: sc.env })).stdout));
  }
  const client = await s3Client(sc.s3);
  for (const prefix of [`zrb/data/${sc.fs}/`, `zrb/manifests/${sc.fs}/`]) {
    const r = await client.send(new ListObjectsV2Command({ Bucket: sc.bucket, Prefix: prefix }));
    for (const o of r.Contents ?? []) listed[o.StorageClass ?? "STANDARD"] = (listed[o.StorageClass ?? "STANDARD"] ?? 0) + o.Size!;
  }
}, 300_000);

afterAll(async () => {
  await sc?.close();
}, 120_000);

async function plan(...more: string[]): Promise<any> {
  return JSON.parse((await zrb(["plan", "--config", cfg, "--json", ...more], { env: sc.env })).stdout);
}

describe("zrb plan", () => {
  test("bytes per class are the bucket's; costs are the price file's; the newest point's chain, its time at the metrics file's rate, egress and thaw tiers", async () => {
    // The last verify moved 10 MiB in 5 s: 2 MiB/s.
    const labels = `task="t",pool="${sc.pool.pool}",dataset="src"`;
    writeFileSync(
      metrics,
      [
        `zrb_verify_last_bytes{${labels}} ${10 * MiB}`,
        `zrb_verify_last_duration_seconds{${labels}} 5.000`,
        `zrb_verify_last_exit_code{${labels}} 0`,
        `zrb_verify_last_run_timestamp_seconds{${labels}} 1796000000.000`,
        "",
      ].join("\n"),
    );
    const j = await plan("--prices", prices);
    expect(j.estimate).toBe(true);
    expect(j.prices).toMatchObject({ provider: "lab", title: "Lab Ceph", date: "2026-11-30", currency: "EUR", source: prices });
    const t = j.tasks[0];
    // What the SDK lists is what plan counts, class by class; the DEEP_ARCHIVE parts are the two level 1s'.
    expect(Object.fromEntries(t.stored.map((u: any) => [u.storageClass, u.bytes]))).toEqual(listed);
    expect(listed.DEEP_ARCHIVE).toBe(backups[1].storedBytes + backups[2].storedBytes);
    expect(t.storedBytes).toBe(listed.STANDARD! + listed.DEEP_ARCHIVE!);
    expect(t.monthly).toBeCloseTo((listed.STANDARD! / GiB) * 2 + (listed.DEEP_ARCHIVE! / GiB) * 1, 10);
    expect(j.total).toEqual({ storedBytes: t.storedBytes, monthly: t.monthly });

    // keep_last 1: the first level 1 goes (the heads are the level 0 and the second level 1), 180 days early.
    expect(t.earlyDelete).toMatchObject({ policy: "keep-last 1", deletes: 1, bytes: backups[1].storedBytes });
    const full = (backups[1].storedBytes / GiB) * 180;
    expect(t.earlyDelete.gibDays).toBeLessThanOrEqual(full + 1e-6); // rounded to 6 decimals
    expect(t.earlyDelete.gibDays).toBeGreaterThan(full * (1 - 1 / 180));
    expect(t.earlyDelete.cost).toBeCloseTo((t.earlyDelete.gibDays * 1) / 30, 6);

    // The newest point: the second level 1 on the level 0.
    const r = t.restore;
    expect(r.points).toEqual([expect.objectContaining({ backupId: backups[2].backupId, level: 1, chain: 2 })]);
    const down = backups[0].storedBytes + backups[2].storedBytes;
    expect(r.downloadBytes).toBe(down);
    expect(r.streamBytes).toBe(backups[0].streamBytes + backups[2].streamBytes);
    expect(t.rate).toMatchObject({ bytesPerSecond: 2 * MiB });
    expect(t.rate.source).toContain("the last verify");
    expect(r.seconds).toBeCloseTo(down / (2 * MiB), 6);
    expect(r.downloadCost).toBeCloseTo((down / GiB) * 0.5, 10);
    expect(r.archived).toEqual([{ storageClass: "DEEP_ARCHIVE", bytes: backups[2].storedBytes }]);
    expect(r.thaw).toEqual([
      { tier: "Standard", hours: 12, cost: expect.closeTo((backups[2].storedBytes / GiB) * 4, 10) },
      { tier: "Bulk", hours: 48, cost: expect.closeTo((backups[2].storedBytes / GiB) * 1, 10) },
    ]);
  }, 120_000);

  test("the text says it is an estimate and which prices of which date; --rate replaces the measured rate", async () => {
    const r = await zrb(["plan", "--config", cfg, "--prices", prices, "--rate", "1MiB/s"], { env: sc.env });
    const text = r.stdout;
    expect(text).toStartWith("ESTIMATE, read from s3://");
    expect(text).toContain("Lab Ceph, prices from");
    expect(text).toContain("of 2026-11-30 in EUR");
    expect(text).toContain("prune now (keep-last 1): would delete 1 backup(s)");
    expect(text).toContain(`restore of the newest point: backup ${backups[2].backupId} (level 1,`);
    expect(text).toContain("at 1 MiB/s (--rate)");
    expect(text).toMatch(/archived \(DEEP_ARCHIVE [\d.]+ KiB\): thawed first \(zrb restore --thaw\): Standard ≤ 12 h ≈ [\d.]+ EUR, Bulk ≤ 48 h ≈ [\d.]+ EUR/);
    expect(text).toMatch(/\ntotal: [\d.]+ (KiB|MiB) stored, ≈ [\d.]+ EUR a month \(an estimate\)\n$/);
  }, 60_000);

  test("the built-in table (--provider aws): AWS's list prices of its date; DEEP_ARCHIVE has no Expedited tier", async () => {
    const aws = BUILT_IN.providers.aws!;
    const j = await plan("--provider", "aws");
    expect(j.prices).toMatchObject({ provider: "aws", date: BUILT_IN.date, currency: "USD", source: "built-in" });
    const t = j.tasks[0];
    expect(t.monthly).toBeCloseTo((listed.STANDARD! / GiB) * aws.classes.STANDARD!.perGbMonth + (listed.DEEP_ARCHIVE! / GiB) * aws.classes.DEEP_ARCHIVE!.perGbMonth, 12);
    expect(t.restore.thaw.map((x: any) => x.tier)).toEqual(["Standard", "Bulk"]);
    // radosgw's endpoint is no known provider: without --provider or a price file, sizes and times only.
    const bare = await zrb(["plan", "--config", cfg], { env: sc.env });
    expect(bare.stdout).toContain("no prices (the endpoint's provider is not known");
    expect(bare.stderr).toContain("give --provider or --prices FILE");
  }, 60_000);

  test("bad input: an unknown provider or rate is exit 2, a bad price file exit 3 naming the key", async () => {
    await expectZrbFail(["plan", "--config", cfg, "--provider", "nope"], sc.env, 2, 'no provider "nope" in the price table');
    await expectZrbFail(["plan", "--config", cfg, "--rate", "fast"], sc.env, 2, "--rate must be a rate such as 20MiB/s");
    const bad = join(sc.work, "bad-prices.yaml");
    writeFileSync(bad, YAML.stringify({ ...PRICES, providers: { lab: { ...PRICES.providers.lab, egress_per_gb: "cheap" } } }));
    await expectZrbFail(["plan", "--config", cfg, "--prices", bad], sc.env, 3, `price file ${bad}: providers.lab.egress_per_gb must be a number`);
  }, 60_000);
});
