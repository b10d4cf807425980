/**
 * Regression tests for the hostile review of 0.1.0+87724ab91 (issue "Never destroy what you
 * cannot read"): a bucket, a local state and a network tampered with by someone who wants zrb to
 * destroy or mis-restore backups. Real zfs-fuse pools, real radosgw, the compiled binary.
 *
 * Each test builds its own small chain (L0 → L1 → L2, 64 KiB chunks) in its own dataset and
 * bucket prefix, so tampering in one test never leaks into another.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { ageKeyPair, hashTree, makeBucket, makePool, run, s3Client, s3Rig, snapshotGuid, tmpDir, userrefs, writeRandomFile, zfsRig, type S3Rig, type TestPool } from "../helpers/rig.ts";
import { configYaml, expectZrbFail, jsonResult, s3Env, spawnZrb, zrb } from "../helpers/zrb.ts";

let s3: S3Rig;
let client: S3Client;
let pool: TestPool;
let bucket: string;
let work: string;
let keyFile: string;
let recipient: string;
let env: Record<string, string>;
let seq = 0;

beforeAll(async () => {
  await zfsRig();
  s3 = await s3Rig();
  client = await s3Client(s3);
  pool = await makePool({ sizeMiB: 256 });
  bucket = await makeBucket(s3);
  work = tmpDir("zrb-e2e-hostile-");
  ({ keyFile, recipient } = await ageKeyPair(join(work, "key.txt")));
  env = s3Env(s3);
});

afterAll(async () => {
  await pool?.destroy();
});

interface Chain {
  name: string;
  fs: string;
  mnt: string;
  prefix: string;
  cfg: string;
  baseDir: string;
  ids: string[];
  snaps: string[];
  trees: Record<string, string>[];
}

/** A dataset with its own prefix, base_dir and config, backed up at the given levels in order. */
async function chain(levels: number[] = [0, 1, 2], opts: { endpoint?: string; baseDirMode?: number } = {}): Promise<Chain> {
  const name = `c${++seq}`;
  const fs = `${pool.pool}/${name}`;
  await run(["zfs", "create", fs]);
  const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fs])).stdout.trim();
  const prefix = `t${seq}/`;
  const baseDir = join(work, `base-${name}`);
  mkdirSync(baseDir, { mode: 0o700 });
  const cfg = join(work, `${name}.yaml`);
  const doc = YAML.parse(
    configYaml({ baseDir, recipients: [recipient], bucket, s3, prefix, chunkSize: "64KiB", workers: 2, tasks: [{ name: "t", pool: pool.pool, dataset: name }] }),
  );
  if (opts.endpoint) doc.s3.endpoint = opts.endpoint;
  doc.prune = { orphan_grace: "0s" }; // without it, "every part stays" would hold for young parts anyway
  writeFileSync(cfg, YAML.stringify(doc));
  const c: Chain = { name, fs, mnt, prefix, cfg, baseDir, ids: [], snaps: [], trees: [] };
  for (const level of levels) await level_(c, level);
  return c;
}

async function level_(c: Chain, level: number, extra: string[] = []): Promise<any> {
  await writeRandomFile(join(c.mnt, `f${c.snaps.length}.bin`), 150_000 + c.snaps.length * 1000, 100 + seq * 10 + c.snaps.length);
  const snap = (await zrb(["snapshot", "--config", c.cfg, "--task", "t", "--level", String(level)], { env })).stdout.trim();
  c.snaps.push(snap);
  c.trees.push(await hashTree(c.mnt));
  const r = jsonResult((await zrb(["backup", "--config", c.cfg, "--task", "t", "--level", String(level), "--json", ...extra], { env })).stdout);
  c.ids.push(r.backupId);
  return r;
}

const mkey = (c: Chain, id: string) => `${c.prefix}manifests/${c.fs}/${id}.manifest.yaml`;
const hkey = (c: Chain) => `${c.prefix}manifests/${c.fs}/heads.yaml`;

