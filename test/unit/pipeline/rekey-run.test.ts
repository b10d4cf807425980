/**
 * zrb rekey of a whole task (src/pipeline/rekey/index.ts) against the real local store, with
 * parts the stock `age` CLI made and file catalogs sealed as a backup seals them. Why here and
 * not only end to end: the refusals and the one delete a rekey does depend on states the e2e
 * run never reaches — an interrupted backup, a signed manifest without signing_key, a part gone
 * missing, a rerun after a run killed between its manifest and its bookkeeping, a manifest that
 * names another backup's catalog, a catalog the old key cannot open, a begun backup skipped
 * by the rerun. Each was found deletable
 * with every test green. Checked: the run refuses before any object changes; the only object
 * it deletes is the old catalog its new manifest replaced, under the backup's own id. The races
 * with a prune on another host run on the rig's radosgw (S3) as well.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import YAML from "yaml";
import type { Config, Task } from "../../../src/config/config.ts";
import { generateKeyPair } from "../../../src/crypto/keys.ts";
import { generateSigningKey, readSigningKey, type SigningKey } from "../../../src/crypto/signing.ts";
import { rekey, type RekeyOptions } from "../../../src/pipeline/rekey/index.ts";
import { rekeyPart } from "../../../src/pipeline/rekey/part.ts";
import { RekeyStateFile } from "../../../src/pipeline/rekey/state.ts";
import { headerOnlyLine, verifyBackups } from "../../../src/pipeline/verify.ts";
import { openCatalog, sealCatalog, sha256Hex, type FileCatalog } from "../../../src/records/file-catalog.ts";
import { MANIFEST_FORMAT, type Manifest } from "../../../src/records/manifest.ts";
import { manifestTrustProblem, NO_TRUST, signManifest, type Trust } from "../../../src/records/trust.ts";
import { RunDir } from "../../../src/state/rundir.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { openStore } from "../../../src/store/open.ts";
import type { ObjectStore } from "../../../src/store/store.ts";
import { emptyAndDeleteBucket, makeBucket, s3Rig, type S3Rig } from "../../helpers/rig.ts";
import { catalogKey, manifestKey, partKey } from "../../../src/store/layout.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import { backupState } from "./helpers.ts";

let dir: string;
const keys: { identity: string; recipient: string }[] = [];
let signer: SigningKey;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zrb-rekey-run-"));
  for (let i = 0; i < 3; i++) {
    const k = await generateKeyPair();
    keys.push({ identity: k.identityFileText.trim().split("\n").at(-1)!, recipient: k.recipient });
  }
  const s = generateSigningKey("test");
  writeFileSync(join(dir, "signing.key"), s.fileText, { mode: 0o600 });
  signer = await readSigningKey(join(dir, "signing.key"));
});
afterAll(async () => {
  if (s3) await emptyAndDeleteBucket((await s3).rig, (await s3).bucket);
  rmSync(dir, { recursive: true, force: true });
});

/** The rig's radosgw and a bucket for this file, made the first time a test asks for them. */
let s3: Promise<{ rig: S3Rig; bucket: string }> | undefined;
async function s3Store(prefix: string): Promise<ObjectStore> {
  s3 ??= (async () => {
    const rig = await s3Rig();
    process.env.AWS_ACCESS_KEY_ID = rig.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = rig.secretAccessKey;
    return { rig, bucket: await makeBucket(rig) };
  })();
  const { rig, bucket } = await s3;
  return openStore({ s3: { enabled: true, bucket, prefix, region: rig.region, endpoint: rig.endpoint, retry: { maxAttempts: 3 } }, localStoreDir: "" });
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const catalogOf = (n: number): FileCatalog => ({ kind: "full", entries: [{ path: `f${n}.txt`, type: "f", size: n, mtime: 1 }] });

/** A fresh store (a local directory, or a prefix of the rig's radosgw: `on`) and base_dir, and the task tank/ds in them. */
async function world(name: string, on: "local" | "S3" = "local") {
  const root = mkdtempSync(join(dir, `${name}-`));
  const store = on === "S3" ? await s3Store(`rekey-${name}-${root.slice(-6)}`) : new LocalStore(join(root, "store"));
  const cfg = { path: "/etc/zrb.yaml", baseDir: join(root, "base"), s3: { storageClass: { manifest: "STANDARD" } } } as unknown as Config;
  const task = { name: "t", pool: "tank", dataset: "ds", fullName: "tank/ds" } as Task;
  const opts = (o: Partial<RekeyOptions> = {}): RekeyOptions => ({ identities: [keys[0]!.identity], recipients: [keys[1]!.recipient], trust: NO_TRUST, dryRun: false, ...o });
  return { store, cfg, task, rd: new RunDir(cfg.baseDir, "tank", "ds"), opts, run: (o: Partial<RekeyOptions> = {}) => rekey(cfg, task, store, opts(o)) };
}

/**
 * A level-0 backup `day` of tank/ds in `store`: `parts` parts (1) the stock age CLI encrypted to
 * key 0, a file catalog sealed to `catalogTo` (none with null), a manifest (signed with `sign`).
 */
async function backup(store: ObjectStore, day: number, o: { catalogTo?: string | null; sign?: boolean; parts?: number } = {}): Promise<Manifest> {
  const id = `2027030${day}T020000Z-L0-aaaaa${day}`;
  const parts: Manifest["parts"] = [];
  for (let index = 0; index < (o.parts ?? 1); index++) {
    const p = Bun.spawnSync(["age", "-r", keys[0]!.recipient], { stdin: randomBytes(50_000 + day) });
    expect(p.exitCode).toBe(0);
    const body = new Uint8Array(p.stdout);
    const key = partKey("tank", "ds", 0, id, index);
    await store.put(key, body);
    parts.push({ index, key, plainSize: 50_000 + day, cipherSize: body.length, sha256: sha256(body), blake3: "c".repeat(64) });
  }
  const to = o.catalogTo === undefined ? keys[0]!.recipient : o.catalogTo;
  const sealed = to === null ? null : await sealCatalog(catalogOf(day), [to]);
  if (sealed) await store.put(catalogKey("tank", "ds", id), sealed);
  const m: Manifest = {
    format: MANIFEST_FORMAT, backupId: id, pool: "tank", dataset: "ds", level: 0,
    snapshot: { name: `tank/ds@s${day}`, guid: String(100 + day) }, parent: null,
    send: { flags: [], zfs: "t" }, stream: { size: parts.length * (50_000 + day), blake3: "b".repeat(64) }, recipients: [keys[0]!.recipient], storageClass: "STANDARD", chunkSize: 1 << 20,
    parts,
    tool: { name: "zrb", version: "t" }, host: "h", startedAt: `2027-03-0${day}T02:00:00Z`, finishedAt: `2027-03-0${day}T02:01:00Z`,
    ...(sealed ? { catalog: { key: catalogKey("tank", "ds", id), size: sealed.length, sha256: sha256Hex(sealed), entries: 1, kind: "full" as const } } : {}),
  };
  const written = o.sign ? signManifest(m, signer) : m;
  await store.put(manifestKey("tank", "ds", id), YAML.stringify(written, { lineWidth: 0 }));
  return written;
}

const manifestNow = async (store: ObjectStore, id: string): Promise<Manifest> => YAML.parse(new TextDecoder().decode((await store.get(manifestKey("tank", "ds", id)))!));
/** Every object of the store, key → bytes (base64): what "nothing changed" compares. */
async function snapshotOf(store: ObjectStore): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const o of await store.list("")) out[o.key] = Buffer.from((await store.get(o.key))!).toString("base64");
  return out;
}
async function thrown(p: Promise<unknown>): Promise<ZrbError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ZrbError);
  return err as ZrbError;
}

