/**
 * What deletes believes: prune, cleanup and status on zfs-fuse + radosgw with the compiled
 * binary, against a bucket writer who has no signing key (the NAS role of `zrb iam-policy`: it
 * may put objects, it may not delete them) and against damage. Such a writer can add manifests
 * and a heads.yaml of its own; a damaged byte can spoil the newest chain; a wrong clock can date
 * a backup in 2099; an old signed heads.yaml can be put back. None of it may make prune delete a
 * restorable point, make status say "fresh", or make the next incremental build on a stale base.
 * Every point prune keeps is then restored and compared byte for byte.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { History } from "../helpers/history.ts";
import { s3Client } from "../helpers/rig.ts";
import { scene, type Scene } from "../helpers/scene.ts";
import { configYaml, expectFailed, jsonResult, zrb } from "../helpers/zrb.ts";

const PREFIX = "zrb/";
let sc: Scene;
let client: S3Client;
let keys: { publicKey: string; verificationKey: string; privateKeyFile: string; signingKeyFile: string };

beforeAll(async () => {
  sc = await scene({ name: "prune-trust", poolMiB: 256, dataset: "unused" });
  client = await s3Client(sc.s3);
  keys = JSON.parse((await zrb(["genkey", "--out-dir", join(sc.work, "keys"), "--json"])).stdout);
});

afterAll(async () => {
  await sc?.close();
});

const at = (day: number, hh = "02") => `2027-01-${String(day).padStart(2, "0")}T${hh}:00:00Z`;

/** A NAS dataset whose backups are signed (signing_key), pruned from the NAS's own config. */
function nas(name: string): Promise<History> {
  return History.create({
    pool: sc.pool.pool,
    name,
    bucket: sc.bucket,
    s3: sc.s3,
    prefix: PREFIX,
    work: sc.work,
    recipient: keys.publicKey,
    keyFile: keys.privateKeyFile,
    env: sc.env,
    extra: { signing_key: keys.signingKeyFile },
  });
}

/** The config of a separate prune host for h's dataset: its own base_dir, verify_keys, no signing key. */
function pruneHost(h: History, verifyKeys: string[] | null = [keys.verificationKey]): string {
  const doc = YAML.parse(
    configYaml({ baseDir: join(sc.work, `prunehost-${h.o.name}`), recipients: [keys.publicKey], bucket: sc.bucket, s3: sc.s3, prefix: PREFIX, tasks: [{ name: "t", pool: sc.pool.pool, dataset: h.o.name }] }),
  );
  if (verifyKeys) doc.verify_keys = verifyKeys;
  const f = join(sc.work, `prunehost-${h.o.name}.yaml`);
  writeFileSync(f, YAML.stringify(doc));
  return f;
}

const mkey = (h: History, id: string) => `${PREFIX}manifests/${h.fs}/${id}.manifest.yaml`;
const headsKey = (h: History) => `${PREFIX}manifests/${h.fs}/heads.yaml`;

async function getText(key: string): Promise<string> {
  return await (await client.send(new GetObjectCommand({ Bucket: sc.bucket, Key: key }))).Body!.transformToString();
}
async function put(key: string, body: string | Uint8Array): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: sc.bucket, Key: key, Body: body }));
}

/** An unsigned level-0 manifest that claims to be a later backup with no parts (what a writer without the key can make). */
async function forgeLevel0(h: History, like: string, id: string, snapTime: string): Promise<void> {
  const m = YAML.parse(await getText(mkey(h, like)));
  delete m.signature;
  Object.assign(m, { backupId: id, level: 0, parent: null, parts: [], startedAt: snapTime, finishedAt: snapTime });
  m.stream = { ...m.stream, size: 0 };
  m.snapshot = { ...m.snapshot, name: `${h.fs}@zrb_level0_${snapTime.replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}`, guid: "1234567890123" };
  await put(mkey(h, id), YAML.stringify(m));
}

/** prune --json on a config; the decisions by backup id. */
async function prune(cfg: string, now: string, ...flags: string[]) {
  const r = await zrb(["prune", "--config", cfg, "--task", "t", "--json", ...flags], { env: { ...sc.env, ZRB_NOW: now } });
  const out = jsonResult(r.stdout);
  return { out, stderr: r.stderr, action: new Map<string, string>(out.backups.map((b: any) => [b.backupId, b.action])), reasons: new Map<string, any[]>(out.backups.map((b: any) => [b.backupId, b.reasons])) };
}

