/**
 * Backward compatibility: a bucket written by zrb 0.1.0+8490ede (before the middle-layer
 * redesign), recorded in test/fixtures/v1-bucket/ — a local-directory store with a level 0 → 1 → 2
 * chain of a small dataset (files, a symlink, a deleted file), the test-only age key it was
 * encrypted to, and the file hashes and snapshot guids of each point, recorded from the source
 * pool. Today's binary must list it, verify it with the key, and restore every point into a real
 * zfs-fuse pool with the same files and the same guids.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { hashTree, makePool, run, tmpDir, zfsRig, type TestPool } from "../helpers/rig.ts";
import { jsonResult, zrb } from "../helpers/zrb.ts";

const FIXTURE = join(import.meta.dir, "..", "fixtures", "v1-bucket");
const expected: { level: number; snapshot: string; guid: string; tree: Record<string, string> }[] = JSON.parse(readFileSync(join(FIXTURE, "expected.json"), "utf8"));
const ids = ["20261126T022921Z-L0-c62fe4", "20261126T022922Z-L1-2c0b38", "20261126T022923Z-L2-b93ac6"];

let pool: TestPool;
let work: string;
let cfg: string;
const key = join(FIXTURE, "key.txt");

beforeAll(async () => {
  await zfsRig();
  pool = await makePool({ sizeMiB: 128 });
  work = tmpDir("zrb-e2e-compat-");
  cpSync(join(FIXTURE, "store"), join(work, "store"), { recursive: true });
  const pub = (await run(["age-keygen", "-y", key])).stdout.trim();
  cfg = join(work, "config.yaml");
  writeFileSync(
    cfg,
    YAML.stringify({
      base_dir: join(work, "base"),
      age_public_key: pub,
      local_store: join(work, "store"),
      s3: { enabled: false },
      tasks: [{ name: "photos", pool: "zrbfx", dataset: "photos", enabled: true }],
    }),
  );
});

afterAll(async () => {
  await pool?.destroy();
});

async function treeOf(snap: string): Promise<Record<string, string>> {
  const clone = `${pool.pool}/chk${Math.random().toString(16).slice(2, 8)}`;
  await run(["zfs", "clone", snap, clone]);
  try {
    return await hashTree((await run(["zfs", "get", "-H", "-o", "value", "mountpoint", clone])).stdout.trim());
  } finally {
    for (let i = 0; i < 40 && (await run(["zfs", "destroy", clone], { allowFail: true })).code !== 0; i++) await Bun.sleep(250);
  }
}

describe("a bucket written by zrb 0.1.0+8490ede", () => {
  test("list shows the chain, all restorable", async () => {
    const j = JSON.parse((await zrb(["list", "--config", cfg, "--task", "photos", "--json"])).stdout);
    expect(j.map((e: { backupId: string }) => e.backupId)).toEqual(ids);
    expect(j.every((e: { restorable: boolean }) => e.restorable)).toBe(true);
  });

  test("verify with the key checks every part and the stream BLAKE3s", async () => {
    const r = jsonResult((await zrb(["verify", "--config", cfg, "--task", "photos", "--private-key", key, "--json"])).stdout);
    expect(r.ok).toBe(true);
    expect(r.backups.map((b: { streamBlake3: string }) => b.streamBlake3)).toEqual(["ok", "ok", "ok"]);
  });

  test("every point restores with the recorded files and guids", async () => {
    for (const [i, want] of expected.entries()) {
      const target = `${pool.pool}/r${i}`;
      await zrb(["restore", "--config", cfg, "--task", "photos", "--target", target, "--private-key", key, "--backup-id", ids[i]!]);
      const snaps = (await run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", target])).stdout.trim().split("\n");
      expect(snaps.map((s) => s.split("@")[1])).toEqual(expected.slice(0, i + 1).map((e) => e.snapshot));
      for (const [j, s] of snaps.entries()) expect((await run(["zfs", "get", "-H", "-p", "-o", "value", "guid", s])).stdout.trim()).toBe(expected[j]!.guid);
      expect(await treeOf(snaps.at(-1)!)).toEqual(want.tree);
    }
  });
});
