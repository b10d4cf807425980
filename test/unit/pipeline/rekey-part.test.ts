/**
 * Rekeying one part (src/pipeline/rekey/part.ts) against the real local store, with parts the
 * stock `age` CLI made: an object that is not the one the manifest describes — another size,
 * other bytes of the same size, a header that is not the one a rekey recorded — is refused
 * before anything is rewritten, and the object is left as it was. The good case is checked by
 * the stock CLI too: the rewritten object opens with the new key and not with the old one.
 * A killed run's record is believed only as far as the object bears it out; and on the real
 * radosgw, a rewrite the store did whose answer was lost is found done by the rerun, because
 * the record was written before the rewrite (after it, the part could never be rekeyed again);
 * and an object replaced after it was read is not rewritten (the copy is of the version read).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { generateKeyPair } from "../../../src/crypto/keys.ts";
import { startThreads } from "../../../src/pipeline/parallel/index.ts";
import { downloadPart } from "../../../src/pipeline/restore/fetch.ts";
import { rekeyPart } from "../../../src/pipeline/rekey/part.ts";
import { rewrappedProblem } from "../../../src/pipeline/rekey/origin.ts";
import { RekeyStateFile } from "../../../src/pipeline/rekey/state.ts";
import type { Manifest, ManifestPart } from "../../../src/records/manifest.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { S3Store } from "../../../src/store/s3.ts";
import { forward, startFaultProxy } from "../../helpers/faultproxy.ts";
import { useS3Rig } from "../store/helpers.ts";
import { ExitCode, type ZrbError } from "../../../src/util/errors.ts";

let dir: string;
let store: LocalStore;
const keys: { file: string; identity: string; recipient: string }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zrb-rekey-part-"));
  store = new LocalStore(join(dir, "store"));
  for (let i = 0; i < 3; i++) {
    const k = await generateKeyPair();
    const file = join(dir, `key${i}.txt`);
    writeFileSync(file, k.identityFileText, { mode: 0o600 });
    keys.push({ file, identity: k.identityFileText.trim().split("\n").at(-1)!, recipient: k.recipient });
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** `plain` encrypted by the stock age CLI to `recipient`. */
function ageTo(recipient: string, plain: Uint8Array): Uint8Array {
  const p = Bun.spawnSync(["age", "-r", recipient], { stdin: plain });
  expect(p.exitCode).toBe(0);
  return new Uint8Array(p.stdout);
}

function ageOpen(keyFile: string, sealed: Uint8Array): Uint8Array | null {
  const p = Bun.spawnSync(["age", "-d", "-i", keyFile], { stdin: sealed, stderr: "pipe" });
  return p.exitCode === 0 ? new Uint8Array(p.stdout) : null;
}

async function stored(name: string, body: Uint8Array): Promise<ManifestPart> {
  const key = `data/tank/x/level0/${name}/part-000000.age`;
  await store.put(key, body);
  return { index: 0, key, plainSize: 0, cipherSize: body.length, sha256: sha256(body), blake3: "" };
}

async function job(name: string, part: ManifestPart, from: number, to: number) {
  const state = await RekeyStateFile.open(mkdtempSync(join(dir, `state-${name}-`)), [keys[to]!.recipient]);
  return { store, backupId: name, part, info: (await store.head(part.key))!, identities: [keys[from]!.identity], recipients: [keys[to]!.recipient], state };
}

async function refused(p: Promise<unknown>): Promise<ZrbError> {
  let err: ZrbError | undefined;
  try {
    await p;
  } catch (e) {
    err = e as ZrbError;
  }
  expect(err?.exitCode).toBe(ExitCode.INTEGRITY);
  return err!;
}

