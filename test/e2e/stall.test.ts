/**
 * Never stuck: stalls of the S3 endpoint and of zfs, on real parts (zfs-fuse, radosgw, the
 * compiled binary). The endpoint stalls two ways, as measured on this machine: a loopback server
 * that accepts and never answers, and one that drips a valid HTTP response a byte a second —
 * standalone servers for `check` and `list`, the fault proxy in front of radosgw for `backup`,
 * `restore` and `verify` (their data requests stall mid-run). With s3.request_timeout 2s and
 * two attempts each run prints one retry line, then ends with exit 6 and one line naming the
 * endpoint and the stall; a stall that clears is retried to success; SIGTERM during a stall
 * stays prompt. A `zfs send` that stops producing and a `zfs receive` that stops consuming
 * (ZRB_ZFS wrappers) end with exit 5 after zfs.stall_timeout, and so does a `zfs receive` that
 * took the whole stream but never exits. Every server listens on 127.0.0.1
 * and stops by itself; every run is bounded (killed and failed if still running after 90 s).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { run, s3Client, snapshotGuid, writeRandomFile } from "../helpers/rig.ts";
import { manifests } from "../helpers/audit.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { startStallServer, type StallMode } from "../helpers/stallserver.ts";
import { configYaml, expectFailed, jsonResult, sigtermGracefully, spawnZrb, zrb } from "../helpers/zrb.ts";
import { forward, type FaultProxy, type ProxyAction, type ProxyRequest } from "../helpers/faultproxy.ts";

const PREFIX = "zrb/";
let sc: Scene;
let proxy: FaultProxy;
let seq = 0;

/** A config of the scene's dataset through `endpoint`, with short stall limits. */
function config(name: string, endpoint: string, more: { requestTimeout?: string; attempts?: number; zfsStall?: string } = {}): string {
  const doc = YAML.parse(
    configYaml({
      baseDir: join(sc.work, `base-${name}`),
      recipients: [sc.recipient],
      bucket: sc.bucket,
      s3: { ...sc.s3, endpoint },
      prefix: PREFIX,
      chunkSize: "1MiB",
      tasks: [{ name: "t", pool: sc.pool.pool, dataset: "src" }],
    }),
  );
  doc.s3.request_timeout = more.requestTimeout ?? "2s";
  doc.s3.retry.max_attempts = more.attempts ?? 2;
  if (more.zfsStall) doc.zfs = { stall_timeout: more.zfsStall };
  const path = join(sc.work, `${name}.yaml`);
  writeFileSync(path, YAML.stringify(doc));
  return path;
}

/** Run zrb; a run still going after `ms` is killed and fails the test: a stall must end by itself. */
async function bounded(args: string[], env: Record<string, string> = {}, ms = 90_000) {
  const p = await spawnZrb(args, { ...sc.env, ...env });
  let killed = false;
  const t = setTimeout(() => {
    killed = true;
    p.kill("SIGKILL");
  }, ms);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(t);
  if (killed) throw new Error(`zrb ${args[0]} was still running after ${ms / 1000} s (stuck):\n${stderr}`);
  return { code, stdout, stderr };
}

/** Retry lines: what, why (the stall), attempt k of n, next try in s. */
function retryLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => /attempt \d+ of \d+ failed: .* stalled: .*; next try in \d+\.\d s$/.test(l));
}

const isPart = (r: ProxyRequest) => decodeURIComponent(r.path).includes(`/${PREFIX}data/`);

let backupCfg: string;
let proxyCfg: string;
/** The level-0 snapshot every later backup builds on. */
let snap0: string;

beforeAll(async () => {
  sc = await scene({ name: "stall", poolMiB: 192, dataset: "src", proxy: true });
  proxy = sc.proxy!;
  await writeRandomFile(join(sc.mnt, "a.bin"), 3 * 1024 * 1024 + 11, 7);
  backupCfg = config("direct", sc.s3.endpoint);
  proxyCfg = config("proxied", proxy.endpoint);
  snap0 = (await zrb(["snapshot", "--config", backupCfg, "--task", "t", "--level", "0"], { env: sc.env })).stdout.trim();
  jsonResult((await zrb(["backup", "--config", backupCfg, "--task", "t", "--level", "0", "--json"], { env: sc.env })).stdout);
}, 300_000);

