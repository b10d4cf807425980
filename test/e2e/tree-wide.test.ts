/**
 * A recursive task with hundreds of children on real parts (zfs-fuse, radosgw): 157 datasets in
 * two levels, every one its own chain. The bucket's listings of the tree page (over 1000 part
 * objects below the task's dataset, its own sorting after its children's), `zrb list` stays one
 * line per child, and a second run goes incremental everywhere.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { mountpointOf, run, s3Client, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, jsonResult, zrb } from "../helpers/zrb.ts";
import { listKeys } from "../helpers/audit.ts";

const GROUPS = 6;
const PER_GROUP = 25;
let sc: Scene;
let cfg: string;
const rels: string[] = [""];

beforeAll(async () => {
  sc = await scene({ name: "tree-wide", poolMiB: 512, dataset: "wide" });
  for (let g = 0; g < GROUPS; g++) {
    rels.push(`g${g}`);
    await run(["zfs", "create", `${sc.fs}/g${g}`]);
    for (let c = 0; c < PER_GROUP; c++) {
      rels.push(`g${g}/c${String(c).padStart(2, "0")}`);
      await run(["zfs", "create", `${sc.fs}/g${g}/c${String(c).padStart(2, "0")}`]);
    }
  }
  let seed = 1;
  for (const rel of rels) await writeRandomFile(join(await mountpointOf(rel ? `${sc.fs}/${rel}` : sc.fs), "f.bin"), 420_000, seed++);
  const doc = YAML.parse(
    configYaml({ baseDir: join(sc.work, "base"), recipients: [sc.recipient], bucket: sc.bucket, s3: sc.s3, chunkSize: "64KiB", tasks: [{ name: "wide", pool: sc.pool.pool, dataset: "wide" }] }),
  );
  doc.tasks[0].recursive = true;
  // A test of scale in children, not of catalogs (find.test.ts, year and chaos cover those): 284 s without, 352 s with.
  doc.tasks[0].file_catalog = false;
  cfg = join(sc.work, "zrb.yaml");
  writeFileSync(cfg, YAML.stringify(doc));
}, 600_000);

afterAll(async () => {
  await sc?.close();
}, 300_000);

describe("a tree with hundreds of children", () => {
  test("every child backed up as its own chain, twice; list pages through the bucket and stays one line per child", async () => {
    const args = ["--config", cfg, "--task", "wide"];
    await zrb(["snapshot", ...args, "--level", "0"], { env: sc.env });
    const r0 = jsonResult((await zrb(["backup", ...args, "--level", "0", "--json", "--quiet"], { env: sc.env })).stdout);
    expect(r0.children.length).toBe(rels.length);
    expect(r0.children.map((c: any) => c.child)).toEqual(rels);
    expect(r0.children.every((c: any) => c.status === "ok" && c.level === 0 && c.parts >= 6)).toBe(true);

    for (const rel of rels.filter((_, i) => i % 7 === 0)) await writeRandomFile(join(await mountpointOf(rel ? `${sc.fs}/${rel}` : sc.fs), "g.bin"), 30_000, 900);
    await zrb(["snapshot", ...args, "--level", "1"], { env: sc.env });
    const r1 = jsonResult((await zrb(["backup", ...args, "--level", "1", "--json", "--quiet"], { env: sc.env })).stdout);
    expect(r1.children.every((c: any) => c.status === "ok" && c.level === 1 && c.parentBackupId)).toBe(true);

    // Over 1000 objects below the task's dataset: the listings behind list and restore page.
    const client = await s3Client(sc.s3);
    expect((await listKeys(client, sc.bucket, `zrb/data/${sc.fs}/`)).length).toBeGreaterThan(1000);

    const l = (await zrb(["list", ...args], { env: sc.env })).stdout.trim().split("\n");
    expect(l.length).toBe(2 + rels.length); // title, header, one line per child
    expect(l.slice(2).every((line) => /\s2\s+\S+ L1 zrb_level1_\S+\s+yes$/.test(line))).toBe(true);
    const root = JSON.parse((await zrb(["list", ...args, "--child", ".", "--json"], { env: sc.env })).stdout);
    expect(root.map((e: any) => [e.level, e.restorable])).toEqual([
      [0, true],
      [1, true],
    ]);
    const plan = JSON.parse((await zrb(["restore", ...args, "--target", `${sc.pool.pool}/back`, "--plan", "--json"], { env: sc.env })).stdout);
    expect(plan.children.length).toBe(rels.length);
    expect(plan.children.every((c: any) => c.status === "ok" && c.plan.steps.length === 2)).toBe(true);
  }, 900_000);
});
