/**
 * `zrb drill` and `zrb restore --path` on zfs-fuse + radosgw with the compiled binary. One
 * dataset `src` (a few MiB: files of several sizes and modes, a symlink, an empty directory, an
 * old mtime) with a chain L0 → L1, signed backups, a metrics file and a ping server. The live
 * dataset is changed after every snapshot, so each drill proves it compares with the snapshot,
 * never the live files. zfs-fuse has no `.zfs/snapshot`: the drill reads the source through its
 * clone `<pool>/zrbdrill<id>-src`, and its pool is `zrbdrill<id>` on a sparse file in drill.dir.
 * After each run no drill pool, clone or file may be left (also after SIGTERM; after kill -9 the
 * next drill and `zrb cleanup` remove them).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CopyObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { hashTree, run, s3Client, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, expectZrbFail, jsonEvents, jsonResult, sigtermGracefully, spawnZrb, zrb } from "../helpers/zrb.ts";
import { readSigningKey } from "../../src/crypto/signing.ts";
import { signManifest } from "../../src/records/trust.ts";

const PREFIX = "zrb/";
let sc: Scene;
let client: S3Client;
let cfg: string;
let keys: { publicKey: string; privateKeyFile: string; signingKeyFile: string };
let metrics: string;
let drillDir: string;
let pingServer: ReturnType<typeof Bun.serve>;
const pings: string[] = [];
const ids: string[] = [];
const snaps: string[] = [];
const trees: Record<string, string>[] = [];
let otherFs: string;
let otherId: string;

const drillArgs = (...more: string[]) => ["drill", "--config", cfg, "--task", "main", "--private-key", keys.privateKeyFile, ...more];
const LINE = /^drill: (\d+) files compared, (\d+) differ, restore \d+\.\d s \(\d+\.\d MB\/s\)$/m;

/** Drill pools, drill clones in the test pool, and entries in drill.dir: all must be gone after a run. */
async function leftovers(): Promise<string[]> {
  const pools = (await run(["zpool", "list", "-H", "-o", "name"])).stdout.split("\n").filter((p) => p.startsWith("zrbdrill"));
  const clones = (await run(["zfs", "list", "-H", "-o", "name", "-d", "1", sc.pool.pool])).stdout.split("\n").filter((n) => n.includes("/zrbdrill"));
  const files = existsSync(drillDir) ? readdirSync(drillDir) : [];
  return [...pools, ...clones, ...files];
}

