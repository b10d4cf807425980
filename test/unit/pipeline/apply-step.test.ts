/**
 * restore/receive.ts applyStep, before anything is received: what a failed step may destroy
 * rests on whether the step created its target. Only zfs's own "does not exist" says so; a
 * `zfs list` that fails otherwise (an I/O error, a busy pool) stops the step before `zfs receive`
 * runs, so that no later failure can `zfs destroy -r` a target that was there all along.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyStep } from "../../../src/pipeline/restore/receive.ts";
import { startThreads, type Threads } from "../../../src/pipeline/parallel/index.ts";
import { LocalStore } from "../../../src/store/local.ts";
import type { ZfsCaps } from "../../../src/zfs/zfs.ts";
import { ZrbError } from "../../../src/util/errors.ts";
import { mk, standIn } from "./helpers.ts";

let dir = "";
let threads: Threads;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zrb-apply-step-"));
  threads = await startThreads(1, (e) => {
    throw e;
  });
});
afterAll(() => {
  threads.terminate();
  rmSync(dir, { recursive: true, force: true });
});

const caps: ZfsCaps = { openzfs: true, version: "t", sendFlags: new Set(), recvFlags: new Set("Fs"), listParsable: true, holds: true };

test("a target zfs cannot tell about (an I/O error) stops the step: no receive, no destroy, scratch released (exit 5)", async () => {
  const calls = join(dir, "calls");
  const restore = standIn(dir, `#!/bin/sh\necho "$*" >> '${calls}'\nif [ "$1" = list ]; then echo "cannot open 'tank/restored': I/O error" >&2; exit 1; fi\nexit 0\n`);
  const scratchRoot = join(dir, "scratch");
  try {
    const m = mk(0, Date.now(), null);
    const err = await applyStep(new LocalStore(join(dir, "store")), m, caps, { target: "tank/restored", force: true, identities: [], scratchRoot, ahead: 1, threads }).then(
      () => null,
      (e) => e as ZrbError,
    );
    expect(err).toBeInstanceOf(ZrbError);
    expect(err?.exitCode).toBe(5);
    expect(err?.message).toContain("cannot tell whether tank/restored exists");
    const log = readFileSync(calls, "utf8");
    expect(log).toContain("list -H -o name tank/restored");
    expect(log).not.toContain("receive");
    expect(log).not.toContain("destroy");
    // The step's scratch claim is released: no directory, no lock left.
    expect(existsSync(scratchRoot) ? readdirSync(scratchRoot) : []).toEqual([]);
  } finally {
    restore();
  }
});
