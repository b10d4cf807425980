/**
 * The chain catalog (src/pipeline/catalog.ts): which backups restore, read from the store
 * alone. restore, verify, prune and the choice of a new incremental's base all go by it, so
 * a check it forgets makes a broken chain look restorable — prune then counts it as a point
 * and deletes what would repair it, or a backup builds on it. Every check here could be
 * deleted with the unit tests green (only e2e runs reached some of them). Synthetic manifests:
 * buildCatalog and newestPoint on lists; chainProblem on the real local store.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { buildCatalog, chainProblem, newestPoint } from "../../../src/pipeline/catalog.ts";
import { generateSigningKey, readSigningKey, type SigningKey } from "../../../src/crypto/signing.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import { signManifest, type Trust } from "../../../src/records/trust.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { manifestKey } from "../../../src/store/layout.ts";
import type { ObjectInfo } from "../../../src/store/store.ts";
import { listingOf, mk, T0 } from "./helpers.ts";

const DAY = 86_400_000;
let dir: string;
let signer: SigningKey;
let strict: Trust;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zrb-catalog-"));
  writeFileSync(join(dir, "signing.key"), generateSigningKey("test").fileText, { mode: 0o600 });
  signer = await readSigningKey(join(dir, "signing.key"));
  strict = { verifyKeys: [signer.verifyKey], allowUnsigned: false, source: "test" };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Per backup: "ok", or the problem's kind @ the backup it names. */
function verdicts(ms: Manifest[], listing: ObjectInfo[] = listingOf(ms), trust?: Trust): Record<string, string> {
  const cat = buildCatalog(ms, [], listing, trust);
  return Object.fromEntries(cat.entries.map((e) => [e.backupId, e.problem ? `${e.problem.kind}@${e.problem.at}` : "ok"]));
}

/** A chain L0 a ← L1 b ← L2 c. */
function chain(): [Manifest, Manifest, Manifest] {
  const a = mk(0, T0, null);
  const b = mk(1, T0 + DAY, a);
  return [a, b, mk(2, T0 + 2 * DAY, b)];
}

describe("buildCatalog", () => {
  test("a backup restores only while each link of its chain has its parts at their sizes; a broken link breaks every backup built on it, and is named", () => {
    const [a, b, c] = chain();
    const ms = [a, b, c];
    expect(verdicts(ms)).toEqual({ [a.backupId]: "ok", [b.backupId]: "ok", [c.backupId]: "ok" });
    expect(buildCatalog(ms, [], listingOf(ms)).entries.at(-1)!.chain).toEqual([a.backupId, b.backupId, c.backupId]);
    const noA = listingOf(ms).filter((o) => o.key !== a.parts[0]!.key);
    expect(verdicts(ms, noA)).toEqual({ [a.backupId]: `part-missing@${a.backupId}`, [b.backupId]: `part-missing@${a.backupId}`, [c.backupId]: `part-missing@${a.backupId}` });
    const shortB = listingOf(ms).map((o) => (o.key === b.parts[0]!.key ? { ...o, size: o.size - 1 } : o));
    expect(verdicts(ms, shortB)).toEqual({ [a.backupId]: "ok", [b.backupId]: `part-size@${b.backupId}`, [c.backupId]: `part-size@${b.backupId}` });
  });

  test("a link that does not match its parent (another snapshot guid, a parent of the same or a higher level) or a chain that starts above level 0 is not restorable", () => {
    const [a, b] = chain();
    const c = mk(2, T0 + 2 * DAY, b);
    const otherGuid = { ...c, parent: { ...c.parent!, guid: "999" } };
    const sameLevel = mk(1, T0 + 3 * DAY, b);
    const noRoot = mk(1, T0 + 4 * DAY, null);
    const ms = [a, b, otherGuid, sameLevel, noRoot];
    expect(verdicts(ms)).toEqual({
      [a.backupId]: "ok",
      [b.backupId]: "ok",
      [otherGuid.backupId]: `link-mismatch@${otherGuid.backupId}`,
      [sameLevel.backupId]: `link-mismatch@${sameLevel.backupId}`,
      [noRoot.backupId]: `link-mismatch@${noRoot.backupId}`,
    });
  });

  test("with a verification key, an unsigned link is not restorable, nor anything built on it; it is listed as untrusted", () => {
    const [a, b, c] = chain();
    const ms = [signManifest(a, signer), b, signManifest(c, signer)];
    expect(verdicts(ms, listingOf(ms), strict)).toEqual({ [a.backupId]: "ok", [b.backupId]: `unauthenticated@${b.backupId}`, [c.backupId]: `unauthenticated@${b.backupId}` });
    expect([...buildCatalog(ms, [], listingOf(ms), strict).untrusted.keys()]).toEqual([b.backupId]);
  });
});

describe("chainProblem, from the store", () => {
  /** The chain's manifests (a and c signed) and parts in a fresh local store. */
  async function stored(ms: Manifest[]): Promise<LocalStore> {
    const store = new LocalStore(mkdtempSync(join(dir, "store-")));
    for (const m of ms) {
      await store.put(manifestKey("tank", "photos", m.backupId), YAML.stringify(m));
      for (const p of m.parts) await store.put(p.key, new Uint8Array(p.cipherSize));
    }
    return store;
  }
  const problemOf = async (store: LocalStore, m: Manifest, trust?: Trust) => {
    const p = await chainProblem(store, "tank", "photos", m.backupId, m.level, trust);
    return p && `${p.kind}@${p.at} level ${p.level}`;
  };

  test("the broken link closest to level 0: a missing part, a link to another snapshot, an unsigned manifest under a verification key", async () => {
    const [a, b, c] = chain();
    const ms = [signManifest(a, signer), b, signManifest(c, signer)];
    const store = await stored(ms);
    expect(await problemOf(store, c)).toBeNull();
    expect(await problemOf(store, c, strict)).toBe(`unauthenticated@${b.backupId} level 1`);
    await store.delete(b.parts[0]!.key);
    expect(await problemOf(store, c)).toBe(`part-missing@${b.backupId} level 1`);
    await store.delete(a.parts[0]!.key);
    expect(await problemOf(store, c)).toBe(`part-missing@${a.backupId} level 0`);
    const otherGuid = { ...c, parent: { ...c.parent!, guid: "999" } };
    const store2 = await stored([a, b, otherGuid]);
    expect(await problemOf(store2, otherGuid)).toBe(`link-mismatch@${otherGuid.backupId} level 2`);
  });
});

test("newestPoint: a manifest that cannot be read but started after the newest readable backup is the newest point", () => {
  const [a, b] = chain();
  const cat = buildCatalog([a, b], [], listingOf([a, b]));
  expect(newestPoint(cat)).toEqual({ entry: cat.entries[1]! });
  const later = { key: "manifests/tank/photos/x.manifest.yaml", backupId: `${b.backupId.slice(0, 9)}235959Z-L2-ffffff`, message: "it is not YAML" };
  const earlier = { ...later, backupId: `${a.backupId.slice(0, 9)}000000Z-L1-eeeeee` };
  expect(newestPoint({ ...cat, corrupt: [earlier] })).toEqual({ entry: cat.entries[1]! });
  expect(newestPoint({ ...cat, corrupt: [earlier, later] })).toEqual({ corrupt: later });
});
