/**
 * Trust nothing in the bucket: forgeries that hashes alone cannot catch, on zfs-fuse + radosgw
 * with the compiled binary. Someone who can write to the bucket has the public key (it is no
 * secret), so they can write valid age parts and manifests with matching hashes; only the NAS's
 * signature and the stream's own records tell. Every forgery must be refused with exit 7 before
 * `zfs receive` is even started — a ZRB_ZFS wrapper logs every zfs subcommand to prove it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { makeBucket, makePool, run, s3Client, s3Rig, snapshotGuid, tmpDir, writeRandomFile, zfsRig, type S3Rig, type TestPool } from "../helpers/rig.ts";
import { configYaml, expectZrbFail, jsonResult, s3Env, zrb } from "../helpers/zrb.ts";

let s3: S3Rig;
let client: S3Client;
let pool: TestPool;
let bucket: string;
let work: string;
let env: Record<string, string>;
let keys: { publicKey: string; verificationKey: string; privateKeyFile: string; publicKeyFile: string; signingKeyFile: string };
let cfg: string;
let wrapper: string;
let zfsLog: string;
const PREFIX = "zrb/";
const A: { ids: string[]; snaps: string[] } = { ids: [], snaps: [] };
const B: { ids: string[]; snaps: string[] } = { ids: [], snaps: [] };

const fsOf = (t: "a" | "b") => `${pool.pool}/${t}`;
const mkey = (t: "a" | "b", id: string) => `${PREFIX}manifests/${fsOf(t)}/${id}.manifest.yaml`;

async function getBytes(key: string): Promise<Uint8Array> {
  return await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray();
}
async function getYaml(key: string): Promise<any> {
  return YAML.parse(new TextDecoder().decode(await getBytes(key)));
}
async function put(key: string, body: Uint8Array | string): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}
const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const b3 = async (b: Uint8Array) => {
  const f = join(work, `b3-${Math.random()}`);
  writeFileSync(f, b);
  return (await run(["b3sum", "--no-names", f])).stdout.trim();
};

/** Runs zrb with the logging zfs wrapper; returns the zfs subcommands it started. */
async function zfsCalls<T>(fn: (env: Record<string, string>) => Promise<T>): Promise<{ result: T; calls: string[] }> {
  writeFileSync(zfsLog, "");
  const result = await fn({ ...env, ZRB_ZFS: wrapper });
  return { result, calls: readFileSync(zfsLog, "utf8").split("\n").filter(Boolean) };
}

const restoreArgs = (task: "a" | "b", target: string, ...more: string[]) => [
  "restore",
  "--config",
  cfg,
  "--task",
  task,
  "--target",
  `${pool.pool}/${target}`,
  "--private-key",
  keys.privateKeyFile,
  ...more,
];

/** An age part made with the stock CLI from `plain` (what an attacker with the public key can do). */
async function forgePart(plain: Uint8Array): Promise<Uint8Array> {
  const inF = join(work, `forge-${Math.random()}`);
  writeFileSync(inF, plain);
  const out = await new Response(Bun.spawn(["age", "-r", keys.publicKey, inF]).stdout).arrayBuffer();
  return new Uint8Array(out);
}

beforeAll(async () => {
  await zfsRig();
  s3 = await s3Rig();
  client = await s3Client(s3);
  pool = await makePool({ sizeMiB: 256 });
  bucket = await makeBucket(s3);
  work = tmpDir("zrb-e2e-trust-");
  env = s3Env(s3);
  keys = JSON.parse((await zrb(["genkey", "--out-dir", join(work, "keys"), "--json"])).stdout);
  const doc = YAML.parse(
    configYaml({
      baseDir: join(work, "base"),
      recipients: [keys.publicKey],
      bucket,
      s3,
      prefix: PREFIX,
      chunkSize: "64KiB",
      tasks: [
        { name: "a", pool: pool.pool, dataset: "a" },
        { name: "b", pool: pool.pool, dataset: "b" },
      ],
    }),
  );
  doc.signing_key = keys.signingKeyFile;
  cfg = join(work, "config.yaml");
  writeFileSync(cfg, YAML.stringify(doc));
  zfsLog = join(work, "zfs.log");
  wrapper = join(work, "zfs-logged.sh");
  writeFileSync(wrapper, `#!/bin/bash\necho "$1" >> '${zfsLog}'\nexec zfs "$@"\n`, { mode: 0o755 });
  for (const [t, rec] of [["a", A], ["b", B]] as const) {
    await run(["zfs", "create", fsOf(t)]);
    const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fsOf(t)])).stdout.trim();
    for (const level of t === "a" ? [0, 1] : [0]) {
      await writeRandomFile(join(mnt, `f${level}.bin`), 150_000, t === "a" ? 10 + level : 20 + level);
      rec.snaps.push((await zrb(["snapshot", "--config", cfg, "--task", t, "--level", String(level)], { env })).stdout.trim());
      rec.ids.push(jsonResult((await zrb(["backup", "--config", cfg, "--task", t, "--level", String(level), "--json"], { env })).stdout).backupId);
    }
  }
});

