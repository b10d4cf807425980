/**
 * The Prometheus textfile (report/metrics.ts): one run replaces only its own series, keeps the
 * last success time through failures, keeps other datasets' and other commands' series, parses
 * what it wrote, and recordRun writes the file atomically (0644) or warns — never throws.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertSafeMetricsFile, metricsDirProblem, parseSamples, recordRun, updateMetrics, type RunRecord } from "../../../src/report/metrics.ts";
import type { ZrbError } from "../../../src/util/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "zrb-metrics-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const at = (s: number) => new Date(s * 1000);
const run = (o: Partial<RunRecord>): RunRecord => ({ command: "backup", task: "photos", pool: "tank", dataset: "home/photos", level: 0, ok: true, exitCode: 0, seconds: 12.5, bytes: 4096, at: at(1000), ...o });
const value = (text: string, name: string, labels: Record<string, string>) =>
  parseSamples(text).find((s) => s.name === name && JSON.stringify(Object.fromEntries(s.labels)) === JSON.stringify(labels))?.value;
const L0 = { task: "photos", pool: "tank", dataset: "home/photos", level: "0" };

describe("updateMetrics", () => {
  test("a success writes the five series of its command with HELP and TYPE", () => {
    const t = updateMetrics("", run({}));
    expect(value(t, "zrb_backup_last_success_timestamp_seconds", L0)).toBe("1000.000");
    expect(value(t, "zrb_backup_last_run_timestamp_seconds", L0)).toBe("1000.000");
    expect(value(t, "zrb_backup_last_duration_seconds", L0)).toBe("12.500");
    expect(value(t, "zrb_backup_last_bytes", L0)).toBe("4096");
    expect(value(t, "zrb_backup_last_exit_code", L0)).toBe("0");
    expect(t).toContain("# TYPE zrb_backup_last_success_timestamp_seconds gauge\n");
    expect(t).toContain('zrb_backup_last_bytes{task="photos",pool="tank",dataset="home/photos",level="0"} 4096\n');
  });

  test("a failure updates the run's series but keeps the last success time", () => {
    const ok = updateMetrics("", run({}));
    const failed = updateMetrics(ok, run({ ok: false, exitCode: 6, seconds: 130, bytes: 0, at: at(2000) }));
    expect(value(failed, "zrb_backup_last_success_timestamp_seconds", L0)).toBe("1000.000");
    expect(value(failed, "zrb_backup_last_run_timestamp_seconds", L0)).toBe("2000.000");
    expect(value(failed, "zrb_backup_last_exit_code", L0)).toBe("6");
    // a dataset that never succeeded has no success series at all: the alert's absent() catches it
    const never = updateMetrics("", run({ ok: false, exitCode: 5 }));
    expect(value(never, "zrb_backup_last_success_timestamp_seconds", L0)).toBeUndefined();
  });

  test("a drill's own gauges (duration, its restore's duration, files compared and differing) with HELP; a failed drill updates them, keeps the success time", () => {
    const D = { task: "photos", pool: "tank", dataset: "home/photos" };
    const ok = updateMetrics("", run({ command: "drill", level: undefined, extra: { duration_seconds: 42.25, restore_seconds: 30.5, files_compared: 1200, files_differ: 0 } }));
    expect(value(ok, "zrb_drill_duration_seconds", D)).toBe("42.250");
    expect(value(ok, "zrb_drill_files_compared", D)).toBe("1200");
    expect(value(ok, "zrb_drill_restore_seconds", D)).toBe("30.500");
    expect(ok).toContain("# HELP zrb_drill_restore_seconds zrb drill: how long the last drill's restore took, without the comparison (zrb plan's restore rate).\n");
    expect(value(ok, "zrb_drill_files_differ", D)).toBe("0");
    expect(value(ok, "zrb_drill_last_success_timestamp_seconds", D)).toBe("1000.000");
    expect(ok).toContain("# HELP zrb_drill_files_differ zrb drill: paths of the last drill that differ from the source snapshot.\n");
    const bad = updateMetrics(ok, run({ command: "drill", level: undefined, ok: false, exitCode: 7, at: at(3000), extra: { duration_seconds: 40, files_compared: 1200, files_differ: 3 } }));
    expect(value(bad, "zrb_drill_files_differ", D)).toBe("3");
    expect(value(bad, "zrb_drill_last_exit_code", D)).toBe("7");
    expect(value(bad, "zrb_drill_last_success_timestamp_seconds", D)).toBe("1000.000");
  });

  test("other levels, datasets and commands (prune from another module) are kept; one series per key", () => {
    let t = updateMetrics("", run({}));
    t = updateMetrics(t, run({ level: 1, at: at(1100) }));
    t = updateMetrics(t, run({ dataset: "home/docs", task: "docs" }));
    t = updateMetrics(t, run({ command: "prune", level: undefined, bytes: 99 }));
    t = updateMetrics(t, run({ command: "verify", level: undefined }));
    t = updateMetrics(t, run({ at: at(3000) }));
    const samples = parseSamples(t);
    expect(samples.length).toBe(5 * 5);
    expect(new Set(samples.map((s) => s.name + JSON.stringify(s.labels))).size).toBe(samples.length);
    expect(value(t, "zrb_backup_last_run_timestamp_seconds", L0)).toBe("3000.000");
    expect(value(t, "zrb_backup_last_run_timestamp_seconds", { ...L0, level: "1" })).toBe("1100.000");
    expect(value(t, "zrb_prune_last_bytes", { task: "photos", pool: "tank", dataset: "home/photos" })).toBe("99");
    // written twice the same way: the text is stable
    expect(updateMetrics(t, run({ at: at(3000) }))).toBe(t);
  });

  test("label values are escaped and read back; lines of other tools survive", () => {
    const t = updateMetrics('other_metric{a="x"} 1\n', run({ dataset: 'we"ird\\ds' }));
    expect(parseSamples(t).find((s) => s.name === "zrb_backup_last_bytes")!.labels).toContainEqual(["dataset", 'we"ird\\ds']);
    expect(t).toContain('other_metric{a="x"} 1\n');
  });
});

describe("recordRun", () => {
  test("writes the file atomically, readable by node_exporter (0644), and no temp file stays", () => {
    const f = join(dir, "zrb.prom");
    recordRun(f, run({}));
    recordRun(f, run({ command: "verify", level: undefined }));
    expect(statSync(f).mode & 0o777).toBe(0o644);
    expect(parseSamples(readFileSync(f, "utf8")).length).toBe(10);
    expect(readdirSync(dir).filter((n) => n.includes(".tmp"))).toEqual([]);
  });

  test("no file configured: nothing; a missing directory: one warning, no throw", () => {
    recordRun(undefined, run({}));
    const missing = join(dir, "nope", "zrb.prom");
    expect(() => recordRun(missing, run({}))).not.toThrow();
    expect(existsSync(missing)).toBe(false);
  });

  test("a garbled file is not trusted beyond its readable lines", () => {
    const f = join(dir, "garbled.prom");
    writeFileSync(f, "\u0000\u0001 nonsense {{{\nzrb_backup_last_bytes{task=\"photos\",pool=\"tank\",dataset=\"home/photos\",level=\"0\"} 1\n");
    recordRun(f, run({ bytes: 7 }));
    const text = readFileSync(f, "utf8");
    expect(text).not.toContain("nonsense");
    expect(value(text, "zrb_backup_last_bytes", L0)).toBe("7");
  });
});

describe("a directory other users can write (issue 20)", () => {
  /** A fresh directory with `mode`, and a root-only file outside it with a line that looks like a sample. */
  function planted(mode: number) {
    const d = mkdtempSync(join(dir, "shared-"));
    chmodSync(d, mode);
    const secret = join(dir, `secret-${Math.random().toString(16).slice(2)}`);
    writeFileSync(secret, 'api_token{value="hunter2"} 1\n', { mode: 0o600 });
    return { d, f: join(d, "zrb.prom"), secret };
  }

  test("planted symlinks are never followed: not the .prom, not its temp file, not its lock", () => {
    const { d, f, secret } = planted(0o1777);
    const victim = join(dir, `victim-${Math.random().toString(16).slice(2)}`);
    writeFileSync(victim, "root only\n", { mode: 0o600 });
    const created = join(dir, `created-${Math.random().toString(16).slice(2)}`);
    symlinkSync(secret, f);
    symlinkSync(victim, `${f}.tmp-${process.pid}`);
    symlinkSync(created, `${f}.lock`);
    recordRun(f, run({}));
    expect(readFileSync(victim, "utf8")).toBe("root only\n");
    expect(readFileSync(secret, "utf8")).toBe('api_token{value="hunter2"} 1\n');
    expect(existsSync(created)).toBe(false);
    // the metrics were not written through the link (a planted lock stops the write: one warning)
    expect(lstatSync(f).isSymbolicLink()).toBe(true);
    rmSync(`${f}.lock`);
    recordRun(f, run({}));
    expect(lstatSync(f).isFile()).toBe(true);
    const text = readFileSync(f, "utf8");
    expect(text).not.toContain("hunter2");
    expect(value(text, "zrb_backup_last_bytes", L0)).toBe("4096");
    expect(readFileSync(secret, "utf8")).toBe('api_token{value="hunter2"} 1\n');
  });

  test("a hard link or another user's file at the .prom's name is replaced unread", () => {
    const { d, f, secret } = planted(0o1777);
    linkSync(secret, f);
    recordRun(f, run({}));
    expect(readFileSync(f, "utf8")).not.toContain("hunter2");
    expect(readFileSync(secret, "utf8")).toContain("hunter2");
    const g = join(d, "other.prom");
    writeFileSync(g, 'api_token{value="hunter2"} 1\n');
    chownSync(g, 65534, 65534);
    recordRun(g, run({}));
    expect(readFileSync(g, "utf8")).not.toContain("hunter2");
  });

  test("without the sticky bit: refused before the run (exit 9 naming the directory), and never written", () => {
    const { d, f } = planted(0o777);
    expect(metricsDirProblem(f)).toContain(`directory ${d} is writable by other users (mode 0777) without the sticky bit`);
    let err: unknown;
    try {
      assertSafeMetricsFile(f);
    } catch (e) {
      err = e;
    }
    expect((err as ZrbError).exitCode).toBe(9);
    expect((err as Error).message).toContain(`monitoring.metrics_file ${f}: directory ${d} is writable by other users`);
    recordRun(f, run({}));
    expect(existsSync(f)).toBe(false);
    for (const mode of [0o1777, 0o755, 0o1770]) expect(metricsDirProblem(planted(mode).f)).toBeUndefined();
    expect(metricsDirProblem(planted(0o775).f)).toContain("(mode 0775)");
    expect(() => assertSafeMetricsFile(undefined)).not.toThrow();
  });
});
