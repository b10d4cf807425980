/**
 * Chain planning (pipeline/backup/plan.ts): which snapshot a backup sends and on which base,
 * resume or supersede, and the refusals — against a real local-directory store holding
 * manifests and part objects, and snapshot lists as zfs reports them.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { prepare, type PlanInput } from "../../../src/pipeline/backup/plan.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { headsKey, manifestKey, partKey } from "../../../src/store/layout.ts";
import { MANIFEST_FORMAT, type Manifest } from "../../../src/records/manifest.ts";
import { headsFromManifests, readHeads, type Heads } from "../../../src/records/heads.ts";
import { RunDir } from "../../../src/state/rundir.ts";
import { NO_TRUST, nasTrust, signHeads, signManifest } from "../../../src/records/trust.ts";
import { verifyKeyOf, type SigningKey } from "../../../src/crypto/signing.ts";
import type { Config, Task } from "../../../src/config/config.ts";
import type { Snapshot, ZfsCaps } from "../../../src/zfs/zfs.ts";
import { ZrbError } from "../../../src/util/errors.ts";

const R = "age1s62wnrwx7zjapdan08a5x3dy78wd44lzw0ln7arneqt740qupfvs8kgvh9";
const caps: ZfsCaps = { openzfs: false, version: "test", sendFlags: new Set(), recvFlags: new Set(), listParsable: false, holds: false };
const task: Task = { name: "t", description: "", pool: "tank", dataset: "ds", enabled: true, recursive: false, sendProperties: false, fileCatalog: true, fullName: "tank/ds" };
const snap = (short: string, guid: number, txg: number): Snapshot => ({ name: `tank/ds@${short}`, short, guid: String(guid), createtxg: BigInt(txg) });
const S0 = snap("zrb_level0_a", 100, 10);
const S1 = snap("zrb_level1_b", 101, 20);
const S2 = snap("zrb_level2_c", 102, 30);

let clock = 0;
/** A stored backup: manifest + one part object of the recorded size. */
async function stored(store: LocalStore, id: string, level: number, s: Snapshot, parent: Manifest | null): Promise<Manifest> {
  clock++;
  const m: Manifest = {
    format: MANIFEST_FORMAT,
    backupId: id,
    pool: "tank",
    dataset: "ds",
    level,
    snapshot: { name: s.name, guid: s.guid },
    parent: parent && { name: parent.snapshot.name, guid: parent.snapshot.guid, backupId: parent.backupId, level: parent.level },
    send: { flags: [], zfs: "test" },
    stream: { size: 10, blake3: "b".repeat(64) },
    recipients: [R],
    storageClass: "STANDARD",
    chunkSize: 65536,
    parts: [{ index: 0, key: partKey("tank", "ds", level, id, 0), plainSize: 10, cipherSize: 210, sha256: "a".repeat(64), blake3: "c".repeat(64) }],
    tool: { name: "zrb", version: "t" },
    host: "h",
    startedAt: new Date(clock * 1000).toISOString(),
    finishedAt: new Date(clock * 1000).toISOString(),
  };
  await store.put(partKey("tank", "ds", level, id, 0), new Uint8Array(210));
  await store.put(manifestKey("tank", "ds", id), YAML.stringify(m));
  return m;
}

function world() {
  const base = mkdtempSync(join(tmpdir(), "zrb-plan-"));
  const store = new LocalStore(join(base, "store"));
  const rd = new RunDir(base, "tank", "ds");
  const cfg = { path: "/etc/zrb.yaml", chunkSize: 65536, recipients: [R] } as Config;
  const input = (o: Partial<PlanInput> & { heads: PlanInput["heads"]; snaps: Snapshot[]; level: number }): PlanInput => ({ cfg, task, store, rd, caps, force: false, trust: NO_TRUST, ...o });
  return { base, store, rd, input };
}

async function refusal(p: Promise<unknown>): Promise<ZrbError> {
  const e = await p.then(
    () => null,
    (err) => err,
  );
  expect(e).toBeInstanceOf(ZrbError);
  return e as ZrbError;
}