afterAll(async () => {
  await pool?.destroy();
});

describe("keys", () => {
  test("genkey writes the private key (0600, with the verification key as a comment), the public key and the signing key (0600)", async () => {
    expect(statSync(keys.privateKeyFile).mode & 0o777).toBe(0o600);
    expect(statSync(keys.signingKeyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keys.privateKeyFile, "utf8")).toContain(`# zrb verification key: ${keys.verificationKey}\n`);
    expect(readFileSync(keys.signingKeyFile, "utf8")).toMatch(/^ZRB-SIGNING-KEY-1[0-9A-Z]+$/m);
    expect(readFileSync(keys.publicKeyFile, "utf8").trim()).toBe(keys.publicKey);
  });

  test("the stock age CLI decrypts every part with zrb_private.key (its comment line is ignored)", async () => {
    const m = await getYaml(mkey("a", A.ids[0]!));
    for (const p of m.parts) {
      const f = join(work, `part-${p.index}`);
      writeFileSync(f, await getBytes(PREFIX + p.key));
      const plain = new Uint8Array(await new Response(Bun.spawn(["age", "-d", "-i", keys.privateKeyFile, f]).stdout).arrayBuffer());
      expect(plain.length).toBe(p.plainSize);
      expect(await b3(plain)).toBe(p.blake3);
    }
  });

  test("manifests and heads are signed; signed backups restore and verify without an 'unauthenticated' warning", async () => {
    const m = await getYaml(mkey("a", A.ids[1]!));
    expect(m.signature.alg).toBe("ed25519");
    expect(m.signature.key).toBe(keys.verificationKey);
    expect((await getYaml(`${PREFIX}manifests/${fsOf("a")}/heads.yaml`)).signature.key).toBe(keys.verificationKey);
    const r = await zrb(restoreArgs("a", "ok"), { env });
    expect(r.stderr).not.toContain("not authenticated");
    expect(await snapshotGuid(`${pool.pool}/ok@${A.snaps[1]!.split("@")[1]}`)).toBe(await snapshotGuid(A.snaps[1]!));
    const v = jsonResult((await zrb(["verify", "--config", cfg, "--task", "a", "--private-key", keys.privateKeyFile, "--json"], { env })).stdout);
    expect(v.ok).toBe(true);
    expect(v.backups.map((b: any) => b.streamRecords)).toEqual(["ok", "ok"]);
    const list = JSON.parse((await zrb(["list", "--config", cfg, "--task", "a", "--verify-key", keys.verificationKey, "--json"], { env })).stdout);
    expect(list.map((e: any) => [e.signed, e.restorable])).toEqual([
      [true, true],
      [true, true],
    ]);
  });
});