afterEach(() => {
  proxy.setDecide(() => forward);
  proxy.check();
});

afterAll(() => sc?.close(), 120_000);

describe("an S3 endpoint that stalls", () => {
  const modes: [StallMode, string][] = [
    ["silent", "no response within 2s of sending the request"],
    ["drip-body", "a trickle under 1 KiB per s3.request_timeout"],
  ];
  for (const [mode, why] of modes) {
    test(`check and list against a server that ${mode === "silent" ? "never answers" : "drips a byte a second"}: one retry line, then exit 6 naming the endpoint and the stall`, async () => {
      const srv = startStallServer({ mode, lifetimeMs: 80_000 });
      try {
        const cfg = config(`stall-${mode}`, srv.endpoint);
        for (const args of [["check", "--config", cfg], ["list", "--config", cfg, "--task", "t"]]) {
          const r = await bounded(args);
          // check's HEAD has no body: its headers drip, which is "no response" too.
          const expectWhy = args[0] === "check" && mode !== "silent" ? "no response within 2s" : why;
          await expectFailed(r, 6, `S3 endpoint ${srv.endpoint} stalled: `, expectWhy, "2 attempts in a row", "raise s3.request_timeout");
          const retries = retryLines(r.stderr);
          expect(retries.length).toBe(1);
          expect(retries[0]).toContain("attempt 1 of 2 failed: ");
        }
        expect(srv.connections).toBeGreaterThanOrEqual(4);
      } finally {
        srv.stop();
      }
    }, 200_000);
  }

  // A PUT's response is headers only: dripped, they are "no response"; a GET's body drips.
  const faults: [string, (r: ProxyRequest) => ProxyAction, string, string][] = [
    ["never answers", (r) => (isPart(r) ? { kind: "stall" } : forward), "no response within 2s", "no response within 2s"],
    ["drips a byte a second", (r) => (isPart(r) ? { kind: "dripResponse", head: r.method === "PUT" } : forward), "no response within 2s", "a trickle under 1 KiB"],
  ];
  for (const [what, decide, putWhy, getWhy] of faults) {
    test(`backup whose part uploads meet a server that ${what}: exit 6 naming the stall, and the rerun resumes to success`, async () => {
      await writeRandomFile(join(sc.mnt, `b${++seq}.bin`), 2 * 1024 * 1024, 100 + seq);
      await zrb(["snapshot", "--config", proxyCfg, "--task", "t", "--level", "1"], { env: sc.env });
      proxy.setDecide(decide);
      const r = await bounded(["backup", "--config", proxyCfg, "--task", "t", "--level", "1"]);
      await expectFailed(r, 6, `S3 endpoint ${proxy.endpoint} stalled: `, putWhy, `/${PREFIX}data/`, "it resumes backup");
      expect(retryLines(r.stderr).length).toBeGreaterThanOrEqual(1);
      expect(proxy.log.some((l) => isPart(l) && l.fault)).toBe(true);
      proxy.setDecide(() => forward);
      const ok = jsonResult((await bounded(["backup", "--config", proxyCfg, "--task", "t", "--level", "1", "--json"])).stdout);
      expect(ok.resumed).toBe(true);
    }, 200_000);

    test(`restore and verify whose part downloads meet a server that ${what}: exit 6 naming the stall, nothing left on the target`, async () => {
      proxy.setDecide(decide);
      const target = `${sc.pool.pool}/r${++seq}`;
      const rr = await bounded(["restore", "--config", proxyCfg, "--task", "t", "--target", target, "--private-key", sc.keyFile]);
      await expectFailed(rr, 6, `S3 endpoint ${proxy.endpoint} stalled: `, getWhy, "2 attempts in a row");
      expect(retryLines(rr.stderr).length).toBeGreaterThanOrEqual(1);
      expect((await run(["zfs", "list", "-H", target], { allowFail: true })).code).not.toBe(0);
      const vr = await bounded(["verify", "--config", proxyCfg, "--task", "t", "--private-key", sc.keyFile]);
      await expectFailed(vr, 6, `S3 endpoint ${proxy.endpoint} stalled: `, getWhy, "2 attempts in a row");
      expect(retryLines(vr.stderr).length).toBeGreaterThanOrEqual(1);
    }, 200_000);
  }

  test("a stall that clears is retried within the budget: one retry line, and the backup completes", async () => {
    await writeRandomFile(join(sc.mnt, `c${++seq}.bin`), 1024 * 1024, 300 + seq);
    await zrb(["snapshot", "--config", proxyCfg, "--task", "t", "--level", "1"], { env: sc.env });
    let stalled = 0;
    proxy.setDecide((r) => (isPart(r) && r.method === "PUT" && stalled++ === 0 ? { kind: "stall" } : forward));
    const r = await bounded(["backup", "--config", proxyCfg, "--task", "t", "--level", "1", "--json"]);
    expect(r.code).toBe(0);
    expect(retryLines(r.stderr).length).toBe(1);
    expect(retryLines(r.stderr)[0]).toContain(`S3 endpoint ${proxy.endpoint} stalled: no response within 2s`);
    // --json: the retry is an event too, before the done event.
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === "retry")).toEqual([expect.objectContaining({ attempt: 1, maxAttempts: 2, error: expect.stringContaining("stalled") })]);
    expect(events.at(-1).event).toBe("done");
  }, 200_000);

  test("SIGTERM while a request stalls (request_timeout 60s) stops the run promptly and gracefully", async () => {
    await writeRandomFile(join(sc.mnt, `d${++seq}.bin`), 1024 * 1024, 400 + seq);
    const cfg = config("sigterm", proxy.endpoint, { requestTimeout: "60s", attempts: 5 });
    await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "1"], { env: sc.env });
    proxy.setDecide((r) => (isPart(r) && r.method === "PUT" ? { kind: "stall" } : forward));
    const from = proxy.log.length;
    const p = await spawnZrb(["backup", "--config", cfg, "--task", "t", "--level", "1"], sc.env);
    for (let i = 0; i < 600 && !proxy.log.slice(from).some((l) => isPart(l) && l.action === "stall"); i++) await Bun.sleep(100);
    expect(proxy.log.slice(from).some((l) => isPart(l) && l.action === "stall")).toBe(true);
    // Graceful: exit 143 with one "interrupted by SIGTERM" line, not the 20 s grace timeout.
    await sigtermGracefully(p);
  }, 200_000);
});

