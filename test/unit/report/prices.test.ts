/** zrb plan's pieces: the price file, the provider by endpoint, the rate from the metrics file, the cost arithmetic. */
import { describe, expect, test } from "bun:test";
import { BUILT_IN, detectProvider, parsePriceFile } from "../../../src/report/prices.ts";
import { lastTransferRate } from "../../../src/report/metrics.ts";
import { classUsage, downloadCost, monthlyTotal, thawTiers } from "../../../src/pipeline/estimate.ts";
import { money } from "../../../src/cli/plan.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const GiB = 1024 ** 3;

describe("prices", () => {
  test("the built-in table is dated and names its currency; the provider comes from the endpoint's host", () => {
    expect(BUILT_IN.date).toMatch(/^\d{4}-\d\d-\d\d$/);
    expect(BUILT_IN.currency).toBe("USD");
    expect(Object.keys(BUILT_IN.providers)).toEqual(["aws", "b2", "wasabi", "r2"]);
    expect(detectProvider(undefined)).toBe("aws");
    expect(detectProvider("https://s3.eu-central-003.backblazeb2.com")).toBe("b2");
    expect(detectProvider("https://s3.eu-central-1.wasabisys.com")).toBe("wasabi");
    expect(detectProvider("https://abc.r2.cloudflarestorage.com")).toBe("r2");
    expect(detectProvider("http://127.0.0.1:7480")).toBeUndefined();
  });

  test("a price file adds providers (same currency: the built-in ones stay) or stands alone (another currency)", () => {
    const usd = parsePriceFile("date: 2026-01-02\ncurrency: USD\nproviders:\n  home:\n    egress_per_gb: 0\n    classes:\n      STANDARD: {per_gb_month: 0.001}\n", "/p.yaml");
    expect(Object.keys(usd.providers)).toEqual(["aws", "b2", "wasabi", "r2", "home"]);
    expect(usd.providers.home).toEqual({ title: "home", egressPerGb: 0, classes: { STANDARD: { perGbMonth: 0.001 } } });
    const eur = parsePriceFile("date: 2026-01-02\ncurrency: EUR\nproviders:\n  home:\n    egress_per_gb: 0\n    classes:\n      STANDARD: {per_gb_month: 0.001}\n", "/p.yaml");
    expect(Object.keys(eur.providers)).toEqual(["home"]);
  });

  test("a bad price file is a config error naming the file and the key", () => {
    for (const [text, msg] of [
      ["date: yesterday\ncurrency: USD\nproviders: {}\n", "date must be the day"],
      ["date: 2026-01-02\ncurrency: dollars\nproviders: {}\n", "currency must be a 3-letter code"],
      ["date: 2026-01-02\ncurrency: USD\nproviders:\n  x: {egress_per_gb: 0, classes: {STANDARD: {per_gb_month: -1}}}\n", "providers.x.classes.STANDARD.per_gb_month must be a number ≥ 0"],
      ["date: 2026-01-02\ncurrency: USD\nproviders:\n  x: {egress_per_gb: 0, classes: {GLACIER: {per_gb_month: 1, thaw: {Fast: {hours: 1, per_gb: 1}}}}}\n", 'providers.x.classes.GLACIER.thaw has an unknown key "Fast"'],
      ["date: 2026-01-02\ncurrency: USD\nproviders:\n  x: {egres_per_gb: 0, classes: {}}\n", 'providers.x has an unknown key "egres_per_gb"'],
    ] as const) {
      try {
        parsePriceFile(text, "/p.yaml");
        throw new Error(`accepted: ${text}`);
      } catch (e) {
        expect(e).toBeInstanceOf(ZrbError);
        expect((e as ZrbError).exitCode).toBe(ExitCode.CONFIG);
        expect((e as Error).message).toStartWith("price file /p.yaml: ");
        expect((e as Error).message).toContain(msg);
      }
    }
  });
});

