/**
 * A part larger than one range comes back over several connections (config s3.concurrency):
 * on zfs-fuse + radosgw through the fault proxy, which logs every request's Range header and
 * cuts one range's response off halfway. The restore is byte-identical (guid and files), the
 * 17 MiB part was fetched as ranges of at most RANGE_BYTES (the first ones staggered, the last
 * ones tapered, the last one open-ended), the cut range was reopened
 * from where it stopped, and --json progress moved while the big part was still downloading.
 * --bwlimit caps the sum of the connections, up (the multipart pieces of the backup) and down.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { forward, type ProxyRequest } from "../helpers/faultproxy.ts";
import { hashTree, mountpointOf, run, snapshotGuid, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, jsonEvents, jsonResult, measuredRate, zrb } from "../helpers/zrb.ts";
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
  // --bwlimit caps the sum of the connections: the backup's multipart pieces go up side by side.
  const bo = (await zrb(["backup", "--config", cfg, "--task", "t", "--level", "0", "--json", "--bwlimit", "4MiB/s"], { env: sc.env })).stdout;
  const b = jsonResult(bo);
  expect(b.parts).toBe(1);
  expect(measuredRate(bo, 4 * MiB).share).toBeLessThanOrEqual(1.1);
  const partKey = `data/${sc.fs}/level0/${b.backupId}/part-000000.age`;
  const isPartGet = (r: ProxyRequest) => r.method === "GET" && r.path.split("?")[0]!.endsWith(partKey);
  // The first range of the part's own (not a header or a record check) after its first: cut off halfway.
  let cut: { start: number; end: number } | undefined;
  sc.proxy!.setDecide((r) => {
    if (!isPartGet(r)) return forward;
    const m = /^bytes=(\d+)-(\d+)$/.exec(r.headers.range ?? "");
    const [start, end] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    if (!cut && start > 0 && end - start + 1 > 1_000_000) {
      cut = { start, end };
      return { kind: "cutResponse", afterBytes: Math.floor((end - start + 1) / 2) };
    }
    return { kind: "forward", delayMs: 300 }; // a slow first byte: the ranges overlap
  });
  const from = sc.proxy!.log.length;
  const target = `${sc.pool.pool}/restored`;
  const r = await zrb(["restore", "--config", cfg, "--task", "t", "--target", target, "--private-key", sc.keyFile, "--json", "--progress-interval", "1s", "--bwlimit", "4MiB/s"], { env: sc.env });
  sc.proxy!.setDecide(() => forward);
  // Three ranged GETs at once, one limit for their sum (the token bucket's burst is a tenth of a second).
  const rate = measuredRate(r.stdout, 4 * MiB);
  console.log(`ranged restore: ${(rate.rate / MiB).toFixed(2)} MiB/s over ${rate.seconds.toFixed(1)} s under --bwlimit 4MiB/s`);
  expect(rate.bytes).toBeGreaterThan(16 * MiB);
  expect(rate.share).toBeLessThanOrEqual(1.1);
  const gets = sc.proxy!.log.slice(from).filter(isPartGet);
  const ranges = gets.map((g) => /^bytes=(\d+)-(\d*)$/.exec(g.headers.range ?? "")!).map((m) => ({ start: Number(m[1]), end: m[2] ? Number(m[2]) : undefined }));
  // The part's own ranges, found as the chain from byte 0 to an open-ended range (the first
  // bytes checks aside): none longer than R, the first ones growing (staggered), the last
  // ones shrinking to a fraction of R (tapered: the part is its step's last).
  const chain: { start: number; end?: number }[] = [];
  for (let at = 0; ; ) {
    const next = ranges.filter((x) => x.start === at).sort((x, y) => (y.end ?? Infinity) - (x.end ?? Infinity))[0];
    expect(next).toBeDefined();
    chain.push(next!);
    if (next!.end === undefined) break;
    at = next!.end + 1;
  }
  const lens = chain.slice(0, -1).map((x) => x.end! - x.start + 1);
  expect(lens.length).toBeGreaterThanOrEqual(5);
  expect(Math.max(...lens)).toBeLessThanOrEqual(R);
  expect(lens[0]! < lens[1]! && lens[1]! < lens[2]!).toBe(true);
  const tail = lens.slice(-4);
  expect(tail.every((l, i) => i === 0 || l <= tail[i - 1]!)).toBe(true);
  expect(lens.at(-1)!).toBeLessThanOrEqual(R / 4);
  expect(b.storedBytes - chain.at(-1)!.start).toBeLessThanOrEqual(R);
  // The cut range was reopened from where it stopped.
  expect(cut).toBeDefined();
  expect(sc.proxy!.log.slice(from).some((l) => isPartGet(l) && l.fault)).toBe(true);
  expect(ranges.filter((x) => x.start > cut!.start && x.start <= cut!.end && x.end === cut!.end).length).toBe(1);
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