async function getText(key: string): Promise<string> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return await r.Body!.transformToString();
}
async function putText(key: string, body: string | Uint8Array): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}
async function del(key: string): Promise<void> {
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}
async function keys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) out.push(o.Key!);
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out.sort();
}
const dataKeys = (c: Chain) => keys(`${c.prefix}data/`);
const manifestKeys = async (c: Chain) => (await keys(`${c.prefix}manifests/`)).filter((k) => k.endsWith(".manifest.yaml"));

const expectFail = (args: string[], code: number, ...needles: string[]) => expectZrbFail(args, env, code, ...needles);

async function snapsOf(ds: string): Promise<string[]> {
  const r = await run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", ds], { allowFail: true });
  return r.stdout.split("\n").filter((l) => l.startsWith(ds + "@"));
}

describe("1: cleanup never deletes what an unreadable manifest may refer to", () => {
  for (const [label, tamper] of [
    ["a corrupt manifest", (t: string) => t.slice(0, t.length >> 1) + "\n  - [unbalanced"],
    ["a manifest of a newer format", (t: string) => t.replace("format: zrb-manifest/1", "format: zrb-manifest/9")],
  ] as const) {
    test(`${label}: cleanup and cleanup --dry-run stop with exit 7, every part stays`, async () => {
      const c = await chain([0, 1]);
      const before = await dataKeys(c);
      await putText(mkey(c, c.ids[0]!), tamper(await getText(mkey(c, c.ids[0]!))));
      for (const extra of [["--dry-run"], []]) {
        const line = await expectFail(["cleanup", "--allow-unsigned", "--config", c.cfg, "--task", "t", ...extra], 7, `${c.ids[0]}.manifest.yaml`, "nothing was deleted");
        expect(line).toContain("cannot be read");
      }
      expect(await dataKeys(c)).toEqual(before);
    });
  }
});

describe("2: an incremental is never built on a parent that is not in the bucket", () => {
  test("level-0 manifest deleted: backup --level 1 refuses with exit 7, names the missing link and the fix; nothing is written", async () => {
    const c = await chain([0]);
    await del(mkey(c, c.ids[0]!));
    await writeRandomFile(join(c.mnt, "new.bin"), 10_000, 7);
    await zrb(["snapshot", "--config", c.cfg, "--task", "t", "--level", "1"], { env });
    const before = await dataKeys(c);
    await expectFail(["backup", "--config", c.cfg, "--task", "t", "--level", "1"], 7, c.ids[0]!, "--level 0");
    expect(await dataKeys(c)).toEqual(before);
    expect(await manifestKeys(c)).toEqual([]);
    expect(existsSync(join(c.baseDir, "run", pool.pool, c.name, "backup_state.yaml"))).toBe(false);
  });

  test("heads.yaml naming a backup id that does not exist: refused the same way", async () => {
    const c = await chain([0]);
    const h = YAML.parse(await getText(hkey(c)));
    h.levels["0"].backupId = "20990101T000000Z-L0-abcdef";
    await putText(hkey(c), YAML.stringify(h));
    await writeRandomFile(join(c.mnt, "new.bin"), 10_000, 8);
    await zrb(["snapshot", "--config", c.cfg, "--task", "t", "--level", "1"], { env });
    await expectFail(["backup", "--config", c.cfg, "--task", "t", "--level", "1"], 7, "20990101T000000Z-L0-abcdef", "--level 0");
    expect((await manifestKeys(c)).length).toBe(1);
  });

  test("a part of the parent missing: refused before sending", async () => {
    const c = await chain([0]);
    const parts = await dataKeys(c);
    await del(parts[1]!);
    await writeRandomFile(join(c.mnt, "new.bin"), 10_000, 9);
    await zrb(["snapshot", "--config", c.cfg, "--task", "t", "--level", "1"], { env });
    await expectFail(["backup", "--config", c.cfg, "--task", "t", "--level", "1"], 7, "part 1", "--level 0");
    expect((await manifestKeys(c)).length).toBe(1);
  });
});