describe("rekeyPart", () => {
  test("the object is rewritten to the new key: the stock age CLI opens it with that key only; its record keeps the original SHA-256", async () => {
    const plain = randomBytes(200_000);
    const part = await stored("good", ageTo(keys[0]!.recipient, plain));
    const out = await rekeyPart(await job("good", part, 0, 1));
    const now = (await store.get(part.key))!;
    expect(Buffer.compare(ageOpen(keys[1]!.file, now)!, plain)).toBe(0);
    expect(ageOpen(keys[0]!.file, now)).toBeNull();
    expect(out.part.sha256).toBe(part.sha256);
    expect(out.part.cipherSize).toBe(now.length);
    expect(out.part.rewrap?.prefixSha256).toBe(sha256(now.subarray(0, out.part.rewrap!.prefixSize)));
  });

  test("an object of another size than the manifest's is refused, and left as it was", async () => {
    const body = ageTo(keys[0]!.recipient, randomBytes(100_000));
    const part = { ...(await stored("size", body)), cipherSize: body.length + 1 };
    const err = await refused(rekeyPart(await job("size", part, 0, 1)));
    expect(err.message).toContain(`is ${body.length} bytes, the manifest says ${body.length + 1}`);
    expect(Buffer.compare((await store.get(part.key))!, body)).toBe(0);
  });

  test("other bytes of the same size (another age file to the same key) are refused, and left as they were", async () => {
    const original = ageTo(keys[0]!.recipient, randomBytes(100_000));
    const swapped = ageTo(keys[0]!.recipient, randomBytes(100_000));
    expect(swapped.length).toBe(original.length);
    const part = { ...(await stored("swapped", swapped)), sha256: sha256(original) };
    const err = await refused(rekeyPart(await job("swapped", part, 0, 1)));
    expect(err.message).toContain("its SHA-256 is not the manifest's");
    expect(Buffer.compare((await store.get(part.key))!, swapped)).toBe(0);
  });

  test("a rekeyed part whose header is not the one its record names is refused, and left as it was", async () => {
    const part = await stored("again", ageTo(keys[0]!.recipient, randomBytes(150_000)));
    const once = (await rekeyPart(await job("again", part, 0, 1))).part;
    const body = (await store.get(part.key))!;
    const other = { ...once, rewrap: { ...once.rewrap!, prefixSha256: sha256(randomBytes(32)) } };
    const err = await refused(rekeyPart(await job("again2", other, 1, 2)));
    expect(err.message).toContain("its age header is not the one the manifest records");
    expect(Buffer.compare((await store.get(part.key))!, body)).toBe(0);
    // With its true record, the second rekey goes through to the third key; the record it
    // makes still checks the object against the ORIGINAL upload's SHA-256 (its origin is the
    // first header, not the one the first rekey wrote).
    const twice = (await rekeyPart(await job("again3", once, 1, 2))).part;
    const now = (await store.get(part.key))!;
    expect(ageOpen(keys[2]!.file, now)).not.toBeNull();
    const file = join(dir, "again3.age");
    writeFileSync(file, now);
    expect(twice.sha256).toBe(part.sha256);
    expect(await rewrappedProblem(file, twice, [keys[2]!.identity])).toBeUndefined();
  });

  test("a killed run's record is believed only when the object starts with the new header it names: not yet rewritten, it is rewritten afresh; rewritten, it is not rewritten again; grown since, it is refused", async () => {
    const part = await stored("resume", ageTo(keys[0]!.recipient, randomBytes(150_000)));
    const orig = (await store.get(part.key))!;
    const j = await job("resume", part, 0, 1);
    await rekeyPart(j);
    const rec = j.state.part("resume", 0)!;
    const again = async () => rekeyPart({ ...j, info: (await store.head(part.key))! });
    // Killed before the store completed the rewrite: the object is still the old one.
    await store.put(part.key, orig);
    await j.state.setPart("resume", 0, { ...rec, done: false });
    expect((await again()).resumed).toBe(false);
    const rewritten = (await store.get(part.key))!;
    expect(ageOpen(keys[1]!.file, rewritten)).not.toBeNull();
    expect(ageOpen(keys[0]!.file, rewritten)).toBeNull();
    // Killed after the store completed it, before the record said so.
    await j.state.setPart("resume", 0, { ...j.state.part("resume", 0)!, done: false });
    const resumed = await again();
    expect([resumed.resumed, resumed.copied, j.state.part("resume", 0)!.done]).toEqual([true, 0, true]);
    expect(Buffer.compare((await store.get(part.key))!, rewritten)).toBe(0);
    // The new header, but a byte more than the record implies: not done, and not the manifest's part.
    const grown = new Uint8Array([...rewritten, 0]);
    await store.put(part.key, grown);
    const err = await refused(again());
    expect(err.message).toContain(`is ${grown.length} bytes, the manifest says ${orig.length}`);
    expect(Buffer.compare((await store.get(part.key))!, grown)).toBe(0);
  });
});