function metric(name: string, task = "main"): string | undefined {
  const line = readFileSync(metrics, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}{`) && l.includes(`task="${task}"`));
  return line?.split(" ").at(-1);
}

async function getBytes(key: string): Promise<Uint8Array> {
  return await (await client.send(new GetObjectCommand({ Bucket: sc.bucket, Key: PREFIX + key }))).Body!.transformToByteArray();
}
async function putBytes(key: string, body: Uint8Array | string): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: PREFIX + key, Body: body }));
}
const manifestKey = (fs: string, id: string) => `manifests/${fs}/${id}.manifest.yaml`;

/** The test data: every kind of entry a restore must reproduce; `seed` changes big.bin's bytes only. */
async function fill(m: string, seed: number): Promise<void> {
  mkdirSync(join(m, "docs/deep"), { recursive: true });
  mkdirSync(join(m, "empty"), { mode: 0o750 });
  await writeRandomFile(join(m, "big.bin"), 1536 * 1024 + 7, seed);
  await writeRandomFile(join(m, "docs/a.txt"), 5000, 2);
  await writeRandomFile(join(m, "docs/deep/b.bin"), 300_000, 3);
  chmodSync(join(m, "docs/a.txt"), 0o600);
  chmodSync(join(m, "docs/deep"), 0o701);
  chmodSync(join(m, "empty"), 0o750);
  symlinkSync("a.txt", join(m, "docs/link"));
  utimesSync(join(m, "docs/deep/b.bin"), new Date("2001-02-03T04:05:06.789Z"), new Date("2001-02-03T04:05:06.789Z"));
}

beforeAll(async () => {
  sc = await scene({ name: "drill", poolMiB: 256, dataset: "src" });
  client = await s3Client(sc.s3);
  keys = JSON.parse((await zrb(["genkey", "--out-dir", join(sc.work, "keys"), "--json"])).stdout);
  pingServer = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req) => (pings.push(new URL(req.url).pathname), new Response("ok")) });
  mkdirSync(join(sc.work, "metrics"));
  metrics = join(sc.work, "metrics", "zrb.prom");
  const base = join(sc.work, "base");
  drillDir = join(base, "drill");
  otherFs = `${sc.pool.pool}/other`;
  await run(["zfs", "create", otherFs]);
  const doc = YAML.parse(
    configYaml({
      baseDir: base,
      recipients: [keys.publicKey],
      bucket: sc.bucket,
      s3: sc.s3,
      prefix: PREFIX,
      tasks: [
        { name: "main", pool: sc.pool.pool, dataset: "src" },
        { name: "other", pool: sc.pool.pool, dataset: "other" },
        { name: "tree", pool: sc.pool.pool, dataset: "tree" },
      ],
    }),
  );
  doc.tasks[2].recursive = true;
  doc.signing_key = keys.signingKeyFile;
  doc.monitoring = { metrics_file: metrics, ping_url: `http://127.0.0.1:${pingServer.port}/ping/drill` };
  cfg = join(sc.work, "zrb.yaml");
  writeFileSync(cfg, YAML.stringify(doc));
  const level = async (n: number, change: () => Promise<void>) => {
    await change();
    const s = (await zrb(["snapshot", "--config", cfg, "--task", "main", "--level", String(n)], { env: sc.env })).stdout.trim();
    snaps.push(s);
    trees.push(await hashTree(sc.mnt));
    ids.push(jsonResult((await zrb(["backup", "--config", cfg, "--task", "main", "--level", String(n), "--json"], { env: sc.env })).stdout).backupId);
  };
  await level(0, () => fill(sc.mnt, 1));
  // `other`: the same paths, modes and sizes, but big.bin holds other bytes; its snapshot has
  // L0's name. Its backup is a valid, signed, encrypted stream — of the wrong data for src.
  const otherMnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", otherFs])).stdout.trim();
  await fill(otherMnt, 99);
  await run(["zfs", "snapshot", `${otherFs}@${snaps[0]!.split("@")[1]}`]);
  otherId = jsonResult((await zrb(["backup", "--config", cfg, "--task", "other", "--level", "0", "--json"], { env: sc.env })).stdout).backupId;
  await level(1, async () => {
    await writeRandomFile(join(sc.mnt, "docs/c.bin"), 200_000, 4);
    rmSync(join(sc.mnt, "docs/deep/b.bin"));
  });
  // The live dataset moves on after the newest snapshot: the drill must not see this.
  await writeRandomFile(join(sc.mnt, "big.bin"), 1536 * 1024 + 7, 5);
  writeFileSync(join(sc.mnt, "live-only.txt"), "not in any snapshot\n");
}, 180_000);

afterAll(async () => {
  pingServer?.stop(true);
  await sc?.close();
});