describe("zfs that stalls", () => {
  test("zfs send that stops producing bytes: exit 5 after zfs.stall_timeout, and the rerun succeeds", async () => {
    await writeRandomFile(join(sc.mnt, `e${++seq}.bin`), 2 * 1024 * 1024, 500 + seq);
    const cfg = config("zfs-send", sc.s3.endpoint, { zfsStall: "2s" });
    await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "1"], { env: sc.env });
    const fake = join(sc.work, "zfs-send-stall");
    // `send` (not the -n dry run) passes 100 kB, then keeps its stdout open and says nothing for 60 s.
    writeFileSync(fake, `#!/bin/bash\nif [ "$1" = send ] && [ "$2" != -n ]; then zfs "$@" | head -c 100000; exec sleep 60; fi\nexec zfs "$@"\n`, { mode: 0o755 });
    const r = await bounded(["backup", "--config", cfg, "--task", "t", "--level", "1"], { ZRB_ZFS: fake });
    await expectFailed(r, 5, "zfs send of ", "produced no data for 2s, so zrb stopped it", "zfs.stall_timeout");
    const ok = await bounded(["backup", "--config", cfg, "--task", "t", "--level", "1"]);
    expect(ok.code).toBe(0);
  }, 200_000);

  test("zfs receive that stops taking bytes: exit 5 after zfs.stall_timeout, no target left", async () => {
    const cfg = config("zfs-recv", sc.s3.endpoint, { zfsStall: "2s" });
    const fake = join(sc.work, "zfs-recv-stall");
    // `receive` reads 200 kB, then keeps its stdin open and reads nothing for 60 s.
    writeFileSync(fake, `#!/bin/bash\nif [ "$1" = receive ] && [ "$2" != -A ]; then head -c 200000 >/dev/null; exec sleep 60; fi\nexec zfs "$@"\n`, { mode: 0o755 });
    const target = `${sc.pool.pool}/r${++seq}`;
    const r = await bounded(["restore", "--config", cfg, "--task", "t", "--target", target, "--private-key", sc.keyFile, "--level", "0"], { ZRB_ZFS: fake });
    await expectFailed(r, 5, `zfs receive into ${target} took no data for 2s, so zrb stopped it`);
    expect((await run(["zfs", "list", "-H", target], { allowFail: true })).code).not.toBe(0);
    const scratch = join(sc.work, "base-zfs-recv", "restore-scratch");
    expect((existsSync(scratch) ? readdirSync(scratch) : []).filter((f) => !f.endsWith(".lock"))).toEqual([]);
    // The same restore without the stall brings back the level-0 snapshot itself (its guid).
    const ok = await bounded(["restore", "--config", cfg, "--task", "t", "--target", target, "--private-key", sc.keyFile, "--level", "0"]);
    expect(ok.code).toBe(0);
    expect(await snapshotGuid(`${target}@${snap0.split("@")[1]}`)).toBe(await snapshotGuid(snap0));
  }, 200_000);

  test("a target someone makes between zrb's look and the receive is theirs: the failed step leaves it", async () => {
    const cfg = config("zfs-recv-race", sc.s3.endpoint);
    const fake = join(sc.work, "zfs-recv-race");
    // `receive` finds the target made by someone else in that instant, as zfs says it: without -F
    // it exists; with -F (--force) it has snapshots that are not in the stream.
    for (const force of [false, true]) {
      const target = `${sc.pool.pool}/r${++seq}`;
      const says = force ? `destination has snapshots (eg. ${target}@theirs)\" >&2; echo \"must destroy them to overwrite it` : `destination '${target}' exists\" >&2; echo \"must specify -F to overwrite it`;
      writeFileSync(
        fake,
        `#!/bin/bash\nif [ "$1" = receive ] && [ "$2" != -A ]; then cat >/dev/null; zfs create '${target}'; zfs snapshot '${target}@theirs'; echo "cannot receive new filesystem stream: ${says}" >&2; exit 1; fi\nif [ "$1" = receive ]; then echo "receive -A $*" >> '${fake}.calls'; fi\nexec zfs "$@"\n`,
        { mode: 0o755 },
      );
      const r = await bounded(["restore", "--config", cfg, "--task", "t", "--target", target, "--private-key", sc.keyFile, "--level", "0", ...(force ? ["--force"] : [])], { ZRB_ZFS: fake });
      await expectFailed(r, 5, `into ${target} failed`);
      expect((await run(["zfs", "list", "-H", "-o", "name", `${target}@theirs`])).stdout.trim()).toBe(`${target}@theirs`);
      expect(existsSync(`${fake}.calls`)).toBe(false); // no receive state of theirs aborted
    }
  }, 200_000);

  test("zfs receive that takes the whole stream but never exits: exit 5 after zfs.stall_timeout, no target left", async () => {
    const cfg = config("zfs-recv-hang", sc.s3.endpoint, { zfsStall: "2s" });
    const fake = join(sc.work, "zfs-recv-hang");
    const got = join(sc.work, "zfs-recv-hang.bytes");
    // `receive` reads every byte up to the end of its stdin (the END record included), records
    // how many, then hangs without exiting (the sleep outlasts the 90 s bound on the run).
    writeFileSync(fake, `#!/bin/bash\nif [ "$1" = receive ] && [ "$2" != -A ]; then wc -c > '${got}'; exec sleep 600; fi\nexec zfs "$@"\n`, { mode: 0o755 });
    const target = `${sc.pool.pool}/r${++seq}`;
    const r = await bounded(["restore", "--config", cfg, "--task", "t", "--target", target, "--private-key", sc.keyFile, "--level", "0"], { ZRB_ZFS: fake });
    await expectFailed(r, 5, `zfs receive into ${target} took the whole stream but did not exit for 2s, so zrb stopped it`, "zfs.stall_timeout");
    // It was the wait for the exit that stalled: the receiver had read the whole stream.
    const l0 = (await manifests(await s3Client(sc.s3), sc.bucket, PREFIX, sc.fs)).find((m) => m.snapshot.name === snap0);
    expect(Number(readFileSync(got, "utf8").trim())).toBe(l0.stream.size);
    expect((await run(["zfs", "list", "-H", target], { allowFail: true })).code).not.toBe(0);
    const scratch = join(sc.work, "base-zfs-recv-hang", "restore-scratch");
    expect((existsSync(scratch) ? readdirSync(scratch) : []).filter((f) => !f.endsWith(".lock"))).toEqual([]);
  }, 200_000);
});