describe("3: verify and restore look at the newest point, not the newest intact one", () => {
  test("middle manifest deleted: verify exits 7 naming the broken link; restore refuses and names the newest restorable point", async () => {
    const c = await chain([0, 1, 2]);
    await del(mkey(c, c.ids[1]!));
    await expectFail(["verify", "--config", c.cfg, "--task", "t"], 7, c.ids[2]!, c.ids[1]!);
    await expectFail(["verify", "--config", c.cfg, "--task", "t", "--private-key", keyFile], 7, c.ids[2]!, c.ids[1]!);
    const line = await expectFail(
      ["restore", "--config", c.cfg, "--task", "t", "--target", `${pool.pool}/r${c.name}`, "--private-key", keyFile],
      7,
      c.ids[2]!,
      `--backup-id ${c.ids[0]}`,
    );
    expect(line).toContain(c.ids[1]!);
    expect(await snapsOf(`${pool.pool}/r${c.name}`)).toEqual([]);
    // Asked for explicitly, the intact point restores.
    await zrb(["restore", "--config", c.cfg, "--task", "t", "--target", `${pool.pool}/r${c.name}`, "--private-key", keyFile, "--backup-id", c.ids[0]!], { env });
    expect((await snapsOf(`${pool.pool}/r${c.name}`)).length).toBe(1);
  });

  test("middle parts deleted: verify exits 7 naming the part; restore refuses", async () => {
    const c = await chain([0, 1, 2]);
    const l1 = (await dataKeys(c)).filter((k) => k.includes(`/${c.ids[1]}/`));
    for (const k of l1) await del(k);
    await expectFail(["verify", "--config", c.cfg, "--task", "t"], 7, c.ids[1]!);
    await expectFail(["restore", "--config", c.cfg, "--task", "t", "--target", `${pool.pool}/r${c.name}`, "--private-key", keyFile], 7, c.ids[2]!, `--backup-id ${c.ids[0]}`);
  });
});

describe("4: heads.yaml is a cache of the manifests", () => {
  for (const [label, body] of [
    ["not YAML", "{ levels: [ 0: oops"],
    ["wrongly shaped", YAML.stringify({ format: "zrb-heads/1", levels: { "0": { backupId: 5, snapshot: "x" } } })],
  ] as const) {
    test(`${label}: backup and status rebuild it from the manifests and say so once`, async () => {
      const c = await chain([0]);
      await putText(hkey(c), body);
      const st = await zrb(["status", "--config", c.cfg], { env });
      expect(st.stdout).toContain(`level 0: ${c.snaps[0]!.split("@")[1]}`);
      expect(st.stderr).toContain("rebuilt");
      await writeRandomFile(join(c.mnt, "n.bin"), 5000, 11);
      await zrb(["snapshot", "--config", c.cfg, "--task", "t", "--level", "1"], { env });
      const r = await zrb(["backup", "--config", c.cfg, "--task", "t", "--level", "1", "--json"], { env });
      expect(jsonResult(r.stdout).parentBackupId).toBe(c.ids[0]);
      expect(r.stderr.match(/rebuilt/g)?.length).toBe(1);
      const h = YAML.parse(await getText(hkey(c)));
      expect(Object.keys(h.levels).sort()).toEqual(["0", "1"]);
    });
  }

  test("a forged head naming another dataset's snapshot never gets a hold on it", async () => {
    // The level-0 head is not the base of a level-2 backup (the level-1 head is), but it stays a
    // head, and heads get a persistent hold: forged, it must not reach another dataset.
    const c = await chain([0, 1]);
    const other = `${pool.pool}/victim${c.name}`;
    await run(["zfs", "create", other]);
    await run(["zfs", "snapshot", `${other}@precious`]);
    const guid = await snapshotGuid(`${other}@precious`);
    const h = YAML.parse(await getText(hkey(c)));
    h.levels["0"].snapshot = { name: `${other}@precious`, guid };
    await putText(hkey(c), YAML.stringify(h));
    await writeRandomFile(join(c.mnt, "n.bin"), 5000, 12);
    await zrb(["snapshot", "--config", c.cfg, "--task", "t", "--level", "2"], { env });
    const r = await zrb(["backup", "--config", c.cfg, "--task", "t", "--level", "2", "--json"], { env });
    expect(jsonResult(r.stdout).parentBackupId).toBe(c.ids[1]);
    expect(await userrefs(`${other}@precious`)).toBe(0);
    expect(await userrefs(c.snaps[0]!)).toBe(1);
  });
});