describe("forgeries are refused (exit 7) before zfs receive starts", () => {
  test("a signature stripped: refused by restore, verify and list; --allow-unsigned accepts it", async () => {
    const key = mkey("a", A.ids[1]!);
    const orig = await getBytes(key);
    const m = YAML.parse(new TextDecoder().decode(orig));
    delete m.signature;
    await put(key, YAML.stringify(m));
    try {
      const { calls } = await zfsCalls((e) => expectZrbFail(restoreArgs("a", "strip"), e, 7, A.ids[1]!, "not signed"));
      expect(calls).not.toContain("receive");
      await expectZrbFail(["verify", "--config", cfg, "--task", "a", "--verify-key", keys.verificationKey], env, 7, A.ids[1]!, "not signed");
      const list = JSON.parse((await zrb(["list", "--config", cfg, "--task", "a", "--private-key", keys.privateKeyFile, "--json"], { env })).stdout);
      expect(list.find((e: any) => e.backupId === A.ids[1]).restorable).toBe(false);
      await zrb(restoreArgs("a", "strip", "--allow-unsigned"), { env });
    } finally {
      await put(key, orig);
    }
  });

  test("task A's signed backup moved under task B's prefix as a newer B backup", async () => {
    const src = await getYaml(mkey("a", A.ids[0]!));
    const id = "20991231T000000Z-L0-f0f0f0";
    const forged = {
      ...src,
      dataset: "b",
      backupId: id,
      startedAt: "2099-12-31T00:00:00.000Z",
      finishedAt: "2099-12-31T00:01:00.000Z",
      snapshot: { ...src.snapshot, name: src.snapshot.name.replace(`${fsOf("a")}@`, `${fsOf("b")}@`) },
    };
    forged.parts = [];
    for (const p of src.parts) {
      const k = p.key.replace(`data/${fsOf("a")}/`, `data/${fsOf("b")}/`).replace(A.ids[0]!, id);
      await client.send(new CopyObjectCommand({ Bucket: bucket, Key: PREFIX + k, CopySource: `${bucket}/${PREFIX}${p.key}` }));
      forged.parts.push({ ...p, key: k });
    }
    // A careful forger moves the file catalog's key along (a key outside B is refused as corrupt before any signature is read).
    if (src.catalog) forged.catalog = { ...src.catalog, key: src.catalog.key.replace(`${fsOf("a")}/`, `${fsOf("b")}/`).replace(A.ids[0]!, id) };
    await put(mkey("b", id), YAML.stringify(forged));
    try {
      const { calls } = await zfsCalls((e) => expectZrbFail(restoreArgs("b", "moved"), e, 7, id, "cannot be trusted"));
      expect(calls).not.toContain("receive");
      expect(existsSync(`/${pool.pool}/moved`)).toBe(false);
    } finally {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: mkey("b", id) }));
    }
  });

  test("a foreign stream (stock age, hashes made to match) whose BEGIN names another snapshot", async () => {
    // The attacker sends a snapshot of their own and makes every hash and size match; they
    // cannot sign, so this needs --allow-unsigned to get as far as the stream check.
    await run(["zfs", "create", `${pool.pool}/evil`]);
    const em = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", `${pool.pool}/evil`])).stdout.trim();
    writeFileSync(join(em, "payload"), "not your data");
    await run(["zfs", "snapshot", `${pool.pool}/evil@x`]);
    const stream = new Uint8Array(await new Response(Bun.spawn(["zfs", "send", `${pool.pool}/evil@x`]).stdout).arrayBuffer());
    const part = await forgePart(stream);
    const src = await getYaml(mkey("b", B.ids[0]!));
    const id = "20991231T000001Z-L0-e0e0e0";
    const pk = `data/${fsOf("b")}/level0/${id}/part-000000.age`;
    await put(PREFIX + pk, part);
    const b3s = await b3(stream);
    const forged = { ...src, backupId: id, stream: { size: stream.length, blake3: b3s }, parts: [{ index: 0, key: pk, plainSize: stream.length, cipherSize: part.length, sha256: sha256(part), blake3: b3s }] };
    delete forged.signature;
    await put(mkey("b", id), YAML.stringify(forged));
    try {
      const { calls } = await zfsCalls((e) => expectZrbFail(restoreArgs("b", "foreign", "--allow-unsigned"), e, 7, id, "BEGIN record creates snapshot guid"));
      expect(calls).not.toContain("receive");
      await expectZrbFail(["verify", "--config", cfg, "--task", "b", "--private-key", keys.privateKeyFile, "--allow-unsigned"], env, 7, "BEGIN record");
    } finally {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: mkey("b", id) }));
    }
  });

  test("a truncated stream without its END record (re-encrypted, hashes made to match)", async () => {
    const src = await getYaml(mkey("b", B.ids[0]!));
    // The real stream, decrypted with the key, cut before its END record, and sealed again.
    const plain: Uint8Array[] = [];
    for (const p of src.parts) {
      const f = join(work, `t-${p.index}`);
      writeFileSync(f, await getBytes(PREFIX + p.key));
      plain.push(new Uint8Array(await new Response(Bun.spawn(["age", "-d", "-i", keys.privateKeyFile, f]).stdout).arrayBuffer()));
    }
    const cut = Buffer.concat(plain).subarray(0, -312);
    const part = await forgePart(cut);
    const id = "20991231T000002Z-L0-d0d0d0";
    const pk = `data/${fsOf("b")}/level0/${id}/part-000000.age`;
    await put(PREFIX + pk, part);
    const b3s = await b3(cut);
    const forged = { ...src, backupId: id, stream: { size: cut.length, blake3: b3s }, parts: [{ index: 0, key: pk, plainSize: cut.length, cipherSize: part.length, sha256: sha256(part), blake3: b3s }] };
    delete forged.signature;
    await put(mkey("b", id), YAML.stringify(forged));
    try {
      const { calls } = await zfsCalls((e) => expectZrbFail(restoreArgs("b", "trunc", "--allow-unsigned"), e, 7, id, "not END"));
      expect(calls).not.toContain("receive");
    } finally {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: mkey("b", id) }));
    }
  });

  test("an incremental (level 1) cut before its END record, or ending with another snapshot's END (re-encrypted, hashes made to match)", async () => {
    const src = await getYaml(mkey("a", A.ids[1]!));
    expect(src.level).toBe(1);
    // The real level-1 stream, decrypted with the key.
    const plain: Uint8Array[] = [];
    for (const p of src.parts) {
      const f = join(work, `i-${p.index}`);
      writeFileSync(f, await getBytes(PREFIX + p.key));
      plain.push(new Uint8Array(await new Response(Bun.spawn(["age", "-d", "-i", keys.privateKeyFile, f]).stdout).arrayBuffer()));
    }
    const whole = Buffer.concat(plain);
    const cut = whole.subarray(0, -312);
    // The same stream whose END record (drr_toguid at 40, little-endian on zfs-fuse) names the level-0 snapshot.
    const foreignEnd = Buffer.from(whole);
    foreignEnd.writeBigUInt64LE(BigInt(src.parent.guid), whole.length - 312 + 40);
    for (const [stream, id, why] of [
      [cut, "20991231T000004Z-L1-b1b1b1", "not END"],
      [foreignEnd, "20991231T000005Z-L1-b2b2b2", `its END record names snapshot guid ${src.parent.guid}, the manifest says ${src.snapshot.guid}`],
    ] as const) {
      const part = await forgePart(stream);
      const pk = `data/${fsOf("a")}/level1/${id}/part-000000.age`;
      await put(PREFIX + pk, part);
      const b3s = await b3(stream);
      const forged = { ...src, backupId: id, stream: { size: stream.length, blake3: b3s }, parts: [{ index: 0, key: pk, plainSize: stream.length, cipherSize: part.length, sha256: sha256(part), blake3: b3s }] };
      delete forged.signature;
      await put(mkey("a", id), YAML.stringify(forged));
      try {
        // The level 0 under it is genuine: the refusal comes before any step reaches zfs receive.
        const { calls } = await zfsCalls((e) => expectZrbFail(restoreArgs("a", `inc-${id.slice(-2)}`, "--backup-id", id, "--allow-unsigned"), e, 7, id, why));
        expect(calls).not.toContain("receive");
        expect(existsSync(`/${pool.pool}/inc-${id.slice(-2)}`)).toBe(false);
      } finally {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: mkey("a", id) }));
      }
    }
  });

  test("the NAS never builds on a forged head: unsigned heads.yaml pointing at a forged level 0 is ignored", async () => {
    const hk = `${PREFIX}manifests/${fsOf("b")}/heads.yaml`;
    const src = await getYaml(mkey("b", B.ids[0]!));
    const id = "20991231T000003Z-L0-c0c0c0";
    const forged = { ...src, backupId: id, parts: src.parts.map((p: any) => ({ ...p })) };
    delete forged.signature;
    await put(mkey("b", id), YAML.stringify(forged));
    const heads = await getYaml(hk);
    heads.levels["0"] = { backupId: id, snapshot: src.snapshot, finishedAt: "2099-12-31T00:00:00.000Z" };
    delete heads.signature;
    await put(hk, YAML.stringify(heads));
    try {
      const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", fsOf("b")])).stdout.trim();
      await writeRandomFile(join(mnt, "more.bin"), 20_000, 30);
      await zrb(["snapshot", "--config", cfg, "--task", "b", "--level", "1"], { env });
      const r = await zrb(["backup", "--config", cfg, "--task", "b", "--level", "1", "--json"], { env });
      expect(jsonResult(r.stdout).parentBackupId).toBe(B.ids[0]);
      expect(r.stderr).toContain("not signed");
      expect((await getYaml(hk)).signature.key).toBe(keys.verificationKey);
    } finally {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: mkey("b", id) }));
    }
  });

  test("a wrong verification key refuses everything; a readable signing key is warned about", async () => {
    const other = JSON.parse((await zrb(["genkey", "--out-dir", join(work, "other"), "--json"])).stdout);
    await expectZrbFail(["verify", "--config", cfg, "--task", "a", "--verify-key", other.verificationKey], env, 7, "signed by another key");
    chmodSync(keys.signingKeyFile, 0o644);
    try {
      const r = await zrb(["backup", "--config", cfg, "--task", "a", "--level", "1"], { env });
      expect(r.stderr).toContain(`signing key ${keys.signingKeyFile} can be read by other users`);
    } finally {
      chmodSync(keys.signingKeyFile, 0o600);
    }
  });
});

