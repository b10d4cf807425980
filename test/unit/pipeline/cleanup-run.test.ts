/**
 * `zrb cleanup` and `zrb cleanup --abandon` on a local-directory store (src/pipeline/cleanup.ts),
 * with a stand-in zfs (ZRB_ZFS) that knows no dataset: what goes (orphan parts and uploads of
 * nobody's backup, stale spill directories, markers of finished backups) and what must stay —
 * this host's resumable backup (its parts, its multipart upload, its spill directory), a backup
 * in flight on another host (its marker, parts and uploads), a finished backup's parts, and
 * anything younger than the grace.
 */
import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import type { Config, Task } from "../../../src/config/config.ts";
import { cleanup } from "../../../src/pipeline/cleanup.ts";
import { abandon } from "../../../src/pipeline/abandon.ts";
import { runAbandon } from "../../../src/cli/cleanup.ts";
import { log } from "../../../src/util/log.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import { writeMarker } from "../../../src/records/marker.ts";
import { NO_TRUST, nasTrust } from "../../../src/records/trust.ts";
import { verifyKeyOf } from "../../../src/crypto/signing.ts";
import { RunDir } from "../../../src/state/rundir.ts";
import { catalogKey, manifestKey, markerKey, partKey } from "../../../src/store/layout.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import { RecordingStore, mk, standIn, stateOf, storeScene } from "./helpers.ts";
import { cloneName } from "../../../src/zfs/snapfiles.ts";
import { acquireLock } from "../../../src/state/lock.ts";

const DAY = 86_400_000;
const task = { name: "t", description: "", pool: "tank", dataset: "photos", enabled: true, recursive: false, sendProperties: false, fileCatalog: true, fullName: "tank/photos" } as unknown as Task;

/** A RecordingStore that also records upload aborts and lists the multipart uploads it is given. */
class Watched extends RecordingStore {
  aborted: string[] = [];
  uploads: { key: string; uploadId: string; initiated?: Date }[] = [];
  override async listUploads(prefix: string): Promise<{ key: string; uploadId: string; initiated?: Date }[]> {
    return this.uploads.filter((u) => u.key.startsWith(prefix));
  }
  override async abortUpload(_key: string, uploadId: string): Promise<void> {
    this.aborted.push(uploadId);
  }
}

let dir = "";
let store: Watched;
let done = () => {};
beforeEach(() => {
  ({ dir, store, done } = storeScene("zrb-cleanup-", Watched, `#!/bin/sh\necho "cannot open 'tank/photos': dataset does not exist" >&2\nexit 1\n`));
});
afterEach(() => done());

const cfg = () => ({ path: "/etc/zrb.yaml", baseDir: join(dir, "base"), plan: {}, s3: { enabled: false }, prune: { orphanGrace: 0 } }) as unknown as Config;
/** --abandon as a person runs it who knows the backup is dead: --older-than 0s. */
const ANY_AGE = { dryRun: false, olderThanMs: 0, trust: NO_TRUST };