describe("6: restore --force applies to every step", () => {
  test("into an existing, mounted dataset that something reads between steps: the whole chain L0 → L1 → L2 is received", async () => {
    const c = await chain([0, 1, 2]);
    const target = `${pool.pool}/f${c.name}`;
    await run(["zfs", "create", target]);
    const tm = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", target])).stdout.trim();
    writeFileSync(join(tm, "old.txt"), "to be replaced");
    // A NAS's indexer or file server reading the mounted target after each receive: atime changes,
    // and an incremental receive without -F then fails with "has been modified".
    const wrapper = join(work, `zfs-read-${c.name}.sh`);
    writeFileSync(
      wrapper,
      `#!/bin/bash
zfs "$@"; rc=$?
if [ "$1" = receive ] && [ $rc = 0 ]; then sleep 0.5; cat '${tm}'/*.bin >/dev/null 2>&1; fi
exit $rc
`,
      { mode: 0o755 },
    );
    await zrb(["restore", "--config", c.cfg, "--task", "t", "--target", target, "--private-key", keyFile, "--force"], { env: { ...env, ZRB_ZFS: wrapper } });
    const got = await snapsOf(target);
    expect(got.map((s) => s.split("@")[1])).toEqual(c.snaps.map((s) => s.split("@")[1]!));
    for (const [i, s] of c.snaps.entries()) expect(await snapshotGuid(got[i]!)).toBe(await snapshotGuid(s));
  });
});

describe("7: base_dir and scratch files", () => {
  test("a base_dir writable by other users is refused by check and by every run, naming the fix", async () => {
    const c = await chain([0]);
    chmodSync(c.baseDir, 0o777);
    try {
      await expectFail(["verify", "--config", c.cfg, "--task", "t"], 9, c.baseDir, "chmod");
      await expectFail(["backup", "--config", c.cfg, "--task", "t", "--level", "0"], 9, c.baseDir, "chmod");
      await expectFail(["check", "--config", c.cfg], 9, c.baseDir, "chmod");
    } finally {
      chmodSync(c.baseDir, 0o700);
    }
  });

  test("a symlink planted where a restore writes its scratch file is not followed", async () => {
    const c = await chain([0]);
    const victim = join(work, `victim-${c.name}`);
    writeFileSync(victim, "root-owned precious file");
    const scratch = join(c.baseDir, "restore-scratch", c.ids[0]!);
    mkdirSync(scratch, { recursive: true, mode: 0o700 });
    symlinkSync(victim, join(scratch, "part-000000.age"));
    await zrb(["restore", "--config", c.cfg, "--task", "t", "--target", `${pool.pool}/s${c.name}`, "--private-key", keyFile], { env });
    expect(readFileSync(victim, "utf8")).toBe("root-owned precious file");
  });
});

describe("8: the withheld tail is the last MiB actually read", () => {
  test("sizes inflated by 1e12 in the manifest: exit 7, zfs receive never commits the step", async () => {
    const c = await chain([0, 1]);
    const target = `${pool.pool}/w${c.name}`;
    await zrb(["restore", "--config", c.cfg, "--task", "t", "--target", target, "--private-key", keyFile, "--backup-id", c.ids[0]!], { env });
    const m = YAML.parse(await getText(mkey(c, c.ids[1]!)));
    m.stream.size += 1e12;
    m.parts.at(-1).plainSize += 1e12;
    await putText(mkey(c, c.ids[1]!), YAML.stringify(m));
    await expectFail(["restore", "--config", c.cfg, "--task", "t", "--target", target, "--private-key", keyFile], 7, c.ids[1]!);
    expect((await snapsOf(target)).map((s) => s.split("@")[1])).toEqual([c.snaps[0]!.split("@")[1]!]);
  });
});