async function manifestIds(h: History): Promise<string[]> {
  const list = JSON.parse((await zrb(["list", "--config", h.cfg, "--task", "t", "--json", "--allow-unsigned"], { env: sc.env })).stdout);
  return list.map((e: any) => e.backupId).sort();
}

describe("a bucket writer without the signing key", () => {
  test("unsigned level-0 manifests with no parts and an unsigned heads.yaml naming them decide nothing: prune from a prune host keeps the newest real points, status is not fooled", async () => {
    const h = await nas("forged");
    const real = [await h.day(0, at(1), 1), await h.day(1, at(2), 2), await h.day(0, at(3), 3), await h.day(1, at(4), 4)];
    const forged = ["20270110T020000Z-L0-f00001", "20270111T020000Z-L0-f00002"];
    await forgeLevel0(h, real[0]!.id, forged[0]!, "2027-01-10T02:00:00.000Z");
    await forgeLevel0(h, real[0]!.id, forged[1]!, "2027-01-11T02:00:00.000Z");
    const heads = YAML.parse(await getText(headsKey(h)));
    delete heads.signature;
    heads.levels = { "0": { backupId: forged[1], snapshot: { name: `${h.fs}@zrb_level0_20270111T020000Z`, guid: "1234567890123" }, finishedAt: "2027-01-11T02:00:00.000Z" } };
    await put(headsKey(h), YAML.stringify(heads));

    // status from the prune host: the newest trusted backup is day 4's, a week old on day 11.
    const host = pruneHost(h);
    const st = await zrb(["status", "--config", host, "--task", "t", "--max-age", "1h"], { env: { ...sc.env, ZRB_NOW: at(11, "03") }, allowFail: true });
    expect(st.code).toBe(10);
    expect(st.stderr).toContain(real[3]!.id);

    // list from the prune host: the forged ones are there, not restorable, said why.
    const list = JSON.parse((await zrb(["list", "--config", host, "--task", "t", "--json"], { env: sc.env })).stdout);
    for (const id of forged) expect(list.find((e: any) => e.backupId === id)).toMatchObject({ restorable: false, problem: { kind: "unauthenticated" } });

    const p = await prune(host, at(11, "03"), "--keep-last", "2");
    expect(p.action.get(real[0]!.id)).toBe("delete");
    expect(p.action.get(real[1]!.id)).toBe("delete");
    expect(p.action.get(real[2]!.id)).toBe("keep");
    expect(p.action.get(real[3]!.id)).toBe("keep");
    for (const id of forged) {
      expect(p.action.get(id)).toBe("keep");
      expect(p.reasons.get(id)!.map((r) => r.rule)).toEqual(["not-trusted"]);
    }
    expect(p.stderr).toContain(`backup ${forged[0]} (level 0) is not trusted`);
    expect(await manifestIds(h)).toEqual([...forged, real[2]!.id, real[3]!.id].sort());
    await h.restoreAndCompare(real[3]!.id, at(11, "04"));
    await h.restoreAndCompare(real[2]!.id, at(11, "04"));
  });

  test("a manifest dated 2099 (forged, or signed by a NAS whose clock was wrong) does not cancel --keep-within: the window counts back from now", async () => {
    const h = await nas("future");
    const real = [await h.day(0, at(1), 11), await h.day(1, at(2), 12), await h.day(1, at(3), 13), await h.day(1, at(4), 14)];
    await forgeLevel0(h, real[0]!.id, "20990101T000000Z-L0-f00003", "2099-01-01T00:00:00.000Z");
    const wrongClock = await h.day(2, "2099-06-01T00:00:00Z", 15); // signed by the NAS, dated 2099
    const p = await prune(h.cfg, at(4, "05"), "--keep-within", "36h");
    // 36 hours back from now (day 4, 05:00): day 3 and day 4; day 1 is their level 0.
    expect([real[0], real[2], real[3]].map((b) => p.action.get(b!.id))).toEqual(["keep", "keep", "keep"]);
    expect(p.reasons.get(real[2]!.id)!.map((r) => r.rule)).toContain("within");
    expect(p.action.get(real[1]!.id)).toBe("delete");
    expect(p.reasons.get("20990101T000000Z-L0-f00003")!.map((r) => r.rule)).toEqual(["not-trusted"]);
    expect(p.action.get(wrongClock.id)).toBe("keep");
    expect(p.reasons.get(wrongClock.id)!.map((r) => r.rule)).toContain("future");
    // A backup dated in the future is no proof of freshness either.
    const st = await zrb(["status", "--config", h.cfg, "--task", "t", "--max-age", "1d", "--level", "2"], { env: { ...sc.env, ZRB_NOW: at(9) }, allowFail: true });
    expect(st.code).toBe(10);
    await h.restoreAndCompare(real[2]!.id, at(4, "06"));
  });
});