describe("planning a new backup", () => {
  test("level 0: the newest level-0 snapshot, no parent; the state is written", async () => {
    const w = world();
    const r = await prepare(w.input({ heads: headsFromManifests([]), snaps: [S0, snap("zrb_level0_z", 103, 40)], level: 0 }));
    expect(r.kind).toBe("send");
    if (r.kind !== "send") return;
    expect(r.state.snapshot.name).toBe("tank/ds@zrb_level0_z");
    expect(r.state.parent).toBeNull();
    expect(r.resumed).toBe(false);
    expect((await w.rd.readState()).kind).toBe("ok");
  });

  test("the same snapshot already backed up at that level is not sent again, unless forced", async () => {
    const w = world();
    const m0 = await stored(w.store, "20260101T000000Z-L0-aaaaaa", 0, S0, null);
    const heads = headsFromManifests([m0]);
    expect(await prepare(w.input({ heads, snaps: [S0], level: 0 }))).toEqual({ kind: "already", backupId: m0.backupId, level: 0, snapshot: S0.name });
    expect((await prepare(w.input({ heads, snaps: [S0], level: 0, force: true }))).kind).toBe("send");
  });

  test("level N: the newest lower-level head is the base (dump(8)), by guid on the pool", async () => {
    const w = world();
    const m0 = await stored(w.store, "20260101T000000Z-L0-aaaaaa", 0, S0, null);
    const m1 = await stored(w.store, "20260101T000001Z-L1-bbbbbb", 1, S1, m0);
    const r = await prepare(w.input({ heads: headsFromManifests([m0, m1]), snaps: [S0, S1, S2], level: 2 }));
    expect(r.kind === "send" && r.state.parent).toEqual({ name: S1.name, guid: S1.guid, createtxg: "20", backupId: m1.backupId, level: 1 });
    // A repeated level 1 is a differential against the level 0.
    const w2 = world();
    const n0 = await stored(w2.store, "20260101T000000Z-L0-aaaaaa", 0, S0, null);
    const r2 = await prepare(w2.input({ heads: headsFromManifests([n0]), snaps: [S0, S1], level: 1 }));
    expect(r2.kind === "send" && r2.state.parent?.backupId).toBe(n0.backupId);
  });

  test("a base whose chain is broken in the bucket is refused (exit 7), naming the level to run", async () => {
    const w = world();
    const m0 = await stored(w.store, "20260101T000000Z-L0-aaaaaa", 0, S0, null);
    const m1 = await stored(w.store, "20260101T000001Z-L1-bbbbbb", 1, S1, m0);
    const heads = headsFromManifests([m0, m1]);
    await w.store.delete(m1.parts[0]!.key);
    const e1 = await refusal(prepare(w.input({ heads, snaps: [S0, S1, S2], level: 2 })));
    expect(e1.exitCode).toBe(7);
    expect(e1.message).toContain(`level-1 backup ${m1.backupId}, which cannot be restored`);
    expect(e1.message).toContain("--level 1");
    await w.store.delete(manifestKey("tank", "ds", m0.backupId));
    const e2 = await refusal(prepare(w.input({ heads, snaps: [S0, S1, S2], level: 2 })));
    expect(e2.exitCode).toBe(7);
    expect(e2.message).toContain("--level 0");
    expect((await w.rd.readState()).kind).toBe("none");
  });

  test("no lower-level backup (exit 2), a base gone from the pool or not older than the target (exit 5)", async () => {
    const w = world();
    expect((await refusal(prepare(w.input({ heads: headsFromManifests([]), snaps: [S1], level: 1 })))).exitCode).toBe(2);
    const m0 = await stored(w.store, "20260101T000000Z-L0-aaaaaa", 0, S0, null);
    const gone = await refusal(prepare(w.input({ heads: headsFromManifests([m0]), snaps: [S1], level: 1 })));
    expect(gone.exitCode).toBe(5);
    expect(gone.message).toContain("no longer exists on tank/ds");
    const old = await refusal(prepare(w.input({ heads: headsFromManifests([m0]), snaps: [snap("zrb_level1_old", 99, 5), S0], level: 1 })));
    expect(old.message).toContain("is not newer than the base");
    expect((await refusal(prepare(w.input({ heads: headsFromManifests([]), snaps: [], level: 0 })))).message).toContain("no snapshot tank/ds@zrb_level0_*");
  });
});