describe("zrb drill", () => {
  test("passes on the newest point although the live dataset changed; metrics, pings, --json, --sample, nothing left", async () => {
    pings.length = 0; // the backups pinged too
    const r = await zrb(drillArgs(), { env: sc.env });
    const m = LINE.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBe(Object.keys(trees[1]!).length);
    expect(Number(m![2])).toBe(0);
    expect(await leftovers()).toEqual([]);
    expect(metric("zrb_drill_files_compared")).toBe(String(Object.keys(trees[1]!).length));
    expect(metric("zrb_drill_files_differ")).toBe("0");
    expect(Number(metric("zrb_drill_duration_seconds"))).toBeGreaterThan(0);
    // Its restore alone (zrb plan's rate), as the summary line prints it, within the whole drill.
    const restoreSeconds = Number(/restore ([\d.]+) s/.exec(r.stdout)![1]);
    expect(Number(metric("zrb_drill_restore_seconds"))).toBe(restoreSeconds);
    expect(restoreSeconds).toBeLessThanOrEqual(Number(metric("zrb_drill_duration_seconds")));
    expect(Number(metric("zrb_drill_last_success_timestamp_seconds"))).toBeGreaterThan(Date.now() / 1000 - 300);
    expect(metric("zrb_drill_last_exit_code")).toBe("0");
    expect(pings).toEqual(["/ping/drill/start", "/ping/drill"]);

    // An older point, as restore takes it, with --json events and a reported sample.
    const j = await zrb(drillArgs("--level", "0", "--sample", "2", "--json"), { env: sc.env });
    const events = jsonEvents(j.stdout);
    expect(events[0].event).toBe("start");
    const res = jsonResult(j.stdout);
    expect(res.backupId).toBe(ids[0]);
    expect(res.compared).toBe(Object.keys(trees[0]!).length);
    expect(res.differ).toBe(0);
    expect(res.source).toBe("clone");
    expect(res.sampled.length).toBe(2);
    for (const f of res.sampled) expect(trees[0]![f]).toStartWith("file ");
    expect(await leftovers()).toEqual([]);
  }, 180_000);

  test("fails with exit 7 when a stored backup is a valid, re-signed stream of other data", async () => {
    // What a signature cannot catch: the NAS itself (its signing key) stored the wrong bytes —
    // here, the backup of `other` (same paths, modes and sizes; big.bin differs) moved under
    // src's level-0 backup id, its manifest rewritten to name src and re-signed with the real
    // key. Every part hash, BLAKE3 and stream check passes; only comparing files can tell.
    const key = manifestKey(sc.fs, ids[0]!);
    const original = await getBytes(key);
    const theirs = YAML.parse(new TextDecoder().decode(await getBytes(manifestKey(otherFs, otherId))));
    const ours = YAML.parse(new TextDecoder().decode(original));
    const originals: [string, Uint8Array][] = [];
    for (const p of ours.parts) originals.push([p.key, await getBytes(p.key)]);
    const parts = [];
    for (const p of theirs.parts) {
      const k = p.key.replace(`/${otherFs}/`, `/${sc.fs}/`).replaceAll(otherId, ids[0]!);
      expect(k).not.toBe(p.key);
      await client.send(new CopyObjectCommand({ Bucket: sc.bucket, CopySource: `${sc.bucket}/${PREFIX}${p.key}`, Key: PREFIX + k }));
      parts.push({ ...p, key: k });
    }
    // The file catalog stays src's own (a manifest naming another dataset's catalog is refused as corrupt).
    const { signature: _, catalog: _theirs, ...rest } = { ...theirs, backupId: ids[0], dataset: ours.dataset, snapshot: { ...theirs.snapshot, name: snaps[0] }, parts };
    const body = { ...rest, ...(ours.catalog ? { catalog: ours.catalog } : {}) };
    await putBytes(key, YAML.stringify(signManifest(body, await readSigningKey(keys.signingKeyFile))));
    try {
      const r = await zrb(drillArgs("--backup-id", ids[0]!), { env: sc.env, allowFail: true });
      expect(r.code).toBe(7);
      expect(r.stderr).toContain("drill: differs: big.bin: content differs (SHA-256)");
      expect(r.stdout).toMatch(/^drill: \d+ files compared, 1 differ, /m);
      const err = r.stderr.split("\n").filter((l) => l.startsWith("zrb: "));
      expect(err.length).toBe(1);
      expect(err[0]).toContain("1 of");
      expect(err[0]).toContain("big.bin");
      expect(metric("zrb_drill_files_differ")).toBe("1");
      expect(metric("zrb_drill_last_exit_code")).toBe("7");
      expect(pings.at(-1)).toBe("/ping/drill/fail");
      expect(await leftovers()).toEqual([]);
    } finally {
      await putBytes(key, original);
      for (const [k, b] of originals) await putBytes(k, b);
    }
  }, 180_000);

  test("without the source snapshot on this host: restores, verifies, says no source was compared", async () => {
    const [fs, name] = snaps[1]!.split("@");
    await run(["zfs", "rename", snaps[1]!, `${fs}@elsewhere`]);
    try {
      const r = await zrb(drillArgs(), { env: sc.env });
      expect(r.stderr).toContain(`no source compared (${fs}@${name} is not on this host)`);
      expect(r.stdout).toMatch(/^drill: 0 files compared, 0 differ, /m);
      expect(await leftovers()).toEqual([]);
    } finally {
      await run(["zfs", "rename", `${fs}@elsewhere`, snaps[1]!]);
    }
  }, 120_000);

  test("SIGTERM mid-drill leaves nothing; after kill -9 the next drill and zrb cleanup remove the pool and clone", async () => {
    const waitFor = async (what: RegExp) => {
      for (let i = 0; i < 3000; i++) {
        if ((await leftovers()).some((l) => what.test(l))) return;
        await Bun.sleep(20);
      }
      throw new Error(`no ${what} appeared`);
    };
    const p = await spawnZrb(drillArgs(), sc.env);
    await waitFor(/^zrbdrill[0-9a-f]{12}$/);
    await sigtermGracefully(p);
    expect(await leftovers()).toEqual([]);

    // kill -9 while the clone exists: a fault-injecting zfs hangs the drill in the clone's
    // destroy (so the kill lands there every time), then pool, file, lock and clone stay behind.
    const stuck = join(sc.work, "stuck.pid");
    const fakeZfs = join(sc.work, "zfs-hang-on-drill-destroy");
    writeFileSync(fakeZfs, `#!/bin/sh\ncase "$*" in *destroy*zrbdrill*-src*) echo $$ > ${stuck}; exec sleep 600;; esac\nexec zfs "$@"\n`, { mode: 0o755 });
    // Not a drill's: the right name but no zrb:drill property. Cleanup must leave it alone.
    const decoy = `${sc.pool.pool}/zrbdrill0123456789ab-src`;
    await run(["zfs", "create", "-o", "canmount=off", decoy]); // never mounted: never "busy" on zfs-fuse
    // Not a drill's either: a pool of a drill's name whose vdev is not in drill.dir.
    const decoyPool = "zrbdrill0123456789ab";
    const decoyFile = join(sc.work, `${decoyPool}.img`);
    writeFileSync(decoyFile, "");
    truncateSync(decoyFile, 128 * 1024 * 1024);
    await run(["zpool", "create", "-m", "none", decoyPool, decoyFile]);
    for (const next of ["drill", "cleanup"]) {
      rmSync(stuck, { force: true });
      const k = await spawnZrb(drillArgs(), { ...sc.env, ZRB_ZFS: fakeZfs });
      for (let i = 0; i < 3000 && !existsSync(stuck); i++) await Bun.sleep(20);
      k.kill("SIGKILL");
      await k.exited;
      process.kill(Number(readFileSync(stuck, "utf8")), "SIGKILL");
      const left = (await leftovers()).filter((l) => l !== decoy && l !== decoyPool);
      expect(left.some((l) => /^zrbdrill[0-9a-f]{12}$/.test(l))).toBe(true);
      expect(left.some((l) => /^.*\/zrbdrill[0-9a-f]{12}-src$/.test(l))).toBe(true);
      expect(left.some((l) => /^zrbdrill[0-9a-f]{12}\.img$/.test(l))).toBe(true);
      if (next === "cleanup") {
        // --dry-run names them and removes nothing.
        const dry = await zrb(["cleanup", "--config", cfg, "--task", "main", "--dry-run"], { env: sc.env });
        expect(dry.stderr).toContain("would remove the stale drill pool zrbdrill");
        expect(dry.stderr).toContain("would remove the stale drill clone");
        expect((await leftovers()).filter((l) => l !== decoy && l !== decoyPool)).toEqual(left);
      }
      const r =
        next === "drill"
          ? await zrb(drillArgs(), { env: sc.env })
          : await zrb(["cleanup", "--config", cfg, "--task", "main"], { env: sc.env });
      expect(r.stderr).toContain("removed the stale drill pool zrbdrill");
      expect(r.stderr).toContain("removed the stale drill clone");
      expect(await leftovers()).toEqual([decoyPool, decoy]);
    }
    await run(["zfs", "destroy", decoy]);
    await run(["zpool", "destroy", decoyPool]);
    rmSync(decoyFile, { force: true });
  }, 300_000);
});