describe("what rekey refuses before any object changes", () => {
  test("an interrupted backup of the dataset (it would finish to the old key): exit 2, every object as it was", async () => {
    const w = await world("pending");
    await backup(w.store, 1);
    const before = await snapshotOf(w.store);
    w.rd.writeState(backupState({ pool: "tank", dataset: "ds", backupId: "20270302T020000Z-L0-bbbbbb", snapshot: { name: "tank/ds@s2", guid: "102" } }));
    expect((await w.rd.readState()).kind).toBe("ok");
    const err = await thrown(w.run());
    expect(err.exitCode).toBe(ExitCode.USAGE);
    expect(err.message).toContain("was interrupted and would finish encrypted to the old key; run zrb backup --level 0 to finish it, then rekey");
    expect(await snapshotOf(w.store)).toEqual(before);
  });

  test("a signed manifest without signing_key: exit 3, every object as it was; with the signer it is rekeyed and signed again", async () => {
    const w = await world("signed");
    const m = await backup(w.store, 1, { sign: true });
    const trust: Trust = { verifyKeys: [signer.verifyKey], allowUnsigned: false, source: "test" };
    const before = await snapshotOf(w.store);
    const err = await thrown(w.run({ trust }));
    expect(err.exitCode).toBe(ExitCode.CONFIG);
    expect(err.message).toContain(`backup ${m.backupId} is signed and rekey rewrites its manifest; run zrb rekey where signing_key is`);
    expect(await snapshotOf(w.store)).toEqual(before);
    expect((await w.run({ trust, signer })).backups).toBe(1);
    const now = await manifestNow(w.store, m.backupId);
    expect(now.recipients).toEqual([keys[1]!.recipient]);
    expect(manifestTrustProblem(now, trust)).toBeUndefined();
  });

  test("a backup whose part is missing is reported (exit 6) and left whole; the next backup is rekeyed", async () => {
    const w = await world("missing");
    const gone = await backup(w.store, 1);
    const ok = await backup(w.store, 2);
    await w.store.delete(gone.parts[0]!.key);
    const before = await snapshotOf(w.store);
    const res = await w.run();
    expect(res.skipped.map((s) => [s.backupId, s.exitCode])).toEqual([[gone.backupId, ExitCode.STORE]]);
    expect(res.skipped[0]!.reason).toMatch(/^part 0 \(.*\) is missing; run zrb verify$/);
    expect(res.backups).toBe(1);
    const after = await snapshotOf(w.store);
    for (const k of [manifestKey("tank", "ds", gone.backupId), gone.catalog!.key]) expect(after[k]).toBe(before[k]!);
    expect((await manifestNow(w.store, ok.backupId)).recipients).toEqual([keys[1]!.recipient]);
  });
});

