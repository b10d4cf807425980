/**
 * The bucket plan of `zrb prune` (src/pipeline/prune/plan.ts) and the orphan rule it shares
 * with cleanup (src/pipeline/references.ts), on synthetic catalogs: chain safety, heads, the
 * resumable backup, broken chains (storage-class minimum durations: prune-min-storage.test.ts), and a deletion order that
 * leaves only complete chains wherever a prune is stopped — checked over random histories built
 * with dump(8)'s rules.
 */
import { describe, expect, test } from "bun:test";
import { prng } from "../../helpers/faultproxy.ts";
import { resolveChain } from "../../../src/pipeline/catalog.ts";
import { deletionOrder, pointTime } from "../../../src/pipeline/prune/plan.ts";
import type { Policy } from "../../../src/pipeline/prune/policy.ts";
import { orphanCatalogs, orphanParts } from "../../../src/pipeline/references.ts";
import { advanceHeads, headsFromManifests, chooseParent, HEADS_FORMAT, type Heads } from "../../../src/records/heads.ts";
import type { BackupState } from "../../../src/state/rundir.ts";
import { catalogKey, dataPrefix, datasetDataPrefix, manifestDir } from "../../../src/store/layout.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import { listingOf, mk, stamp, T0 } from "./helpers.ts";
import { DAY, FS, keptIds, plan, rulesOf } from "./prune-plan.helpers.ts";