describe("a recursive task", () => {
  test("drills every child as of one run, per-child metrics; restore --path --child takes a child's file", async () => {
    const t = `${sc.pool.pool}/tree`;
    await run(["zfs", "create", "-p", `${t}/kid`]);
    const top = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", t])).stdout.trim();
    await writeRandomFile(join(top, "top.bin"), 100_000, 7);
    await writeRandomFile(join(top, "kid", "kid.bin"), 150_000, 8);
    await zrb(["snapshot", "--config", cfg, "--task", "tree", "--level", "0"], { env: sc.env });
    const kidTree = await hashTree(join(top, "kid"));
    await zrb(["backup", "--config", cfg, "--task", "tree", "--level", "0"], { env: sc.env });
    await writeRandomFile(join(top, "kid", "kid.bin"), 150_000, 9); // live data moves on

    const r = await zrb(["drill", "--config", cfg, "--task", "tree", "--private-key", keys.privateKeyFile], { env: sc.env });
    // The root: top.bin and kid/, the child's (empty) mount point directory; the child: kid.bin.
    expect(r.stdout).toMatch(/^\s*\.\s+ok\s+drill: 2 files compared, 0 differ, /m);
    expect(r.stdout).toMatch(/^\s*kid\s+ok\s+drill: 1 files compared, 0 differ, /m);
    expect(metric("zrb_drill_files_compared", "tree")).toBeDefined();
    const kidLine = readFileSync(metrics, "utf8").split("\n").find((l) => l.startsWith("zrb_drill_files_compared{") && l.includes('dataset="tree/kid"'));
    expect(kidLine?.split(" ").at(-1)).toBe("1");
    expect(await leftovers()).toEqual([]);

    const out = join(sc.work, "tree-out");
    mkdirSync(out);
    await expectZrbFail(["restore", "--config", cfg, "--task", "tree", "--private-key", keys.privateKeyFile, "--path", "kid.bin", "--to", out], sc.env, 2, "--child");
    await zrb(["restore", "--config", cfg, "--task", "tree", "--child", "kid", "--private-key", keys.privateKeyFile, "--path", "kid.bin", "--to", out], { env: sc.env });
    expect(await hashTree(out)).toEqual(kidTree);
    expect(await leftovers()).toEqual([]);
  }, 180_000);
});

