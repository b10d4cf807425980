/**
 * The backup state's writes off the main thread (pipeline/backup/state-writer.ts), on a real
 * run directory: writes never overlap (they share a temp name), a persist() asked for during a
 * write is folded into one more write that records the state as it is by then, each persist()
 * resolves only when its change is on disk, and idle() waits for the last one.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StateWriter } from "../../../src/pipeline/backup/state-writer.ts";
import { RunDir, type BackupState } from "../../../src/state/rundir.ts";
import { readYaml } from "../../../src/state/atomic.ts";
import { backupState } from "./helpers.ts";

const base = mkdtempSync(join(tmpdir(), "zrb-state-writer-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

test("writes one at a time, folds requests made during a write, resolves when the change is on disk", async () => {
  const rd = new RunDir(base, "tank", "ds");
  const st = backupState();
  let running = 0;
  let most = 0;
  let writes = 0;
  const real = rd.writeStateAsync.bind(rd);
  rd.writeStateAsync = async (s) => {
    running++;
    most = Math.max(most, running);
    writes++;
    try {
      await real(s);
    } finally {
      running--;
    }
  };
  const w = new StateWriter(rd, st);
  const done: Promise<void>[] = [];
  for (let i = 0; i < 20; i++) {
    st.chunks.push({ index: i, plainSize: 1, blake3: "0".repeat(64), uploaded: false });
    const p = w.persist();
    done.push(p);
    if (i === 10) {
      await p;
      // Resolved: chunk 10 is on disk.
      expect((await readYaml<BackupState>(rd.statePath))!.chunks.length).toBeGreaterThanOrEqual(11);
    }
  }
  await Promise.all(done);
  await w.idle();
  expect(most).toBe(1);
  // 20 requests, far fewer writes: the ones made while a write ran were folded together.
  expect(writes).toBeLessThan(20);
  expect(writes).toBeGreaterThanOrEqual(2);
  expect((await readYaml<BackupState>(rd.statePath))!.chunks.map((c) => c.index)).toEqual([...Array(20).keys()]);
  expect(readdirSync(rd.dir).filter((f) => f.includes(".tmp"))).toEqual([]);
});

test("a failed write is reported to its callers; the next one runs", async () => {
  const rd = new RunDir(base, "tank", "other");
  const st = backupState();
  const real = rd.writeStateAsync.bind(rd);
  let fail = true;
  rd.writeStateAsync = async (s) => {
    if (fail) throw new Error("disk full");
    return real(s);
  };
  const w = new StateWriter(rd, st);
  await expect(w.persist()).rejects.toThrow("disk full");
  await w.idle();
  fail = false;
  st.chunks.push({ index: 0, plainSize: 1, blake3: "0".repeat(64), uploaded: true });
  await w.persist();
  expect((await readYaml<BackupState>(rd.statePath))!.chunks[0]!.uploaded).toBe(true);
});