describe("9: text from the bucket never reaches the terminal raw", () => {
  test("escape sequences and newlines in snapshot.name: list and restore --plan print no control characters", async () => {
    const c = await chain([0]);
    const m = YAML.parse(await getText(mkey(c, c.ids[0]!)));
    m.snapshot.name = `${c.fs}@x\u001b[2J\u001b[H\n✔ restored everything`;
    await putText(mkey(c, c.ids[0]!), YAML.stringify(m));
    for (const args of [
      ["list", "--config", c.cfg, "--task", "t"],
      ["restore", "--config", c.cfg, "--task", "t", "--target", `${pool.pool}/e${c.name}`, "--plan"],
    ]) {
      const r = await zrb(args, { env, allowFail: true });
      const out = r.stdout + r.stderr;
      expect(out).not.toContain("\u001b");
      expect(out).not.toMatch(/^✔ restored everything/m);
    }
  });
});

describe("10: a level already backed up is not sent again", () => {
  test("rerunning level 0 without a new snapshot says so, exits 0 and uploads nothing; --force sends it again", async () => {
    const c = await chain([0]);
    const before = await dataKeys(c);
    const r = await zrb(["backup", "--config", c.cfg, "--task", "t", "--level", "0"], { env });
    expect(r.stderr).toContain("already backed up");
    expect(r.stderr).toContain(c.ids[0]!);
    expect(await dataKeys(c)).toEqual(before);
    expect((await manifestKeys(c)).length).toBe(1);
    const j = jsonResult((await zrb(["backup", "--config", c.cfg, "--task", "t", "--level", "0", "--json"], { env })).stdout);
    expect(j.skipped).toBe(true);
    expect(j.backupId).toBe(c.ids[0]);
    const f = jsonResult((await zrb(["backup", "--config", c.cfg, "--task", "t", "--level", "0", "--force", "--json"], { env })).stdout);
    expect(f.backupId).not.toBe(c.ids[0]);
    expect((await manifestKeys(c)).length).toBe(2);
  });
});

