/**
 * The spill disk's bound over a whole backup stream (pipeline/backup/send.ts streamBackup, with
 * real Workers and a local-directory store): at no moment more than workers + 1 part files on
 * disk — parts being sealed, sealed, uploading, and the spare a stored part leaves for the next
 * part to overwrite (FileWriter.recycle) — whether uploads are instant or slow; and nothing left
 * in the spill directory once the stream is stored.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULTS } from "../../../src/config/config.ts";
import { streamBackup } from "../../../src/pipeline/backup/send.ts";
import { RunDir } from "../../../src/state/rundir.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { ageKeyPair, run } from "../../helpers/rig.ts";
import { pseudoRandom } from "../store/helpers.ts";
import { backupState } from "./helpers.ts";

const CHUNK = 100_000;
const WORKERS = 2;

async function backup(uploadMs: number) {
  const base = mkdtempSync(join(tmpdir(), "zrb-spill-"));
  try {
    const { recipient } = await ageKeyPair(join(base, "key.txt"));
    const data = pseudoRandom(7 * CHUNK + 5, 61);
    const src = join(base, "stream.bin");
    writeFileSync(src, data);
    const rundir = new RunDir(join(base, "run"), "tank", "ds");
    const spill = rundir.spillDir("B1");
    let most = 0;
    const seen: string[][] = [];
    class Observed extends LocalStore {
      override async putFile(...a: Parameters<LocalStore["putFile"]>): Promise<void> {
        const names = readdirSync(spill);
        seen.push(names);
        most = Math.max(most, names.length);
        await Bun.sleep(uploadMs);
        return super.putFile(...a);
      }
    }
    const state = backupState({ chunkSize: CHUNK, recipients: [recipient] });
    const r = await streamBackup({
      cfg: { workers: WORKERS, s3: structuredClone(DEFAULTS.s3) },
      store: new Observed(join(base, "store")),
      state,
      rundir,
      source: Bun.spawn(["cat", src], { stdout: "pipe", stderr: "pipe" }),
    });
    expect(r.kind).toBe("done");
    if (r.kind !== "done") return;
    expect(r.streamSize).toBe(data.length);
    expect(r.blake3).toBe((await run(["b3sum", "--no-names", src])).stdout.trim());
    expect(state.chunks.map((c) => c.uploaded)).toEqual(Array(8).fill(true));
    return { most, seen, left: readdirSync(spill) };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

describe("spill disk bound", () => {
  test("instant uploads: never more than workers + 1 files in the spill directory, spare included; none left after", async () => {
    const r = (await backup(0))!;
    expect(r.seen.length).toBe(8);
    expect(r.most).toBeGreaterThanOrEqual(1);
    expect(r.most).toBeLessThanOrEqual(WORKERS + 1);
    expect(r.left).toEqual([]);
  }, 60_000);

  test("slow uploads (parts wait for a slot): the same bound, none left after", async () => {
    const r = (await backup(150))!;
    // Parts queued behind the uploads: the bound was reached, not exceeded.
    expect(r.most).toBe(WORKERS + 1);
    expect(r.left).toEqual([]);
  }, 60_000);
});
