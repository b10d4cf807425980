import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { compareTimes, laterTime } from "../../src/util/clock.ts";

const CLOCK = join(import.meta.dir, "..", "..", "src", "util", "clock.ts");
const script = `const { now } = await import(${JSON.stringify(CLOCK)}); const a = now().getTime(); await Bun.sleep(50); console.log(a, now().getTime());`;

async function runWith(env: Record<string, string>) {
  const p = Bun.spawn([process.execPath, "-e", script], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: await p.exited, out: await new Response(p.stdout).text(), err: await new Response(p.stderr).text() };
}

describe("clock", () => {
  test("ZRB_NOW starts the run's clock at that instant and it advances in real time", async () => {
    const r = await runWith({ ZRB_NOW: "2027-03-01T02:00:00Z" });
    const [a, b] = r.out.trim().split(" ").map(Number);
    const t0 = Date.parse("2027-03-01T02:00:00Z");
    expect(a! - t0).toBeGreaterThanOrEqual(0);
    expect(a! - t0).toBeLessThan(60_000);
    expect(b! - a!).toBeGreaterThanOrEqual(45);
  });
  test("without it, the real time; a bad value is a usage error (exit 2)", async () => {
    const r = await runWith({});
    expect(Math.abs(Number(r.out.split(" ")[0]) - Date.now())).toBeLessThan(60_000);
    const bad = await runWith({ ZRB_NOW: "yesterday" });
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("ZRB_NOW");
  });
  test("compareTimes orders manifest times as instants whatever their fraction's length", () => {
    expect(compareTimes("2026-12-01T00:00:05Z", "2026-12-01T00:00:05.1Z")).toBeLessThan(0);
    expect(compareTimes("2026-12-01T00:00:05.5Z", "2026-12-01T00:00:05.123Z")).toBeGreaterThan(0);
    expect(compareTimes("2026-12-01T00:00:05.1Z", "2026-12-01T00:00:05.100000000Z")).toBe(0);
    expect(compareTimes("2026-12-01T00:00:05.000000001Z", "2026-12-01T00:00:05Z")).toBeGreaterThan(0);
    expect(compareTimes("2026-11-30T23:59:59.999Z", "2026-12-01T00:00:00Z")).toBeLessThan(0);
    expect(laterTime("2026-12-01T00:00:05.5Z", "2026-12-01T00:00:05Z")).toBe(true);
    expect(laterTime("2026-12-01T00:00:05Z", "2026-12-01T00:00:05.000Z")).toBe(false);
    // heads.ts starts from "" (no head yet): every time is later than it.
    expect(laterTime("1970-01-01T00:00:00Z", "")).toBe(true);
    const sorted = ["2026-12-01T00:00:05Z", "2026-12-01T00:00:04.9Z", "2026-12-01T00:00:05.25Z"].sort(compareTimes);
    expect(sorted).toEqual(["2026-12-01T00:00:04.9Z", "2026-12-01T00:00:05Z", "2026-12-01T00:00:05.25Z"]);
  });
});
