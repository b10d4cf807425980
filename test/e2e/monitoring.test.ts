/**
 * Never silent, on real parts (zfs-fuse, radosgw, the compiled binary): progress on a journal
 * (a line every --progress-interval with ETA), on a terminal (one line redrawn, under script(1)'s
 * pty) and as --json events; --quiet; the bandwidth limit measured against radosgw for uploads,
 * downloads and the config key; the Prometheus textfile after backup, restore, verify and a
 * failure; healthchecks-style pings to a loopback listener (credentials never printed, a dead
 * ping never fails the backup); `zrb status --max-age` (exit 10); --help without colour codes
 * when stdout is not a terminal or NO_COLOR is set.
 *
 * The bandwidth figures are measured over more than 8 MiB: never more than the limit + 10 %, and
 * never less than 70 % of it (normal runs measure 94–101 %; a limit enforced at half the rate
 * measures under 50 %). The lower bound is generous on purpose: a loaded machine only makes
 * the run slower, and at 2–3 MiB/s the limit, not the machine, sets the pace.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { run, s3Client, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, expectFailed, jsonEvents, jsonResult, measuredRate, zrb, zrbCommand } from "../helpers/zrb.ts";
import { parseSamples } from "../../src/report/metrics.ts";

const MiB = 1024 * 1024;
let sc: Scene;
let cfg: string;
let deadCfg: string;
let metrics: string;
const pings: { path: string; auth: string | null }[] = [];
let pingServer: ReturnType<typeof Bun.serve>;
let pingStop: ReturnType<typeof setTimeout>;
const UUID = "5f0c6a1e-secret-uuid";

function writeConfig(name: string, edit: (doc: any) => void): string {
  const doc = YAML.parse(
    configYaml({ baseDir: join(sc.work, `base-${name}`), recipients: [sc.recipient], bucket: sc.bucket, s3: sc.s3, chunkSize: "1MiB", tasks: [{ name: "t", pool: sc.pool.pool, dataset: "src" }] }),
  );
  doc.monitoring = { metrics_file: metrics, ping_url: `http://zrb:pw-s3cret@127.0.0.1:${pingServer.port}/ping/${UUID}` };
  edit(doc);
  const path = join(sc.work, `${name}.yaml`);
  writeFileSync(path, YAML.stringify(doc));
  return path;
}

/** Second of the last `zrb snapshot` this file took: snapshot names carry the time to the second. */
let lastSnapSecond = 0;

/** `zrb snapshot` of the task at `level`, in a later second than the one before (same name otherwise: "dataset already exists"). */
async function snapshot(config: string, level: number): Promise<void> {
  const sec = () => Math.floor(Date.now() / 1000);
  if (sec() <= lastSnapSecond) await Bun.sleep((lastSnapSecond + 1) * 1000 - Date.now() + 20);
  await zrb(["snapshot", "--config", config, "--task", "t", "--level", String(level)], { env: sc.env });
  lastSnapSecond = sec();
}

beforeAll(async () => {
  sc = await scene({ name: "monitoring", poolMiB: 256, dataset: "src" });
  metrics = join(sc.work, "zrb.prom");
  pingServer = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const u = new URL(req.url);
      pings.push({ path: u.pathname, auth: req.headers.get("authorization") });
      return new Response("OK");
    },
  });
  pingStop = setTimeout(() => pingServer.stop(true), 600_000); // stops by itself
  cfg = writeConfig("main", () => {});
  // A second host whose endpoint refuses connections: every store call fails (exit 6).
  deadCfg = writeConfig("dead", (d) => {
    d.s3.endpoint = "http://127.0.0.1:1";
    d.s3.retry.max_attempts = 1;
  });
  await writeRandomFile(join(sc.mnt, "big.bin"), 8 * MiB + 5, 1);
  await snapshot(cfg, 0);
}, 300_000);

afterAll(async () => {
  clearTimeout(pingStop);
  pingServer?.stop(true);
  await sc?.close();
}, 120_000);

const PROGRESS = /backup t level \d+: [\d.]+ \S+ of ~[\d.]+ \S+ \(\d+%\), [\d.?]+ \S+\/s, ETA \S+( \S+)?, parts \d+\/~\d+/;
/** The same line for an incremental on zfs-fuse, which has no `written` to estimate it from. */
const PROGRESS_UNKNOWN = /backup t level \d+: [\d.]+ \S+, [\d.?]+ \S+\/s, ETA unknown, parts \d+\/\?/;