/** A finished backup, this host's resumable one, another host's in-flight one, and leftovers of nobody's. */
async function world() {
  const m0 = mk(0, Date.now() - 10 * DAY, null);
  for (const p of m0.parts) await store.put(p.key, new Uint8Array(10));
  await store.put(manifestKey("tank", "photos", m0.backupId), YAML.stringify(m0));
  const rd = new RunDir(cfg().baseDir, "tank", "photos");
  mkdirSync(join(cfg().baseDir, "tank", "photos"), { recursive: true, mode: 0o700 });
  const R = "20270310T020000Z-L1-00aaaa";
  rd.writeState(stateOf(R, m0, "up-R"));
  const F = "20270310T030000Z-L1-00bbbb";
  await writeMarker(store, stateOf(F, m0, "up-F"), undefined);
  const O = "20270301T000000Z-L1-00cccc"; // nobody's: a run killed long ago, its state lost
  const parts = { r: partKey("tank", "photos", 1, R, 0), f: partKey("tank", "photos", 1, F, 0), o: partKey("tank", "photos", 1, O, 0) };
  for (const k of Object.values(parts)) await store.put(k, new Uint8Array(10));
  store.uploads = [
    // Not named as zrb names what it writes under its prefix (someone else's object): never aborted.
    { key: "data/tank/photos/notes.txt", uploadId: "up-N" },
    { key: partKey("tank", "photos", 1, R, 1), uploadId: "up-R" },
    { key: partKey("tank", "photos", 1, F, 1), uploadId: "up-F" },
    { key: partKey("tank", "photos", 1, O, 1), uploadId: "up-O" },
  ];
  for (const d of [R, O]) mkdirSync(join(rd.spillRoot, d), { recursive: true });
  // A marker whose backup finished (its manifest is written): moot.
  const moot = markerKey("tank", "photos", m0.backupId);
  await writeMarker(store, { ...stateOf(m0.backupId, m0, "x"), level: 0, parent: null }, undefined);
  return { m0, rd, R, F, O, parts, moot };
}