describe("what the plan never deletes", () => {
  const NOW = T0 + 400 * DAY;
  test("an untrusted manifest is kept, is no point and keeps no ancestor", () => {
    const a = mk(0, T0, null);
    const x = mk(1, T0 + DAY, a); // a forger's level 1 on a
    const c = mk(0, T0 + 2 * DAY, null);
    const ds = plan([a, x, c], { untrusted: new Map([[x.backupId, "it is not signed"]]), heads: headsFromManifests([c]) });
    expect(rulesOf(ds, x.backupId)).toEqual(["not-trusted"]);
    expect(keptIds(ds).sort()).toEqual([x.backupId, c.backupId].sort());
    // Untrusted and the newest: still no point, so the policy keeps the newest trusted one.
    const y = mk(0, T0 + 3 * DAY, null);
    const ds2 = plan([a, c, y], { untrusted: new Map([[y.backupId, "signed by another key"]]), heads: headsFromManifests([c]) });
    expect(rulesOf(ds2, c.backupId)).toContain("last");
    expect(rulesOf(ds2, y.backupId)).toEqual(["not-trusted"]);
    expect(ds2.find((d) => d.backupId === a.backupId)!.action).toBe("delete");
  });

  test("a lost manifest's probable parent may have finished within the second its id names (ids count whole seconds)", () => {
    const now = T0 + 60 * DAY;
    const uAt = now - 25 * DAY; // on a whole second, as a backup id's time is
    const q = mk(0, now - 40 * DAY, null);
    const p = mk(0, uAt - 60_000 + 500, null); // finished half a second into the second u's id names
    const u = mk(1, uAt, p); // its manifest is lost
    const k = mk(2, now - 20 * DAY, u);
    const n = mk(0, now - 5 * DAY, null);
    const ds = plan([q, p, k, n], { policy: { within: 22 * DAY }, heads: headsFromManifests([q, p, u, k, n]), now });
    expect(ds.find((d) => d.backupId === p.backupId)!.reasons).toEqual([{ rule: "probable-ancestor", of: k.backupId, lost: u.backupId }]);
    expect(ds.find((d) => d.backupId === q.backupId)!.action).toBe("delete");
  });

  test("a forged middle manifest does not cut the signed base below it loose: the chain goes on through the probable parent", () => {
    const now = T0 + 60 * DAY;
    const r = mk(0, now - 40 * DAY, null); // signed, outside the window: kept only as a base
    const u = mk(1, now - 25 * DAY, r);
    const k = mk(2, now - 20 * DAY, u);
    const n = mk(0, now - 5 * DAY, null); // the head of level 0 now
    // A bucket writer overwrites u's manifest: unsigned, its parent a backup that never was.
    const forged = { ...u, parent: { name: "tank/photos@zrb_level0_19700101T000000Z", guid: "1", backupId: "19700101T000000Z-L0-000000", level: 0 } };
    // ... and adds a level 0 dated just before u, to be taken for u's base.
    const decoy = mk(0, now - 26 * DAY, null);
    const untrusted = new Map([[u.backupId, "it is not signed"], [decoy.backupId, "it is not signed"]]);
    const ds = plan([r, forged, k, n, decoy], { policy: { within: 30 * DAY }, untrusted, heads: headsFromManifests([r, u, k, n]), now });
    expect(ds.find((d) => d.backupId === r.backupId)!.reasons).toEqual([{ rule: "probable-ancestor", of: k.backupId, lost: u.backupId, untrusted: true }]);
    expect(rulesOf(ds, u.backupId).sort()).toEqual(["ancestor", "not-trusted"]);
    expect(rulesOf(ds, decoy.backupId)).toEqual(["not-trusted"]);
    expect(keptIds(ds).sort()).toEqual([r, u, k, n, decoy].map((m) => m.backupId).sort());
    // Only its signature stripped (its parent link genuine): the same, and nothing else is kept.
    const stripped = plan([r, u, k, n], { policy: { within: 30 * DAY }, untrusted: new Map([[u.backupId, "it is not signed"]]), heads: headsFromManifests([r, u, k, n]), now });
    expect(stripped.find((d) => d.backupId === r.backupId)!.action).toBe("keep");
    expect(keptIds(stripped).sort()).toEqual([r, u, k, n].map((m) => m.backupId).sort());
    // Its link names another base than dump's rule would give (q, not the newer q2): both stay.
    const q = mk(1, now - 45 * DAY, r);
    const q2 = mk(1, now - 40 * DAY, r);
    const u2 = mk(2, now - 25 * DAY, q);
    const k2 = mk(3, now - 20 * DAY, u2);
    const other = plan([r, q, q2, u2, k2, n], { policy: { within: 30 * DAY }, untrusted: new Map([[u2.backupId, "it is not signed"]]), heads: headsFromManifests([r, q, q2, u2, k2, n]), now });
    expect(other.find((d) => d.backupId === q2.backupId)!.reasons).toEqual([{ rule: "probable-ancestor", of: k2.backupId, lost: u2.backupId, untrusted: true }]);
    expect(other.find((d) => d.backupId === q.backupId)!.reasons).toEqual([{ rule: "probable-ancestor", of: k2.backupId, lost: u2.backupId, untrusted: true }]);
    expect(keptIds(other).sort()).toEqual([r, q, q2, u2, k2, n].map((m) => m.backupId).sort());
    // Forged links that go round in a circle (x names y, y names x, z names itself) end the walk.
    const x = mk(1, now - 24 * DAY, r);
    const y = mk(1, now - 23 * DAY, r);
    const z = mk(1, now - 22 * DAY, r);
    const link = (to: Manifest) => ({ name: to.snapshot.name, guid: to.snapshot.guid, backupId: to.backupId, level: 1 });
    const kx = mk(2, now - 20 * DAY, x);
    const kz = mk(2, now - 19 * DAY, z);
    const circle = [r, { ...x, parent: link(y) }, { ...y, parent: link(x) }, { ...z, parent: link(z) }, kx, kz, n];
    const untrustedXYZ = new Map([x, y, z].map((m) => [m.backupId, "it is not signed"]));
    const ds2 = plan(circle, { policy: { within: 30 * DAY }, untrusted: untrustedXYZ, heads: headsFromManifests([r, n]), now });
    expect(ds2.find((d) => d.backupId === r.backupId)!.action).toBe("keep");
    expect(keptIds(ds2).sort()).toEqual(circle.map((m) => m.backupId).sort());
  });

  test("a backup from the future (a clock ahead) is kept and is no point: it moves no window", () => {
    const a = mk(0, T0, null);
    const b = mk(0, T0 + DAY, null);
    const f = mk(0, NOW + 30 * DAY, null);
    const ds = plan([a, b, f], { heads: headsFromManifests([a, b]) });
    expect(rulesOf(ds, f.backupId)).toEqual(["future"]);
    expect(rulesOf(ds, b.backupId)).toContain("last");
    expect(ds.find((d) => d.backupId === a.backupId)!.action).toBe("delete");
  });

  test("the resumable backup stays when its manifest is written (a run killed before its bookkeeping)", () => {
    const a = mk(0, T0, null);
    const b = mk(1, T0 + DAY, a);
    const c = mk(0, T0 + 2 * DAY, null);
    const state = { backupId: b.backupId, level: 1, parent: null } as unknown as BackupState;
    const ds = plan([a, b, c], { state, heads: headsFromManifests([c]) });
    expect(rulesOf(ds, b.backupId)).toContain("resumable");
    expect(rulesOf(ds, a.backupId)).toContain("ancestor");
  });

  test("a backup that cannot be restored takes no policy slot: the newest restorable point keeps its place (a lost manifest, a bad part in its chain)", () => {
    const l0 = mk(0, T0, null);
    const l1 = mk(1, T0 + DAY, l0);
    const l0b = mk(0, T0 + 2 * DAY, null);
    const l1b = mk(1, T0 + 3 * DAY, l0b);
    const heads = headsFromManifests([l0, l1, l0b, l1b]);
    // l0b's manifest is lost: l1b, the newest backup, cannot be restored; l1 is the newest point.
    const lost = plan([l0, l1, l1b], { heads });
    expect(rulesOf(lost, l1b.backupId)).toContain("not-restorable");
    expect(rulesOf(lost, l1b.backupId)).not.toContain("last");
    expect(rulesOf(lost, l1.backupId)).toEqual(["last"]);
    expect(lost.find((d) => d.backupId === l0.backupId)!.reasons).toEqual([{ rule: "ancestor", of: l1.backupId }]);
    // verify --rotate found a bad part in l0b: l1b's chain cannot be restored though l1b itself is intact.
    const bad = plan([l0, l1, l0b, l1b], { heads, bad: new Map([[l0b.backupId, "part 0: sha256 mismatch"]]) });
    expect(bad.find((d) => d.backupId === l1b.backupId)!.reasons).toContainEqual({
      rule: "not-restorable",
      problem: `verify --rotate found a bad part in backup ${l0b.backupId} of its chain: part 0: sha256 mismatch`,
    });
    expect(rulesOf(bad, l1b.backupId)).not.toContain("last");
    expect(bad.find((d) => d.backupId === l0b.backupId)!.reasons).toContainEqual({ rule: "not-restorable", problem: "verify --rotate found a bad part in it: part 0: sha256 mismatch" });
    expect(rulesOf(bad, l1.backupId)).toEqual(["last"]);
    expect(keptIds(bad).sort()).toEqual([l0, l1, l0b, l1b].map((m) => m.backupId).sort());
  });

  test("a point up to a day ahead of this host's clock (another host's clock a little fast) is still a point; more than a day ahead it is not", () => {
    const a = mk(0, T0, null);
    const b = mk(0, NOW - DAY, null);
    const ahead = (t: number) => {
      const f = mk(0, t, null);
      return { f, ds: plan([a, b, f], { heads: headsFromManifests([a, b]), now: NOW }) };
    };
    const hour = ahead(NOW + 3_600_000);
    expect(rulesOf(hour.ds, hour.f.backupId)).toEqual(["last"]);
    expect(rulesOf(hour.ds, b.backupId)).toEqual(["head"]);
    const day = ahead(NOW + DAY);
    expect(rulesOf(day.ds, day.f.backupId)).toEqual(["last"]);
    const past = ahead(NOW + DAY + 1000);
    expect(rulesOf(past.ds, past.f.backupId)).toEqual(["future"]);
    expect(rulesOf(past.ds, b.backupId)).toEqual(["last", "head"]);
  });

  test("an untrusted backup is reported as not trusted and nothing else: not as a head, a future point or a broken chain; a future head as future only", () => {
    const a = mk(0, T0, null);
    const h = mk(0, T0 + DAY, null); // named by the heads, but its manifest is forged
    const f = mk(0, NOW + 30 * DAY, null); // untrusted, and dated ahead
    const gone = mk(0, T0 + 2 * DAY, null); // lost
    const x = mk(1, T0 + 3 * DAY, gone); // untrusted, and its chain is broken
    const untrusted = new Map([h, f, x].map((m) => [m.backupId, "it is not signed"]));
    const ds = plan([a, h, f, x], { untrusted, heads: headsFromManifests([a, h]) });
    for (const m of [h, f, x]) expect({ id: m.backupId, rules: rulesOf(ds, m.backupId) }).toEqual({ id: m.backupId, rules: ["not-trusted"] });
    expect(rulesOf(ds, a.backupId)).toEqual(["last"]);
    // A trusted head dated more than a day ahead: left alone as "future", not counted as a head.
    const fut = mk(0, NOW + 30 * DAY, null);
    const ds2 = plan([a, fut], { heads: headsFromManifests([a, fut]) });
    expect(rulesOf(ds2, fut.backupId)).toEqual(["future"]);
  });

  test("an object lock keeps a backup until it ends, then not", () => {
    const a = mk(0, T0, null);
    const c = mk(0, T0 + 2 * DAY, null);
    const locked = (until: number) => plan([a, c], { heads: headsFromManifests([c]), lockedUntil: new Map([[a.backupId, new Date(until)]]) });
    expect(rulesOf(locked(NOW + DAY), a.backupId)).toEqual(["object-lock"]);
    expect(locked(NOW - DAY).find((d) => d.backupId === a.backupId)!.action).toBe("delete");
  });
});

