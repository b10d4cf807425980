import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireLock, processStart } from "../../../src/state/lock.ts";
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
  test("release does not remove a lock someone else took over", () => {
    const p = join(dir(), "zrb.lock");
    const l = acquireLock(p, "d", "c");
    writeFileSync(p, JSON.stringify({ pid: 1, start: processStart(1), host: "h", command: "other", since: "x" }));
    l.release();
    expect(existsSync(p)).toBe(true);
  });
});