describe("the figures", () => {
  const aws = BUILT_IN.providers.aws!;
  test("monthly cost per class, at least a provider's minimum (Wasabi: 1 TB)", () => {
    const u = classUsage([{ key: "a", size: 2 * GiB, storageClass: "STANDARD" }, { key: "b", size: GiB, storageClass: "DEEP_ARCHIVE" }, { key: "c", size: GiB }], aws);
    expect(u.map((x) => [x.storageClass, x.bytes, x.objects])).toEqual([["STANDARD", 3 * GiB, 2], ["DEEP_ARCHIVE", GiB, 1]]);
    expect(monthlyTotal(u, aws)).toBeCloseTo(3 * 0.023 + 0.00099, 12);
    const w = BUILT_IN.providers.wasabi!;
    expect(monthlyTotal(classUsage([{ key: "a", size: GiB, storageClass: "STANDARD" }], w), w)).toBe(6.99);
    expect(monthlyTotal(classUsage([{ key: "a", size: GiB, storageClass: "OUTPOSTS" }], aws), aws)).toBeNull();
  });

  test("download: egress beyond B2's free 3× of what is stored, plus retrieval fees; thaw tiers: the slowest class's hours", () => {
    const b2 = BUILT_IN.providers.b2!;
    expect(downloadCost(new Map([["STANDARD", 10 * GiB]]), 3 * GiB, b2)).toBeCloseTo(1 * 0.01, 12);
    expect(downloadCost(new Map([["STANDARD_IA", 2 * GiB]]), 100 * GiB, aws)).toBeCloseTo(2 * 0.09 + 2 * 0.01, 12);
    const tiers = thawTiers(new Map([["GLACIER", GiB], ["DEEP_ARCHIVE", 2 * GiB]]), aws);
    expect(tiers).toEqual([
      { tier: "Standard", hours: 12, cost: expect.closeTo(0.01 + 2 * 0.02, 12) },
      { tier: "Bulk", hours: 48, cost: expect.closeTo(0 + 2 * 0.0025, 12) },
    ]);
  });

  test("the rate of the newest successful restore or verify of the task in the metrics file (another task's when it has none)", () => {
    const s = (cmd: string, task: string, bytes: number, secs: number, code: number, at: number) =>
      [`zrb_${cmd}_last_bytes{task="${task}",pool="tank",dataset="${task}"} ${bytes}`, `zrb_${cmd}_last_duration_seconds{task="${task}",pool="tank",dataset="${task}"} ${secs}`, `zrb_${cmd}_last_exit_code{task="${task}",pool="tank",dataset="${task}"} ${code}`, `zrb_${cmd}_last_run_timestamp_seconds{task="${task}",pool="tank",dataset="${task}"} ${at}`].join("\n");
    const text = [s("verify", "a", 100, 10, 0, 1000), s("restore", "a", 300, 10, 0, 900), s("restore", "a", 999, 1, 6, 2000), s("verify", "b", 50, 1, 0, 3000), s("backup", "a", 1e9, 1, 0, 4000)].join("\n");
    expect(lastTransferRate(text, "a")).toMatchObject({ command: "verify", bytesPerSecond: 10 });
    expect(lastTransferRate(text, "c")).toMatchObject({ command: "verify", task: "b", bytesPerSecond: 50 });
    expect(lastTransferRate("", "a")).toBeNull();
  });

  test("a drill counts too, at its bytes over its restore alone (not over the comparison after it); a drill that found differences does not", () => {
    const l = (name: string, v: number) => `zrb_drill_${name}{task="a",pool="tank",dataset="a"} ${v}`;
    const drill = (code: number, at: number) =>
      [l("last_bytes", 6000), l("last_duration_seconds", 10), l("restore_seconds", 2.5), l("duration_seconds", 10), l("last_exit_code", code), l("last_run_timestamp_seconds", at)].join("\n");
    const verify = `zrb_verify_last_bytes{task="a",pool="tank",dataset="a"} 100\nzrb_verify_last_duration_seconds{task="a",pool="tank",dataset="a"} 10\nzrb_verify_last_exit_code{task="a",pool="tank",dataset="a"} 0\nzrb_verify_last_run_timestamp_seconds{task="a",pool="tank",dataset="a"} 1000`;
    expect(lastTransferRate([verify, drill(0, 2000)].join("\n"), "a")).toMatchObject({ command: "drill", dataset: "tank/a", bytesPerSecond: 6000 / 2.5 });
    expect(lastTransferRate([verify, drill(7, 2000)].join("\n"), "a")).toMatchObject({ command: "verify", bytesPerSecond: 10 });
    // A drill file written before zrb_drill_restore_seconds existed: no rate from it.
    expect(lastTransferRate(drill(0, 2000).replace(/\n[^\n]*restore_seconds[^\n]*/, ""), "a")).toBeNull();
  });

  test("money: two decimals from 1 up, two significant digits below; the currency's sign or code", () => {
    expect(money(12.345, "USD")).toBe("$12.35");
    expect(money(0.0031234, "USD")).toBe("$0.0031");
    expect(money(0, "EUR")).toBe("0 EUR");
    expect(money(null, "USD")).toBe("no price");
  });
});