describe("11: smaller defects", () => {
  test("a state file that is valid YAML but lacks fields is discarded with a warning, not an internal error", async () => {
    const c = await chain([0]);
    const dir = join(c.baseDir, "run", pool.pool, c.name);
    writeFileSync(join(dir, "backup_state.yaml"), "format: zrb-state/1\nlevel: 1\n");
    await writeRandomFile(join(c.mnt, "n.bin"), 5000, 13);
    await zrb(["snapshot", "--config", c.cfg, "--task", "t", "--level", "1"], { env });
    const r = await zrb(["backup", "--config", c.cfg, "--task", "t", "--level", "1"], { env, allowFail: true });
    expect(r.stderr).not.toContain("internal error");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("backup_state.yaml");
  });

  test("check refuses a base_dir that is not a usable directory (/dev/null, /proc/zrb)", async () => {
    const c = await chain([]);
    for (const bad of ["/dev/null", "/proc/zrb"]) {
      const doc = YAML.parse(readFileSync(c.cfg, "utf8"));
      doc.base_dir = bad;
      const cfg = join(work, `bad-${c.name}.yaml`);
      writeFileSync(cfg, YAML.stringify(doc));
      await expectFail(["check", "--config", cfg], 9, bad);
    }
  });

  test("a snapshot destroyed after its send (hold released by hand): the backup still completes; the next run says one consistent thing", async () => {
    const c = await chain([0]);
    await writeRandomFile(join(c.mnt, "n.bin"), 5000, 14);
    const snap = (await zrb(["snapshot", "--config", c.cfg, "--task", "t", "--level", "1"], { env })).stdout.trim();
    // A zfs wrapper that, when the finished backup moves its base hold onto the new snapshot,
    // first releases the send hold and destroys that snapshot (what a user's pruner might do).
    const wrapper = join(work, `zfs-${c.name}.sh`);
    writeFileSync(
      wrapper,
      `#!/bin/bash\nif [ "$1" = hold ] && [ "$2" = zrb ] && [ "$3" = '${snap}' ]; then zfs release zrb-send '${snap}' >/dev/null 2>&1; zfs destroy '${snap}' >/dev/null 2>&1; fi\nexec zfs "$@"\n`,
      { mode: 0o755 },
    );
    const r = await zrb(["backup", "--config", c.cfg, "--task", "t", "--level", "1", "--json"], { env: { ...env, ZRB_ZFS: wrapper }, allowFail: true });
    expect(r.stderr).not.toContain("internal error");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("no longer exists");
    expect(existsSync(join(c.baseDir, "run", pool.pool, c.name, "backup_state.yaml"))).toBe(false);
    const again = await zrb(["backup", "--config", c.cfg, "--task", "t", "--level", "1"], { env, allowFail: true });
    expect(again.stderr).not.toMatch(/keeping its parts[\s\S]*parts deleted|parts deleted[\s\S]*keeping its parts/);
  });

  test("SIGTERM during a stalled request exits 143 without waiting for the grace period, and leaves no lock", async () => {
    let conns = 0;
    const held: any[] = [];
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(s) {
          conns++;
          held.push(s);
        },
        data() {},
      },
    });
    const stop = setTimeout(() => server.stop(true), 60_000);
    try {
      const c = await chain([], { endpoint: `http://127.0.0.1:${server.port}` });
      await writeRandomFile(join(c.mnt, "n.bin"), 5000, 15);
      await zrb(["snapshot", "--config", c.cfg, "--task", "t", "--level", "0"], { env });
      const p = await spawnZrb(["backup", "--config", c.cfg, "--task", "t", "--level", "0"], env);
      for (let i = 0; i < 200 && conns === 0; i++) await Bun.sleep(50);
      expect(conns).toBeGreaterThan(0);
      await Bun.sleep(300);
      p.kill("SIGTERM");
      const code = await p.exited;
      const err = await new Response(p.stderr).text();
      expect(code).toBe(143);
      expect(err).not.toContain("could not stop within");
      expect(existsSync(join(c.baseDir, "run", pool.pool, c.name, "zrb.lock"))).toBe(false);
      expect(await userrefs(c.snaps.at(-1) ?? (await snapsOf(c.fs)).at(-1)!)).toBe(0);
    } finally {
      clearTimeout(stop);
      server.stop(true);
    }
  });

  test("an object-store error names location and key apart (no '…:7480data/…')", async () => {
    const c = await chain([0]);
    const parts = await dataKeys(c);
    await del(parts[0]!);
    const r = await zrb(["restore", "--config", c.cfg, "--task", "t", "--target", `${pool.pool}/k${c.name}`, "--private-key", keyFile, "--backup-id", c.ids[0]!], { env, allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/:\d+data\//);
    expect(r.stderr).toContain(`s3://${bucket}/${parts[0]!}`);
  });

  test("check exits 6 when the store is the problem", async () => {
    const c = await chain([]);
    const doc = YAML.parse(readFileSync(c.cfg, "utf8"));
    doc.s3.bucket = "no-such-bucket-" + c.name;
    const cfg = join(work, `nob-${c.name}.yaml`);
    writeFileSync(cfg, YAML.stringify(doc));
    await expectFail(["check", "--config", cfg], 6, "no-such-bucket-");
  });

  test("a manifest larger than the cap is refused without reading it whole", async () => {
    const c = await chain([0]);
    const big = new Uint8Array(70 * 1024 * 1024).fill(0x20);
    big.set(new TextEncoder().encode("format: zrb-manifest/1\n"));
    await putText(`${c.prefix}manifests/${c.fs}/20991231T000000Z-L1-ffffff.manifest.yaml`, big);
    const r = await zrb(["list", "--config", c.cfg, "--task", "t"], { env, allowFail: true });
    expect(r.stderr).toContain("too large");
    expect(r.stdout).toContain(c.ids[0]!);
  });
});
