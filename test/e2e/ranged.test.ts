/**
 * A part larger than one range comes back over several connections (config s3.concurrency):
 * on zfs-fuse + radosgw through the fault proxy, which logs every request's Range header and
 * cuts one range's response off halfway. The restore is byte-identical (guid and files), the
 * 17 MiB part was fetched as RANGE_BYTES ranges (the last one open-ended), the cut range was reopened
 * from where it stopped, and --json progress moved while the big part was still downloading.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { forward, type ProxyRequest } from "../helpers/faultproxy.ts";
import { hashTree, mountpointOf, run, snapshotGuid, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, jsonEvents, jsonResult, zrb } from "../helpers/zrb.ts";
import { RANGE_BYTES as R } from "../../src/pipeline/restore/fetch.ts";

const MiB = 1024 * 1024;
let sc: Scene;
let cfg: string;

beforeAll(async () => {
  sc = await scene({ name: "ranged", poolMiB: 256, dataset: "big", proxy: true });
  const doc = YAML.parse(
    configYaml({ baseDir: join(sc.work, "base"), recipients: [sc.recipient], bucket: sc.bucket, s3: { ...sc.s3, endpoint: sc.proxy!.endpoint }, chunkSize: "20MiB", tasks: [{ name: "t", pool: sc.pool.pool, dataset: "big" }] }),
  );
  doc.s3.concurrency = 3;
  cfg = join(sc.work, "config.yaml");
  writeFileSync(cfg, YAML.stringify(doc));
});

afterAll(async () => {
  await sc?.close();
});

test("a 17 MiB part is restored from ranged GETs, three at once; a range cut off is reopened; progress moves during the part", async () => {
  await writeRandomFile(join(sc.mnt, "big.bin"), 17 * MiB, 7);
  const snap = (await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", "0"], { env: sc.env })).stdout.trim();
  const b = jsonResult((await zrb(["backup", "--config", cfg, "--task", "t", "--level", "0", "--json"], { env: sc.env })).stdout);
  expect(b.parts).toBe(1);
  const partKey = `data/${sc.fs}/level0/${b.backupId}/part-000000.age`;
  const isPartGet = (r: ProxyRequest) => r.method === "GET" && r.path.split("?")[0]!.endsWith(partKey);
  let cut = false;
  sc.proxy!.setDecide((r) => {
    if (!isPartGet(r)) return forward;
    if (!cut && r.headers.range === `bytes=${R}-${2 * R - 1}`) {
      cut = true;
      return { kind: "cutResponse", afterBytes: R / 2 };
    }
    return { kind: "forward", delayMs: 300 }; // a slow first byte: the ranges overlap
  });
  const from = sc.proxy!.log.length;
  const target = `${sc.pool.pool}/restored`;
  const r = await zrb(["restore", "--config", cfg, "--task", "t", "--target", target, "--private-key", sc.keyFile, "--json", "--progress-interval", "1s", "--bwlimit", "4MiB/s"], { env: sc.env });
  sc.proxy!.setDecide(() => forward);
  const gets = sc.proxy!.log.slice(from).filter(isPartGet);
  const ranges = gets.map((g) => g.headers.range);
  // Every range of the part (first bytes checks aside), the last open-ended, and the cut one reopened from where it stopped.
  const last = Math.floor((17 * MiB) / R) * R; // the part is a little over 17 MiB (stream records, age)
  for (let at = 0; at < last; at += R) expect(ranges).toContain(`bytes=${at}-${at + R - 1}`);
  expect(ranges).toContain(`bytes=${last}-`);
  expect(sc.proxy!.log.slice(from).some((l) => isPartGet(l) && l.fault)).toBe(true);
  const reopened = ranges.map((x) => /^bytes=(\d+)-(\d+)$/.exec(x ?? "")).filter((m) => m && Number(m[1]) > R && Number(m[1]) < 2 * R && Number(m[2]) === 2 * R - 1);
  expect(reopened.length).toBe(1);
  // Progress events moved before the part was checked (its one part event).
  const ev = jsonEvents(r.stdout);
  const partAt = ev.findIndex((e) => e.event === "part");
  const before = ev.slice(0, partAt).filter((e) => e.event === "progress" && e.bytesDone > 0);
  expect(before.length).toBeGreaterThanOrEqual(1);
  expect(ev.at(-1)).toMatchObject({ event: "done", exitCode: 0 });
  // Byte-identical: the same snapshot guid and the same files.
  const short = snap.slice(snap.indexOf("@") + 1);
  expect(await snapshotGuid(`${target}@${short}`)).toBe(await snapshotGuid(snap));
  await run(["zfs", "mount", target]).catch(() => {});
  expect(await hashTree(await mountpointOf(target))).toEqual(await hashTree(sc.mnt));
}, 300_000);
