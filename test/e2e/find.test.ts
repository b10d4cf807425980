/**
 * The file catalog and `zrb find` on zfs-fuse + radosgw with the compiled binary. zfs-fuse has
 * no `zfs diff` and no .zfs directory, so this is the clone-and-walk path (the VM scenario
 * 17-catalog covers zfs diff and .zfs/snapshot on OpenZFS 2.3). Checked: catalogs at levels
 * 0, 1, 2 (full, then changes); find locating a file deleted at level 1 ("last seen in" the
 * level-0 point) through the fault proxy with no GET of any data part; the point it prints
 * restores with --backup-id; the stock `age -d` opens a catalog; verify checks catalogs; a
 * replaced catalog is refused (exit 7); rekey re-encrypts catalogs; prune deletes a catalog
 * with its manifest and an orphan catalog, never a kept one; a task with file_catalog: false.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { listKeys } from "../helpers/audit.ts";
import { History } from "../helpers/history.ts";
import { ageKeyPair, destroyDataset, mountpointOf, run, s3Client } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, jsonResult, zrb } from "../helpers/zrb.ts";
import { cloneName } from "../../src/zfs/snapfiles.ts";
import { cloneDir } from "../../src/pipeline/files/listing.ts";

let sc: Scene;
let client: S3Client;
let seq = 0;

beforeAll(async () => {
  sc = await scene({ name: "find", poolMiB: 128, dataset: "unused", proxy: true });
  client = await s3Client(sc.s3);
}, 300_000);

afterEach(() => sc.proxy!.check());
afterAll(() => sc?.close(), 120_000);

const at = (d: number) => new Date(Date.UTC(2027, 2, d, 2)).toISOString().replace(".000Z", "Z");

async function history(retention?: Record<string, unknown>): Promise<History> {
  const n = ++seq;
  return History.create({ pool: sc.pool.pool, name: `f${n}`, bucket: sc.bucket, s3: sc.s3, prefix: `t${n}/`, work: sc.work, recipient: sc.recipient, keyFile: sc.keyFile, env: sc.env, retention });
}

function write(h: History, rel: string, text: string): void {
  mkdirSync(join(h.mnt, rel, ".."), { recursive: true });
  writeFileSync(join(h.mnt, rel), text);
}

/** Snapshot and back up at `level` on day `d`; the backup's --json result. */
async function backupDay(h: History, level: number, d: number): Promise<any> {
  await h.snapshot(level, at(d));
  return jsonResult((await h.run(["backup", "--level", String(level), "--json"], at(d))).stdout);
}

const getBytes = async (key: string) => new Uint8Array(await (await client.send(new GetObjectCommand({ Bucket: sc.bucket, Key: key }))).Body!.transformToByteArray());

