/**
 * `zrb prune` end to end on a local-directory store (src/pipeline/prune/index.ts), with a
 * stand-in zfs (ZRB_ZFS) that knows no dataset, so the pool is never touched: what a dry run
 * leaves, the order of the deletes (children first, each manifest before its parts), a delete
 * the store refuses, an object lock the plan must see, and the second orphan pass that must not
 * take a part uploaded meanwhile or one the grace spared. The race with a rekey on another host
 * (a manifest written back mid-prune) runs on the rig's radosgw too.
 */
import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import { join } from "node:path";
import YAML from "yaml";
import type { Config, Task } from "../../../src/config/config.ts";
import { prune } from "../../../src/pipeline/prune/index.ts";
import { refusals, summaryLine } from "../../../src/cli/prune-report.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import { verifyKeyOf, type SigningKey } from "../../../src/crypto/signing.ts";
import { NO_TRUST, nasTrust, signManifest, type Trust } from "../../../src/records/trust.ts";
import { catalogKey, dataPrefix, manifestKey, markerKey, partKey } from "../../../src/store/layout.ts";
import { writeMarker } from "../../../src/records/marker.ts";
import { ROTATION_FORMAT, writeRotation } from "../../../src/records/rotation.ts";
import { StoreError } from "../../../src/store/store.ts";
import type { ObjectInfo, ObjectStore } from "../../../src/store/store.ts";
import { openStore } from "../../../src/store/open.ts";
import { emptyAndDeleteBucket, makeBucket, s3Rig } from "../../helpers/rig.ts";
import { log } from "../../../src/util/log.ts";
import { RecordingStore, mk, standIn, stateOf, storeScene } from "./helpers.ts";
import { RunDir } from "../../../src/state/rundir.ts";
import { readFileSync, writeFileSync } from "node:fs";

const DAY = 86_400_000;
const task = { name: "t", description: "", pool: "tank", dataset: "photos", enabled: true, recursive: false, sendProperties: false, fileCatalog: true, fullName: "tank/photos" } as unknown as Task;

/** A RecordingStore that can also report a retain-until date, and run something after its first delete. */
class Watched extends RecordingStore {
  lockedUntil = new Map<string, Date>();
  /** Runs once, after the first delete: another host's backup uploading meanwhile. */
  meanwhile?: () => Promise<void>;
  override async delete(key: string): Promise<void> {
    await super.delete(key);
    const f = this.meanwhile;
    this.meanwhile = undefined;
    if (f) await f();
  }
  override async head(key: string): Promise<ObjectInfo | null> {
    const h = await super.head(key);
    const until = this.lockedUntil.get(key);
    return h && until ? { ...h, lockedUntil: until } : h;
  }
}

let dir = "";
let store: Watched;
let done = () => {};
beforeEach(() => {
  // No dataset of this name on this host: prune leaves local snapshots alone.
  ({ dir, store, done } = storeScene("zrb-prune-", Watched, `#!/bin/sh\necho "cannot open '$5': dataset does not exist" >&2\nexit 1\n`));
});
afterEach(() => done());

const cfg = (orphanGraceMs = 0) => ({ path: "/etc/zrb.yaml", baseDir: join(dir, "base"), plan: {}, s3: { enabled: false }, prune: { orphanGrace: orphanGraceMs } }) as unknown as Config;
const run = (o: { dryRun?: boolean; grace?: number; trust?: Trust; on?: ObjectStore } = {}) =>
  prune(cfg(o.grace), task, o.on ?? store, { policy: { last: 1 }, local: { within: 7 * DAY }, dryRun: o.dryRun ?? false, allowEarlyDelete: false, trust: o.trust ?? NO_TRUST });

async function put(ms: Manifest[], on: ObjectStore = store): Promise<void> {
  for (const m of ms) {
    for (const p of m.parts) await on.put(p.key, new Uint8Array(p.cipherSize));
    await on.put(manifestKey("tank", "photos", m.backupId), YAML.stringify(m));
  }
}
const there = async (m: Manifest, on: ObjectStore = store) => ({ manifest: (await on.head(manifestKey("tank", "photos", m.backupId))) !== null, parts: (await Promise.all(m.parts.map((p) => on.head(p.key)))).every((x) => x !== null) });

