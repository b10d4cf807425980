/**
 * The slice a rotating verification reads (src/pipeline/rotate.ts), pure: reconcile with the
 * manifests, deadlines, the share per run, the parts due before the next run — and a simulation
 * of runs at irregular intervals with backups coming and going, in which no part ever goes
 * longer than DAYS (plus the one late run's delay) without being read.
 */
import { describe, expect, test } from "bun:test";
import { prng } from "../../helpers/faultproxy.ts";
import { chooseSlice, deadlines, reconcile } from "../../../src/pipeline/rotate.ts";
import { badParts, emptyRotation, rotationProblem, type Rotation } from "../../../src/records/rotation.ts";
import type { Manifest } from "../../../src/records/manifest.ts";

const DAY = 86_400_000;
const T0 = Date.UTC(2027, 0, 1);
const m = (id: string, parts: number) => ({ backupId: id, parts: Array.from({ length: parts }, (_, i) => ({ index: i })) }) as unknown as Manifest;
const iso = (t: number) => new Date(t).toISOString();

/** Mark a slice read at `t`, as a run does. */
function read(r: Rotation, slice: { backupId: string; index: number }[], t: number): Rotation {
  for (const p of slice) r.backups[p.backupId]!.verified[p.index] = iso(t);
  return { ...r, lastRunAt: iso(t) };
}

describe("reconcile and deadlines", () => {
  test("new backups are seen now, gone ones dropped, a backup whose part count changed starts over; never-read parts first among equals", () => {
    let r = reconcile(emptyRotation(), [m("a", 2), m("b", 1)], new Date(T0));
    expect(r.backups).toEqual({ a: { seen: iso(T0), verified: [null, null] }, b: { seen: iso(T0), verified: [null] } });
    r = read(r, [{ backupId: "b", index: 0 }], T0);
    expect(deadlines(r, 10 * DAY).map((p) => `${p.backupId}/${p.index}`)).toEqual(["a/0", "a/1", "b/0"]);
    r.backups.a!.verified[1] = iso(T0 - DAY);
    expect(deadlines(r, 10 * DAY)[0]).toEqual({ backupId: "a", index: 1, due: T0 + 9 * DAY, read: true });
    r = reconcile(r, [m("a", 3), m("c", 1)], new Date(T0 + DAY));
    expect(Object.keys(r.backups)).toEqual(["a", "c"]);
    expect(r.backups.a).toEqual({ seen: iso(T0 + DAY), verified: [null, null, null] });
  });

  test("a share of parts × interval / days, the first run assuming a day; parts due before the next run come too", () => {
    const r = reconcile(emptyRotation(), [m("a", 30), m("b", 30)], new Date(T0));
    expect(chooseSlice(r, new Date(T0), 30 * DAY).length).toBe(2); // 60 parts / 30 days
    expect(chooseSlice({ ...r, lastRunAt: iso(T0 - 7 * DAY) }, new Date(T0), 30 * DAY).length).toBe(14); // weekly runs
    expect(chooseSlice({ ...r, lastRunAt: iso(T0 - 90 * DAY) }, new Date(T0), 30 * DAY).length).toBe(60); // capped at all
    // Everything read 29.5 days ago is due before tomorrow's run.
    const old = read(r, deadlines(r, 30 * DAY), T0 - 29.5 * DAY);
    expect(chooseSlice({ ...old, lastRunAt: iso(T0 - DAY) }, new Date(T0), 30 * DAY).length).toBe(60);
  });

  test("the record's shape is checked", () => {
    expect(rotationProblem(emptyRotation())).toBeUndefined();
    expect(rotationProblem({ format: "zrb-verify-rotation/9", lastRunAt: null, backups: {} })).toContain("unknown format");
    expect(rotationProblem({ format: "zrb-verify-rotation/1", lastRunAt: "yesterday", backups: {} })).toBe("bad lastRunAt");
    expect(rotationProblem({ format: "zrb-verify-rotation/1", lastRunAt: null, backups: { "a/b": {} } })).toBe("a bad backup id");
    expect(rotationProblem({ format: "zrb-verify-rotation/1", lastRunAt: null, backups: { a: { seen: iso(T0), verified: ["x"] } } })).toBe("backup a has a bad time");
    const b = (x: object) => rotationProblem({ format: "zrb-verify-rotation/1", lastRunAt: null, backups: { a: { seen: iso(T0), verified: [], ...x } } });
    expect(b({ seen: "x" })).toBe("backup a is malformed");
    expect(b({ verified: "x" })).toBe("backup a is malformed");
    expect(b({ bad: [] })).toBe("backup a has a malformed bad list");
    for (const bad of [{ x: { at: iso(T0), why: "w" } }, { "0": { at: "x", why: "w" } }, { "0": { at: iso(T0), why: 5 } }]) expect(b({ bad })).toBe("backup a has a malformed bad part");
    expect(b({ bad: { "0": { at: iso(T0), why: "w" } } })).toBeUndefined();
  });

  test("badParts names only the backups with a bad part, the lowest part first", () => {
    const r: Rotation = { ...emptyRotation(), backups: { a: { seen: iso(T0), verified: [] }, b: { seen: iso(T0), verified: [], bad: { "10": { at: "t2", why: "y" }, "2": { at: "t1", why: "x" } } } } };
    expect([...badParts(r)]).toEqual([["b", "part 2 (x, t1) and 1 more"]]);
  });
});

test("a year of runs at irregular intervals with backups coming and going: no part waits longer than DAYS plus one late run", () => {
  const next = prng(4242);
  const rnd = (k: number) => Math.floor(next() * k);
  const DAYS = 30 * DAY;
  let r = emptyRotation();
  let live: Manifest[] = [];
  const lastRead = new Map<string, number>();
  let t = T0;
  let id = 0;
  let maxGap = 0;
  let total = 0;
  let runs = 0;
  let partsSeen = 0;
  while (t < T0 + 365 * DAY) {
    // A backup most days, sometimes several parts; prune drops old ones.
    if (rnd(4) !== 0) live.push(m(`b${String(++id).padStart(5, "0")}`, 1 + rnd(5)));
    if (live.length > 40) live = live.filter((_, i) => i % 7 !== 0 || i > 30);
    r = reconcile(r, live, new Date(t));
    for (const x of live) for (const p of x.parts) if (!lastRead.has(`${x.backupId}/${p.index}`)) lastRead.set(`${x.backupId}/${p.index}`, t);
    const slice = chooseSlice(r, new Date(t), DAYS);
    for (const p of slice) {
      const k = `${p.backupId}/${p.index}`;
      maxGap = Math.max(maxGap, t - lastRead.get(k)!);
      lastRead.set(k, t);
    }
    total += slice.length;
    partsSeen += deadlines(r, DAYS).length;
    runs++;
    r = read(r, slice, t);
    // Daily runs, now and then one a few hours late.
    t += DAY + (rnd(10) === 0 ? rnd(6) * 3_600_000 : 0);
  }
  expect(maxGap).toBeLessThanOrEqual(DAYS + 6 * 3_600_000);
  // Spread, not all at once: on average close to parts / 30 per run.
  expect(total / runs).toBeGreaterThan(0);
  expect(total / runs).toBeLessThan((partsSeen / runs / 30) * 2);
});