describe("zrb find from the catalogs alone", () => {
  test("levels 0,1,2 with a file deleted at level 1: find says where it was last seen, reads no data part; age -d opens a catalog; restore takes the point; verify, a replaced catalog, rekey", async () => {
    const h = await history();
    write(h, "photos/cat.jpg", "meow".repeat(100));
    write(h, "photos/dog.jpg", "woof");
    write(h, "docs/a.txt", "v1");
    write(h, "we ird\tname.txt", "odd");
    const b0 = await backupDay(h, 0, 1);
    expect(b0.catalog).toMatchObject({ kind: "full", entries: 6 }); // photos, cat.jpg, dog.jpg, docs, a.txt, the odd name
    rmSync(join(h.mnt, "photos/cat.jpg"));
    write(h, "docs/a.txt", "version two");
    const b1 = await backupDay(h, 1, 2);
    expect(b1.catalog.kind).toBe("changes");
    expect(b1.catalog.entries).toBeLessThanOrEqual(4); // cat.jpg deleted, a.txt (and its directories' mtimes)
    write(h, "photos/new.jpg", "new");
    const b2 = await backupDay(h, 2, 3);
    expect(b2.catalog.kind).toBe("changes");
    expect(b2.catalog.bytes).toBeLessThan(2048);
    // No clone is left on the pool.
    expect((await run(["zfs", "list", "-H", "-o", "name", "-r", sc.pool.pool])).stdout).not.toContain("zrb-catalog-");

    // Through the counting proxy: find reads manifests and catalogs, never a data part.
    h.writeConfig(undefined, sc.proxy!.endpoint);
    const before = sc.proxy!.log.length;
    const found = JSON.parse((await h.run(["find", "--private-key", sc.keyFile, "--json", "cat.jpg"], at(4))).stdout);
    const gets = sc.proxy!.log.slice(before).filter((r) => r.method === "GET");
    expect(gets.filter((r) => r.path.includes("/data/")).length).toBe(0);
    expect(gets.filter((r) => r.path.includes(".catalog.age")).length).toBe(3);
    expect(found.searched).toBe(3);
    expect(found.matches).toHaveLength(1);
    expect(found.matches[0]).toMatchObject({ path: "photos/cat.jpg", deleted: true, lastSeen: { backupId: b0.backupId, snapshot: b0.snapshot } });
    expect(found.matches[0].versions[0]).toMatchObject({ type: "f", size: 400 });
    const text = (await h.run(["find", "--private-key", sc.keyFile, "*.jpg"], at(4))).stdout;
    expect(text).toContain(`photos/cat.jpg  (deleted since; last seen in ${b0.backupId}`);
    expect(text).toContain(`photos/new.jpg`);
    const a = JSON.parse((await h.run(["find", "--private-key", sc.keyFile, "--json", "docs/*.txt"], at(4))).stdout);
    expect(a.matches[0].versions.map((v: any) => [v.size, v.newest.backupId])).toEqual([[11, b2.backupId], [2, b0.backupId]]);
    const since = JSON.parse((await h.run(["find", "--private-key", sc.keyFile, "--json", "--since", "2027-03-03", "cat.jpg"], at(4))).stdout);
    expect([since.searched, since.matches.length]).toEqual([1, 0]);

    // The point find printed restores with --backup-id, and the file is there.
    const target = `${sc.pool.pool}/restored${seq}`;
    await h.run(["restore", "--target", target, "--private-key", sc.keyFile, "--backup-id", found.matches[0].lastSeen.backupId], at(4));
    const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", target])).stdout.trim();
    await run(["zfs", "mount", target]).catch(() => {});
    expect(readFileSync(join(mnt, "photos/cat.jpg"), "utf8")).toBe("meow".repeat(100));

    // The stock age CLI opens a catalog with the key: zstd-compressed text inside.
    const catKey = b1.catalog.key as string;
    const sealed = await getBytes(`${h.o.prefix}${catKey}`);
    writeFileSync(join(sc.work, "c.age"), sealed);
    await run(["age", "-d", "-i", sc.keyFile, "-o", join(sc.work, "c.zst"), join(sc.work, "c.age")]);
    const plain = new TextDecoder().decode(Bun.zstdDecompressSync(readFileSync(join(sc.work, "c.zst"))));
    expect(plain.split("\n")[0]).toMatch(/^zrb-file-catalog\/1\tchanges\t\d+$/);
    expect(plain).toContain("-\t0\t0\tphotos/cat.jpg");

    const v = jsonResult((await h.run(["verify", "--private-key", sc.keyFile, "--json"], at(4))).stdout);
    expect(v.backups.map((x: any) => x.catalog)).toEqual(["ok", "ok", "ok"]);

    // Replaced by another valid catalog of the same key (level 2's): refused by hash, exit 7.
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: `${h.o.prefix}${catKey}`, Body: await getBytes(`${h.o.prefix}${b2.catalog.key}`) }));
    const bad = await h.run(["find", "--private-key", sc.keyFile, "cat.jpg"], at(4), { allowFail: true });
    expect(bad.code).toBe(7);
    expect(bad.stderr).toContain(`file catalog ${catKey} is`);
    const vbad = await h.run(["verify", "--private-key", sc.keyFile], at(4), { allowFail: true });
    expect(vbad.code).toBe(7);
    expect(vbad.stderr).toMatch(/verification failed: 1 problem\(s\) in .*, the first: file catalog /); // counted, not "0 problem(s)"
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: `${h.o.prefix}${catKey}`, Body: sealed }));

    // Rekey: the catalogs open with the new key only, under new keys; the old objects are gone.
    const k2 = await ageKeyPair(join(sc.work, `key-${seq}b.txt`));
    await h.run(["rekey", "--private-key", sc.keyFile, "--to-recipient", k2.recipient], at(4));
    const after = JSON.parse((await h.run(["find", "--private-key", k2.keyFile, "--json", "cat.jpg"], at(4))).stdout);
    expect(after.matches[0].lastSeen.backupId).toBe(b0.backupId);
    expect((await h.run(["find", "--private-key", sc.keyFile, "cat.jpg"], at(4), { allowFail: true })).code).toBe(8);
    const keys = (await listKeys(client, sc.bucket, `${h.o.prefix}manifests/`)).map((o) => o.key).filter((k) => k.includes(".catalog"));
    expect(keys).toHaveLength(3);
    expect(keys.every((k) => /\.catalog-[0-9a-f]+\.age$/.test(k))).toBe(true);
  }, 600_000);

  test("prune deletes a catalog with its manifest and an orphan one, never a kept backup's; file_catalog: false makes none and find says so", async () => {
    const h = await history({ keep_last: 1 });
    write(h, "x.txt", "x");
    const old = await backupDay(h, 0, 1);
    write(h, "y.txt", "y");
    const kept = await backupDay(h, 0, 2);
    const dir = `${h.o.prefix}manifests/${h.fs}/`;
    const orphan = `${dir}20270301T000000Z-L0-abcdef.catalog.age`;
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: orphan, Body: "not ours" }));
    const catalogs = async () => (await listKeys(client, sc.bucket, dir)).map((o) => o.key).filter((k) => k.includes(".catalog")).sort();
    expect(await catalogs()).toEqual([`${h.o.prefix}${old.catalog.key}`, `${h.o.prefix}${kept.catalog.key}`, orphan].sort());
    const dry = jsonResult((await h.run(["prune", "--allow-unsigned", "--dry-run", "--json"], at(3))).stdout);
    expect(dry.orphans.map((o: any) => o.key)).toEqual([orphan.slice(h.o.prefix.length)]);
    expect((await catalogs()).length).toBe(3);
    await h.run(["prune", "--allow-unsigned"], at(3));
    expect(await catalogs()).toEqual([`${h.o.prefix}${kept.catalog.key}`]);

    // A catalog clone a killed backup left is zrb's: cleanup removes it. A dataset of that name
    // that zrb did not make is never touched: the backup warns and records no catalog.
    const clone = cloneName(h.fs);
    await run(["zfs", "clone", "-o", `zrb:catalog-clone=${h.fs}`, "-o", `mountpoint=${join(sc.work, "stale")}`, kept.snapshot, clone]);
    await h.run(["cleanup", "--allow-unsigned"], at(3));
    expect((await run(["zfs", "list", "-H", "-o", "name", "-r", sc.pool.pool])).stdout).not.toContain(clone);
    // A clone another live run uses (the lock it names is held: here by flock(1), -o so that
    // its sleep does not inherit the lock) is not stale:
    // cleanup leaves it, and a backup waits for it, then makes its catalog once that run is gone.
    const otherLock = join(sc.work, "other-run.lock");
    writeFileSync(otherLock, "");
    const holder = Bun.spawn(["flock", "-o", otherLock, "sleep", "30"], { stdout: "ignore", stderr: "ignore" });
    await Bun.sleep(300);
    await run(["zfs", "clone", "-o", `zrb:catalog-clone=${h.fs}`, "-o", `zrb:catalog-lock=${otherLock}`, "-o", `mountpoint=${join(sc.work, "busy")}`, kept.snapshot, clone]);
    const busy = await h.run(["cleanup", "--allow-unsigned"], at(3));
    expect(busy.stderr).toContain(`left the catalog clone of ${h.fs} alone: a running zrb uses it`);
    expect((await run(["zfs", "list", "-H", "-o", "name", clone])).stdout.trim()).toBe(clone);
    write(h, "v.bin", "v");
    const early = "2027-03-03T01:00:00Z"; // before the level 1 below, after kept
    await h.snapshot(1, early);
    setTimeout(() => holder.kill(), 3000);
    const waited = await h.run(["backup", "--level", "1", "--json"], early);
    expect(waited.stderr).toContain(`${clone} is in use by another zrb run; waiting for it`);
    expect(jsonResult(waited.stdout).catalog).not.toBeNull();
    expect((await run(["zfs", "list", "-H", "-o", "name", "-r", sc.pool.pool])).stdout).not.toContain(clone);
    await run(["zfs", "create", "-o", `mountpoint=${join(sc.work, "users")}`, clone]);
    write(h, "w.txt", "w");
    await h.snapshot(1, at(3));
    const notOurs = await h.run(["backup", "--level", "1", "--json"], at(3));
    const l1 = jsonResult(notOurs.stdout);
    expect(l1.catalog).toBeNull();
    expect(notOurs.stderr).toContain(`${clone} exists and is not zrb's catalog clone of ${h.fs}`);
    expect((await run(["zfs", "list", "-H", "-o", "name", clone])).stdout.trim()).toBe(clone);
    await destroyDataset(clone);
    // A clone a killed backup left names this base_dir's own lock (the same path for every run of
    // the dataset): the next backup, which holds that lock, knows its maker is gone, removes the
    // clone and makes its catalog at once (before, it took its own lock for a live run's and
    // waited 10 min, then made no catalog — every run after the kill).
    const ownLock = join(cloneDir(h.baseDir, h.fs), "clone.lock");
    await run(["zfs", "clone", "-o", `zrb:catalog-clone=${h.fs}`, "-o", `zrb:catalog-lock=${ownLock}`, "-o", `mountpoint=${join(sc.work, "killed")}`, kept.snapshot, clone]);
    write(h, "k.bin", "k");
    const later = "2027-03-03T12:00:00Z"; // after the level 1 above, before day 4
    await h.snapshot(1, later);
    const taken = await h.run(["backup", "--level", "1", "--json"], later);
    expect(taken.stderr).not.toContain("is in use by another zrb run");
    expect(jsonResult(taken.stdout).catalog).not.toBeNull();
    expect((await run(["zfs", "list", "-H", "-o", "name", "-r", sc.pool.pool])).stdout).not.toContain(clone);

    // Catalogs off: the backup has none, and find names the point instead of guessing.
    const doc = YAML.parse(readFileSync(h.cfg, "utf8"));
    doc.tasks[0].file_catalog = false;
    writeFileSync(h.cfg, YAML.stringify(doc));
    write(h, "z.txt", "z");
    const none = await backupDay(h, 1, 4);
    expect(none.catalog).toBeNull();
    const f = JSON.parse((await h.run(["find", "--private-key", sc.keyFile, "--json", "*.txt"], at(5))).stdout);
    expect(f.noCatalog).toEqual([l1, none].map((b) => ({ backupId: b.backupId, why: "it has no catalog" })));
    // w.txt: in the catalog of the level 1 taken after the killed run's clone (its changes since level 0).
    expect(f.matches.map((m: any) => m.path)).toEqual(["w.txt", "x.txt", "y.txt"]);
    expect(existsSync(join(h.baseDir, "catalog-clones"))).toBe(true);
  }, 600_000);

  test("a recursive task: find searches every child (one result each), --child one", async () => {
    const fs = `${sc.pool.pool}/tree`;
    await run(["zfs", "create", fs]);
    await run(["zfs", "create", `${fs}/kid`]);
    writeFileSync(join(await mountpointOf(fs), "report.pdf"), "root");
    writeFileSync(join(await mountpointOf(`${fs}/kid`), "report.pdf"), "kid's");
    const doc = YAML.parse(configYaml({ baseDir: join(sc.work, "base-tree"), recipients: [sc.recipient], bucket: sc.bucket, s3: sc.s3, prefix: "tree/", tasks: [{ name: "t", pool: sc.pool.pool, dataset: "tree" }] }));
    doc.tasks[0].recursive = true;
    const cfg = join(sc.work, "tree.yaml");
    writeFileSync(cfg, YAML.stringify(doc));
    const args = ["--config", cfg, "--task", "t"];
    await zrb(["snapshot", ...args, "--level", "0"], { env: sc.env });
    const b = jsonResult((await zrb(["backup", ...args, "--level", "0", "--json"], { env: sc.env })).stdout);
    expect(b.children.map((c: any) => [c.child, c.catalog?.entries])).toEqual([["", 2], ["kid", 1]]); // the child's mountpoint is an empty directory in its parent's snapshot
    const all = JSON.parse((await zrb(["find", ...args, "--private-key", sc.keyFile, "--json", "*.pdf"], { env: sc.env })).stdout);
    expect(all.map((r: any) => [r.dataset, r.matches.map((m: any) => [m.path, m.versions[0].size])])).toEqual([
      [fs, [["report.pdf", 4]]],
      [`${fs}/kid`, [["report.pdf", 5]]],
    ]);
    const one = JSON.parse((await zrb(["find", ...args, "--child", "kid", "--private-key", sc.keyFile, "--json", "report.pdf"], { env: sc.env })).stdout);
    expect(one.map((r: any) => r.dataset)).toEqual([`${fs}/kid`]);
  }, 300_000);
});