/** mk's manifest with parts of 100 bytes (the store holds them for real). */
const small = (m: Manifest): Manifest => ({ ...m, parts: m.parts.map((p) => ({ ...p, cipherSize: 100 })) });

/** Two old chains and a new full: keep-last 1 keeps the full (the head); the rest goes. */
function history() {
  const now = Date.now();
  const l0a = small(mk(0, now - 40 * DAY, null));
  const l1a = small(mk(1, now - 39 * DAY, l0a));
  const l0b = small(mk(0, now - 20 * DAY, null));
  const l1b = small(mk(1, now - 19 * DAY, l0b, { parts: 2 }));
  const l0c = small(mk(0, now - 2 * DAY, null));
  return { l0a, l1a, l0b, l1b, l0c, all: [l0a, l1a, l0b, l1b, l0c] };
}

describe("prune on a store", () => {
  test("a dry run deletes nothing; a real run deletes children first, each manifest before its parts, and never touches what it keeps", async () => {
    const h = history();
    await put(h.all);
    const dry = await run({ dryRun: true });
    expect(store.deletes).toEqual([]);
    expect(dry.summary).toMatchObject({ kept: 1, deleted: 4, objects: 4 + 5 });
    expect(dry.backups.filter((b) => b.action === "keep").map((b) => b.backupId)).toEqual([h.l0c.backupId]);
    for (const m of h.all) expect(await there(m)).toEqual({ manifest: true, parts: true });

    const r = await run();
    const mkey = (m: Manifest) => manifestKey("tank", "photos", m.backupId);
    expect(store.deletes).toEqual([h.l1b, h.l1a, h.l0b, h.l0a].flatMap((m) => [mkey(m), ...m.parts.map((p) => p.key)]));
    expect(r.summary).toMatchObject({ kept: 1, deleted: 4, objects: 9 });
    expect(await there(h.l0c)).toEqual({ manifest: true, parts: true });
  });

  test("a manifest zrb rekey on another host writes back while its backup is pruned is deleted again after the parts (and counted once)", async () => {
    const h = history();
    await put(h.all);
    const mkey = (m: Manifest) => manifestKey("tank", "photos", m.backupId);
    // Right after prune deleted l1b's manifest, a rekey that had checked it and its parts writes it back.
    store.meanwhile = async () => {
      expect(store.deletes).toEqual([mkey(h.l1b)]);
      await store.put(mkey(h.l1b), YAML.stringify({ ...h.l1b, recipients: ["age1new"] }));
    };
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      const r = await run();
      expect(store.deletes).toEqual([mkey(h.l1b), ...h.l1b.parts.map((p) => p.key), mkey(h.l1b), ...[h.l1a, h.l0b, h.l0a].flatMap((m) => [mkey(m), ...m.parts.map((p) => p.key)])]);
      expect(r.summary).toMatchObject({ kept: 1, deleted: 4, objects: 9 });
      expect(warn.mock.calls.map((c) => String(c[0]))).toContain(`the manifest of backup ${h.l1b.backupId} was written back while it was pruned (zrb rekey on another host?); deleted again`);
    } finally {
      warn.mockRestore();
    }
    for (const m of [h.l1b, h.l1a, h.l0b, h.l0a]) expect(await there(m)).toEqual({ manifest: false, parts: false });
    expect(await there(h.l0c)).toEqual({ manifest: true, parts: true });
  });

  test("the same on S3 (the rig's radosgw): a manifest written back while its backup is pruned is deleted again after the parts", async () => {
    const rig = await s3Rig();
    process.env.AWS_ACCESS_KEY_ID = rig.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = rig.secretAccessKey;
    const bucket = await makeBucket(rig);
    try {
      const s3 = openStore({ s3: { enabled: true, bucket, prefix: "prune-written-back", region: rig.region, endpoint: rig.endpoint, retry: { maxAttempts: 3 } }, localStoreDir: "" });
      const h = history();
      await put(h.all, s3);
      const mkey = (m: Manifest) => manifestKey("tank", "photos", m.backupId);
      // Right after prune deleted l1b's manifest, a rekey that had checked it and its parts writes it back.
      const deletes: string[] = [];
      const del = s3.delete.bind(s3);
      s3.delete = async (key: string) => {
        await del(key);
        deletes.push(key);
        if (deletes.length === 1) await s3.put(mkey(h.l1b), YAML.stringify({ ...h.l1b, recipients: ["age1new"] }));
      };
      const warn = spyOn(log, "warn").mockImplementation(() => {});
      try {
        const r = await run({ on: s3 });
        expect(deletes).toEqual([mkey(h.l1b), ...h.l1b.parts.map((p) => p.key), mkey(h.l1b), ...[h.l1a, h.l0b, h.l0a].flatMap((m) => [mkey(m), ...m.parts.map((p) => p.key)])]);
        expect(r.summary).toMatchObject({ kept: 1, deleted: 4, objects: 9 });
        expect(warn.mock.calls.map((c) => String(c[0]))).toContain(`the manifest of backup ${h.l1b.backupId} was written back while it was pruned (zrb rekey on another host?); deleted again`);
      } finally {
        warn.mockRestore();
      }
      for (const m of [h.l1b, h.l1a, h.l0b, h.l0a]) expect(await there(m, s3)).toEqual({ manifest: false, parts: false });
      expect(await there(h.l0c, s3)).toEqual({ manifest: true, parts: true });
    } finally {
      await emptyAndDeleteBucket(rig, bucket);
    }
  });

  test("a manifest written back while its backup is pruned that the store then keeps (object lock) stands: the backup is not counted as deleted, and its base stays", async () => {
    const h = history();
    await put(h.all);
    const mkey = (m: Manifest) => manifestKey("tank", "photos", m.backupId);
    store.meanwhile = async () => {
      await store.put(mkey(h.l1b), YAML.stringify({ ...h.l1b, recipients: ["age1new"] }));
      store.refuse.set(mkey(h.l1b), "locked");
    };
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      const r = await run();
      expect(r.summary).toMatchObject({ kept: 3, deleted: 2 });
      expect(r.locked.map((x) => x.key)).toEqual([mkey(h.l1b)]);
      expect(warn.mock.calls.map((c) => String(c[0]))).toContain(`the manifest of backup ${h.l1b.backupId} was written back while it was pruned (zrb rekey on another host?) and the store keeps it; its chain is kept`);
    } finally {
      warn.mockRestore();
    }
    // l1b's manifest names l0b: l0b stays whole. The other chain went.
    expect(await there(h.l0b)).toEqual({ manifest: true, parts: true });
    for (const m of [h.l1a, h.l0a]) expect(await there(m)).toEqual({ manifest: false, parts: false });
  });

  test("an orphan the store refuses is neither listed nor counted as deleted in the summary", async () => {
    const h = history();
    await put([h.l0c]);
    const orphan = `${dataPrefix("tank", "photos", 0, "20270101T000000Z-L0-0000ff")}part-000000.age`;
    await store.put(orphan, new Uint8Array(50));
    store.refuse.set(orphan, "locked");
    const dry = await run({ dryRun: true });
    expect(summaryLine(dry)).toContain("would delete 0 backup(s) and 1 orphan part(s)");
    const r = await run();
    expect(r.orphans).toEqual([]);
    expect(r.locked.map((x) => x.key)).toEqual([orphan]);
    expect(summaryLine(r)).toContain("deleted 0 backup(s) (0 object(s), 0 B)");
  });

  test("a manifest the store refuses keeps its whole backup and its base: their parts stay, and neither is counted as deleted", async () => {
    const h = history();
    await put(h.all);
    store.refuse.set(manifestKey("tank", "photos", h.l1b.backupId), "access-denied");
    const warned: string[] = [];
    log.warn = (m: string) => void warned.push(m);
    const r = await run();
    expect(await there(h.l1b)).toEqual({ manifest: true, parts: true });
    expect(await there(h.l0b)).toEqual({ manifest: true, parts: true });
    expect(r.refused.map((x) => x.key)).toEqual([manifestKey("tank", "photos", h.l1b.backupId)]);
    expect(r.summary).toMatchObject({ deleted: 2, kept: 3 });
    expect(store.deletes.filter((k) => k.includes(h.l1b.backupId) || k.includes(h.l0b.backupId))).toEqual([]);
    expect(warned).toContain(`kept backup ${h.l0b.backupId} (level 0): backup ${h.l1b.backupId}, whose manifest the store did not delete, is built on it`);
    expect(r.keptForChain).toEqual([{ backupId: h.l0b.backupId, neededBy: h.l1b.backupId }]);
    // What the user reads: the summary counts it, the exit-6 line does not claim all else was done.
    expect(summaryLine(r)).toContain("1 backup(s) kept because a backup the store did not delete is built on them");
    expect(refusals(r)?.message).toContain("everything else was done, except the 1 backup(s) a refused one is built on, kept with it, and nothing refused looks complete");
    // The other chain still goes.
    for (const m of [h.l1a, h.l0a]) expect(await there(m)).toEqual({ manifest: false, parts: false });
  });

  test("a backup whose manifest is under object lock is a planned keep with its chain, not a delete the store refuses", async () => {
    const h = history();
    await put(h.all);
    store.lockedUntil.set(manifestKey("tank", "photos", h.l1a.backupId), new Date(Date.now() + 30 * DAY));
    const r = await run();
    expect(r.backups.find((b) => b.backupId === h.l1a.backupId)!.reasons.map((x) => x.rule)).toEqual(["object-lock"]);
    expect(r.backups.find((b) => b.backupId === h.l0a.backupId)!.reasons).toEqual([{ rule: "ancestor", of: h.l1a.backupId }]);
    expect(await there(h.l1a)).toEqual({ manifest: true, parts: true });
    expect(await there(h.l0a)).toEqual({ manifest: true, parts: true });
    expect(store.deletes.filter((k) => k.includes(h.l1a.backupId) || k.includes(h.l0a.backupId))).toEqual([]);
  });

  test("the orphan pass after the deletes takes only what the first listing showed and the grace did not spare", async () => {
    const h = history();
    await put(h.all);
    // A part no record accounts for, written just now: the grace (1 day) spares it.
    const young = `${dataPrefix("tank", "photos", 0, "20261201T000000Z-L0-00aaaa")}part-000000.age`;
    await store.put(young, new Uint8Array(10));
    // A part another host uploads while this prune deletes (its marker not yet visible here).
    const late = `${dataPrefix("tank", "photos", 1, "20261202T000000Z-L1-00bbbb")}part-000000.age`;
    store.meanwhile = () => store.put(late, new Uint8Array(10));
    const r = await run({ grace: DAY });
    expect(r.spared.map((x) => x.key)).toEqual([young]);
    expect(await store.head(young)).not.toBeNull();
    expect(await store.head(late)).not.toBeNull();
    expect(store.deletes).not.toContain(young);
    expect(store.deletes).not.toContain(late);
    expect(r.summary.deleted).toBe(4);
  });

  test("a backup kept only for its storage class's minimum duration is not deleted by a real run", async () => {
    const now = Date.now();
    const l0a = small(mk(0, now - 40 * DAY, null));
    // STANDARD_IA bills 30 days; its part was written just now (the store's LastModified), so deleting it saves nothing yet.
    const ia = small(mk(0, now - 20 * DAY, null, { storageClass: "STANDARD_IA" }));
    const l0c = small(mk(0, now - 2 * DAY, null));
    await put([l0a, ia, l0c]);
    expect((await run({ dryRun: true })).summary).toMatchObject({ kept: 2, deleted: 1, objects: 2, keptForMinStorage: 1 });
    const r = await run();
    expect(r.backups.find((b) => b.backupId === ia.backupId)!.reasons.map((x) => x.rule)).toEqual(["min-storage"]);
    expect(r.summary).toMatchObject({ deleted: 1, keptForMinStorage: 1 });
    expect(await there(ia)).toEqual({ manifest: true, parts: true });
    expect(store.deletes.filter((k) => k.includes(ia.backupId))).toEqual([]);
  });

  test("under a verification key, an unsigned (or forged) manifest is left alone and decides nothing", async () => {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const nas: SigningKey = { seed, verifyKey: verifyKeyOf(seed) };
    const h = history();
    const forged = h.l1a; // old enough to go, were it trusted; its parent link is nobody's word
    await put(h.all.map((m) => (m === forged ? m : signManifest(m, nas))));
    const r = await run({ trust: nasTrust(nas) });
    expect(r.backups.find((b) => b.backupId === forged.backupId)!.reasons.map((x) => x.rule)).toEqual(["not-trusted"]);
    expect(await there(forged)).toEqual({ manifest: true, parts: true });
    expect(store.deletes.filter((k) => k.includes(forged.backupId))).toEqual([]);
    expect(r.backups.filter((b) => b.action === "delete").map((b) => b.backupId).sort()).toEqual([h.l0a, h.l0b, h.l1b].map((m) => m.backupId).sort());
    expect(r.summary.deleted).toBe(3);
  });

  test("a manifest the store refuses to delete at run time (a legal hold: no retain-until date in its HEAD) keeps its chain too: its base is not deleted after it", async () => {
    const h = history();
    await put(h.all);
    store.refuse.set(manifestKey("tank", "photos", h.l1a.backupId), "locked");
    const r = await run();
    expect(r.locked.map((x) => x.key)).toEqual([manifestKey("tank", "photos", h.l1a.backupId)]);
    expect(await there(h.l1a)).toEqual({ manifest: true, parts: true });
    // l1a is still in the bucket, whole: the level 0 it was built on must stay, or it can never be restored.
    expect(await there(h.l0a)).toEqual({ manifest: true, parts: true });
  });

  test("a refused manifest keeps every backup of its chain, however deep, and no other", async () => {
    const h = history();
    const l2a = small(mk(2, Date.now() - 38 * DAY, h.l1a));
    const l3a = small(mk(3, Date.now() - 37 * DAY, l2a));
    await put([...h.all, l2a, l3a]);
    store.refuse.set(manifestKey("tank", "photos", l3a.backupId), "access-denied");
    const r = await run();
    for (const m of [l3a, l2a, h.l1a, h.l0a, h.l0c]) expect(await there(m)).toEqual({ manifest: true, parts: true });
    for (const m of [h.l1b, h.l0b]) expect(await there(m)).toEqual({ manifest: false, parts: false });
    expect(r.summary).toMatchObject({ deleted: 2, kept: 5 });
  });
});