describe("a backup given up while it is rekeyed", () => {
  // The interleaving is forced through the store's own methods, on each backend.
  for (const on of ["local", "S3"] as const) {
    test(`prune on another host deletes its manifest (then its parts) meanwhile: rekey does not write the manifest back (exit 6), and the next backup is rekeyed (${on})`, async () => {
      const w = await world("pruned", on);
      const pruned = await backup(w.store, 1);
      const ok = await backup(w.store, 2);
      // The other host's prune: the manifest goes while the part is being rewritten.
      const rewrite = w.store.rewriteHead.bind(w.store);
      w.store.rewriteHead = async (key, ...rest) => {
        const r = await rewrite(key, ...rest);
        if (key === pruned.parts[0]!.key) await w.store.delete(manifestKey("tank", "ds", pruned.backupId));
        return r;
      };
      const res = await w.run();
      expect(res.skipped.map((s) => [s.backupId, s.exitCode])).toEqual([[pruned.backupId, ExitCode.STORE]]);
      expect(res.skipped[0]!.reason).toContain("its manifest was deleted while it was rekeyed");
      expect(await w.store.head(manifestKey("tank", "ds", pruned.backupId))).toBeNull();
      expect((await manifestNow(w.store, ok.backupId)).recipients).toEqual([keys[1]!.recipient]);
      expect(existsSync(join(w.rd.dir, "rekey_state.yaml"))).toBe(false); // nothing left to finish
    });

    test(`a part deleted right as the manifest is written back (a prune on another host): the manifest is kept and named, never a success (exit 6), and the next backup is rekeyed (${on})`, async () => {
      const w = await world("pruned-late", on);
      const pruned = await backup(w.store, 1);
      const ok = await backup(w.store, 2);
      // The other host's prune deleted the manifest after rekey looked, and deletes the part after the write.
      const put = w.store.put.bind(w.store);
      w.store.put = async (key, ...rest) => {
        await put(key, ...rest);
        if (key === manifestKey("tank", "ds", pruned.backupId)) await w.store.delete(pruned.parts[0]!.key);
      };
      const res = await w.run();
      expect(res.skipped.map((s) => [s.backupId, s.exitCode])).toEqual([[pruned.backupId, ExitCode.STORE]]);
      expect(res.skipped[0]!.reason).toContain(`part 0 (${w.store.urlOf(pruned.parts[0]!.key)}) was deleted while its manifest was rewritten`);
      expect(res.skipped[0]!.reason).toContain(`the manifest ${w.store.urlOf(manifestKey("tank", "ds", pruned.backupId))} now names a missing part and is kept`);
      // Rekey cannot tell a prune from a part lost otherwise, and the manifest is the only record of
      // the other parts: it stays (prune keeps it as not restorable), and is never called rekeyed.
      expect(await w.store.head(manifestKey("tank", "ds", pruned.backupId))).not.toBeNull();
      expect(res.backups).toBe(1);
      expect((await manifestNow(w.store, ok.backupId)).recipients).toEqual([keys[1]!.recipient]);
      expect(existsSync(join(w.rd.dir, "rekey_state.yaml"))).toBe(false); // nothing left to finish
    });
  }

  test("a thawed backup of an archive class: its rewritten parts are archived again (no thaw), and the manifest is still written", async () => {
    const w = await world("thawed");
    const cold = await backup(w.store, 1, { parts: 2 });
    const rewritten = new Set<string>();
    const head = w.store.head.bind(w.store);
    w.store.head = async (key) => {
      const info = await head(key);
      // As S3 answers for GLACIER: thawed until the object is written anew.
      return info && key.includes("/part-") ? { ...info, storageClass: "GLACIER", ...(rewritten.has(key) ? {} : { restore: "available" as const }) } : info;
    };
    const rewrite = w.store.rewriteHead.bind(w.store);
    w.store.rewriteHead = async (key, ...rest) => {
      rewritten.add(key);
      return rewrite(key, ...rest);
    };
    const res = await w.run();
    expect(res.skipped).toEqual([]);
    expect(res.backups).toBe(1);
    expect((await manifestNow(w.store, cold.backupId)).recipients).toEqual([keys[1]!.recipient]);
  });
});

