/**
 * The reporter (report/reporter.ts) in its three modes on an injected clock: a terminal gets one
 * line redrawn in place, a journal a line every interval with the word ETA, --json the events
 * start, progress, part, retry and done/error on stdout; --quiet silences progress. The e2e
 * test (test/e2e/monitoring.test.ts) runs the same through the binary.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Reporter, retryLine, type ReportMode } from "../../../src/report/reporter.ts";
import { ZrbError } from "../../../src/util/errors.ts";

const MiB = 1024 * 1024;
const job = { command: "backup" as const, task: "photos", dataset: "tank/photos", level: 0 };

/** A reporter whose clock, stdout and stderr the test holds; log lines (consola → process.stderr) are captured too. */
function rig(mode: ReportMode, progress = true) {
  let t = 0;
  const out: string[] = [];
  const err: string[] = [];
  const logged: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => (logged.push(String(s)), true)) as typeof process.stderr.write;
  restore.push(() => (process.stderr.write = orig));
  const r = new Reporter({ job, mode, progress, intervalMs: 30_000, clock: () => t, stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  return { r, out, err, logged, at: (ms: number) => ((t = ms), r.tick()) };
}
const restore: (() => void)[] = [];
afterEach(() => {
  while (restore.length) restore.pop()!();
});

function run(x: ReturnType<typeof rig>) {
  x.r.start({ backupId: "B1", level: 0, snapshot: "tank/photos@s", bytesExpected: 100 * MiB, estimate: "zfs send -nP", parts: 4 });
  for (let s = 1; s <= 65; s++) {
    x.r.bytes(s * MiB);
    x.at(s * 1000);
  }
  x.r.part({ backupId: "B1", index: 0, bytes: 25 * MiB });
}

describe("Reporter", () => {
  test("lines (a journal): a start line, then one progress line per interval, with ETA", () => {
    const x = rig("lines");
    run(x);
    x.r.finish({ ok: true }, 65);
    const lines = x.logged.join("").split("\n").filter((l) => l.includes("backup photos level 0"));
    expect(lines[0]).toContain("about 100 MiB to send (estimate: zfs send -nP), ~4 part(s), backup B1");
    const progress = lines.filter((l) => l.includes("ETA"));
    expect(progress.length).toBe(2); // at 30 s and 60 s
    expect(progress[0]).toContain("backup photos level 0: 30 MiB of ~100 MiB (30%), 1 MiB/s, ETA 1m 10s, parts 0/~4");
    expect(x.out).toEqual([]); // stdout is for results
    expect(x.err).toEqual([]); // no terminal redraws
  });

  test("tty: the line is redrawn in place every second, and cleared at the end", () => {
    const x = rig("tty");
    run(x);
    expect(x.err.length).toBe(65);
    expect(x.err.every((s) => s.startsWith("\r\x1b[K") && !s.includes("\n"))).toBe(true);
    expect(x.err.at(-1)).toContain("backup photos level 0: 65 MiB of ~100 MiB (65%), 1 MiB/s, ETA 35s, parts 0/~4");
    x.r.finish({}, 65);
    expect(x.err.at(-1)).toBe("\r\x1b[K");
  });

  test("json: start, progress per interval, part, retry, done with the result — one object per line", () => {
    const x = rig("json");
    run(x);
    x.r.retry({ what: "put s3://b/k", attempt: 1, maxAttempts: 5, error: "S3 endpoint http://h stalled: no byte moved for 1m", delayMs: 400 });
    x.r.finish({ backupId: "B1", parts: 4 }, 66.2);
    const ev = x.out.map((l) => {
      expect(l.endsWith("\n")).toBe(true);
      return JSON.parse(l);
    });
    expect(ev.map((e) => e.event)).toEqual(["start", "progress", "progress", "part", "retry", "done"]);
    expect(ev[0]).toMatchObject({ command: "backup", task: "photos", dataset: "tank/photos", level: 0, backupId: "B1", bytesExpected: 100 * MiB, estimate: "zfs send -nP", parts: 4 });
    expect(ev[1]).toMatchObject({ bytesDone: 30 * MiB, bytesExpected: 100 * MiB, estimated: true, rate: MiB, etaSeconds: 70, partsDone: 0, parts: 4 });
    expect(ev[3]).toMatchObject({ backupId: "B1", index: 0, bytes: 25 * MiB, partsDone: 1, parts: 4 });
    expect(ev[4]).toMatchObject({ attempt: 1, maxAttempts: 5, delaySeconds: 0.4, error: expect.stringContaining("stalled") });
    expect(ev[5]).toMatchObject({ exitCode: 0, seconds: 66.2, bytes: 65 * MiB, result: { backupId: "B1", parts: 4 } });
    for (const e of ev) expect(Number.isNaN(Date.parse(e.time))).toBe(false);
  });

  test("json: a failure ends with an error event carrying the exit code (and a result when there is one)", () => {
    const x = rig("json");
    x.r.start({ bytesExpected: 10, parts: 1 });
    x.r.fail(new ZrbError("verification failed: 1 problem(s)", 7), 2, { ok: false });
    const last = JSON.parse(x.out.at(-1)!);
    expect(last).toMatchObject({ event: "error", exitCode: 7, message: "verification failed: 1 problem(s)", result: { ok: false } });
  });

  test("quiet: no start line, no progress, no redraw; --json keeps its events but drops progress", () => {
    const q = rig("lines", false);
    run(q);
    expect(q.logged.join("")).not.toContain("backup photos level 0");
    const t = rig("tty", false);
    run(t);
    expect(t.err).toEqual([]);
    const j = rig("json", false);
    run(j);
    expect(j.out.map((l) => JSON.parse(l).event)).toEqual(["start", "part"]);
  });

  test("a retry is one line: what, why, attempt k of n, next try in s", () => {
    expect(retryLine({ what: "list s3://b/zrb/", attempt: 2, maxAttempts: 5, error: "S3 endpoint http://h:1 stalled: no response within 1m", delayMs: 1234 })).toBe(
      "list s3://b/zrb/: attempt 2 of 5 failed: S3 endpoint http://h:1 stalled: no response within 1m; next try in 1.2 s",
    );
  });
});
