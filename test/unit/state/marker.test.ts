/** In-flight markers (records/marker.ts): where they live, what a reader trusts, and the orphan grace (pipeline/references.ts). */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateSigningKey, readSigningKey } from "../../../src/crypto/signing.ts";
import { deleteMarker, judgeMarker, MarkerHeartbeat, markerOf, markerProblem, readMarkers, writeMarker } from "../../../src/records/marker.ts";
import { isManifestKey, isMarkerKey, manifestDir, markerKey } from "../../../src/store/layout.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { graceSplit, orphanParts } from "../../../src/pipeline/references.ts";
import { STATE_FORMAT, type BackupState } from "../../../src/state/rundir.ts";
import { withStore } from "../pipeline/helpers.ts";

const ID = "20261204T210000Z-L0-abc123";
const state = (over: Partial<BackupState> = {}): BackupState => ({
  format: STATE_FORMAT,
  backupId: ID,
  level: 0,
  pool: "tank",
  dataset: "photos",
  snapshot: { name: "tank/photos@zrb_level0_x", guid: "1" },
  parent: null,
  sendFlags: [],
  chunkSize: 1024,
  recipients: ["age1x"],
  startedAt: "2026-12-04T21:00:00.000Z",
  chunks: [
    { index: 0, plainSize: 1024, blake3: "0".repeat(64), cipherSize: 1200, sha256: "1".repeat(64), uploaded: true },
    { index: 1, plainSize: 500, blake3: "2".repeat(64), uploaded: false },
  ],
  ...over,
});


describe("marker keys", () => {
  test("beside the manifests, never taken for one, never for a child's prefix", () => {
    const k = markerKey("tank", "photos", ID);
    expect(k).toBe(`manifests/tank/photos/${ID}.inflight.yaml`);
    expect(isMarkerKey(manifestDir("tank", "photos"), k)).toBe(true);
    expect(isManifestKey(manifestDir("tank", "photos"), k)).toBe(false);
    expect(isMarkerKey(manifestDir("tank", "photos"), `manifests/tank/photos/child/${ID}.inflight.yaml`)).toBe(false);
  });
});

