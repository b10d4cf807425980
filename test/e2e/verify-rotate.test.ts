/**
 * `zrb verify --rotate DAYS` on real parts (zfs-fuse, radosgw, ZRB_NOW for the days): each run
 * reads its share of the parts, every part is read within DAYS, the progress lives in the bucket
 * (a rebuilt NAS continues it), a damaged part fails every run until it is fixed, a part pruned
 * while a run reads it is not a failure, and bad flags are usage errors.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import YAML from "yaml";
import { getText, manifests } from "../helpers/audit.ts";
import { forward, type FaultProxy } from "../helpers/faultproxy.ts";
import { History } from "../helpers/history.ts";
import { s3Client, waitFor } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { expectZrbFail, jsonResult } from "../helpers/zrb.ts";

let sc: Scene;
let client: S3Client;
let proxy: FaultProxy;
let seq = 0;

beforeAll(async () => {
  sc = await scene({ name: "rotate", poolMiB: 256, dataset: "unused", proxy: true });
  client = await s3Client(sc.s3);
  proxy = sc.proxy!;
}, 300_000);
afterEach(() => proxy.check());
afterAll(() => sc?.close(), 120_000);

const at = (d: number, hh = 3) => new Date(Date.UTC(2027, 4, d, hh)).toISOString().replace(".000Z", "Z");

/** Four backups of a dataset with a few 64 KiB parts each (about 12 parts in all). */
async function history(): Promise<History> {
  const n = ++seq;
  const h = await History.create({
    pool: sc.pool.pool,
    name: `v${n}`,
    bucket: sc.bucket,
    s3: sc.s3,
    endpoint: proxy.endpoint,
    prefix: `r${n}/`,
    work: sc.work,
    recipient: sc.recipient,
    keyFile: sc.keyFile,
    env: sc.env,
  });
  await writeFile(join(h.mnt, "base.bin"), new Uint8Array(200_000).map((_, i) => (i * 7 + n) % 253));
  for (const [d, level] of [[1, 0], [2, 1], [3, 2], [4, 2]] as const) await h.day(level, at(d, 2), 9000 + 10 * n + d);
  return h;
}

const allParts = async (h: History) => (await manifests(client, sc.bucket, h.o.prefix, h.fs)).flatMap((m) => m.parts.map((p: any) => p.key as string)).sort();
const rotate = async (h: History, day: number, ...more: string[]) => jsonResult((await h.run(["verify", "--rotate", ...more, "--json"], at(day))).stdout);
const checked = (r: any) => r.parts.map((p: any) => p.key as string).sort();

describe("the rotation", () => {
  test("daily runs with --rotate 4: each reads a share, every part is read within 4 days of the last read, also across a rebuilt NAS (the progress is in the bucket)", async () => {
    const h = await history();
    const parts = await allParts(h);
    expect(parts.length).toBeGreaterThanOrEqual(8);
    const reads = new Map<string, number[]>(parts.map((k) => [k, []]));
    for (let day = 10; day <= 19; day++) {
      if (day === 14) {
        // The NAS is rebuilt: base_dir is gone, the rotation goes on from the bucket.
        const rot = YAML.parse(await getText(client, sc.bucket, `${h.o.prefix}manifests/${h.fs}/verify-rotation.yaml`));
        expect(rot.format).toBe("zrb-verify-rotation/1");
        expect(Date.parse(rot.lastRunAt) - Date.parse(at(13))).toBeLessThan(30_000);
        rmSync(h.baseDir, { recursive: true, force: true });
      }
      const r = await rotate(h, day, "4");
      expect(r.ok).toBe(true);
      expect(r.rotation).toMatchObject({ days: 4, parts: parts.length, failed: 0, overdueAfter: 0 });
      // Its share (parts × interval / days, the first run assumes a day), never everything at once.
      expect(r.rotation.checked).toBeGreaterThanOrEqual(Math.ceil(parts.length / 4));
      expect(r.rotation.checked).toBeLessThanOrEqual(parts.length / 2);
      for (const k of checked(r)) reads.get(k)!.push(day);
      if (day === 14) {
        // It went on from the bucket's record, not from scratch.
        const rot = YAML.parse(await getText(client, sc.bucket, `${h.o.prefix}manifests/${h.fs}/verify-rotation.yaml`));
        for (const b of Object.values<any>(rot.backups)) expect(b.seen).toStartWith("2027-05-10T");
      }
    }
    // First seen on day 10: every part read by day 13, then never more than 4 days apart, up to day 19.
    for (const [k, days] of reads) {
      const gaps = [days[0]! - 9, ...days.slice(1).map((d, i) => d - days[i]!), 19 - days.at(-1)!];
      expect({ k, ok: gaps.every((g) => g <= 4) }).toEqual({ k, ok: true });
    }
    // Without a key only the ciphertext; with it everything.
    const withKey = jsonResult((await h.run(["verify", "--rotate", "4", "--private-key", sc.keyFile, "--json"], at(20))).stdout);
    expect(withKey.decrypted).toBe(true);
    expect(withKey.ok).toBe(true);
    expect(withKey.parts.length).toBeGreaterThan(0);
  }, 300_000);

  test("`--rotate` alone means 90 days; a selector, --sample or a bad DAYS with it are usage errors", async () => {
    const h = await history();
    const r = await rotate(h, 10);
    expect(r.rotation.days).toBe(90);
    expect(r.rotation.checked).toBe(Math.ceil(r.rotation.parts / 90));
    const human = await h.run(["verify", "--rotate"], at(11));
    expect(human.stderr).toMatch(/rotation: \d+ of \d+ part\(s\) checked in s3:\/\/.*; every part read within the last 90 days/);
    const env = { ...sc.env, ZRB_NOW: at(12) };
    const base = ["verify", "--config", h.cfg, "--task", "t"];
    await expectZrbFail([...base, "--rotate", "0"], env, 2, "--rotate must be a whole number of days from 1 to 3650, got \"0\"");
    await expectZrbFail([...base, "--rotate", "soon"], env, 2, "--rotate must be a whole number of days");
    await expectZrbFail([...base, "--rotate", "30", "--level", "1"], env, 2, "--rotate reads every backup of the task in turn and cannot be combined with --level");
    await expectZrbFail([...base, "--sample", "3", "--rotate"], env, 2, "cannot be combined with --sample");
  }, 300_000);
});

