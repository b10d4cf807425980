/**
 * The tree row (`--tree N`): `zrb backup` of a recursive task whose dataset has N small
 * children (empty file systems, never mounted: made fast on zfs-fuse), to the loopback radosgw.
 * What it measures is zrb's cost per child — locks, state, heads, snapshot lookups, the part
 * and manifest uploads, and (before issue 22) a crypto Worker pool started and stopped per
 * child — as wall seconds ÷ children. `ZRB_BENCH_TREE_BIN` runs another zrb binary instead of
 * dist/zrb-linux-x64 (e.g. main's, for a before/after on the same tree); the note names it.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { emptyAndDeleteBucket, makeBucket, makePool, run as rigRun, s3Rig } from "../helpers/rig.ts";
import { configYaml, ensureBinary, jsonResult, s3Env, ZRB_BIN } from "../helpers/zrb.ts";
import type { Opts } from "./options.ts";
import { failed, firstLine, type Sample } from "./proc.ts";
import { run } from "./proc.ts";
import type { Row } from "./table.ts";

export const TREE_ROW = "tree: zrb backup, small children";

/** N children under `parent`, made by one shell loop (one process, not N spawns from here). */
async function makeChildren(parent: string, n: number): Promise<void> {
  await rigRun(["zfs", "create", "-o", "mountpoint=none", parent]);
  await rigRun(["bash", "-c", `set -e; for i in $(seq -w 1 ${n}); do zfs create "$1/c$i"; done`, "bash", parent]);
}

async function sample(o: Opts, scratch: string, recipient: string): Promise<Sample> {
  const bin = process.env.ZRB_BENCH_TREE_BIN || ZRB_BIN;
  if (bin === ZRB_BIN) await ensureBinary();
  const pool = await makePool({ sizeMiB: 256 });
  const s3 = await s3Rig();
  const bucket = await makeBucket(s3);
  const base = join(scratch, "tree-zrb");
  try {
    const t0 = performance.now();
    await makeChildren(`${pool.pool}/tree`, o.tree);
    console.error(`  tree: ${o.tree} children made in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    mkdirSync(base, { recursive: true, mode: 0o700 });
    const doc = YAML.parse(configYaml({ baseDir: base, recipients: [recipient], bucket, s3, chunkSize: "1MiB", workers: o.workers, tasks: [{ name: "tree", pool: pool.pool, dataset: "tree" }] }));
    doc.tasks[0].recursive = true;
    const cfg = join(scratch, "tree.yaml");
    writeFileSync(cfg, YAML.stringify(doc));
    const env = { ...s3Env(s3), ZRB_LOG_LEVEL: "1" };
    const snap = await run([bin, "snapshot", "--config", cfg, "--task", "tree", "--level", "0"], { env });
    if (snap.code !== 0) return failed(`zrb snapshot: ${firstLine(snap.err)}`);
    const r = await run([bin, "backup", "--config", cfg, "--task", "tree", "--level", "0", "--json"], { stdout: "pipe", measure: true, env });
    if (r.code !== 0) return failed(`exit ${r.code}: ${firstLine(r.err)}`);
    const j = jsonResult(r.out) as { children: { status: string }[] };
    const ok = j.children.filter((c) => c.status === "ok").length;
    const per = r.seconds / (o.tree + 1);
    return {
      mbs: NaN,
      seconds: r.seconds,
      cpu: r.cpu,
      rssMiB: r.maxRssMiB,
      check: ok === o.tree + 1 ? "ok" : `MISMATCH: ${ok}/${o.tree + 1} children backed up`,
      note: `${o.tree} children + the parent: ${per.toFixed(3)} s and ${(r.cpu / (o.tree + 1)).toFixed(3)} CPU s per child; ${bin === ZRB_BIN ? "this tree's zrb" : bin}`,
    };
  } finally {
    rmSync(base, { recursive: true, force: true });
    await emptyAndDeleteBucket(s3, bucket).catch(() => {});
    await pool.destroy().catch(() => {});
  }
}

export async function treeRow(o: Opts, scratch: string, recipient: string): Promise<Row> {
  const row: Row = { label: TREE_ROW, kind: "tree", samples: [] };
  if (process.getuid?.() !== 0 || !Bun.which("zfs")) {
    row.samples.push(failed("needs root and zfs (the test rig)"));
    return row;
  }
  try {
    row.samples.push(await sample(o, scratch, recipient));
  } catch (err) {
    row.samples.push(failed(`setup: ${(err as Error).message}`));
  }
  return row;
}