/** A directory's own mode and mtime, to the nanosecond (its atime moves when it is read). */
const attrs = (p: string) => {
  const st = lstatSync(p, { bigint: true });
  return { mode: st.mode, mtime: st.mtimeNs };
};

describe("zrb restore --path", () => {
  const restoreArgs = (to: string, ...more: string[]) => ["restore", "--config", cfg, "--task", "main", "--private-key", keys.privateKeyFile, "--to", to, ...more];
  const subset = (tree: Record<string, string>, top: string[]) => Object.fromEntries(Object.entries(tree).filter(([k]) => top.some((t) => k === t || k.startsWith(t + "/"))));

  test("a file and a directory come back byte-identical with modes, mtimes and a symlink; conflicts refused before anything is copied; --force", async () => {
    const out = join(sc.work, "out");
    mkdirSync(out);
    await zrb(restoreArgs(out, "--path", "docs", "--path", "./big.bin"), { env: sc.env });
    expect(await hashTree(out)).toEqual(subset(trees[1]!, ["docs", "big.bin"]));
    expect(await leftovers()).toEqual([]);

    // From an older point: a file deleted since, alone; its parent directories are made with theirs.
    const old = join(sc.work, "old");
    mkdirSync(old);
    await zrb(restoreArgs(old, "--level", "0", "--path", "docs/deep/b.bin"), { env: sc.env });
    const got = await hashTree(old);
    expect(got["docs/deep/b.bin"]).toBe(trees[0]!["docs/deep/b.bin"]!);
    expect(got["docs/deep"]).toBe(trees[0]!["docs/deep"]!);

    // One existing file in the way: refused (exit 9) naming it, and big.bin (no conflict) not copied either.
    const busy = join(sc.work, "busy");
    mkdirSync(join(busy, "docs"), { recursive: true });
    chmodSync(join(busy, "docs"), 0o711); // not the snapshot's mode: merging must set it
    writeFileSync(join(busy, "docs/a.txt"), "mine\n");
    await expectZrbFail(restoreArgs(busy, "--path", "big.bin", "--path", "docs"), sc.env, 9, `${join(busy, "docs/a.txt")} exists`, "--force", "nothing was copied");
    expect(existsSync(join(busy, "big.bin"))).toBe(false);
    expect(readFileSync(join(busy, "docs/a.txt"), "utf8")).toBe("mine\n");
    await zrb(restoreArgs(busy, "--path", "big.bin", "--path", "docs", "--force"), { env: sc.env });
    expect(await hashTree(join(busy, "docs"))).toEqual(await hashTree(join(out, "docs")));
    // The merged docs itself has the snapshot's mode and mtime, as one made afresh.
    expect(attrs(join(busy, "docs"))).toEqual(attrs(join(out, "docs")));
    expect((await hashTree(busy))["big.bin"]).toBe(trees[1]!["big.bin"]!);

    // zrb runs as root: a --to another user owns, or a directory of theirs the paths would merge
    // into, could be swapped for a link mid-copy. Refused, naming it (exit 9), nothing copied.
    const alien = join(sc.work, "alien");
    mkdirSync(alien);
    chownSync(alien, 4242, 4242);
    await expectZrbFail(restoreArgs(alien, "--path", "big.bin"), sc.env, 9, `--to ${alien}: ${alien} is owned by uid 4242`, "nothing was restored");
    const mixed = join(sc.work, "mixed");
    mkdirSync(join(mixed, "docs"), { recursive: true });
    chownSync(join(mixed, "docs"), 4242, 4242);
    await expectZrbFail(restoreArgs(mixed, "--path", "docs"), sc.env, 9, `${join(mixed, "docs")} is owned by uid 4242`, "nothing was copied");
    expect(readdirSync(alien)).toEqual([]);
    expect(readdirSync(join(mixed, "docs"))).toEqual([]);

    // Paths outside the dataset are refused before anything runs; a missing one names the point.
    await expectZrbFail(restoreArgs(out, "--path", "../etc/passwd"), sc.env, 2, "'..'");
    await expectZrbFail(restoreArgs(out, "--path", "/etc/passwd"), sc.env, 2, "absolute");
    await expectZrbFail(restoreArgs(out, "--path", "docs/nope.txt"), sc.env, 2, "docs/nope.txt is not in", `${sc.fs}@${snaps[1]!.split("@")[1]}`, ids[1]!, "no restore point's file catalog holds it");
    // A file deleted since the level 0: the error names the point whose catalog still holds it.
    await expectZrbFail(restoreArgs(out, "--path", "docs/deep/b.bin"), sc.env, 2, "docs/deep/b.bin is not in", "restore points holding it", `--backup-id ${ids[0]!}`);
    expect(await leftovers()).toEqual([]);
  }, 300_000);

  test("all or nothing: a copy that fills the disk leaves --to as it was; across a mount point inside --to the paths are copied", async () => {
    const mounted: string[] = [];
    const tmpfs = async (dir: string, size: string) => {
      mkdirSync(dir, { recursive: true });
      await run(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
      mounted.push(dir);
    };
    try {
      // 1 MiB: docs (≈ 200 KiB) fits, big.bin (1.5 MiB) does not — and docs is copied first.
      const full = join(sc.work, "full");
      await tmpfs(full, "1m");
      writeFileSync(join(full, "keep.txt"), "mine\n");
      await expectZrbFail(restoreArgs(full, "--path", "docs", "--path", "big.bin"), sc.env, 9, "copying big.bin into", "nothing was copied into");
      expect(readdirSync(full)).toEqual(["keep.txt"]);
      expect(readFileSync(join(full, "keep.txt"), "utf8")).toBe("mine\n");
      expect(await leftovers()).toEqual([]);

      // --to's docs is another file system: rename cannot go there, so its entries are copied; the same tree as a plain restore.
      const out = join(sc.work, "plain");
      mkdirSync(out);
      await zrb(restoreArgs(out, "--path", "docs"), { env: sc.env });
      const across = join(sc.work, "across");
      await tmpfs(join(across, "docs"), "8m");
      await zrb(restoreArgs(across, "--path", "docs"), { env: sc.env });
      expect(await hashTree(join(across, "docs"))).toEqual(await hashTree(join(out, "docs")));
      expect(attrs(join(across, "docs"))).toEqual(attrs(join(out, "docs")));
      expect(readdirSync(across)).toEqual(["docs"]);
      // --force over a symbolic link there: the link is replaced, never written through (its target is outside --to).
      const outside = join(sc.work, "outside.txt");
      writeFileSync(outside, "not zrb's\n");
      rmSync(join(across, "docs/a.txt"));
      symlinkSync(outside, join(across, "docs/a.txt"));
      await zrb(restoreArgs(across, "--path", "docs", "--force"), { env: sc.env });
      expect(readFileSync(outside, "utf8")).toBe("not zrb's\n");
      expect(lstatSync(join(across, "docs/a.txt")).isFile()).toBe(true);
      expect(await hashTree(join(across, "docs"))).toEqual(await hashTree(join(out, "docs")));

      // A path below a mount is staged on that mount: the 64 KiB file system around it never holds c.bin (200 KB).
      const nest = join(sc.work, "nest");
      await tmpfs(nest, "64k");
      await tmpfs(join(nest, "docs"), "8m");
      await zrb(restoreArgs(nest, "--path", "docs/c.bin"), { env: sc.env });
      expect((await hashTree(nest))["docs/c.bin"]).toBe((await hashTree(out))["docs/c.bin"]!);
      expect(readdirSync(nest)).toEqual(["docs"]);
    } finally {
      for (const d of mounted.reverse()) await run(["umount", d]).catch(() => {});
    }
  }, 300_000);
  test("after kill -9 mid-copy the stage in --to is removed by zrb cleanup (--dry-run names it), an unrecorded look-alike stays", async () => {
    // A cp that hangs in the stage's copy, so the kill lands there every time.
    const bin = join(sc.work, "cp-hangs");
    const stuck = join(sc.work, "cp.pid");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "cp"), `#!/bin/sh\ncase "$*" in *--parents*) echo $$ > ${stuck}; exec sleep 600;; esac\nexec /usr/bin/cp "$@"\n`, { mode: 0o755 });
    const to = join(sc.work, "killed");
    const decoy = join(to, ".zrb-restore-0123456789ab-0"); // the right shape, recorded nowhere
    mkdirSync(decoy, { recursive: true, mode: 0o700 });
    writeFileSync(join(to, "keep.txt"), "mine\n");
    const k = await spawnZrb(restoreArgs(to, "--path", "docs"), { ...sc.env, PATH: `${bin}:${process.env.PATH}` });
    for (let i = 0; i < 3000 && !existsSync(stuck); i++) await Bun.sleep(20);
    k.kill("SIGKILL");
    await k.exited;
    process.kill(Number(readFileSync(stuck, "utf8")), "SIGKILL");
    const stage = readdirSync(to).find((e) => /^\.zrb-restore-[0-9a-f]{12}-0$/.test(e) && join(to, e) !== decoy);
    expect(stage).toBeDefined();
    expect((await leftovers()).some((l) => /^zrbdrill[0-9a-f]{12}\.stages$/.test(l))).toBe(true);

    const dry = await zrb(["cleanup", "--config", cfg, "--task", "main", "--dry-run"], { env: sc.env });
    expect(dry.stderr).toContain(`would remove the stale staging directory ${join(to, stage!)} (its restore --path was killed)`);
    expect(existsSync(join(to, stage!))).toBe(true);
    const r = await zrb(["cleanup", "--config", cfg, "--task", "main"], { env: sc.env });
    expect(r.stderr).toContain(`removed the stale staging directory ${join(to, stage!)}`);
    expect(r.stderr).toContain("removed the stale drill pool zrbdrill");
    expect(readdirSync(to).sort()).toEqual([".zrb-restore-0123456789ab-0", "keep.txt"]);
    expect(await leftovers()).toEqual([]);
  }, 300_000);
});
