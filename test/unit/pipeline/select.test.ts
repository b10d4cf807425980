/**
 * Which backup a restore or verify takes (src/pipeline/restore/select.ts), on catalogs of
 * synthetic manifests: a selector finds the newest fitting backup, a restorable one first for a
 * snapshot; a point that cannot be restored is refused — a missing object as the store's
 * (exit 6), damage or a bad link as integrity (exit 7) — and without a selector it is never
 * replaced by an older point silently. Verify checks the part of a broken chain that resolves,
 * and a broken or unsigned link (when signatures are required) fails it by itself.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningKey, readSigningKey } from "../../../src/crypto/signing.ts";
import { buildCatalog } from "../../../src/pipeline/catalog.ts";
import { findBackup, selectBackup } from "../../../src/pipeline/restore/select.ts";
import { backupsToVerify } from "../../../src/pipeline/verify.ts";
import { signManifest } from "../../../src/records/trust.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import { ExitCode } from "../../../src/util/errors.ts";
import { listingOf, mk, stamp, T0 } from "./helpers.ts";

const H = 3_600_000;
const where = { location: "s3://b/p", urlOf: (key: string) => `s3://b/p/${key}` };
const ids = (ms: Manifest[]) => ms.map((m) => m.backupId);

/** l0 ← a (snapshot s1) ← b (snapshot s1 again, its part missing when `missing`); c: another level 1 of l0. */
function history(missing: boolean) {
  const l0 = mk(0, T0, null);
  const a = mk(1, T0 + H, l0, { snapName: "s1" });
  const c = mk(1, T0 + 2 * H, l0, { snapName: "s2" });
  const b = mk(1, T0 + 3 * H, l0, { snapName: "s1" });
  const listing = listingOf([l0, a, b, c]).filter((o) => !missing || o.key !== b.parts[0]!.key);
  return { l0, a, b, c, cat: buildCatalog([l0, a, c, b], [], listing) };
}

describe("selecting the backup to restore", () => {
  test("--snapshot takes the newest restorable backup of it, --level the newest of that level, --backup-id exactly that one", () => {
    const { l0, a, b, c, cat } = history(true);
    expect(ids(selectBackup(cat, { snapshot: "tank/photos@s1" }, "tank/photos", where).chain)).toEqual(ids([l0, a]));
    expect(findBackup(cat, { level: 1 }, "tank/photos", where).backupId).toBe(b.backupId);
    expect(selectBackup(cat, { level: 0 }, "tank/photos", where).manifest.backupId).toBe(l0.backupId);
    expect(ids(selectBackup(cat, { backupId: c.backupId }, "tank/photos", where).chain)).toEqual(ids([l0, c]));
    const whole = history(false);
    expect(selectBackup(whole.cat, { snapshot: "s1" }, "tank/photos", where).manifest.backupId).toBe(whole.b.backupId);
  });

  test("a point that cannot be restored is refused naming the newest restorable one: a missing part as the store's (exit 6), a bad link as integrity (exit 7), never an older point instead", () => {
    const { c, b, cat } = history(true);
    const hint = `the newest restorable point is ${c.backupId} (level 1, s2)`;
    for (const sel of [{ backupId: b.backupId }, { level: 1 }])
      expect(() => selectBackup(cat, sel, "tank/photos", where)).toThrow(expect.objectContaining({ exitCode: ExitCode.STORE, message: expect.stringContaining(hint) }));
    expect(() => selectBackup(cat, {}, "tank/photos", where)).toThrow(expect.objectContaining({ exitCode: ExitCode.INTEGRITY, message: expect.stringContaining(`the newest backup ${b.backupId} (level 1, s1) cannot be restored: `) }));
    const l0 = mk(0, T0, null);
    const bad = mk(1, T0 + H, l0);
    bad.parent!.guid = "999";
    const linked = buildCatalog([l0, bad], [], listingOf([l0, bad]));
    expect(() => selectBackup(linked, { backupId: bad.backupId }, "tank/photos", where)).toThrow(expect.objectContaining({ exitCode: ExitCode.INTEGRITY }));
  });

  test("a manifest that cannot be read: refused when it is the newest point or named, not passed over", () => {
    const { l0 } = history(false);
    const unread = { key: "manifests/x", backupId: `${stamp(T0 + 9 * H)}-L1-ffffff`, message: "the manifest of backup X cannot be read" };
    const cat = buildCatalog([l0], [unread], listingOf([l0]));
    for (const sel of [{}, { backupId: unread.backupId }])
      expect(() => selectBackup(cat, sel, "tank/photos", where)).toThrow(expect.objectContaining({ exitCode: ExitCode.INTEGRITY, message: expect.stringContaining(unread.message) }));
  });
});

describe("the backups verify checks", () => {
  test("a chain with a broken link: the part that resolves is still checked, and the verification fails by itself", () => {
    const l0 = mk(0, T0, null);
    const bad = mk(1, T0 + H, l0);
    bad.parent!.guid = "999";
    const top = mk(2, T0 + 2 * H, bad);
    const cat = buildCatalog([l0, bad, top], [], listingOf([l0, bad, top]));
    const r = backupsToVerify(cat, {}, "tank/photos", where, false);
    expect(ids(r.backups)).toEqual(ids([bad, top]));
    expect(r.chainBroken).toStartWith(`backup ${top.backupId} (level 2) cannot be restored: parent backup ${l0.backupId} is of snapshot guid`);
    expect(backupsToVerify(history(false).cat, {}, "tank/photos", where, false).chainBroken).toBeUndefined();
  });

  test("with signatures required, an unsigned link fails the verification by itself", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zrb-select-"));
    try {
      writeFileSync(join(dir, "signing.key"), generateSigningKey("test").fileText, { mode: 0o600 });
      const signer = await readSigningKey(join(dir, "signing.key"));
      const strict = { verifyKeys: [signer.verifyKey], allowUnsigned: false, source: "test" };
      const l0 = mk(0, T0, null);
      const a = mk(1, T0 + H, l0);
      const signed = [signManifest(l0, signer), signManifest(a, signer)];
      expect(backupsToVerify(buildCatalog(signed, [], listingOf(signed), strict), {}, "tank/photos", where, false).chainBroken).toBeUndefined();
      const unsigned = [l0, signManifest(a, signer)];
      const r = backupsToVerify(buildCatalog(unsigned, [], listingOf(unsigned), strict), { backupId: a.backupId }, "tank/photos", where, false);
      expect(ids(r.backups)).toEqual(ids([l0, a]));
      expect(r.chainBroken).toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
