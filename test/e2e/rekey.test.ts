/**
 * Key rotation without re-uploading, on zfs-fuse + radosgw with the compiled binary.
 *
 * Signing key: a NAS given a new signing key (genkey --signing-only) with the old verification
 * key in verify_keys keeps building incrementals on the chain the old key signed, and every
 * backup, before and after, verifies, restores and prunes under both keys.
 *
 * Age key: zrb rekey gives every part to a new recipient by rewriting its header in the store
 * (the first ~5 MiB uploaded, the rest UploadPartCopy) through the fault proxy, which counts
 * every byte radosgw answered: what rekey downloaded, measured outside zrb. It is killed -9 in
 * the middle of a multipart rewrite and rerun; afterwards the stock age CLI opens the parts
 * with the new key and not the old, and restore with the new key is byte-identical.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DeleteObjectCommand, GetObjectCommand, ListMultipartUploadsCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { ageKeyPair, hashTree, mountpointOf, run, s3Client, snapshotGuid, waitFor, writeRandomFile } from "../helpers/rig.ts";
import { forward } from "../helpers/faultproxy.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, jsonEvents, jsonResult, spawnZrb, zrb } from "../helpers/zrb.ts";

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

function writeConfig(extra: Record<string, unknown>, path = cfg, endpoint = sc.s3.endpoint, recipient = key1.publicKey): void {
  const doc = YAML.parse(
    configYaml({ baseDir: join(sc.work, "base"), recipients: [recipient], bucket: sc.bucket, s3: { ...sc.s3, endpoint }, prefix: PREFIX, chunkSize: "6MiB", tasks: [{ name: "t", pool: sc.pool.pool, dataset: "d" }] }),
  );
  writeFileSync(path, YAML.stringify({ ...doc, ...extra }));
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
    const out = jsonResult(r.stdout);
    const action = new Map<string, string>(out.backups.map((b: any) => [b.backupId, b.action]));
    expect(action.get(ids[0]!)).toBe("keep");
    expect(action.get(ids[1]!)).toBe("delete");
    expect(action.get(ids[2]!)).toBe("keep");
    const list = JSON.parse((await zrb(["list", "--config", cfg, "--task", "t", "--json"], { env: sc.env })).stdout);
    expect(list.map((e: any) => e.backupId).sort()).toEqual([ids[0], ids[2]].sort());
    ids.splice(1, 1);
  });
});

describe("zrb rekey to a new age key", () => {
  let key3: { keyFile: string; recipient: string };
  let k4: { keyFile: string; recipient: string };
  let viaProxy: string;
  /** Sizes of every part before the rekey, by key. */
  const before = new Map<string, number>();
  const rekeyArgs = () => ["rekey", "--config", viaProxy, "--task", "t", "--private-key", key1.privateKeyFile, "--to-recipient", key3.recipient];

  beforeAll(async () => {
    key3 = await ageKeyPair(join(sc.work, "key3.txt"));
    viaProxy = join(sc.work, "config-proxy.yaml");
    writeConfig({ signing_key: key2.signingKeyFile, verify_keys: [key1.verificationKey] }, viaProxy, sc.proxy!.endpoint);
    for (const id of ids) for (const p of (await getYaml(mkey(id))).parts) before.set(p.key, p.cipherSize);
  });

  test("--dry-run says what would move and changes nothing", async () => {
    const r = await zrb([...rekeyArgs(), "--dry-run"], { env: sc.env });
    const big = [...before.values()].filter((n) => n > 5 * 1024 * 1024).length;
    expect(big).toBeGreaterThanOrEqual(2);
    expect(r.stdout.trim().split("\n").at(-1)).toMatch(new RegExp(`^rekey: ${before.size} parts of 2 backups would be rewrapped, \\d+ bytes to download, \\d+ bytes to copy server-side$`));
    for (const id of ids) expect((await getYaml(mkey(id))).recipients).toEqual([key1.publicKey]);
  });

  test("killed -9 in the middle of a multipart rewrite, a rerun finishes it: nothing lost, no upload left behind", async () => {
    // Stall the second server-side copy: the rekey is then inside a multipart upload.
    let copies = 0;
    sc.proxy!.setDecide((r) => (r.headers["x-amz-copy-source"] && ++copies === 2 ? { kind: "stall" } : forward));
    const first = sc.proxy!.log.length;
    const p = await spawnZrb([...rekeyArgs(), "--json"], sc.env);
    await waitFor("the second UploadPartCopy", () => copies >= 2, 120_000);
    p.kill(9);
    await p.exited;
    sc.proxy!.setDecide(() => forward);
    const out = jsonEvents(await new Response(p.stdout).text());
    expect(out.filter((e) => e.event === "part").length).toBe(1);
    // The rerun finishes: its line is the last thing on stdout.
    const rerunFrom = sc.proxy!.log.length;
    const r = await zrb(rekeyArgs(), { env: sc.env });
    const last = r.stdout.trim().split("\n").at(-1)!;
    const m = /^rekey: (\d+) parts of (\d+) backups rewrapped, (\d+) bytes downloaded, (\d+) bytes copied server-side$/.exec(last);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBe(before.size);
    expect(Number(m![2])).toBe(2);
    expect(existsSync(join(sc.work, "base", "run", sc.pool.pool, "d", "rekey_state.yaml"))).toBe(false);
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: sc.bucket, Prefix: PREFIX }));
    expect(uploads.Uploads ?? []).toEqual([]);
    // Bytes downloaded, counted by the proxy (both runs): per part object at most its first
    // 5 MiB + 64 KiB (the whole object when smaller), plus small objects (manifests, listings).
    const gets = (from: number, to = sc.proxy!.log.length) => sc.proxy!.log.slice(from, to).filter((e) => e.method === "GET");
    const sum = (l: { responseBytes: number }[]) => l.reduce((a, e) => a + e.responseBytes, 0);
    const isPart = (e: { path: string }) => /\/data\//.test(e.path);
    const partGets = sum(gets(first).filter(isPart));
    const otherGets = sum(gets(first).filter((e) => !isPart(e)));
    const rerunParts = gets(rerunFrom).filter(isPart);
    const stored = [...before.values()].reduce((a, n) => a + n, 0);
    const window = 5 * 1024 * 1024 + 64 * 1024;
    const bound = [...before.values()].reduce((a, n) => a + Math.min(n, window), 0);
    console.log(
      `rekey download measured by the proxy: ${partGets} bytes of part objects in both runs (+ ${otherGets} of manifests/listings), ` +
        `${sum(rerunParts)} in the rerun (zrb says ${m![3]}); ${stored} bytes stored in ${before.size} parts, ${m![4]} copied server-side; ` +
        `one clean pass reads at most ${bound}`,
    );
    // The rerun's own count agrees with the proxy's (which adds HTTP response heads).
    expect(sum(rerunParts)).toBeGreaterThanOrEqual(Number(m![3]));
    expect(sum(rerunParts)).toBeLessThan(Number(m![3]) + 2048 * rerunParts.length);
    // Each part object: at most its first 5 MiB + 64 KiB (all of it when smaller), plus the one
    // the killed run had read but not rewritten, which the rerun reads again; HTTP heads aside.
    expect(partGets).toBeLessThan(bound + window + 64 * 1024);
    expect(otherGets).toBeLessThan(256 * 1024);
    const copied = sc.proxy!.log.slice(first).filter((e) => e.headers["x-amz-copy-source"]).length;
    expect(copied).toBeGreaterThanOrEqual(2);
  });

  test("the manifests name the new recipient, keep the plaintext hashes, and are signed again", async () => {
    for (const id of ids) {
      const m = await getYaml(mkey(id));
      expect(m.recipients).toEqual([key3.recipient]);
      // An older zrb says a newer one wrote it, instead of calling the rewritten parts damaged.
      expect(m.format).toBe("zrb-manifest/2");
      expect(m.signature.key).toBe(key2.verificationKey);
      for (const p of m.parts) {
        expect(p.rewrap.prefixSize).toBeGreaterThan(0);
        const obj = await getBytes(PREFIX + p.key);
        expect(obj.length).toBe(p.cipherSize);
      }
    }
  });

  test("the stock age CLI opens every part with the new key and not with the old one", async () => {
    const m = await getYaml(mkey(ids[0]!));
    for (const p of m.parts) {
      const f = join(sc.work, `part-${p.index}.age`);
      writeFileSync(f, await getBytes(PREFIX + p.key));
      const ok = Bun.spawnSync(["age", "-d", "-i", key3.keyFile, f]);
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout.length).toBe(p.plainSize);
      const b3 = Bun.spawnSync(["b3sum", "--no-names"], { stdin: ok.stdout });
      expect(b3.stdout.toString().trim()).toBe(p.blake3);
      expect(Bun.spawnSync(["age", "-d", "-i", key1.privateKeyFile, f]).exitCode).not.toBe(0);
    }
  });

  test("restore and verify with the new key: byte-identical; the old key is refused; a second rekey has nothing to do", async () => {
    await restoreIdentical("r3", "--private-key", key3.keyFile);
    const v = jsonResult((await zrb(["verify", "--config", cfg, "--task", "t", "--private-key", key3.keyFile, "--json"], { env: sc.env })).stdout);
    expect(v.ok).toBe(true);
    const old = await zrb(["restore", "--config", cfg, "--task", "t", "--target", `${sc.pool.pool}/r4`, "--private-key", key1.privateKeyFile], { env: sc.env, allowFail: true });
    expect(old.code).toBe(8);
    const again = await zrb(["rekey", "--config", viaProxy, "--task", "t", "--private-key", key3.keyFile, "--to-recipient", key3.recipient], { env: sc.env });
    expect(again.stdout.trim()).toBe("rekey: 0 parts of 0 backups rewrapped, 0 bytes downloaded, 0 bytes copied server-side");
  });

  test("a manifest the run cannot trust is never rewritten or re-signed: reported, exit 7, the --json run ends with its error event", async () => {
    const src = await getYaml(mkey(ids[0]!));
    const id = "20991231T000000Z-L0-f0f0f0";
    const forged = { ...src, backupId: id, recipients: [key1.publicKey], parts: [], stream: { ...src.stream, size: 0 } };
    delete forged.signature;
    const text = YAML.stringify(forged);
    await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: mkey(id), Body: text }));
    try {
      const r = await zrb([...rekeyArgs(), "--json"], { env: sc.env, allowFail: true });
      expect(r.code).toBe(7);
      const events = jsonEvents(r.stdout);
      expect(events.at(-1)!.event).toBe("error");
      expect(events.at(-1)!.result.skipped.map((x: any) => x.backupId)).toEqual([id]);
      expect(events.filter((e) => e.event === "error" || e.event === "done").length).toBe(1);
      expect(new TextDecoder().decode(await getBytes(mkey(id)))).toBe(text);
    } finally {
      await client.send(new DeleteObjectCommand({ Bucket: sc.bucket, Key: mkey(id) }));
    }
  });

  test("a rekeyed part is still checked byte for byte before decryption: a changed payload byte or header byte is refused (exit 7)", async () => {
    const m = await getYaml(mkey(ids[0]!));
    const p = m.parts[0];
    const key = PREFIX + p.key;
    const orig = await getBytes(key);
    const verify = () => zrb(["verify", "--config", cfg, "--task", "t", "--private-key", key3.keyFile], { env: sc.env, allowFail: true });
    try {
      for (const [at, why] of [
        [orig.length - 100, "payload under the original header"],
        [p.rewrap.prefixSize - 20, "age header's SHA-256"],
      ] as const) {
        const bad = orig.slice();
        bad[at]! ^= 1;
        await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: key, Body: bad }));
        const r = await verify();
        expect(r.code).toBe(7);
        expect(r.stderr).toContain(why);
      }
    } finally {
      await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: key, Body: orig }));
    }
    expect((await verify()).code).toBe(0);
  });

  test("a second rekey (from the new key to two others, --to-recipients-file) keeps the original hash checkable; both new keys open the parts", async () => {
    k4 = await ageKeyPair(join(sc.work, "key4.txt"));
    const k5 = await ageKeyPair(join(sc.work, "key5.txt"));
    const list = join(sc.work, "recipients.txt");
    writeFileSync(list, `# the new owners\n${k4.recipient}\n\n${k5.recipient}\n`);
    const r = await zrb(["rekey", "--config", viaProxy, "--task", "t", "--private-key", key3.keyFile, "--to-recipients-file", list], { env: sc.env });
    expect(r.stdout.trim()).toMatch(new RegExp(`^rekey: ${before.size} parts of 2 backups rewrapped, `));
    const m = await getYaml(mkey(ids[0]!));
    expect(m.recipients.sort()).toEqual([k4.recipient, k5.recipient].sort());
    const part = m.parts[0];
    const f = join(sc.work, "again.age");
    writeFileSync(f, await getBytes(PREFIX + part.key));
    for (const k of [k4, k5]) expect(Bun.spawnSync(["age", "-d", "-i", k.keyFile, f]).stdout.length).toBe(part.plainSize);
    expect(Bun.spawnSync(["age", "-d", "-i", key3.keyFile, f]).exitCode).not.toBe(0);
    const v = jsonResult((await zrb(["verify", "--config", cfg, "--task", "t", "--private-key", k5.keyFile, "--json"], { env: sc.env })).stdout);
    expect(v.ok).toBe(true);
    await restoreIdentical("r5", "--private-key", k4.keyFile);
  });

  test("an old key the backups are not encrypted to is refused (exit 8), by --dry-run too, before any object changes", async () => {
    const m0 = new TextDecoder().decode(await getBytes(mkey(ids[0]!)));
    const dry = await zrb([...rekeyArgs(), "--dry-run"], { env: sc.env, allowFail: true });
    expect(dry.code).toBe(8);
    expect(dry.stderr).toContain("must be a key this backup is encrypted to");
    const r = await zrb(rekeyArgs(), { env: sc.env, allowFail: true });
    expect(r.code).toBe(8);
    expect(r.stderr).toContain("must be a key this backup is encrypted to");
    expect(new TextDecoder().decode(await getBytes(mkey(ids[0]!)))).toBe(m0);
    expect(existsSync(join(sc.work, "base", "run", sc.pool.pool, "d", "rekey_state.yaml"))).toBe(false);
  });

  test("a backup with a part in an archive class is reported (exit 6) and left whole; the others are rekeyed; after the thaw a rerun finishes", async () => {
    const k6 = await ageKeyPair(join(sc.work, "key6.txt"));
    const l0 = await getYaml(mkey(ids[0]!));
    const frozen = l0.parts[1];
    const l0Objects = await Promise.all(l0.parts.map((p: any) => getBytes(PREFIX + p.key)));
    // radosgw has no archive tier here: the proxy answers HEAD of one part as S3 does for GLACIER.
    const glacier = `HTTP/1.1 200 OK\r\nContent-Length: ${frozen.cipherSize}\r\nETag: "frozen"\r\nx-amz-storage-class: GLACIER\r\nContent-Type: binary/octet-stream\r\nConnection: close\r\n\r\n`;
    sc.proxy!.setDecide((r) => (r.method === "HEAD" && r.path.includes(frozen.key) ? { kind: "reply", response: glacier } : forward));
    const args = ["rekey", "--config", viaProxy, "--task", "t", "--private-key", k4.keyFile, "--to-recipient", k6.recipient];
    try {
      const r = await zrb(args, { env: sc.env, allowFail: true });
      expect(r.code).toBe(6);
      expect(r.stderr).toContain(`${ids[0]}: part 1 is in storage class GLACIER`);
      expect(r.stdout.trim()).toMatch(/^rekey: 1 parts of 1 backups rewrapped, /);
    } finally {
      sc.proxy!.setDecide(() => forward);
    }
    expect(await getYaml(mkey(ids[0]!))).toEqual(l0);
    for (const [i, p] of l0.parts.entries()) expect(await getBytes(PREFIX + p.key)).toEqual(l0Objects[i]);
    expect((await getYaml(mkey(ids[1]!))).recipients).toEqual([k6.recipient]);
    const again = await zrb(args, { env: sc.env });
    expect(again.stdout.trim()).toMatch(new RegExp(`^rekey: ${l0.parts.length} parts of 1 backups rewrapped, `));
    await restoreIdentical("r6", "--private-key", k6.keyFile);
  });
  test("--backup-id rekeys (here: would rekey) one backup only; an unknown id is a usage error", async () => {
    const k8 = await ageKeyPair(join(sc.work, "key8.txt"));
    const l0 = await getYaml(mkey(ids[0]!));
    const one = await zrb(["rekey", "--config", viaProxy, "--task", "t", "--private-key", join(sc.work, "key6.txt"), "--to-recipient", k8.recipient, "--backup-id", ids[0]!, "--dry-run"], { env: sc.env });
    expect(one.stdout.trim()).toMatch(new RegExp(`^rekey: ${l0.parts.length} parts of 1 backups would be rewrapped, `));
    const bad = await zrb(["rekey", "--config", viaProxy, "--task", "t", "--private-key", join(sc.work, "key6.txt"), "--to-recipient", k8.recipient, "--backup-id", "20990101T000000Z-L0-000000"], { env: sc.env, allowFail: true });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("is not in");
  });
});

