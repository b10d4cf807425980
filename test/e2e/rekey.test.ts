/**
 * Key rotation without re-uploading, on zfs-fuse + radosgw with the compiled binary.
 *
 * Signing key: a NAS given a new signing key (genkey --signing-only) with the old verification
 * key in verify_keys keeps building incrementals on the chain the old key signed, and every
 * backup, before and after, verifies, restores and prunes under both keys.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { hashTree, mountpointOf, run, s3Client, snapshotGuid, writeRandomFile } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, jsonResult, zrb } from "../helpers/zrb.ts";

let sc: Scene;
let client: S3Client;
let cfg: string;
const PREFIX = "zrb/";
interface Keys {
  publicKey: string;
  verificationKey: string;
  privateKeyFile: string;
  signingKeyFile: string;
}
let key1: Keys;
let key2: { verificationKey: string; signingKeyFile: string };
/** Backup ids in order: L0 (signed with key 1), then level-1 backups signed with key 2. */
const ids: string[] = [];
const snaps: string[] = [];

const mkey = (id: string) => `${PREFIX}manifests/${sc.fs}/${id}.manifest.yaml`;
async function getBytes(key: string): Promise<Uint8Array> {
  return await (await client.send(new GetObjectCommand({ Bucket: sc.bucket, Key: key }))).Body!.transformToByteArray();
}
const getYaml = async (key: string): Promise<any> => YAML.parse(new TextDecoder().decode(await getBytes(key)));

/** File hashes of one snapshot, through a temporary clone (never mounts the target itself). */
async function treeOfSnapshot(snap: string): Promise<Record<string, string>> {
  const clone = `${sc.pool.pool}/chk${Math.random().toString(16).slice(2, 8)}`;
  await run(["zfs", "clone", snap, clone]);
  try {
    return await hashTree(await mountpointOf(clone));
  } finally {
    for (let i = 0; i < 40; i++) {
      if ((await run(["zfs", "destroy", clone], { allowFail: true })).code === 0) break;
      await Bun.sleep(250);
    }
  }
}

/** Restore the newest backup into `target` and check it is the source's last snapshot, byte for byte. */
async function restoreIdentical(target: string, ...args: string[]): Promise<void> {
  await zrb(["restore", "--config", cfg, "--task", "t", "--target", `${sc.pool.pool}/${target}`, ...args], { env: sc.env });
  const last = snaps.at(-1)!;
  const got = `${sc.pool.pool}/${target}@${last.split("@")[1]}`;
  expect(await snapshotGuid(got)).toBe(await snapshotGuid(last));
  expect(await treeOfSnapshot(got)).toEqual(await treeOfSnapshot(last));
  await run(["zfs", "destroy", "-r", `${sc.pool.pool}/${target}`]);
}

function writeConfig(extra: Record<string, unknown>): void {
  const doc = YAML.parse(configYaml({ baseDir: join(sc.work, "base"), recipients: [key1.publicKey], bucket: sc.bucket, s3: sc.s3, prefix: PREFIX, chunkSize: "6MiB", tasks: [{ name: "t", pool: sc.pool.pool, dataset: "d" }] }));
  writeFileSync(cfg, YAML.stringify({ ...doc, ...extra }));
}

async function snapAndBackup(level: number, file: string, bytes: number, seed: number): Promise<any> {
  await writeRandomFile(join(sc.mnt, file), bytes, seed);
  snaps.push((await zrb(["snapshot", "--config", cfg, "--task", "t", "--level", String(level)], { env: sc.env })).stdout.trim());
  const r = jsonResult((await zrb(["backup", "--config", cfg, "--task", "t", "--level", String(level), "--json"], { env: sc.env })).stdout);
  ids.push(r.backupId);
  return r;
}

beforeAll(async () => {
  sc = await scene({ name: "rekey", poolMiB: 256, dataset: "d", proxy: true });
  client = await s3Client(sc.s3);
  key1 = JSON.parse((await zrb(["genkey", "--out-dir", join(sc.work, "keys1"), "--json"])).stdout);
  cfg = join(sc.work, "config.yaml");
  writeConfig({ signing_key: key1.signingKeyFile });
  // ~14 MB of stream in 6 MiB chunks: two parts over S3's 5 MiB part minimum, one under it.
  await snapAndBackup(0, "big.bin", 14_000_000, 1);
});