describe("rekeyPart on radosgw", () => {
  const ctx = useS3Rig("zrb-rekey-part-s3-");

  test("the store rewrote the object and its answer was lost: the run fails, and the rerun finds the part done from the record written before the rewrite", async () => {
    let drop = true;
    const proxy = startFaultProxy({
      upstreamPort: Number(new URL(ctx.rig.endpoint).port),
      decide: (r) => (drop && r.method === "PUT" && r.path.includes("/data/") ? { kind: "dropResponse" } : forward),
    });
    try {
      const s3 = new S3Store({ bucket: ctx.bucket, prefix: "zrb/rekey", region: ctx.rig.region, endpoint: proxy.endpoint });
      const body = ageTo(keys[0]!.recipient, randomBytes(120_000));
      const key = "data/tank/x/level0/lost/part-000000.age";
      drop = false;
      await s3.put(key, body);
      drop = true;
      const part: ManifestPart = { index: 0, key, plainSize: 120_000, cipherSize: body.length, sha256: sha256(body), blake3: "" };
      const state = await RekeyStateFile.open(mkdtempSync(join(dir, "state-lost-")), [keys[1]!.recipient]);
      const j = { store: s3, backupId: "lost", part, identities: [keys[0]!.identity], recipients: [keys[1]!.recipient], state };
      await expect(rekeyPart({ ...j, info: (await s3.head(key))! })).rejects.toThrow();
      drop = false;
      const now = (await s3.get(key))!;
      expect(ageOpen(keys[1]!.file, now)).not.toBeNull();
      const again = await rekeyPart({ ...j, info: (await s3.head(key))! });
      expect([again.resumed, again.copied]).toEqual([true, 0]);
      expect(Buffer.compare((await s3.get(key))!, now)).toBe(0);
      const file = join(dir, "lost.age");
      writeFileSync(file, now);
      expect(await rewrappedProblem(file, again.part, [keys[1]!.identity])).toBeUndefined();
    } finally {
      proxy.stop();
    }
  });

  test("an object replaced after it was read (same size, same key: another upload of the part) is not rekeyed, and is left as the replacement", async () => {
    const s3 = new S3Store({ bucket: ctx.bucket, prefix: "zrb/rekey", region: ctx.rig.region, endpoint: ctx.rig.endpoint });
    // Over 5 MiB: only the head is downloaded, the rest copied inside the store, so the bytes
    // copied are checked by nothing but the version read before (its ETag).
    const key = "data/tank/x/level0/replaced/part-000000.age";
    const body = ageTo(keys[0]!.recipient, randomBytes(6 << 20));
    await s3.put(key, body);
    const part: ManifestPart = { index: 0, key, plainSize: 6 << 20, cipherSize: body.length, sha256: sha256(body), blake3: "" };
    const info = (await s3.head(key))!;
    const other = ageTo(keys[0]!.recipient, randomBytes(6 << 20));
    expect(other.length).toBe(body.length);
    await s3.put(key, other);
    const state = await RekeyStateFile.open(mkdtempSync(join(dir, "state-replaced-")), [keys[1]!.recipient]);
    const j = { store: s3, backupId: "replaced", part, info, identities: [keys[0]!.identity], recipients: [keys[1]!.recipient], state };
    await expect(rekeyPart(j)).rejects.toThrow(/changed since it was read/);
    expect(Buffer.compare((await s3.get(key))!, other)).toBe(0);
  });
});

describe("a rekeyed part downloaded for a restore or verify (restore/fetch.ts)", () => {
  test("is checked against its original SHA-256 through the sealed original header: as rewritten it passes, a byte changed since is refused (exit 7)", async () => {
    const threads = await startThreads(1, (e) => {
      throw e;
    });
    try {
      const { part: p } = await rekeyPart(await job("fetched", await stored("fetched", ageTo(keys[0]!.recipient, randomBytes(150_000))), 0, 1));
      const m = { backupId: "fetched", parts: [p] } as unknown as Manifest;
      const path = join(dir, "fetched.part");
      const opts = { identities: [keys[1]!.identity] };
      await downloadPart(store, m, p, path, threads, opts);
      const now = Uint8Array.from((await store.get(p.key))!);
      now[now.length - 1]! ^= 1;
      await store.put(p.key, now);
      const err = await refused(downloadPart(store, m, p, path, threads, opts));
      expect(err.message).toStartWith(`part 0 of backup fetched (${store.urlOf(p.key)}): `);
    } finally {
      threads.terminate();
    }
  });
});