describe("a real manifest overwritten", () => {
  test("by an unsigned copy that lists no parts: prune and cleanup keep the real parts, and putting the signed manifest back restores it", async () => {
    const h = await nas("overwritten");
    const l0 = await h.day(0, at(1), 61);
    const l1 = await h.day(1, at(2), 62);
    const signed = await getText(mkey(h, l1.id));
    const m = YAML.parse(signed);
    const partKeys = m.parts.map((p: any) => PREFIX + p.key);
    delete m.signature;
    Object.assign(m, { parts: [], stream: { ...m.stream, size: 0 } });
    await put(mkey(h, l1.id), YAML.stringify(m));
    const env = { ...sc.env, ZRB_NOW: at(3) };
    expect((await zrb(["cleanup", "--config", h.cfg, "--task", "t", "--older-than", "0s"], { env })).code).toBe(0);
    const p = await prune(h.cfg, at(3), "--keep-last", "1");
    expect(p.reasons.get(l1.id)![0].rule).toBe("not-trusted");
    expect(p.action.get(l0.id)).toBe("keep");
    expect(p.out.orphans).toEqual([]);
    for (const k of partKeys) expect((await client.send(new GetObjectCommand({ Bucket: sc.bucket, Key: k }))).ContentLength).toBeGreaterThan(0);
    await put(mkey(h, l1.id), signed);
    await h.restoreAndCompare(l1.id, at(3, "04"));
  });
});

describe("a middle manifest forged", () => {
  test("unsigned, naming a parent that never was: prune keeps the signed level 0 below it, and putting the signed manifest back restores the chain", async () => {
    const h = await nas("middle");
    const r0 = await h.day(0, at(1), 71); // outside the window: kept only as the base of k2
    const u1 = await h.day(1, at(2), 72);
    const k2 = await h.day(2, at(3), 73); // inside the window
    await h.day(0, at(4), 74); // the head of level 0 now
    const signed = await getText(mkey(h, u1.id));
    const m = YAML.parse(signed);
    delete m.signature;
    m.parent = { ...m.parent, backupId: "19700101T000000Z-L0-000000" };
    await put(mkey(h, u1.id), YAML.stringify(m));
    const p = await prune(h.cfg, at(10), "--keep-within", "8d");
    expect(p.out.summary.deleted).toBe(0);
    expect(p.reasons.get(r0.id)).toEqual([{ rule: "probable-ancestor", of: k2.id, lost: u1.id, untrusted: true }]);
    expect(p.reasons.get(u1.id)!.map((r) => r.rule)).toContain("not-trusted");
    await put(mkey(h, u1.id), signed);
    await h.restoreAndCompare(k2.id, at(10, "04"));
  });
});