describe("prune: what only the records in the store tell it", () => {
  test("a newest backup verify --rotate found a bad part in does not stand in for a restore point: the next one keeps its chain", async () => {
    const h = history();
    await put(h.all);
    const at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    await writeRotation(store, "tank", "photos", { format: ROTATION_FORMAT, lastRunAt: at, backups: { [h.l0c.backupId]: { seen: at, verified: [null], bad: { "0": { at, why: "SHA-256 mismatch" } } } } }, "STANDARD");
    const r = await run();
    expect(r.backups.find((b) => b.backupId === h.l0c.backupId)!.reasons.map((x) => x.rule)).toContain("not-restorable");
    // keep-last 1 is now l1b, the newest restorable point: it and its base stay; only the oldest chain goes.
    for (const m of [h.l0c, h.l1b, h.l0b]) expect(await there(m)).toEqual({ manifest: true, parts: true });
    for (const m of [h.l1a, h.l0a]) expect(await there(m)).toEqual({ manifest: false, parts: false });
  });

  test("a backup in flight on another host (its marker, long-ago parts and catalog, no manifest yet) is not an orphan: neither listed nor deleted", async () => {
    const h = history();
    await put(h.all);
    const F = "20200310T030000Z-L1-00bbbb";
    await writeMarker(store, stateOf(F, h.l0c, "up-F"), undefined);
    const part = partKey("tank", "photos", 1, F, 0);
    const cat = catalogKey("tank", "photos", F);
    for (const k of [part, cat]) await store.put(k, new Uint8Array(10));
    const dry = await run({ dryRun: true, grace: 0 });
    expect(dry.orphans).toEqual([]);
    expect(dry.inflight.map((x) => x.backupId)).toEqual([F]);
    const r = await run({ grace: 0 });
    expect(r.orphans).toEqual([]);
    for (const k of [part, cat, markerKey("tank", "photos", F)]) expect({ k, there: (await store.head(k)) !== null }).toEqual({ k, there: true });
    expect(store.deletes.filter((k) => k.includes(F))).toEqual([]);
  });

  test("under a verification key, an unsigned marker is reported as not trusted, never as a backup in flight", async () => {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const nas: SigningKey = { seed, verifyKey: verifyKeyOf(seed) };
    const h = history();
    await put(h.all.map((m) => signManifest(m, nas)));
    const F = "20270310T030000Z-L1-00bbbb";
    await writeMarker(store, stateOf(F, h.l0c, "up-F"), undefined);
    const r = await run({ dryRun: true, trust: nasTrust(nas) });
    expect(r.inflight).toEqual([]);
    expect(r.untrustedMarkers.map((x) => x.key)).toEqual([markerKey("tank", "photos", F)]);
  });

  test("a store failure other than a refusal (a network error) stops prune (exit 6); it is not reported as refused", async () => {
    const h = history();
    await put(h.all);
    store.refuse.set(manifestKey("tank", "photos", h.l1b.backupId), "transient");
    const err = await run().then(
      () => null,
      (e) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).kind).toBe("transient");
    expect(await there(h.l1b)).toEqual({ manifest: true, parts: true });
    expect(await there(h.l0b)).toEqual({ manifest: true, parts: true });
  });

  test("a part the store refused once is not asked again by the orphan pass, nor listed twice", async () => {
    const h = history();
    await put(h.all);
    const p = h.l1a.parts[0]!.key;
    store.refuse.set(p, "access-denied");
    const r = await run();
    expect(r.refused.map((x) => x.key)).toEqual([p]);
    expect(r.orphans).toEqual([]);
  });
});

