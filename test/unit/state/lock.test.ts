import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireLock, lockHeld, processStart } from "../../../src/state/lock.ts";
import { ZrbError } from "../../../src/util/errors.ts";

const dir = () => mkdtempSync(join(tmpdir(), "zrb-lock-"));

describe("per-dataset lock", () => {
  test("is exclusive and names its holder", () => {
    const p = join(dir(), "zrb.lock");
    const a = acquireLock(p, "dataset tank/x", "zrb backup --level 0");
    let err: unknown;
    try {
      acquireLock(p, "dataset tank/x", "zrb backup --level 1");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ZrbError);
    expect((err as ZrbError).exitCode).toBe(4);
    expect((err as Error).message).toContain(`dataset tank/x is locked by 'zrb backup --level 0' (pid ${process.pid}`);
    a.release();
    expect(existsSync(p)).toBe(false);
    acquireLock(p, "d", "c").release();
  });
  test("a lock whose process is gone is stale and taken over", () => {
    const p = join(dir(), "zrb.lock");
    writeFileSync(p, JSON.stringify({ pid: 999999, start: "1", host: require("node:os").hostname(), command: "old", since: "x" }));
    const l = acquireLock(p, "d", "new");
    expect(JSON.parse(readFileSync(p, "utf8")).pid).toBe(process.pid);
    l.release();
  });
  test("a reused pid (same pid, other start time) is not mistaken for the owner", () => {
    const p = join(dir(), "zrb.lock");
    writeFileSync(p, JSON.stringify({ pid: process.pid, start: "0", host: require("node:os").hostname(), command: "old", since: "x" }));
    const l = acquireLock(p, "d", "new");
    expect(JSON.parse(readFileSync(p, "utf8")).start).toBe(processStart(process.pid)!);
    l.release();
  });
  test("a live holder recorded by a zrb without flock (same host, live pid) still counts", () => {
    const p = join(dir(), "zrb.lock");
    writeFileSync(p, JSON.stringify({ pid: 1, start: processStart(1), host: require("node:os").hostname(), command: "old zrb", since: "x" }));
    expect(() => acquireLock(p, "d", "new")).toThrow("locked by 'old zrb'");
  });
  test("a lock file naming another host is stale when no process holds its flock (a host renamed after kill -9, issue 20)", () => {
    const p = join(dir(), "zrb.lock");
    writeFileSync(p, JSON.stringify({ pid: 999999, start: "1", host: "the-old-hostname", command: "zrb backup --level 0", since: "x" }));
    expect(lockHeld(p)).toBe(false);
    const l = acquireLock(p, "d", "new");
    expect(JSON.parse(readFileSync(p, "utf8")).pid).toBe(process.pid);
    expect(lockHeld(p)).toBe(true); // our own flock: any other process sees it held
    l.release();
    expect(lockHeld(p)).toBe(false);
  });
  test("a lock whose flock another process holds is held, whatever host its file names", async () => {
    const p = join(dir(), "zrb.lock");
    writeFileSync(p, JSON.stringify({ pid: 999999, start: "1", host: "another-host", command: "zrb backup --level 1", since: "x" }));
    // One process holds the flock: bash takes it on fd 9, then becomes `sleep` with fd 9 open.
    const holder = Bun.spawn(["bash", "-c", 'exec 9<"$1" && flock -x 9 && exec sleep 30', "_", p]);
    try {
      for (let i = 0; i < 100 && !lockHeld(p); i++) await Bun.sleep(20);
      expect(lockHeld(p)).toBe(true);
      expect(() => acquireLock(p, "dataset tank/x", "new")).toThrow("dataset tank/x is locked by 'zrb backup --level 1' (pid 999999 on another-host");
    } finally {
      holder.kill(9);
      await holder.exited;
    }
    expect(lockHeld(p)).toBe(false);
    acquireLock(p, "d", "new").release();
  });
  test("many contenders racing for a stale lock: never two holders at once (25 trials × 8 processes)", async () => {
    const script = join(dir(), "contender.ts");
    writeFileSync(
      script,
      `import { acquireLock } from ${JSON.stringify(join(import.meta.dir, "../../../src/state/lock.ts"))};
import { appendFileSync } from "node:fs";
const [path, log, startAt] = process.argv.slice(2);
while (Date.now() < Number(startAt)) {}
try {
  const l = acquireLock(path, "d", "c" + process.pid);
  appendFileSync(log, "A " + (performance.timeOrigin + performance.now()) + "\\n");
  Bun.sleepSync(20);
  appendFileSync(log, "R " + (performance.timeOrigin + performance.now()) + "\\n");
  l.release();
} catch (e) { if (e?.exitCode !== 4) { console.error(e); process.exit(1); } }
`,
    );
    let acquired = 0;
    for (let trial = 0; trial < 25; trial++) {
      const d = dir();
      const p = join(d, "zrb.lock");
      const log = join(d, "log");
      writeFileSync(log, "");
      writeFileSync(p, JSON.stringify({ pid: 999999, start: "1", host: require("node:os").hostname(), command: "dead", since: "x" }));
      const startAt = Date.now() + 400;
      const procs = Array.from({ length: 8 }, () => Bun.spawn([process.execPath, script, p, log, String(startAt)], { stderr: "pipe" }));
      for (const pr of procs) {
        const code = await pr.exited;
        if (code !== 0) console.error(await new Response(pr.stderr).text());
        expect(code).toBe(0);
      }
      const events = readFileSync(log, "utf8").trim().split("\n").map((l) => l.split(" ")).map(([k, t]) => ({ k, t: Number(t) }));
      events.sort((a, b) => a.t - b.t);
      let holders = 0;
      for (const e of events) {
        holders += e.k === "A" ? 1 : -1;
        expect(holders).toBeLessThanOrEqual(1);
      }
      acquired += events.filter((e) => e.k === "A").length;
      expect(existsSync(p)).toBe(false);
    }
    expect(acquired).toBeGreaterThanOrEqual(25);
  }, 120_000);
});