describe("an interrupted backup", () => {
  test("at this level: resumed; at another: discarded (its parts deleted), superseded by a new one", async () => {
    const w = world();
    const first = await prepare(w.input({ heads: headsFromManifests([]), snaps: [S0], level: 0 }));
    if (first.kind !== "send") throw new Error("expected a send");
    const again = await prepare(w.input({ heads: headsFromManifests([]), snaps: [S0, snap("zrb_level0_newer", 104, 50)], level: 0 }));
    expect(again.kind === "send" && again.resumed && again.state.backupId).toBe(first.state.backupId);
    // An orphan part of the interrupted run, then a level-1 run supersedes nothing (no base yet)…
    await w.store.put(partKey("tank", "ds", 0, first.state.backupId, 0), "x");
    const m0 = await stored(w.store, "20260101T000000Z-L0-aaaaaa", 0, S0, null);
    const r = await prepare(w.input({ heads: headsFromManifests([m0]), snaps: [S0, S1], level: 1 }));
    expect(r.kind === "send" && r.state.level).toBe(1);
    expect(await w.store.head(partKey("tank", "ds", 0, first.state.backupId, 0))).toBeNull();
  });

  test("whose manifest is already stored: only its bookkeeping is left", async () => {
    const w = world();
    const first = await prepare(w.input({ heads: headsFromManifests([]), snaps: [S0], level: 0 }));
    if (first.kind !== "send") throw new Error("expected a send");
    const m = await stored(w.store, first.state.backupId, 0, S0, null);
    const r = await prepare(w.input({ heads: headsFromManifests([]), snaps: [], level: 0 }));
    expect(r.kind === "complete" && r.manifest.backupId).toBe(m.backupId);
  });

  test("an unusable state file is discarded, never misread", async () => {
    const w = world();
    mkdirSync(w.rd.dir, { recursive: true });
    writeFileSync(w.rd.statePath, "format: zrb-state/1\nlevel: 0\n");
    const r = await prepare(w.input({ heads: headsFromManifests([]), snaps: [S0], level: 0 }));
    expect(r.kind).toBe("send");
    expect(existsSync(w.rd.statePath)).toBe(true);
    expect((await w.rd.readState()).kind).toBe("ok");
  });
});

describe("heads.yaml caught up from the manifests", () => {
  // Backup ids carry the second they were made and a random suffix: two backups in one second
  // (a fast run; CI's objectlock.test met it) sort by the suffix, not by time.
  const OLD = "20261205T083617Z-L0-9cba4a";
  const NEW = "20261205T083617Z-L0-5b4675";

  test("a backup of the same second with a larger id is not replayed over the newer head", async () => {
    const { store } = world();
    const m1 = await stored(store, OLD, 0, S0, null);
    const m2 = await stored(store, NEW, 0, S1, null);
    await store.put(headsKey("tank", "ds"), YAML.stringify(headsFromManifests([m1, m2])));
    expect((await readHeads(store, "tank", "ds", NO_TRUST)).levels["0"]?.backupId).toBe(NEW);
  });

  test("manifests missing from heads.yaml are replayed in the order they finished, not by id: a level 1 that finished after a level 2 of the same second ends that level 2's head", async () => {
    const { store } = world();
    const m0 = await stored(store, "20261205T085959Z-L0-000000", 0, S0, null);
    // Finished first, but its id sorts after the level 1's.
    const l2 = await stored(store, "20261205T090000Z-L2-bbbbbb", 2, S2, m0);
    const l1 = await stored(store, "20261205T090000Z-L1-aaaaaa", 1, S1, m0);
    expect(Date.parse(l2.finishedAt)).toBeLessThan(Date.parse(l1.finishedAt));
    await store.put(headsKey("tank", "ds"), YAML.stringify(headsFromManifests([m0])));
    const h = await readHeads(store, "tank", "ds", NO_TRUST);
    expect(Object.keys(h.levels)).toEqual(["0", "1"]);
    expect(h.levels["1"]?.backupId).toBe(l1.backupId);
  });

  test("a newer backup of the same second with a smaller id, missing from heads.yaml (its write failed), is replayed", async () => {
    const { store } = world();
    const m1 = await stored(store, OLD, 0, S0, null);
    await stored(store, NEW, 0, S1, null);
    await store.put(headsKey("tank", "ds"), YAML.stringify(headsFromManifests([m1])));
    expect((await readHeads(store, "tank", "ds", NO_TRUST)).levels["0"]?.backupId).toBe(NEW);
  });
});