describe("cleanup", () => {
  test("a dry run lists nobody's leftovers and changes nothing; a real run removes exactly those", async () => {
    const w = await world();
    // The in-flight backup's file catalog, written before its manifest: not an orphan.
    const catF = catalogKey("tank", "photos", w.F);
    await store.put(catF, new Uint8Array(10));
    const dry = await cleanup(cfg(), task, store, { dryRun: true, olderThanMs: 0, trust: NO_TRUST });
    expect(dry.uploads.map((u) => u.uploadId)).toEqual(["up-O"]);
    expect(dry.orphans.map((o) => o.key)).toEqual([w.parts.o]);
    expect(dry.spillDirs).toEqual([join(w.rd.spillRoot, w.O)]);
    expect(dry.mootMarkers).toEqual([w.moot]);
    expect(dry.kept.resumableBackupId).toBe(w.R);
    expect(dry.inflight.map((x) => x.backupId)).toEqual([w.F]);
    expect(store.deletes).toEqual([]);
    expect(store.aborted).toEqual([]);
    expect(existsSync(join(w.rd.spillRoot, w.O))).toBe(true);

    await cleanup(cfg(), task, store, { dryRun: false, olderThanMs: 0, trust: NO_TRUST });
    expect(store.aborted).toEqual(["up-O"]);
    expect(store.deletes).toEqual([w.parts.o, w.moot]);
    expect(existsSync(join(w.rd.spillRoot, w.O))).toBe(false);
    // What a finished, a resumable or an in-flight backup needs is all still there.
    expect(existsSync(join(w.rd.spillRoot, w.R))).toBe(true);
    for (const k of [w.parts.r, w.parts.f, catF, ...w.m0.parts.map((p) => p.key), markerKey("tank", "photos", w.F), manifestKey("tank", "photos", w.m0.backupId)]) expect({ k, there: (await store.head(k)) !== null }).toEqual({ k, there: true });
  });

  test("under a verification key, an unsigned marker is reported as not trusted, never as a backup in flight", async () => {
    const w = await world();
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const r = await cleanup(cfg(), task, store, { dryRun: true, olderThanMs: 0, trust: nasTrust({ verifyKey: verifyKeyOf(seed) }) });
    expect(r.inflight).toEqual([]);
    expect(r.untrustedMarkers.map((x) => x.key)).toContain(markerKey("tank", "photos", w.F));
  });

  test("on a pool that has the dataset: the resumable backup's send holds stay, a killed run's go; a catalog clone a live run uses stays", async () => {
    const w = await world();
    const st = stateOf(w.R, w.m0, "up-R");
    const stray = "tank/photos@zrb_level1_20270301T000000Z";
    writeFileSync(join(dir, "refs.tsv"), [st.snapshot.name, st.parent!.name, stray].map((n) => `${n}\t1`).join("\n") + "\n");
    // A catalog clone whose maker holds its lock right now (this process, for the test).
    const live = acquireLock(join(dir, "clone.lock"), "a catalog clone", "zrb backup (file catalog)");
    const clone = cloneName("tank/photos");
    const restore = standIn(
      dir,
      `#!/bin/sh\necho "$*" >> ${dir}/zfs.log\ncase "$*" in\n  "list -H -o name tank/photos") echo tank/photos ;;\n  *userrefs*) cat ${dir}/refs.tsv ;;\n  *" origin ${clone}") echo tank/photos@s1 ;;\n  *" zrb:catalog-clone ${clone}") echo tank/photos ;;\n  *" zrb:catalog-lock ${clone}") echo ${join(dir, "clone.lock")} ;;\nesac\nexit 0\n`,
    );
    try {
      await cleanup(cfg(), task, store, { dryRun: false, olderThanMs: 0, trust: NO_TRUST });
    } finally {
      restore();
      live.release();
    }
    const calls = readFileSync(join(dir, "zfs.log"), "utf8").split("\n");
    const released = calls.filter((l) => l.startsWith("release ")).map((l) => l.split(" ")[2]);
    expect(released).toEqual([stray]);
    expect(calls.filter((l) => l.startsWith("destroy") || l.startsWith("unmount"))).toEqual([]);
  });

  test("in the spill directory only real directories named like a backup id go: another task's run directory there (a task on tank/photos/spill) and a link stay", async () => {
    const w = await world();
    // A second task on tank/photos/spill keeps its lock and state in run/tank/photos/spill/.
    const other = join(w.rd.spillRoot, "zrb.lock");
    writeFileSync(other, "");
    const nested = join(w.rd.spillRoot, "child");
    mkdirSync(join(nested, "spill"), { recursive: true });
    writeFileSync(join(nested, "backup_state.yaml"), "x");
    const target = join(w.rd.spillRoot, "..", "elsewhere-20270301T000000Z-L1-00dddd");
    mkdirSync(target);
    symlinkSync(target, join(w.rd.spillRoot, "20270301T000000Z-L1-00dddd"));
    const r = await cleanup(cfg(), task, store, { dryRun: false, olderThanMs: 0, trust: NO_TRUST });
    expect(r.spillDirs).toEqual([join(w.rd.spillRoot, w.O)]);
    for (const p of [other, join(nested, "backup_state.yaml"), join(nested, "spill"), target, join(w.rd.spillRoot, w.R)]) expect({ p, there: existsSync(p) }).toEqual({ p, there: true });
    expect(existsSync(join(w.rd.spillRoot, w.O))).toBe(false);
  });

  test("a moot marker the store refuses to delete is not reported as deleted", async () => {
    const w = await world();
    store.refuse.set(w.moot, "locked");
    const r = await cleanup(cfg(), task, store, { dryRun: false, olderThanMs: 0, trust: NO_TRUST });
    expect(r.mootMarkers).toEqual([]);
    expect(await store.head(w.moot)).not.toBeNull();
    store.refuse.clear();
    expect((await cleanup(cfg(), task, store, { dryRun: false, olderThanMs: 0, trust: NO_TRUST })).mootMarkers).toEqual([w.moot]);
  });

  test("an orphan the store refuses to delete is left, and neither counted as deleted nor as freed bytes", async () => {
    const w = await world();
    store.refuse.set(w.parts.o, "locked");
    const r = await cleanup(cfg(), task, store, { dryRun: false, olderThanMs: 0, trust: NO_TRUST });
    expect(r.orphans.map((o) => o.key)).toEqual([w.parts.o]);
    expect(r.left).toEqual([w.parts.o]);
    expect(r.orphanBytes).toBe(0);
    expect(await store.head(w.parts.o)).not.toBeNull();
  });

  test("a leftover younger than the grace is spared, not deleted", async () => {
    const w = await world();
    store.uploads = store.uploads.map((u) => ({ ...u, initiated: new Date() }));
    const r = await cleanup(cfg(), task, store, { dryRun: false, olderThanMs: DAY, graceKnob: "prune.orphan_grace", trust: NO_TRUST });
    expect(r.orphans).toEqual([]);
    expect(r.uploads).toEqual([]);
    expect(r.spared.map((x) => x.key).sort()).toEqual([w.parts.o, partKey("tank", "photos", 1, w.O, 1)].sort());
    expect(store.aborted).toEqual([]);
    expect(store.deletes).toEqual([w.moot]);
  });
});