describe("markers as readers judge them", () => {
  test("a signed marker is trusted with the verification key; unsigned, another key's or another dataset's is not", async () => {
    await withStore(async (store, dir) => {
      const keyFile = join(dir, "k");
      writeFileSync(keyFile, generateSigningKey("now").fileText, { mode: 0o600 });
      const signer = await readSigningKey(keyFile);
      const trust = { verifyKeys: [signer.verifyKey], allowUnsigned: false, source: "verify_keys" };
      await writeMarker(store, state(), signer);
      const [r] = await readMarkers(store, "tank", "photos", trust);
      expect(r!.untrusted).toBeUndefined();
      expect(r!.marker).toMatchObject({ backupId: ID, level: 0, progress: { bytes: 1024, parts: 1 } });
      // Another key's trust, and the same bytes under another dataset: not trusted.
      const other = { ...trust, verifyKeys: [generateSigningKey("now").verifyKey] };
      expect((await judgeMarker(store, r!.key, "tank", "photos", other)).untrusted).toBeDefined();
      const moved = markerKey("tank", "other", ID);
      await store.put(moved, (await store.get(r!.key))!);
      expect((await judgeMarker(store, moved, "tank", "other", trust)).untrusted).toContain("signature");
      // Unsigned: only with --allow-unsigned; without any key nothing can be checked and it counts.
      await writeMarker(store, state({ backupId: "20261204T210000Z-L0-def456" }), undefined);
      const unsigned = markerKey("tank", "photos", "20261204T210000Z-L0-def456");
      expect((await judgeMarker(store, unsigned, "tank", "photos", trust)).untrusted).toContain("not signed");
      expect((await judgeMarker(store, unsigned, "tank", "photos", { ...trust, allowUnsigned: true })).untrusted).toBeUndefined();
      expect((await judgeMarker(store, unsigned, "tank", "photos", { verifyKeys: [], allowUnsigned: true, source: "none" })).untrusted).toBeUndefined();
      // Deleted: gone, protects nothing.
      expect(await deleteMarker(store, "tank", "photos", ID)).toBe(true);
      expect((await judgeMarker(store, r!.key, "tank", "photos", trust)).untrusted).toContain("gone");
    });
  });

  test("a malformed marker, or one naming another backup than its key, is named", () => {
    const good = { ...markerOf(state()) };
    expect(markerProblem(good, ID)).toBeUndefined();
    expect(markerProblem({ ...good, backupId: "20261204T210000Z-L0-zzzzzz" }, ID)).toContain("not the");
    expect(markerProblem({ ...good, level: -1 }, ID)).toContain("level");
    expect(markerProblem({ ...good, progress: { bytes: "1", parts: 0 } }, ID)).toContain("progress");
    expect(markerProblem({ ...good, format: "zrb-inflight/2" }, ID)).toContain("format");
    expect(markerProblem([], ID)).toContain("mapping");
    expect(markerProblem({ ...good, updatedAt: "now" }, ID)).toBe("it has bad times");
    expect(markerProblem({ ...good, host: 7 }, ID)).toBe("it has no valid host");
  });

  test("readMarkers judges only this dataset's markers, not its manifests or a child's markers", async () => {
    await withStore(async (store) => {
      await writeMarker(store, state(), undefined);
      await writeMarker(store, state({ dataset: "photos/child" }), undefined);
      await store.put(`${manifestDir("tank", "photos")}${ID}.manifest.yaml`, "format: x\n");
      const rs = await readMarkers(store, "tank", "photos", { verifyKeys: [], allowUnsigned: true, source: "none" });
      expect(rs.map((r) => r.key)).toEqual([markerKey("tank", "photos", ID)]);
    });
  });

  test("the heartbeat writes at most once per interval", async () => {
    await withStore(async (store) => {
      let puts = 0;
      const counting = Object.assign(Object.create(store), { put: (...a: Parameters<LocalStore["put"]>) => (puts++, store.put(...a)) });
      const hb = new MarkerHeartbeat(counting, state(), undefined, undefined, 60_000);
      await hb.start();
      for (let i = 0; i < 10; i++) await hb.touch();
      expect(puts).toBe(1);
      const fast = new MarkerHeartbeat(counting, state(), undefined, undefined, 0);
      await fast.start();
      await fast.touch();
      expect(puts).toBe(3);
    });
  });
});

describe("the orphan rule with markers and the grace", () => {
  const base = "data/tank/photos/";
  const o = (id: string, i: number, ageMs: number) => ({ key: `${base}level0/${id}/part-00000${i}.age`, size: 1, lastModified: new Date(1_000_000_000_000 - ageMs) });

  test("parts under a kept prefix are never orphans; the rest wait for the grace", () => {
    const listing = [o(ID, 0, 10), o("20261204T000000Z-L0-000000", 0, 3_600_000), o("20261101T000000Z-L0-111111", 0, 10 * 86_400_000)];
    const orphans = orphanParts(listing, base, [], [`${base}level0/${ID}/`]);
    expect(orphans.map((x) => x.key)).toEqual([listing[1]!.key, listing[2]!.key]);
    const { go, spared } = graceSplit(orphans, (x) => x.lastModified, 2 * 86_400_000, 1_000_000_000_000, "prune.orphan_grace");
    expect(go.map((x) => x.key)).toEqual([listing[2]!.key]);
    expect(spared.map((x) => x.key)).toEqual([listing[1]!.key]);
    expect(spared[0]!.why).toContain("only 1h old (prune.orphan_grace 2d)");
    // 0s: no grace; unknown age with a grace: spared.
    expect(graceSplit(orphans, (x) => x.lastModified, 0, 1_000_000_000_000, "--older-than").go.length).toBe(2);
    expect(graceSplit(orphans, () => undefined, 1000, 1_000_000_000_000, "--older-than").spared[0]!.why).toContain("unknown age");
  });
});