describe("progress", () => {
  test("a journal (stderr not a terminal) gets a start line and a line every --progress-interval with ETA", async () => {
    const r = await zrb(["backup", "--config", cfg, "--task", "t", "--level", "0", "--progress-interval", "1s", "--bwlimit", "2MiB/s"], { env: sc.env });
    expect(r.stderr).toMatch(/backup t level 0: about [\d.]+ MiB to send \(estimate: referenced\), ~\d+ part\(s\), backup \S+/);
    const lines = r.stderr.split("\n").filter((l) => PROGRESS.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(2); // ≥ 4 s at 2 MiB/s, one line a second
    expect(r.stderr).not.toContain("\r");
  }, 120_000);

  test("--json: start, progress, part and done events, one JSON object per line on stdout", async () => {
    await writeRandomFile(join(sc.mnt, "one.bin"), 3 * MiB, 2);
    await snapshot(cfg, 1);
    const r = await zrb(["backup", "--config", cfg, "--task", "t", "--level", "1", "--json", "--progress-interval", "1s", "--bwlimit", "1MiB/s"], { env: sc.env });
    const ev = jsonEvents(r.stdout);
    const result = jsonResult(r.stdout);
    expect(ev[0]).toMatchObject({ event: "start", command: "backup", task: "t", dataset: sc.fs, level: 1, backupId: result.backupId, snapshot: result.snapshot });
    expect(ev.filter((e) => e.event === "part").length).toBe(result.parts);
    const progress = ev.filter((e) => e.event === "progress");
    expect(progress.length).toBeGreaterThanOrEqual(1);
    for (const p of progress) expect(Object.keys(p)).toEqual(expect.arrayContaining(["bytesDone", "bytesExpected", "rate", "etaSeconds", "partsDone", "parts", "elapsedSeconds"]));
    expect(ev.at(-1)).toMatchObject({ event: "done", exitCode: 0, bytes: result.streamBytes });
    expect(r.stderr).not.toMatch(PROGRESS); // the human lines are the events' now
  }, 120_000);

  test("--quiet: no progress, nothing on stderr but the one warning", async () => {
    await writeRandomFile(join(sc.mnt, "two.bin"), 2 * MiB, 3);
    await snapshot(cfg, 1);
    const r = await zrb(["backup", "--config", cfg, "--task", "t", "--level", "1", "--quiet", "--progress-interval", "1s", "--bwlimit", "1MiB/s"], { env: sc.env });
    // Warnings still show (this config has no signing_key, which is said once per run); nothing else.
    expect(r.stderr.split("\n").filter((l) => l && !l.includes("no signing_key in"))).toEqual([]);
  }, 120_000);

  test("a terminal gets one line redrawn in place (run under script(1)'s pty)", async () => {
    await writeRandomFile(join(sc.mnt, "three.bin"), 3 * MiB, 4);
    await snapshot(cfg, 1);
    const cmd = [...zrbCommand(), "backup", "--config", cfg, "--task", "t", "--level", "1", "--bwlimit", "1MiB/s"].map((w) => `'${w}'`).join(" ");
    const r = await run(["script", "-qfec", cmd, "/dev/null"], { env: sc.env });
    expect(r.stdout).toContain("\r\x1b[K");
    const redraws = r.stdout.split("\r\x1b[K").filter((s) => PROGRESS_UNKNOWN.test(s));
    expect(redraws.length).toBeGreaterThanOrEqual(2);
    expect(redraws.every((s) => !s.includes("\n"))).toBe(true); // redrawn, never scrolled
    expect(r.stdout).toMatch(/backup \S+: level 1 /); // and the success line after it
  }, 120_000);
});

describe("bandwidth limit (radosgw, measured)", () => {
  test("--bwlimit holds a backup's uploads to the limit (70 % to 110 % of it, measured)", async () => {
    const limit = 2 * MiB;
    const r = await zrb(["backup", "--config", cfg, "--task", "t", "--level", "0", "--force", "--json", "--bwlimit", "2MiB/s"], { env: sc.env });
    const m = measuredRate(r.stdout, limit);
    console.log(`backup upload: ${(m.rate / MiB).toFixed(2)} MiB/s over ${m.seconds.toFixed(1)} s = ${(m.share * 100).toFixed(1)} % of the 2 MiB/s limit`);
    expect(m.bytes).toBeGreaterThan(8 * MiB);
    expect(m.share).toBeLessThanOrEqual(1.1);
    expect(m.share).toBeGreaterThanOrEqual(0.7);
  }, 120_000);

  test("a schedule's entry passes mid-run: at 23:00 the limit goes from 1 MiB/s to off, in the events and the progress (ZRB_NOW, TZ=UTC)", async () => {
    // Its own dataset and task: this run's clock is in 2027, the main task's heads stay as they are.
    await run(["zfs", "create", `${sc.pool.pool}/sched`]);
    const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", `${sc.pool.pool}/sched`])).stdout.trim();
    await writeRandomFile(join(mnt, "s.bin"), 8 * MiB, 9);
    const c = writeConfig("sched", (d) => (d.tasks = [{ name: "s", pool: sc.pool.pool, dataset: "sched", enabled: true }]));
    const env = { ...sc.env, TZ: "UTC", ZRB_NOW: "2027-03-01T22:59:55Z" };
    await zrb(["snapshot", "--config", c, "--task", "s", "--level", "0"], { env });
    const args = ["backup", "--config", c, "--task", "s", "--level", "0", "--json", "--progress-interval", "1s", "--bwlimit", "08:00,1MiB/s 23:00,off"];
    const ev = jsonEvents((await zrb(args, { env })).stdout);
    const changes = ev.filter((e) => e.event === "limit");
    expect(changes.map((e) => e.limit)).toEqual([null]);
    const at = Date.parse(changes[0].time);
    expect(at).toBeGreaterThanOrEqual(Date.parse("2027-03-01T23:00:00Z"));
    const progress = ev.filter((e) => e.event === "progress");
    const before = progress.filter((e) => Date.parse(e.time) < at);
    expect(before.length).toBeGreaterThan(0);
    expect(before.every((e) => e.limit === MiB)).toBe(true);
    expect(progress.filter((e) => Date.parse(e.time) > at).every((e) => e.limit === null)).toBe(true);
    expect(ev.at(-1).event).toBe("done");
  }, 120_000);

  test("--bwlimit holds a restore's downloads, and s3.bandwidth_limit a verify's", async () => {
    const target = `${sc.pool.pool}/restored`;
    const r = await zrb(["restore", "--config", cfg, "--task", "t", "--level", "0", "--target", target, "--private-key", sc.keyFile, "--json", "--bwlimit", "2MiB/s"], { env: sc.env });
    // 2 MiB/s, not more: over 8 MiB that is 4 s, so a second lost to a busy machine costs < 25 %.
    const m = measuredRate(r.stdout, 2 * MiB);
    console.log(`restore download: ${(m.rate / MiB).toFixed(2)} MiB/s over ${m.seconds.toFixed(1)} s = ${(m.share * 100).toFixed(1)} % of the 2 MiB/s limit`);
    expect(m.bytes).toBeGreaterThan(8 * MiB);
    expect(m.share).toBeLessThanOrEqual(1.1);
    expect(m.share).toBeGreaterThanOrEqual(0.7);

    const limited = writeConfig("limited", (d) => (d.s3.bandwidth_limit = "2MiB/s"));
    const v = await zrb(["verify", "--config", limited, "--task", "t", "--level", "0", "--json"], { env: sc.env });
    const mv = measuredRate(v.stdout, 2 * MiB);
    console.log(`verify download: ${(mv.rate / MiB).toFixed(2)} MiB/s over ${mv.seconds.toFixed(1)} s = ${(mv.share * 100).toFixed(1)} % of the 2 MiB/s limit`);
    expect(mv.bytes).toBeGreaterThan(8 * MiB);
    expect(mv.share).toBeLessThanOrEqual(1.1);
    expect(mv.share).toBeGreaterThanOrEqual(0.7);
  }, 180_000);
});

describe("metrics and pings", () => {
  const value = (name: string, labels: Record<string, string>) =>
    parseSamples(readFileSync(metrics, "utf8")).find((s) => s.name === name && JSON.stringify(Object.fromEntries(s.labels)) === JSON.stringify(labels))?.value;

  test("the textfile holds the last backup, restore and verify; a failure keeps the last success time", () => {
    const L0 = { task: "t", pool: sc.pool.pool, dataset: "src", level: "0" };
    for (const m of ["last_run_timestamp_seconds", "last_success_timestamp_seconds", "last_duration_seconds", "last_bytes", "last_exit_code"])
      for (const c of ["backup", "restore", "verify"]) expect(parseSamples(readFileSync(metrics, "utf8")).some((s) => s.name === `zrb_${c}_${m}`)).toBe(true);
    expect(value("zrb_backup_last_exit_code", L0)).toBe("0");
    expect(Number(value("zrb_backup_last_bytes", L0))).toBeGreaterThan(8 * MiB);
    expect(Math.abs(Number(value("zrb_backup_last_success_timestamp_seconds", L0)) - Date.now() / 1000)).toBeLessThan(600);
  });

  test("a prune writes its own series (a dry run does not)", async () => {
    const T = { task: "t", pool: sc.pool.pool, dataset: "src" };
    await zrb(["prune", "--allow-unsigned", "--config", cfg, "--task", "t", "--keep-last", "50", "--dry-run"], { env: sc.env });
    expect(value("zrb_prune_last_exit_code", T)).toBeUndefined();
    await zrb(["prune", "--allow-unsigned", "--config", cfg, "--task", "t", "--keep-last", "50"], { env: sc.env });
    expect(value("zrb_prune_last_exit_code", T)).toBe("0");
    expect(value("zrb_prune_last_bytes", T)).toBe("0"); // nothing to delete under keep-last 50
    expect(Math.abs(Number(value("zrb_prune_last_success_timestamp_seconds", T)) - Date.now() / 1000)).toBeLessThan(600);
  }, 60_000);

  test("a failed backup: exit code 6 recorded, last success kept; pings start then fail", async () => {
    const L0 = { task: "t", pool: sc.pool.pool, dataset: "src", level: "0" };
    const success = value("zrb_backup_last_success_timestamp_seconds", L0);
    const from = pings.length;
    const r = await zrb(["backup", "--config", deadCfg, "--task", "t", "--level", "0"], { env: sc.env, allowFail: true });
    await expectFailed(r, 6, "cannot reach S3 endpoint http://127.0.0.1:1");
    expect(value("zrb_backup_last_exit_code", L0)).toBe("6");
    expect(value("zrb_backup_last_success_timestamp_seconds", L0)).toBe(success!);
    expect(Number(value("zrb_backup_last_run_timestamp_seconds", L0))).toBeGreaterThan(Number(success));
    expect(pings.slice(from).map((p) => p.path)).toEqual([`/ping/${UUID}/start`, `/ping/${UUID}/fail`]);
  }, 60_000);

  test("a successful backup pings start then the URL itself, with the credentials as a header", async () => {
    await writeRandomFile(join(sc.mnt, "four.bin"), 100_000, 5);
    await snapshot(cfg, 1);
    const from = pings.length;
    const r = await zrb(["backup", "--config", cfg, "--task", "t", "--level", "1"], { env: sc.env });
    expect(pings.slice(from)).toEqual([
      { path: `/ping/${UUID}/start`, auth: `Basic ${Buffer.from("zrb:pw-s3cret").toString("base64")}` },
      { path: `/ping/${UUID}`, auth: `Basic ${Buffer.from("zrb:pw-s3cret").toString("base64")}` },
    ]);
    expect(r.stderr).not.toContain("ping");
  }, 60_000);

  test("a ping that cannot get through is a warning, never a failed backup, and never shows its secrets", async () => {
    const noPing = writeConfig("noping", (d) => (d.monitoring.ping_url = `http://zrb:pw-s3cret@127.0.0.1:1/ping/${UUID}`));
    await writeRandomFile(join(sc.mnt, "five.bin"), 100_000, 6);
    await snapshot(noPing, 1);
    const r = await zrb(["backup", "--config", noPing, "--task", "t", "--level", "1"], { env: sc.env });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("ping start to http://127.0.0.1:1/… failed: it could not be sent");
    expect(r.stderr).toContain("ping success to http://127.0.0.1:1/… failed");
    for (const secret of ["pw-s3cret", UUID, "/ping/"]) expect(r.stderr + r.stdout).not.toContain(secret);
    // an unwritable metrics directory is a warning too
    const noMetrics = writeConfig("nometrics", (d) => (d.monitoring = { metrics_file: join(sc.work, "missing-dir", "zrb.prom") }));
    const v = await zrb(["verify", "--config", noMetrics, "--task", "t", "--sample", "1"], { env: sc.env });
    expect(v.stderr).toContain(`metrics: cannot update ${join(sc.work, "missing-dir", "zrb.prom")}: directory`);
  }, 60_000);
});

describe("zrb status --max-age", () => {
  const later = (h: number) => ({ ...sc.env, ZRB_NOW: new Date(Date.now() + h * 3600_000).toISOString() });

  test("fresh: exit 0 and a 'fresh' line; older than the limit: exit 10 naming the task, the backup and its age", async () => {
    const ok = await zrb(["status", "--config", cfg, "--max-age", "1h"], { env: sc.env });
    expect(ok.stdout).toMatch(/fresh: the newest backup finished \d+s ago \(--max-age 1h\)/);
    const r = await zrb(["status", "--config", cfg, "--max-age", "1h"], { env: later(3), allowFail: true });
    const line = await expectFailed(r, 10, `1 stale: task t (${sc.fs}): the newest backup (`, "more than --max-age 1h");
    expect(line).toMatch(/, level \d\) finished \d{4}-\d\d-\d\dT\S+, 3h \d\dm ago, /);
    expect(r.stdout).toContain("STALE: task t");
  }, 60_000);

  test("--level: each level (or a lower one) on its own; --json carries the checks and still exits 10", async () => {
    // level 1 is younger than level 0 here: make level 0 look 3 h old and level 1 not
    const r = await zrb(["status", "--config", cfg, "--max-age", "3h", "--level", "0,1", "--json"], { env: later(2), allowFail: true });
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s[0].freshness.map((c: any) => [c.level, c.stale])).toEqual([
      [0, false],
      [1, false],
    ]);
    const old = await zrb(["status", "--config", cfg, "--max-age", "1h", "--level", "0", "--json"], { env: later(2), allowFail: true });
    await expectFailed(old, 10, "the newest backup at level ≤ 0");
    expect(JSON.parse(old.stdout)[0].freshness[0]).toMatchObject({ level: 0, stale: true });
  }, 60_000);

  test("the newest backup's manifest gone from the bucket (a lifecycle rule, a hand): stale whatever its age (exit 10), naming it", async () => {
    const heads: { backupId: string; level: number; finishedAt: string }[] = JSON.parse((await zrb(["status", "--config", cfg, "--json"], { env: sc.env })).stdout)[0].heads;
    const newest = heads.sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt))[0]!;
    const client = await s3Client(sc.s3);
    const key = (await client.send(new ListObjectsV2Command({ Bucket: sc.bucket }))).Contents!.map((o) => o.Key!).find((k) => k.endsWith(`/${newest.backupId}.manifest.yaml`))!;
    const body = await (await client.send(new GetObjectCommand({ Bucket: sc.bucket, Key: key }))).Body!.transformToByteArray();
    await client.send(new DeleteObjectCommand({ Bucket: sc.bucket, Key: key }));
    try {
      const r = await zrb(["status", "--config", cfg, "--max-age", "30d"], { env: sc.env, allowFail: true });
      await expectFailed(r, 10, `the newest backup (${newest.backupId}, level ${newest.level}) that the heads name is not in the bucket`);
    } finally {
      await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: key, Body: body }));
    }
    expect((await zrb(["status", "--config", cfg, "--max-age", "30d"], { env: sc.env })).code).toBe(0);
  }, 60_000);

  test("a task without any backup is stale; an unreachable store is exit 6, not a verdict; --level alone is a usage error", async () => {
    await run(["zfs", "create", `${sc.pool.pool}/empty`]);
    const other = writeConfig("other", (d) => (d.tasks = [{ name: "e", pool: sc.pool.pool, dataset: "empty", enabled: true }]));
    await expectFailed(await zrb(["status", "--config", other, "--max-age", "30d"], { env: sc.env, allowFail: true }), 10, `task e (${sc.pool.pool}/empty) has no backup at all`);
    await expectFailed(await zrb(["status", "--config", deadCfg, "--max-age", "30d"], { env: sc.env, allowFail: true }), 6, "http://127.0.0.1:1");
    await expectFailed(await zrb(["status", "--config", cfg, "--level", "0"], { env: sc.env, allowFail: true }), 2, "--level only applies with --max-age");
  }, 60_000);
});

describe("--help", () => {
  const ESC = "\x1b[";
  test("no colour codes when stdout is not a terminal, nor on a terminal with NO_COLOR; colours otherwise", async () => {
    const piped = await zrb(["backup", "--help"]);
    expect(piped.stdout).toContain("--bwlimit");
    expect(piped.stdout).not.toContain(ESC);
    expect((await zrb(["--help"])).stdout).not.toContain(ESC);
    const cmd = [...zrbCommand(), "backup", "--help"].map((w) => `'${w}'`).join(" ");
    // A user's terminal: citty itself leaves colours out under CI=… or TEST=… (as CI machines set), so clear those.
    const terminal = { NO_COLOR: "", TERM: "xterm", CI: "", TEST: "" };
    const tty = await run(["script", "-qfec", cmd, "/dev/null"], { env: terminal });
    expect(tty.stdout).toContain(ESC);
    const noColor = await run(["script", "-qfec", cmd, "/dev/null"], { env: { ...terminal, NO_COLOR: "1" } });
    expect(noColor.stdout).toContain("--progress-interval");
    expect(noColor.stdout).not.toContain(ESC);
  }, 60_000);
});