describe("zrb rekey of a recursive task", () => {
  test("every child's backups go to the new key; the tree restores with it", async () => {
    const root = `${sc.pool.pool}/tree`;
    for (const ds of [root, `${root}/a`, `${root}/b`]) {
      await run(["zfs", "create", ds]);
      await writeRandomFile(join(await mountpointOf(ds), "f.bin"), 200_000);
    }
    const rcfg = join(sc.work, "config-tree.yaml");
    writeConfig({ signing_key: key2.signingKeyFile, verify_keys: [key1.verificationKey] }, rcfg);
    const doc = YAML.parse(readFileSync(rcfg, "utf8"));
    doc.tasks = [{ name: "rt", pool: sc.pool.pool, dataset: "tree", enabled: true, recursive: true }];
    writeFileSync(rcfg, YAML.stringify(doc));
    await zrb(["snapshot", "--config", rcfg, "--task", "rt", "--level", "0"], { env: sc.env });
    await zrb(["backup", "--config", rcfg, "--task", "rt", "--level", "0"], { env: sc.env });
    const k7 = await ageKeyPair(join(sc.work, "key7.txt"));
    const r = await zrb(["rekey", "--config", rcfg, "--task", "rt", "--private-key", key1.privateKeyFile, "--to-recipient", k7.recipient], { env: sc.env });
    expect(r.stdout.trim()).toMatch(/^rekey: 3 parts of 3 backups rewrapped, /);
    const out = jsonResult((await zrb(["restore", "--config", rcfg, "--task", "rt", "--target", `${sc.pool.pool}/rt-restored`, "--private-key", k7.keyFile, "--json"], { env: sc.env })).stdout);
    expect(out.children.map((c: any) => [c.child, c.status])).toEqual([
      ["", "ok"],
      ["a", "ok"],
      ["b", "ok"],
    ]);
  });
});

