/**
 * Storage-class minimum durations in the bucket plan of `zrb prune` (src/pipeline/prune/plan.ts
 * earlyDelete, src/report/pricing.ts minStorageDaysFor): a backup younger than its class's (or
 * its provider's) minimum stays, with the chain it needs, unless --allow-early-delete, which says
 * what is billed anyway.
 */
import { describe, expect, spyOn, test } from "bun:test";
import type { Config } from "../../../src/config/config.ts";
import { minStorageDaysFor } from "../../../src/report/pricing.ts";
import { log } from "../../../src/util/log.ts";
import { deletionOrder, earlyDelete } from "../../../src/pipeline/prune/plan.ts";
import { listingOf, mk, T0 } from "./helpers.ts";
import { DAY, keptIds, plan, rulesOf } from "./prune-plan.helpers.ts";

describe("storage-class minimum durations", () => {
  test("a STANDARD_IA backup 10 days old stays until day 30 with its ancestors; --allow-early-delete deletes it and says what is billed", () => {
    const l0 = mk(0, T0, null);
    const l1 = mk(1, T0 + DAY, l0, { storageClass: "STANDARD_IA", parts: 2 });
    const l0b = mk(0, T0 + 2 * DAY, null);
    const now = Date.parse(l1.finishedAt) + 10 * DAY;
    const ms = [l0, l1, l0b];
    const d = plan(ms, { now });
    const r = d.find((x) => x.backupId === l1.backupId)!.reasons;
    expect(r.length).toBe(1);
    const gib = (1024 * 1024 + 200) / 1024 ** 3;
    expect(r[0]).toEqual({ rule: "min-storage", storageClass: "STANDARD_IA", days: 30, freeFrom: new Date(Date.parse(l1.finishedAt) + 30 * DAY).toISOString(), gbDays: Math.round(2 * gib * 20 * 1e6) / 1e6 });
    expect(d.find((x) => x.backupId === l0.backupId)!.reasons).toEqual([{ rule: "ancestor", of: l1.backupId }]);
    const early = plan(ms, { now, allowEarlyDelete: true });
    expect(keptIds(early)).toEqual([l0b.backupId]);
    expect(early.find((x) => x.backupId === l1.backupId)!.earlyGbDays).toBeCloseTo(2 * gib * 20, 5);
    // 31 days on, nothing is early any more.
    expect(keptIds(plan(ms, { now: now + 21 * DAY }))).toEqual([l0b.backupId]);
    // The listing's LastModified is the part's age; the manifest's finish time only without one.
    const listing = listingOf(ms).map((o) => (o.key.includes(l1.backupId) ? { ...o, lastModified: new Date(now - 40 * DAY) } : o));
    expect(keptIds(plan(ms, { now, listing }))).toEqual([l0b.backupId]);
    expect(earlyDelete({ ...l1, storageClass: "DEEP_ARCHIVE" }, new Map(), new Date(now))!.days).toBe(180);
    expect(earlyDelete({ ...l1, storageClass: "GLACIER_IR" }, new Map(), new Date(now))!.days).toBe(90);
    expect(earlyDelete({ ...l1, storageClass: "STANDARD" }, new Map(), new Date(now))).toBeNull();
  });

  test("at a provider that bills a minimum for every object (Wasabi: 90 days of STANDARD), a STANDARD backup 10 days old stays too", () => {
    const l0 = mk(0, T0, null);
    const l0b = mk(0, T0 + DAY, null);
    const now = Date.parse(l0.finishedAt) + 10 * DAY;
    expect(keptIds(plan([l0, l0b], { now }))).toEqual([l0b.backupId]);
    const wasabi = minStorageDaysFor({ path: "/etc/zrb.yaml", plan: {}, s3: { enabled: true, endpoint: "https://s3.eu-central-1.wasabisys.com" } } as unknown as Config);
    expect(wasabi("STANDARD")).toBe(90);
    const d = plan([l0, l0b], { now, minDays: wasabi });
    expect(keptIds(d)).toEqual([l0.backupId, l0b.backupId]);
    expect(d.find((x) => x.backupId === l0.backupId)!.reasons).toEqual([expect.objectContaining({ rule: "min-storage", storageClass: "STANDARD", days: 90 })]);
    // 81 days on, nothing is early any more.
    expect(keptIds(plan([l0, l0b], { now: now + 81 * DAY, minDays: wasabi }))).toEqual([l0b.backupId]);
  });

  test("the provider is the one `zrb plan` picks: plan.provider, else the endpoint's host; unknown hosts and a bad provider get AWS's durations (the latter with a warning)", () => {
    const cfg = (plan: Record<string, string>, endpoint?: string) => ({ path: "/etc/zrb.yaml", plan, s3: { enabled: true, endpoint } }) as unknown as Config;
    expect(minStorageDaysFor(cfg({ provider: "wasabi" }, "http://127.0.0.1:7480"))("STANDARD")).toBe(90);
    expect(minStorageDaysFor(cfg({}, "http://127.0.0.1:7480"))("STANDARD")).toBe(0);
    expect(minStorageDaysFor(cfg({}, "http://127.0.0.1:7480"))("GLACIER")).toBe(90);
    expect(minStorageDaysFor(cfg({}))("STANDARD_IA")).toBe(30);
    expect(minStorageDaysFor(cfg({}, "https://s3.us-west-004.backblazeb2.com"))("STANDARD")).toBe(0);
    // A class the provider's table does not list keeps AWS's minimum (errs on keeping).
    expect(minStorageDaysFor(cfg({ provider: "wasabi" }))("DEEP_ARCHIVE")).toBe(180);
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      expect(minStorageDaysFor(cfg({ provider: "nope" }))("GLACIER")).toBe(90);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/^plan\.provider in \/etc\/zrb\.yaml: no provider "nope" in the price table .*; prune counts AWS's minimum storage durations$/);
    } finally {
      warn.mockRestore();
    }
  });
  test("a young ancestor of a kept point is kept as its ancestor, not for its storage class; only a delete carries earlyGbDays", () => {
    const l0 = mk(0, T0, null, { storageClass: "STANDARD_IA" });
    const l1 = mk(1, T0 + DAY, l0);
    const l0b = mk(0, T0 + 2 * DAY, null);
    const now = Date.parse(l0.finishedAt) + 10 * DAY;
    const ds = plan([l0, l1, l0b], { now, policy: { last: 2 } });
    const d0 = ds.find((x) => x.backupId === l0.backupId)!;
    expect(d0.reasons).toEqual([{ rule: "ancestor", of: l1.backupId }]);
    expect(d0.earlyGbDays).toBeUndefined();
    // Kept for its storage class alone: no early-delete bill either, and not in the deletion order.
    const ia = plan([l0, l0b], { now });
    expect(rulesOf(ia, l0.backupId)).toEqual(["min-storage"]);
    expect(ia.find((x) => x.backupId === l0.backupId)!.earlyGbDays).toBeUndefined();
    expect(deletionOrder(ia)).toEqual([]);
  });

  test("parts of different ages (a resumed upload): the backup stays until its youngest part is free, and only young parts are billed", () => {
    const l0 = mk(0, T0, null);
    const ia = mk(1, T0 + DAY, l0, { storageClass: "STANDARD_IA", parts: 2 });
    const l0b = mk(0, T0 + 2 * DAY, null);
    const now = T0 + 60 * DAY;
    const listing = listingOf([l0, ia, l0b]).map((o) =>
      o.key === ia.parts[0]!.key ? { ...o, lastModified: new Date(now - 40 * DAY) } : o.key === ia.parts[1]!.key ? { ...o, lastModified: new Date(now - 10 * DAY) } : o,
    );
    const e = earlyDelete(ia, new Map(listing.map((o) => [o.key, o])), new Date(now))!;
    expect(e.freeFrom).toBe(new Date(now + 20 * DAY).toISOString());
    expect(e.gbDays).toBe(Math.round(((1024 * 1024 + 200) / 1024 ** 3) * 20 * 1e6) / 1e6);
    const ds = plan([l0, ia, l0b], { now, listing });
    expect(rulesOf(ds, ia.backupId)).toEqual(["min-storage"]);
    expect(rulesOf(ds, l0.backupId)).toEqual(["ancestor"]);
    // A class with no minimum keeps nothing, even when the provider's clock is ahead of this host's.
    const std = mk(0, T0 + 3 * DAY, null);
    expect(earlyDelete(std, new Map(std.parts.map((x) => [x.key, { key: x.key, size: x.cipherSize, lastModified: new Date(now + 600_000) }])), new Date(now))).toBeNull();
  });
});