describe("heads.yaml under a verification key", () => {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const nas: SigningKey = { seed, verifyKey: verifyKeyOf(seed) };
  const trust = nasTrust(nas);
  const resign = (store: LocalStore, m: Manifest) => store.put(manifestKey("tank", "ds", m.backupId), YAML.stringify(signManifest(m, nas)));
  const putHeads = (store: LocalStore, h: Heads, signed: boolean) => store.put(headsKey("tank", "ds"), YAML.stringify(signed ? signHeads(h, "tank", "ds", nas) : h));
  /** A signed level 0, then a newer unsigned (planted) level 0. */
  async function planted(store: LocalStore) {
    const good = await stored(store, "20260101T000000Z-L0-aaaaaa", 0, S0, null);
    await resign(store, good);
    const forged = await stored(store, "20260102T000000Z-L0-bbbbbb", 0, snap("zrb_level0_z", 103, 40), null);
    return { good, forged };
  }

  test("an unsigned manifest never becomes a head: not from the listing, not from an unsigned heads.yaml, not replayed over a signed one (a signed one is, and the sequence stays)", async () => {
    const { store } = world();
    const { good, forged } = await planted(store);
    expect((await readHeads(store, "tank", "ds", trust)).levels["0"]?.backupId).toBe(good.backupId);
    await putHeads(store, headsFromManifests([good, forged]), false);
    expect((await readHeads(store, "tank", "ds", trust)).levels["0"]?.backupId).toBe(good.backupId);
    await putHeads(store, { ...headsFromManifests([good]), sequence: 4 }, true);
    const h = await readHeads(store, "tank", "ds", trust);
    expect(h.levels["0"]?.backupId).toBe(good.backupId);
    expect(h.sequence).toBe(4);
    // Signed now: replayed over the heads, which keep their sequence.
    await resign(store, forged);
    const later = await readHeads(store, "tank", "ds", trust);
    expect(later.levels["0"]?.backupId).toBe(forged.backupId);
    expect(later.sequence).toBe(4);
  });

  test("a signed heads.yaml older than the last this host wrote is rolled back: rebuilt; its own sequence or newer is used", async () => {
    const { store } = world();
    const { good } = await planted(store);
    const extra = { backupId: "20260101T000000Z-L1-cccccc", snapshot: { name: S1.name, guid: S1.guid }, finishedAt: good.finishedAt };
    await putHeads(store, { ...headsFromManifests([good]), levels: { "0": headsFromManifests([good]).levels["0"]!, "1": extra }, sequence: 5 }, true);
    expect(Object.keys((await readHeads(store, "tank", "ds", trust, 5)).levels)).toEqual(["0", "1"]);
    expect(Object.keys((await readHeads(store, "tank", "ds", trust, 4)).levels)).toEqual(["0", "1"]);
    const rebuilt = await readHeads(store, "tank", "ds", trust, 6);
    expect(Object.keys(rebuilt.levels)).toEqual(["0"]);
    expect(rebuilt.sequence).toBe(6);
  });
});