afterAll(async () => {
  await sc?.close();
});

describe("signing-key rotation", () => {
  test("genkey --signing-only writes only zrb_signing.key (0600) and prints its verification key", async () => {
    const dir = join(sc.work, "keys2");
    const r = await zrb(["genkey", "--signing-only", "--out-dir", dir]);
    const vk = r.stdout.trim();
    expect(vk).toMatch(/^zrbverify1[0-9a-z]+$/);
    const f = join(dir, "zrb_signing.key");
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readFileSync(f, "utf8")).toContain(`# verification key: ${vk}\n`);
    expect(readFileSync(f, "utf8")).not.toContain(vk.toUpperCase().slice(10));
    expect(existsSync(join(dir, "zrb_private.key")) || existsSync(join(dir, "zrb_public.key"))).toBe(false);
    expect(r.stdout + r.stderr).not.toMatch(/ZRB-SIGNING-KEY/);
    key2 = { verificationKey: vk, signingKeyFile: f };
    // A second run refuses to overwrite the key.
    expect((await zrb(["genkey", "--signing-only", "--out-dir", dir], { allowFail: true })).code).toBe(2);
  });

  test("the NAS with the new signing key and the old one in verify_keys builds level 1 on the old level 0", async () => {
    writeConfig({ signing_key: key2.signingKeyFile, verify_keys: [key1.verificationKey] });
    const a = await snapAndBackup(1, "small1.bin", 300_000, 2);
    expect(a.parentBackupId).toBe(ids[0]);
    const b = await snapAndBackup(1, "small2.bin", 300_000, 3);
    expect(b.parentBackupId).toBe(ids[0]);
    expect((await getYaml(mkey(ids[0]!))).signature.key).toBe(key1.verificationKey);
    expect((await getYaml(mkey(ids[2]!))).signature.key).toBe(key2.verificationKey);
    expect((await getYaml(`${PREFIX}manifests/${sc.fs}/heads.yaml`)).signature.key).toBe(key2.verificationKey);
  });

  test("every backup verifies with both keys (--verify-key twice, or the private key file + verify_keys)", async () => {
    const both = ["--verify-key", key1.verificationKey, "--verify-key", key2.verificationKey];
    const v = jsonResult((await zrb(["verify", "--config", cfg, "--task", "t", "--private-key", key1.privateKeyFile, ...both, "--json"], { env: sc.env })).stdout);
    expect(v.ok).toBe(true);
    // The newest chain: the level 0 signed with key 1 and the newest level 1 signed with key 2.
    expect(v.backups.map((b: any) => b.backupId)).toEqual([ids[0], ids[2]]);
    // The key file's own line (key 1) plus verify_keys and signing_key of the config (key 2).
    const v2 = jsonResult((await zrb(["verify", "--config", cfg, "--task", "t", "--private-key", key1.privateKeyFile, "--json"], { env: sc.env })).stdout);
    expect(v2.ok).toBe(true);
    // Only the new key: the old level 0 is not trusted.
    const only2 = await zrb(["verify", "--config", cfg, "--task", "t", "--private-key", key1.privateKeyFile, "--verify-key", key2.verificationKey], { env: sc.env, allowFail: true });
    expect(only2.code).toBe(7);
  });

  test("restore with both keys is byte-identical", async () => {
    await restoreIdentical("r1", "--private-key", key1.privateKeyFile, "--verify-key", key1.verificationKey, "--verify-key", key2.verificationKey);
  });

  test("prune with both keys keeps the old level 0 the new chain needs and deletes the superseded level 1", async () => {
    const r = await zrb(["prune", "--config", cfg, "--task", "t", "--keep-last", "1", "--verify-key", key1.verificationKey, "--verify-key", key2.verificationKey, "--json"], { env: sc.env });
    const out = JSON.parse(r.stdout);
    const action = new Map<string, string>(out.backups.map((b: any) => [b.backupId, b.action]));
    expect(action.get(ids[0]!)).toBe("keep");
    expect(action.get(ids[1]!)).toBe("delete");
    expect(action.get(ids[2]!)).toBe("keep");
    const list = JSON.parse((await zrb(["list", "--config", cfg, "--task", "t", "--json"], { env: sc.env })).stdout);
    expect(list.map((e: any) => e.backupId).sort()).toEqual([ids[0], ids[2]].sort());
    ids.splice(1, 1);
  });
});