describe("what no record accounts for", () => {
  const base = datasetDataPrefix("tank", "photos");
  const dir = manifestDir("tank", "photos");
  const obj = (key: string) => ({ key, size: 5 });
  test("a backup that has a manifest keeps every part under its id, whatever that manifest lists (one overwritten with parts: [])", () => {
    const m = mk(0, T0, null, { parts: 2 });
    const emptied = { ...m, parts: [] };
    expect(orphanParts(listingOf([m]), base, [emptied], null)).toEqual([]);
    expect(orphanParts(listingOf([m]), base, [], null).length).toBe(2);
  });

  test("a file catalog is kept while its backup has a manifest, is named as a parent or by a manifest, or is in flight; otherwise it is an orphan", () => {
    const l0 = mk(0, T0, null);
    const l1 = mk(1, T0 + DAY, l0); // l0's manifest is lost below: l1 still names it as parent
    const named = "20270101T000000Z-L0-0000aa"; // a catalog a manifest names under another id
    const inflight = "20270102T000000Z-L0-0000bb";
    const nobody = "20270103T000000Z-L0-0000cc";
    const withCatalog = { ...l1, catalog: { key: catalogKey("tank", "photos", named, "ab12"), size: 5, sha256: "0".repeat(64), entries: 1, kind: "full" as const } };
    const listing = [l0.backupId, l1.backupId, inflight, nobody].map((id) => obj(catalogKey("tank", "photos", id))).concat(obj(catalogKey("tank", "photos", named, "ab12")));
    const orphans = orphanCatalogs(listing, dir, [withCatalog], [dataPrefix("tank", "photos", 0, inflight)]);
    expect(orphans.map((o) => o.key)).toEqual([catalogKey("tank", "photos", nobody)]);
  });
});