describe("what a killed run recorded", () => {
  test("a backup a killed run had begun, then skipped (its other part is missing), keeps its record: once the part is back the rerun finishes it", async () => {
    const w = await world("begun");
    const b = await backup(w.store, 1, { parts: 2 });
    // The killed run: part 0 rewritten and recorded, nothing else.
    const state = await RekeyStateFile.open(w.rd.dir, [keys[1]!.recipient]);
    const p0 = b.parts[0]!;
    await rekeyPart({ store: w.store, backupId: b.backupId, part: p0, info: (await w.store.head(p0.key))!, identities: [keys[0]!.identity], recipients: [keys[1]!.recipient], state });
    const p1 = (await w.store.get(b.parts[1]!.key))!;
    await w.store.delete(b.parts[1]!.key);
    const res = await w.run();
    expect(res.skipped.map((s) => [s.backupId, s.exitCode])).toEqual([[b.backupId, ExitCode.STORE]]);
    expect((await RekeyStateFile.open(w.rd.dir, [keys[1]!.recipient])).part(b.backupId, 0)).toEqual(state.part(b.backupId, 0));
    await w.store.put(b.parts[1]!.key, p1);
    const again = await w.run();
    expect([again.backups, again.parts, again.skipped]).toEqual([1, 2, []]);
    expect((await manifestNow(w.store, b.backupId)).recipients).toEqual([keys[1]!.recipient]);
    expect(existsSync(state.path)).toBe(false);
  });
});