describe("failures", () => {
  test("a damaged part fails the run that reads it (exit 7) and every later run until it is put right", async () => {
    const h = await history();
    const parts = await allParts(h);
    const victim = parts[Math.floor(parts.length / 2)]!; // relative to the prefix, as manifests name it
    const Key = h.o.prefix + victim;
    const good = await (await client.send(new GetObjectCommand({ Bucket: sc.bucket, Key }))).Body!.transformToByteArray();
    const bad = new Uint8Array(good);
    bad[bad.length - 5]! ^= 0xff;
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key, Body: bad }));
    const env = { ...sc.env };
    const base = ["verify", "--config", h.cfg, "--task", "t", "--rotate", "1"];
    // --rotate 1: every part is due every day.
    for (const day of [10, 11]) {
      const line = await expectZrbFail(base, { ...env, ZRB_NOW: at(day) }, 7, "rotating verification failed: 1 part(s) bad", "ciphertext SHA-256 is");
      expect(line).toContain(victim);
    }
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key, Body: good }));
    const r = await rotate(h, 12, "1");
    expect(r.ok).toBe(true);
    expect(checked(r)).toContain(victim);
  }, 300_000);

  test("a backup pruned while the run reads its part is not a failure", async () => {
    const h = await history();
    const ms = await manifests(client, sc.bucket, h.o.prefix, h.fs);
    const gone = ms.find((m) => m.level === 2)!; // a leaf: nothing depends on it
    const key = gone.parts[0].key as string;
    let held = false;
    proxy.setDecide((r) => (r.method === "GET" && r.path.includes(key) && !held ? ((held = true), { kind: "forward", delayMs: 3000 }) : forward));
    const p = await h.spawn(["verify", "--rotate", "1", "--json"], at(10));
    await waitFor("the part's GET", () => held);
    await client.send(new DeleteObjectCommand({ Bucket: sc.bucket, Key: `${h.o.prefix}manifests/${h.fs}/${gone.backupId}.manifest.yaml` }));
    for (const part of gone.parts) await client.send(new DeleteObjectCommand({ Bucket: sc.bucket, Key: `${h.o.prefix}${part.key}` }));
    const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
    proxy.setDecide(() => forward);
    expect({ code, err: code === 0 ? "" : err }).toEqual({ code: 0, err: "" });
    expect(err).toContain(`backup ${gone.backupId} was pruned while this run read it`);
    const r = jsonResult(out);
    expect(r.ok).toBe(true);
    expect(r.parts.some((x: any) => x.backupId === gone.backupId)).toBe(false);
  }, 300_000);
});
