import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { acquireLock, lockHeld, processStart, readLockInfo } from "../../../src/state/lock.ts";
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
  test("a record from another host is not a live holder, even when its pid and start time match a process here", () => {
    const p = join(dir(), "zrb.lock");
    writeFileSync(p, JSON.stringify({ pid: 1, start: processStart(1), host: "the-old-hostname", command: "old", since: "x" }));
    expect(lockHeld(p)).toBe(false);
    acquireLock(p, "d", "new").release();
  });
  test("status sees a live holder recorded by a zrb without flock", () => {
    const p = join(dir(), "zrb.lock");
    writeFileSync(p, JSON.stringify({ pid: 1, start: processStart(1), host: hostname(), command: "old zrb", since: "x" }));
    expect(lockHeld(p)).toBe(true);
    // a record whose pid is not a number is not read as one
    writeFileSync(p, JSON.stringify({ pid: "1", start: processStart(1), host: hostname(), command: "forged", since: "x" }));
    expect(lockHeld(p)).toBe(false);
  });
  test("refused by such a holder, the contender keeps no flock: once that holder is gone the lock is free", () => {
    const p = join(dir(), "zrb.lock");
    writeFileSync(p, JSON.stringify({ pid: 1, start: processStart(1), host: hostname(), command: "old zrb", since: "x" }));
    expect(() => acquireLock(p, "d", "new")).toThrow("locked by 'old zrb'");
    writeFileSync(p, JSON.stringify({ pid: 999999, start: "1", host: hostname(), command: "dead", since: "x" }));
    expect(lockHeld(p)).toBe(false);
    acquireLock(p, "d", "new").release();
  });
  test("releasing twice does not touch the next holder's lock", () => {
    const p = join(dir(), "zrb.lock");
    const a = acquireLock(p, "d", "a");
    a.release();
    const b = acquireLock(p, "d", "b");
    a.release();
    expect(readLockInfo(p)?.command).toBe("b");
    expect(() => acquireLock(p, "d", "c")).toThrow("locked by 'b'");
    b.release();
    expect(existsSync(p)).toBe(false);
  });
  test("a run that exits without releasing leaves no lock file", async () => {
    const p = join(dir(), "zrb.lock");
    const src = `const { acquireLock } = await import(${JSON.stringify(join(import.meta.dir, "../../../src/state/lock.ts"))});
acquireLock(${JSON.stringify(p)}, "d", "child");
if (!require("node:fs").existsSync(${JSON.stringify(p)})) process.exit(3);
process.exit(0);`;
    const child = Bun.spawn([process.execPath, "-e", src], { stderr: "pipe" });
    expect(await child.exited).toBe(0);
    expect(existsSync(p)).toBe(false);
  });
  test("process start time: the same while the process lives, later for a later process, whatever its name", async () => {
    const d = dir();
    // comm with ") " and spaces: the fields after it are found from the last ')'
    const odd = join(d, "a) b c d e");
    symlinkSync(Bun.which("sleep")!, odd);
    const a = Bun.spawn([odd, "30"]);
    await Bun.sleep(300);
    const b = Bun.spawn(["sleep", "30"]);
    try {
      await Bun.sleep(100);
      const sa = processStart(a.pid)!;
      const sb = processStart(b.pid)!;
      expect(sa).toMatch(/^\d+$/);
      expect(sb).toMatch(/^\d+$/);
      expect(Number(sb) - Number(sa)).toBeGreaterThanOrEqual(10); // clock ticks (100/s): ≥ 0.1 s apart
      expect(Number(sb) - Number(sa)).toBeLessThan(1000);
      expect(Number(sa)).toBeGreaterThanOrEqual(Number(processStart(process.pid)));
      await Bun.sleep(200);
      expect(processStart(a.pid)).toBe(sa);
    } finally {
      a.kill(9);
      b.kill(9);
      await a.exited;
      await b.exited;
    }
    expect(processStart(a.pid)).toBeNull();
  });
  test("contenders taking and releasing the lock in a tight loop: never two holders at once, a replaced file retried (4 processes × 3 s)", async () => {
    const d = dir();
    const p = join(d, "zrb.lock");
    const script = join(d, "looper.ts");
    // Each holder creates `held` exclusively and removes it before releasing: a second holder finds it there.
    writeFileSync(
      script,
      `import { acquireLock } from ${JSON.stringify(join(import.meta.dir, "../../../src/state/lock.ts"))};
import { closeSync, openSync, unlinkSync } from "node:fs";
const [path, held, until] = process.argv.slice(2);
let taken = 0, both = 0, gaveUp = 0;
while (Date.now() < Number(until)) {
  let l;
  try { l = acquireLock(path, "d", "c"); } catch (e) { if (e?.exitCode !== 4) throw e; if (/keep replacing/.test(e.message)) gaveUp++; continue; }
  taken++;
  try { closeSync(openSync(held, "wx")); } catch { both++; }
  for (let i = 0; i < 2000; i++);
  try { unlinkSync(held); } catch {}
  l.release();
}
console.log(JSON.stringify({ taken, both, gaveUp }));
`,
    );
    const until = Date.now() + 3000;
    const procs = Array.from({ length: 4 }, () => Bun.spawn([process.execPath, script, p, join(d, "held"), String(until)], { stdout: "pipe" }));
    let taken = 0;
    for (const pr of procs) {
      expect(await pr.exited).toBe(0);
      const r = JSON.parse(await new Response(pr.stdout).text());
      expect(r.both).toBe(0);
      expect(r.gaveUp).toBe(0); // a file replaced under a contender is retried, not given up on
      taken += r.taken;
    }
    expect(taken).toBeGreaterThan(100);
    expect(existsSync(p)).toBe(false);
  }, 60_000);
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