describe("chain safety", () => {
  test("a kept point keeps its whole chain; heads keep theirs; the rest goes, children before parents", () => {
    const l0 = mk(0, T0, null);
    const l1 = mk(1, T0 + DAY, l0);
    const l2a = mk(2, T0 + 2 * DAY, l1);
    const l2b = mk(2, T0 + 3 * DAY, l1);
    const l0b = mk(0, T0 + 4 * DAY, null);
    const l1b = mk(1, T0 + 5 * DAY, l0b);
    const ms = [l0, l1, l2a, l2b, l0b, l1b];
    // keep-daily 1 keeps only the newest point, l1b (+ head l0b); with keep-last 4: l2b, l2a too (+ their chain).
    const d1 = plan(ms, { policy: { daily: 1 } });
    expect(keptIds(d1).sort()).toEqual([l0b.backupId, l1b.backupId].sort());
    expect(rulesOf(d1, l0b.backupId)).toEqual(["head", "ancestor"]);
    expect(deletionOrder(d1).map((d) => d.backupId)).toEqual([l2b.backupId, l2a.backupId, l1.backupId, l0.backupId]);
    const d4 = plan(ms, { policy: { last: 4 } });
    expect(keptIds(d4).sort()).toEqual(ms.map((m) => m.backupId).sort());
    expect(d4.find((d) => d.backupId === l0.backupId)!.reasons).toEqual([{ rule: "ancestor", of: l2b.backupId }]);
    // No policy: everything stays.
    expect(keptIds(plan(ms, { policy: null })).length).toBe(6);
  });

  test("the resumable backup and its base stay; a broken backup stays and is not a point; a lost manifest's probable parent stays", () => {
    const l0 = mk(0, T0, null);
    const l1 = mk(1, T0 + DAY, l0);
    const l2 = mk(2, T0 + 2 * DAY, l1);
    const l0b = mk(0, T0 + 3 * DAY, null);
    const l1b = mk(1, T0 + 4 * DAY, l0b);
    // l1 is lost: l2 cannot be restored; keep-last 1 counts intact points only (l1b).
    const ms = [l0, l2, l0b, l1b];
    const d = plan(ms, { heads: headsFromManifests([l0, l1, l2, l0b, l1b]) });
    expect(rulesOf(d, l2.backupId)).toEqual(["not-restorable"]);
    expect(rulesOf(d, l1b.backupId)).toEqual(["last", "head"]);
    expect(d.find((x) => x.backupId === l0.backupId)!.reasons).toEqual([{ rule: "probable-ancestor", of: l2.backupId, lost: l1.backupId }]);
    // The lost level 1's parts are not orphans: the manifest put back repairs the chain.
    const base = datasetDataPrefix("tank", "photos");
    const lostParts = listingOf([l1]);
    expect(orphanParts([...listingOf(ms), ...lostParts], base, ms, null)).toEqual([]);
    const stray = { key: `${dataPrefix("tank", "photos", 1, "20270101T000000Z-L1-abcdef")}part-000000.age`, size: 5 };
    expect(orphanParts([...lostParts, stray], base, ms, null)).toEqual([stray]);

    const state: BackupState = {
      format: "zrb-state/1",
      backupId: `${stamp(T0 + 5 * DAY)}-L2-ffffff`,
      level: 2,
      pool: "tank",
      dataset: "photos",
      snapshot: { name: `${FS}@zrb_level2_x`, guid: "1" },
      parent: { name: l1b.snapshot.name, guid: l1b.snapshot.guid, backupId: l1b.backupId, level: 1 },
      sendFlags: [],
      chunkSize: 1,
      recipients: ["age1x"],
      startedAt: "",
      chunks: [],
    };
    // Even with heads that forgot l1b (another host, a hand edit), the resumable backup's base stays.
    const heads: Heads = { format: HEADS_FORMAT, updatedAt: "", levels: {} };
    const ds = plan([l0b, l1b, mk(1, T0 + 6 * DAY, l0b)], { heads, state });
    expect(rulesOf(ds, l1b.backupId)).toEqual(["resumable-base"]);
    expect(orphanParts(listingOf([mk(2, T0, l1b)]).map((o) => ({ ...o, key: o.key.replace(/level2\/[^/]+/, `level2/${state.backupId}`) })), base, [], dataPrefix("tank", "photos", 2, state.backupId))).toEqual([]);
  });
  test("a manifest that names itself or its own child as parent (damaged, or edited by hand) does not stop the plan; both loops stay", () => {
    const a = mk(1, T0, null);
    const self = { ...a, parent: { name: a.snapshot.name, guid: a.snapshot.guid, backupId: a.backupId, level: 1 } };
    const b = mk(1, T0 + DAY, null);
    const c = mk(2, T0 + 2 * DAY, b);
    const looped = { ...b, parent: { name: c.snapshot.name, guid: c.snapshot.guid, backupId: c.backupId, level: 2 } };
    const l0 = mk(0, T0 + 3 * DAY, null);
    const ds = plan([self, looped, c, l0], { heads: headsFromManifests([l0]) });
    expect(keptIds(ds).sort()).toEqual([self, looped, c, l0].map((m) => m.backupId).sort());
    for (const m of [self, looped, c]) expect(rulesOf(ds, m.backupId)).toContain("not-restorable");
  });

  test("the probable parent of a lost manifest is chosen among the backups that had finished when it started", () => {
    const a = mk(0, T0, null);
    // b started before the lost level 1 but finished after it (a long full, on another host): not its base.
    const b = { ...mk(0, T0 + DAY - 600_000, null), finishedAt: new Date(T0 + DAY + 2 * 3_600_000).toISOString() };
    const x = mk(1, T0 + DAY, a); // lost
    const c = mk(2, T0 + 2 * DAY, x);
    const ds = plan([a, b, c], { heads: headsFromManifests([a, b]) });
    expect(rulesOf(ds, c.backupId)).toEqual(["not-restorable"]);
    expect(ds.find((d) => d.backupId === a.backupId)!.reasons).toEqual([{ rule: "probable-ancestor", of: c.backupId, lost: x.backupId }]);
  });

  test("the probable parent of a lost level N is the newest head below N: an older backup of level N itself is not kept for it", () => {
    const a = mk(0, T0, null);
    const s = mk(1, T0 + DAY, a); // a level-1 sibling of the lost one
    const x = mk(1, T0 + 2 * DAY, a); // lost
    const c = mk(2, T0 + 3 * DAY, x);
    const d = mk(0, T0 + 4 * DAY, null);
    const ds = plan([a, s, c, d], { heads: headsFromManifests([d]) });
    expect(ds.find((r) => r.backupId === a.backupId)!.reasons).toEqual([{ rule: "probable-ancestor", of: c.backupId, lost: x.backupId }]);
    expect(ds.find((r) => r.backupId === s.backupId)!.action).toBe("delete");
  });

  test("past two lost manifests the chain goes on, and the reason names the first break", () => {
    const a = mk(0, T0, null);
    const x = mk(1, T0 + DAY / 2, a); // lost
    const b = mk(2, T0 + DAY, x);
    const y = mk(3, T0 + 2 * DAY, b); // lost
    const c = mk(4, T0 + 3 * DAY, y);
    const d = mk(0, T0 + 4 * DAY, null);
    const ds = plan([a, b, c, d], { heads: headsFromManifests([d]) });
    expect(ds.find((r) => r.backupId === b.backupId)!.reasons).toContainEqual({ rule: "probable-ancestor", of: c.backupId, lost: y.backupId });
    expect(ds.find((r) => r.backupId === a.backupId)!.reasons).toContainEqual({ rule: "probable-ancestor", of: c.backupId, lost: y.backupId });
    expect(keptIds(ds).sort()).toEqual([a, b, c, d].map((m) => m.backupId).sort());
  });
});