describe("damage", () => {
  test("one changed hex digit in the newest chain's level-0 manifest: that chain is not trusted and kept; the older, restorable chain is the newest point and stays", async () => {
    const h = await nas("damaged");
    const real = [await h.day(0, at(1), 21), await h.day(1, at(2), 22), await h.day(0, at(3), 23), await h.day(1, at(4), 24)];
    const text = await getText(mkey(h, real[2]!.id));
    const blake = YAML.parse(text).stream.blake3 as string;
    const flipped = blake.slice(0, 10) + (blake[10] === "0" ? "1" : "0") + blake.slice(11);
    await put(mkey(h, real[2]!.id), text.replace(blake, flipped));
    const p = await prune(h.cfg, at(5), "--keep-last", "1");
    expect(p.out.summary.deleted).toBe(0);
    expect(p.reasons.get(real[1]!.id)!.map((r) => r.rule)).toContain("last");
    expect(p.reasons.get(real[0]!.id)!.map((r) => r.rule)).toContain("ancestor");
    expect(p.action.get(real[2]!.id)).toBe("keep");
    expect(p.reasons.get(real[2]!.id)![0].rule).toBe("not-trusted");
    expect(p.reasons.get(real[3]!.id)!.map((r) => r.rule)).toContain("not-restorable");
    await h.restoreAndCompare(real[1]!.id, at(5, "03"));
  });

  test("a part that verify --rotate found bad makes its chain no restore point: prune keeps the older chain it would have deleted", async () => {
    const h = await nas("rotbad");
    const real = [await h.day(0, at(1), 31), await h.day(1, at(2), 32), await h.day(0, at(3), 33), await h.day(1, at(4), 34)];
    // Same size, other bytes in the newest chain's level 0: the listing cannot tell, only reading it can.
    const m = YAML.parse(await getText(mkey(h, real[2]!.id)));
    await put(PREFIX + m.parts[0].key, randomBytes(m.parts[0].cipherSize));
    const before = await prune(h.cfg, at(5), "--keep-last", "1", "--dry-run");
    expect(before.action.get(real[1]!.id)).toBe("delete"); // sizes alone: day 4 looks restorable
    const v = await zrb(["verify", "--config", h.cfg, "--task", "t", "--private-key", keys.privateKeyFile, "--rotate", "1"], { env: { ...sc.env, ZRB_NOW: at(5) }, allowFail: true });
    expect(v.code).toBe(7);
    const p = await prune(h.cfg, at(5, "03"), "--keep-last", "1");
    expect(p.out.summary.deleted).toBe(0);
    expect(p.reasons.get(real[2]!.id)!.find((r) => r.rule === "not-restorable")?.problem).toContain("verify --rotate found a bad part");
    expect(p.reasons.get(real[3]!.id)!.find((r) => r.rule === "not-restorable")?.problem).toContain(`backup ${real[2]!.id} of its chain`);
    expect(p.reasons.get(real[1]!.id)!.map((r) => r.rule)).toContain("last");
    await h.restoreAndCompare(real[1]!.id, at(5, "04"));
  });
});

describe("heads cannot be rolled back", () => {
  test("an older signed heads.yaml put back: the NAS refuses it (its sequence is older) and the next incremental builds on the newest signed manifest", async () => {
    const h = await nas("rollback");
    await h.day(0, at(1), 41);
    const l1 = await h.day(1, at(2), 42);
    const old = await getText(headsKey(h));
    expect(YAML.parse(old).sequence).toBe(2);
    const newer = await h.day(1, at(3), 43);
    expect(YAML.parse(await getText(headsKey(h))).sequence).toBe(3);
    await put(headsKey(h), old); // signed by the NAS, but stale: names day 2 as the level-1 head
    await h.change(44);
    const snap = await h.snapshot(2, at(4));
    const r = await h.run(["backup", "--level", "2", "--json"], at(4));
    const out = jsonResult(r.stdout);
    expect(out.snapshot).toBe(snap);
    expect(out.parentBackupId).toBe(newer.id);
    expect(out.parentBackupId).not.toBe(l1.id);
    expect(r.stderr).toContain("rolled back");
    expect(YAML.parse(await getText(headsKey(h))).sequence).toBe(4);
    // heads.yaml deleted: rebuilt from the manifests, the next heads still come after the last this NAS wrote
    // (a sequence started over at 1 would let the stale heads above be put back and believed).
    await client.send(new DeleteObjectCommand({ Bucket: sc.bucket, Key: headsKey(h) }));
    await h.day(2, at(5), 45);
    expect(YAML.parse(await getText(headsKey(h))).sequence).toBe(5);
  });
});

describe("no key, no delete", () => {
  test("prune and cleanup without any verification key refuse to delete (exit 3 naming verify_keys); a dry run still explains; --allow-unsigned lets them", async () => {
    const h = await nas("nokey");
    await h.day(0, at(1), 51);
    const host = pruneHost(h, null);
    const env = { ...sc.env, ZRB_NOW: at(2) };
    for (const cmd of [["prune", "--keep-last", "1"], ["cleanup"]]) {
      const r = await zrb([...cmd, "--config", host, "--task", "t"], { env, allowFail: true });
      await expectFailed(r, 3, "verify_keys", "--allow-unsigned");
    }
    expect((await zrb(["prune", "--keep-last", "1", "--dry-run", "--config", host, "--task", "t"], { env })).code).toBe(0);
    expect((await zrb(["cleanup", "--allow-unsigned", "--config", host, "--task", "t"], { env })).code).toBe(0);
  });
});