describe("an unsigned setup is loud", () => {
  /** The same NAS, its config written before signing_key existed (optionally knowing the verification key). */
  function unsignedConfig(name: string, verifyKeys: string[] = []): string {
    const doc = YAML.parse(readFileSync(cfg, "utf8"));
    delete doc.signing_key;
    doc.tasks.push({ name: "u", pool: pool.pool, dataset: "u", enabled: true });
    if (verifyKeys.length) doc.verify_keys = verifyKeys;
    const p = join(work, `${name}.yaml`);
    writeFileSync(p, YAML.stringify(doc));
    return p;
  }
  const warnings = (stderr: string) => stderr.split("\n").filter((l) => l.includes("no signing_key in"));

  test("backup, status and list warn once per run, naming signing_key and what it costs", async () => {
    const c = unsignedConfig("nosign");
    await run(["zfs", "create", `${pool.pool}/u`]);
    const mnt = (await run(["zfs", "get", "-H", "-o", "value", "mountpoint", `${pool.pool}/u`])).stdout.trim();
    await writeRandomFile(join(mnt, "u.bin"), 100_000, 31);
    await zrb(["snapshot", "--config", c, "--task", "u", "--level", "0"], { env });
    for (const args of [
      ["backup", "--config", c, "--task", "u", "--level", "0"],
      ["status", "--config", c],
      ["list", "--config", c, "--task", "u"],
    ]) {
      const r = await zrb(args, { env });
      const w = warnings(r.stderr);
      expect({ cmd: args[0], n: w.length }).toEqual({ cmd: args[0], n: 1 });
      expect(w[0]).toContain("signing_key");
      expect(w[0]).toContain("refuses them (only with --allow-unsigned)");
    }
    // The config that has signing_key says nothing of the kind.
    expect(warnings((await zrb(["status", "--config", cfg, "--task", "a"], { env })).stderr)).toEqual([]);
  });

  test("status --max-age with a verification key known counts 'no signed backup' as a problem", async () => {
    const c = unsignedConfig("verifyonly", [keys.verificationKey]);
    const line = await expectZrbFail(["status", "--config", c, "--task", "u", "--max-age", "30d"], env, 10, `task u (${pool.pool}/u) has no signed backup at all`);
    expect(line).toContain("set signing_key");
    const text = await zrb(["status", "--config", c, "--task", "u"], { env });
    expect(text.stdout).toContain("no signed backup in");
    // Signed backups of the other tasks are fresh under the same key; --allow-unsigned counts the unsigned one.
    expect((await zrb(["status", "--config", c, "--task", "a", "--max-age", "30d"], { env })).stdout).toContain("fresh: the newest signed backup");
    expect((await zrb(["status", "--config", c, "--task", "u", "--max-age", "30d", "--allow-unsigned"], { env })).stdout).toContain("fresh: the newest backup");
  });
});