describe("prune's local snapshots, on a pool that has the dataset (a stand-in zfs)", () => {
  test("what this store's and another store's interrupted backups send stays; a snapshot zfs refuses to destroy is not counted as destroyed", async () => {
    const h = history();
    await put(h.all);
    const snap = (t: string) => `tank/photos@zrb_level1_${t}`;
    const mine = snap("20200310T020000Z"); // this store's interrupted backup sends it
    const theirs = snap("20200311T020000Z"); // the other store's interrupted backup sends it
    const stuck = snap("20200312T020000Z"); // zfs refuses to destroy it (cloned meanwhile)
    const gone = snap("20200313T020000Z"); // nothing needs it
    const late = snap("20200314T020000Z"); // the newest of level 1 on the pool (kept by that rule)
    const names = [mine, theirs, stuck, gone, ...h.all.map((m) => m.snapshot.name), late];
    writeFileSync(join(dir, "snaps.tsv"), names.flatMap((n, i) => [`${n}\tguid\t${5000 + i}`, `${n}\tcreatetxg\t${100 + i}`]).join("\n") + "\n");
    const restore = standIn(
      dir,
      `#!/bin/sh\necho "$*" >> ${dir}/zfs.log\ncase "$1" in\n  list) [ "$5" = tank/photos ] && { echo tank/photos; exit 0; }; echo "cannot open '$5': dataset does not exist" >&2; exit 1 ;;\n  get) case "$*" in *createtxg*) cat ${dir}/snaps.tsv ;; esac; exit 0 ;;\n  destroy) [ "$2" = "${stuck}" ] && { echo "cannot destroy '$2': dataset is busy" >&2; exit 1; }; exit 0 ;;\nesac\nexit 0\n`,
    );
    try {
      const base = join(dir, "base");
      const cold = join(base, "stores", "cold");
      new RunDir(base, "tank", "photos").writeState({ ...stateOf("20200310T020000Z-L1-00aaaa", h.l0c, "up-R"), snapshot: { name: mine, guid: "5000" } });
      new RunDir(cold, "tank", "photos").writeState({ ...stateOf("20200311T020000Z-L1-00bbbb", h.l0c, "up-C"), snapshot: { name: theirs, guid: "5001" } });
      const stores = [{ name: "default", baseDir: base }, { name: "cold", baseDir: cold }];
      const r = await prune({ ...cfg(), stores } as unknown as Config, task, store, { policy: { last: 1 }, local: { within: 7 * DAY }, dryRun: false, allowEarlyDelete: false, trust: NO_TRUST });
      const decided = (n: string) => r.local!.find((d) => d.name === n)!;
      expect(decided(mine)).toMatchObject({ action: "keep", reasons: [{ rule: "resumable" }] });
      expect(decided(theirs)).toMatchObject({ action: "keep", reasons: [{ rule: "resumable" }] });
      expect([stuck, gone].map((n) => decided(n).action)).toEqual(["destroy", "destroy"]);
      const destroyed = readFileSync(join(dir, "zfs.log"), "utf8").split("\n").filter((l) => l.startsWith("destroy "));
      expect(destroyed).not.toContain(`destroy ${mine}`);
      expect(destroyed).not.toContain(`destroy ${theirs}`);
      expect(destroyed).toContain(`destroy ${gone}`);
      expect(r.refusedSnapshots).toEqual([stuck]);
      expect(r.summary.snapshotsDestroyed).toBe(r.local!.filter((d) => d.action === "destroy").length - 1);
    } finally {
      restore();
    }
  });
});