describe("which catalog object rekey deletes", () => {
  test("the old one its new manifest replaced; a rerun after a run killed before its bookkeeping keeps the one the manifest already names", async () => {
    const w = await world("rerun");
    const b = await backup(w.store, 1);
    const orig = (await w.store.get(b.parts[0]!.key))!;
    expect((await w.run()).backups).toBe(1);
    const m = await manifestNow(w.store, b.backupId);
    expect(m.catalog!.key).not.toBe(b.catalog!.key);
    expect(await w.store.get(b.catalog!.key)).toBeNull();
    // What a run killed after writing the manifest, before forgetting its parts, leaves behind.
    const p = m.parts[0]!;
    const now = (await w.store.get(p.key))!;
    const state = await RekeyStateFile.open(w.rd.dir, [keys[1]!.recipient]);
    await state.setPart(b.backupId, 0, {
      prefix: Buffer.from(now.subarray(0, p.rewrap!.prefixSize)).toString("base64"),
      origin: p.rewrap!.origin,
      oldSize: orig.length,
      oldPrefixSize: p.rewrap!.prefixSize + orig.length - p.cipherSize,
      done: true,
    });
    const again = await w.run();
    expect([again.backups, again.parts, again.downloadedBytes > 0]).toEqual([1, 1, true]);
    const after = await manifestNow(w.store, b.backupId);
    expect(after.catalog).toEqual(m.catalog);
    const cat = await openCatalog((await w.store.get(m.catalog!.key))!, m.catalog!, [keys[1]!.identity]);
    expect(cat.entries).toEqual(catalogOf(1).entries);
    expect(existsSync(state.path)).toBe(false);
  });

  test("never another backup's: a manifest naming backup 2's catalog is rekeyed (--backup-id), backup 2's object stays", async () => {
    const w = await world("other");
    const one = await backup(w.store, 1, { catalogTo: null });
    const two = await backup(w.store, 2);
    await w.store.put(manifestKey("tank", "ds", one.backupId), YAML.stringify({ ...one, catalog: two.catalog }, { lineWidth: 0 }));
    const theirs = (await w.store.get(two.catalog!.key))!;
    expect((await w.run({ backupId: one.backupId })).backups).toBe(1);
    expect((await manifestNow(w.store, one.backupId)).catalog!.key).toMatch(new RegExp(`/${one.backupId}\\.catalog-[0-9a-f]+\\.age$`));
    expect(await w.store.get(two.catalog!.key)).toEqual(theirs);
    expect(await manifestNow(w.store, two.backupId)).toEqual(two);
  });

  test("a catalog the old key cannot open stops the run (exit 8): its manifest is not rewritten without it, the object stays", async () => {
    const w = await world("wrongkey");
    const b = await backup(w.store, 1, { catalogTo: keys[2]!.recipient });
    const sealed = (await w.store.get(b.catalog!.key))!;
    const err = await thrown(w.run());
    expect(err.exitCode).toBe(ExitCode.CRYPTO);
    expect(await manifestNow(w.store, b.backupId)).toEqual(b);
    expect(await w.store.get(b.catalog!.key)).toEqual(sealed);
  });

  test("a damaged catalog and a missing one are left out of the new manifests; both backups are rekeyed; the damaged object is not deleted", async () => {
    const w = await world("damaged");
    const bad = await backup(w.store, 1);
    const gone = await backup(w.store, 2);
    const damaged = (await w.store.get(bad.catalog!.key))!;
    damaged[damaged.length - 1]! ^= 1;
    await w.store.put(bad.catalog!.key, damaged);
    await w.store.delete(gone.catalog!.key);
    const res = await w.run();
    expect([res.backups, res.skipped]).toEqual([2, []]);
    for (const b of [bad, gone]) {
      const m = await manifestNow(w.store, b.backupId);
      expect(m.recipients).toEqual([keys[1]!.recipient]);
      expect(m.catalog).toBeUndefined();
    }
    expect(await w.store.get(bad.catalog!.key)).toEqual(damaged);
  });
});

describe("verify of a rekeyed part", () => {
  test("without the private key only its size and new header are checked, and the report says so; with the key a damaged payload fails", async () => {
    const w = await world("verify-rekeyed");
    await backup(w.store, 1);
    expect((await w.run()).backups).toBe(1);
    const m = YAML.parse(new TextDecoder().decode((await w.store.get(manifestKey("tank", "ds", "20270301T020000Z-L0-aaaaa1")))!)) as Manifest;
    // One payload byte flipped in the bucket, after the rekey.
    const key = m.parts[0]!.key;
    const bad = new Uint8Array((await w.store.get(key))!);
    bad[bad.length - 100] = bad[bad.length - 100]! ^ 0xff;
    await w.store.put(key, bad);
    const blind = await verifyBackups(w.store, [m], { scratch: join(w.cfg.baseDir, "v1"), workers: 1 });
    expect(blind.parts).toEqual([{ backupId: m.backupId, index: 0, key, ok: true, checked: "header" }]);
    expect(headerOnlyLine(blind)).toBe(
      "1 rekeyed part(s): only their size and new age header were checked, not their payload (its SHA-256 is recorded under the original header, which only the private key rebuilds): pass --private-key to check them",
    );
    const keyed = await verifyBackups(w.store, [m], { scratch: join(w.cfg.baseDir, "v2"), workers: 1, identities: [keys[1]!.identity] });
    expect(keyed.ok).toBe(false);
    expect(keyed.parts[0]!.checked).toBeUndefined();
    expect(headerOnlyLine(keyed)).toBeNull();
  });
});