describe("points and their times", () => {
  test("a zrb snapshot name gives the time; another name falls back to startedAt", () => {
    const a = mk(0, T0, null);
    expect(pointTime(a).toISOString()).toBe("2027-03-01T02:00:00.000Z");
    const b = mk(0, T0 + 5 * DAY, null, { snapName: "manual-backup" });
    expect(pointTime(b).getTime()).toBe(T0 + 5 * DAY);
    const c = { ...mk(0, T0, null), snapshot: { name: `${FS}@zrb_level0_20200101T000000Z`, guid: "1" } };
    expect(pointTime(c).toISOString()).toBe("2020-01-01T00:00:00.000Z");
  });
});


/** A random history by dump(8)'s rules: levels 0..3 over `days` days, one backup a day. */
function randomHistory(rnd: (k: number) => number, days: number): { ms: Manifest[]; heads: Heads } {
  let heads: Heads = { format: HEADS_FORMAT, updatedAt: "", levels: {} };
  const ms: Manifest[] = [];
  for (let d = 0; d < days; d++) {
    const level = ms.length === 0 ? 0 : [0, 1, 1, 2, 2, 2, 3][rnd(7)]!;
    const p = chooseParent(heads, level);
    const m = mk(level, T0 + d * DAY + rnd(20) * 3_600_000, p ? ms.find((x) => x.backupId === p.backupId)! : null);
    ms.push(m);
    heads = advanceHeads(heads, m);
  }
  return { ms, heads };
}

test("random histories: every kept backup's chain is kept, and every prefix of the deletion order leaves only restorable chains", () => {
  const next = prng(99);
  const rnd = (k: number) => Math.floor(next() * k);
  for (let trial = 0; trial < 150; trial++) {
    const { ms, heads } = randomHistory(rnd, 5 + rnd(60));
    const policy: Policy = { last: rnd(3), daily: rnd(5), weekly: rnd(3), monthly: rnd(3) || 1 };
    const ds = plan(ms, { policy, heads });
    const byId = new Map(ms.map((m) => [m.backupId, m]));
    const kept = new Set(keptIds(ds));
    for (const id of kept) for (const c of resolveChain(byId.get(id)!, byId)) expect(kept.has(c.backupId)).toBe(true);
    for (const h of Object.values(heads.levels)) expect(kept.has(h.backupId)).toBe(true);
    const left = new Map(byId);
    for (const d of deletionOrder(ds)) {
      left.delete(d.backupId);
      for (const m of left.values()) resolveChain(m, left); // throws if a remaining chain is broken
    }
    expect([...left.keys()].sort()).toEqual([...kept].sort());
  }
});