describe("cleanup --abandon", () => {
  const refusal = async (p: Promise<unknown>) => {
    const e = await p.then(
      () => null,
      (err) => err,
    );
    expect(e).toBeInstanceOf(ZrbError);
    return (e as ZrbError).message;
  };

  test("a finished backup or this host's interrupted one is refused, and nothing is touched", async () => {
    const w = await world();
    expect(await refusal(abandon(cfg(), task, store, w.m0.backupId, ANY_AGE))).toContain("is finished");
    expect(await refusal(abandon(cfg(), task, store, w.R, ANY_AGE))).toContain("this host's interrupted backup");
    expect(store.deletes).toEqual([]);
    expect(store.aborted).toEqual([]);
  });

  test("a backup another one is built on (its own manifest lost) is refused: putting the manifest back must still repair the chain", async () => {
    const w = await world();
    // O's manifest is lost, but a finished level 2 names it as its parent.
    const child = { ...mk(2, Date.now() - DAY, null), parent: { name: "tank/photos@zrb_level1_20270301T000000Z", guid: "7", backupId: w.O, level: 1 } };
    await store.put(manifestKey("tank", "photos", child.backupId), YAML.stringify(child));
    const msg = await refusal(abandon(cfg(), task, store, w.O, ANY_AGE));
    expect(msg).toContain(`backup ${child.backupId} of tank/photos is built on it`);
    expect(msg).toContain("nothing was removed");
    expect(store.deletes).toEqual([]);
    expect(store.aborted).toEqual([]);
    expect(await store.head(w.parts.o)).not.toBeNull();
    // A manifest that cannot be read may be such a child: refused as well (exit 7).
    await store.put(manifestKey("tank", "photos", child.backupId), "format: zrb-manifest/99\n");
    const err = await abandon(cfg(), task, store, w.O, ANY_AGE).then(
      () => null,
      (e) => e as ZrbError,
    );
    expect(err?.exitCode).toBe(ExitCode.INTEGRITY);
    expect(err?.message).toContain(`manifest ${manifestKey("tank", "photos", child.backupId)} cannot be read`);
    expect(store.deletes).toEqual([]);
  });

  test("another host's killed backup: its uploads are aborted, its parts deleted, and its marker last — kept while a part could not be deleted", async () => {
    const w = await world();
    store.refuse.set(w.parts.f, "access-denied");
    const r = await abandon(cfg(), task, store, w.F, ANY_AGE);
    expect(r.parts.map((p) => p.key)).toEqual([w.parts.f]);
    expect(r.left).toEqual([w.parts.f, markerKey("tank", "photos", w.F)]);
    expect(store.aborted).toEqual(["up-F"]);
    expect(await store.head(markerKey("tank", "photos", w.F))).not.toBeNull();
    store.refuse.clear();
    await abandon(cfg(), task, store, w.F, ANY_AGE);
    expect(store.deletes).toEqual([w.parts.f, markerKey("tank", "photos", w.F)]);
    // Nothing of another backup was touched.
    for (const k of [w.parts.r, w.parts.o, ...w.m0.parts.map((p) => p.key)]) expect({ k, there: (await store.head(k)) !== null }).toEqual({ k, there: true });
  });

  test("a backup active within the grace may still be running on another host: refused (exit 4), nothing touched; once idle past it, it goes", async () => {
    const w = await world();
    const grace = { dryRun: false, olderThanMs: DAY, graceKnob: "prune.orphan_grace", trust: NO_TRUST };
    const locked = async (p: Promise<unknown>) => {
      const e = (await p.then(
        () => null,
        (err) => err,
      )) as ZrbError;
      expect(e).toBeInstanceOf(ZrbError);
      expect(e.exitCode).toBe(ExitCode.LOCKED);
      expect(e.message).toContain("within prune.orphan_grace 1d, so it may still be running");
      expect(e.message).toContain("rerun with --older-than 0s; nothing was removed");
      return e.message;
    };
    // Its marker and part were written, and its upload begun, just now.
    store.uploads = store.uploads.map((u) => ({ ...u, initiated: new Date() }));
    expect(await locked(abandon(cfg(), task, store, w.F, grace))).toContain("was active 0s ago");
    expect(await locked(abandon(cfg(), task, store, w.F, { ...grace, dryRun: true }))).toContain(`backup ${w.F} of tank/photos`);
    const later = new Date(Date.now() + 2 * DAY);
    // The marker's own word counts, trusted or not: a refresh two days on (host clock) keeps it.
    const mk = markerKey("tank", "photos", w.F);
    const rec = YAML.parse(new TextDecoder().decode((await store.get(mk))!));
    await store.put(mk, YAML.stringify({ ...rec, updatedAt: new Date(later.getTime() - 3_600_000).toISOString() }));
    expect(await locked(abandon(cfg(), task, store, w.F, { ...grace, now: later }))).toContain(`was active 1h ago (its in-flight marker says it was updated on host ${rec.host})`);
    await store.put(mk, YAML.stringify(rec));
    // A multipart upload begun an hour before: the backup is uploading a part.
    store.uploads = store.uploads.map((u) => (u.uploadId === "up-F" ? { ...u, initiated: new Date(later.getTime() - 3_600_000) } : u));
    expect(await locked(abandon(cfg(), task, store, w.F, { ...grace, now: later }))).toContain(`the multipart upload of ${partKey("tank", "photos", 1, w.F, 1)} was begun`);
    expect(store.deletes).toEqual([]);
    expect(store.aborted).toEqual([]);
    // An upload the store gives no date for: its age is unknown, so it may be the newest sign.
    store.uploads = store.uploads.map((u) => (u.uploadId === "up-F" ? { key: u.key, uploadId: u.uploadId } : u));
    expect(await locked(abandon(cfg(), task, store, w.F, { ...grace, now: later }))).toContain(`shows a sign of life of unknown age (the multipart upload of ${partKey("tank", "photos", 1, w.F, 1)} was begun)`);
    expect(store.deletes).toEqual([]);
    // A marker whose time is no real date (garbled, or forged, in the right shape): its age is unknown too.
    store.uploads = store.uploads.map((u) => (u.uploadId === "up-F" ? { ...u, initiated: new Date() } : u));
    await store.put(mk, YAML.stringify({ ...rec, updatedAt: "2027-13-45T25:61:00Z" }));
    expect(await locked(abandon(cfg(), task, store, w.F, { ...grace, now: later }))).toContain(`shows a sign of life of unknown age (its in-flight marker says it was updated on host ${rec.host})`);
    await store.put(mk, YAML.stringify(rec));
    expect(store.deletes).toEqual([]);
    // Two days on, with nothing newer than a day: it goes, and says when it was last active.
    const r = await abandon(cfg(), task, store, w.F, { ...grace, now: later });
    expect(store.aborted).toEqual(["up-F"]);
    expect(store.deletes).toEqual([w.parts.f, mk]);
    expect(Date.parse(r.lastActive!.at)).toBeLessThan(later.getTime() - DAY);
  });

  test("each sign of life counts on its own: a part stored an hour ago, or the marker object rewritten an hour ago (its record's time old), keeps it", async () => {
    const w = await world();
    const later = new Date(Date.now() + 2 * DAY);
    const hourAgo = new Date(later.getTime() - 3_600_000);
    const grace = { dryRun: false, olderThanMs: DAY, graceKnob: "prune.orphan_grace", trust: NO_TRUST, now: later };
    // The upload: begun long ago (only the part and the marker are young below).
    store.uploads = store.uploads.map((u) => ({ ...u, initiated: new Date(Date.now() - 3 * DAY) }));
    const refusedFor = async () => {
      const e = (await abandon(cfg(), task, store, w.F, grace).then(
        () => null,
        (err) => err,
      )) as ZrbError;
      expect(e?.exitCode).toBe(ExitCode.LOCKED);
      return e.message;
    };
    const list = store.list.bind(store);
    const head = store.head.bind(store);
    // The part: stored an hour before "now" by the store's clock.
    store.list = async (prefix) => (await list(prefix)).map((o) => (o.key === w.parts.f ? { ...o, lastModified: hourAgo } : o));
    expect(await refusedFor()).toContain(`was active 1h ago (part ${w.parts.f} was stored)`);
    store.list = list;
    // The marker object: rewritten an hour ago (a refresh whose host clock lags), its record two days old.
    store.head = async (key) => {
      const h = await head(key);
      return h && key === markerKey("tank", "photos", w.F) ? { ...h, lastModified: hourAgo } : h;
    };
    expect(await refusedFor()).toContain(`was active 1h ago (its in-flight marker was written on host `);
    store.head = head;
    expect(store.deletes).toEqual([]);
    expect(store.aborted).toEqual([]);
  });

  test("the command: exit 6 when the store keeps any of it, naming what stayed (parts, or only the marker); exit 0 when all went", async () => {
    const w = await world();
    const quiet = spyOn(log, "warn").mockImplementation(() => {});
    try {
      store.refuse.set(markerKey("tank", "photos", w.F), "locked");
      const onlyMarker = await runAbandon(cfg(), task, store, undefined, w.F, ANY_AGE, true);
      expect(onlyMarker.error?.exitCode).toBe(ExitCode.STORE);
      expect(onlyMarker.error?.message).toBe(
        `cleanup --abandon ${w.F}: every object of backup ${w.F} of tank/photos was deleted, but the store would not delete its in-flight marker ${markerKey("tank", "photos", w.F)} (object lock or no delete right); rerun --abandon once the store allows it`,
      );
      store.refuse.clear();
      expect((await runAbandon(cfg(), task, store, undefined, w.F, ANY_AGE, true)).error).toBeUndefined();
      const w2 = await world();
      store.refuse.set(w2.parts.o, "access-denied");
      const part = await runAbandon(cfg(), task, store, undefined, w2.O, ANY_AGE, true);
      expect(part.error?.message).toStartWith(`cleanup --abandon ${w2.O}: the store would not delete 1 object(s) of backup ${w2.O} of tank/photos (object lock or no delete right)`);
    } finally {
      quiet.mockRestore();
    }
  });

  test("an id that names no level is looked for across the dataset's data, and only a backup's own objects would go: one the bucket knows nothing of is refused", async () => {
    const w = await world();
    expect(await refusal(abandon(cfg(), task, store, "killed-on-the-old-nas", ANY_AGE))).toContain("holds nothing");
    // A piece of other backups' ids (every id of March 2027 holds it) names none of them.
    expect(await refusal(abandon(cfg(), task, store, "202703", ANY_AGE))).toContain("holds nothing");
    expect(store.deletes).toEqual([]);
    expect(store.aborted).toEqual([]);
    for (const k of Object.values(w.parts)) expect(await store.head(k)).not.toBeNull();
  });
});
