/**
 * deleteOrLeave (pipeline/backup/finish.ts), which cleanup, prune, rekey and a discarded backup
 * delete through: only what the store refuses for good (object lock, a role without delete
 * right) is left with a warning; any other failure is the run's failure, never a success that
 * left objects behind. And buildManifest, the manifest a backup commits: it never names a part
 * the run has not recorded as stored, nor parts that do not add up to the stream.
 */
import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS, type Config, type Task } from "../../../src/config/config.ts";
import { buildManifest, commitManifest, deleteOrLeave, discardState, finishBackup } from "../../../src/pipeline/backup/finish.ts";
import { SendHolds, holdTags } from "../../../src/pipeline/backup/holds.ts";
import { HEADS_FORMAT, type Heads } from "../../../src/records/heads.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import { NO_TRUST } from "../../../src/records/trust.ts";
import { RunDir, type BackupState, type ChunkState } from "../../../src/state/rundir.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { headsKey, manifestKey, partKey } from "../../../src/store/layout.ts";
import type { PutOptions } from "../../../src/store/store.ts";
import { ExitCode, type ZrbError } from "../../../src/util/errors.ts";
import { log } from "../../../src/util/log.ts";
import { backupState, standInDir } from "./helpers.ts";
import { StoreError, type ObjectStore, type StoreErrorKind } from "../../../src/store/store.ts";

/** A store whose delete fails for the keys in `fail` with that error, and removes the others from `objects`. */
function store(objects: Set<string>, fail: Record<string, () => Error>): ObjectStore {
  return {
    location: "stub://bucket/",
    delete: async (k: string) => {
      if (fail[k]) throw fail[k]!();
      objects.delete(k);
    },
  } as unknown as ObjectStore;
}

const refused = (kind: StoreErrorKind) => () => new StoreError(kind, `${kind}: no`);

test("locked and access-denied objects are left and returned; the rest are deleted", async () => {
  const objects = new Set(["a", "b", "c", "d"]);
  const left = await deleteOrLeave(store(objects, { a: refused("locked"), c: refused("access-denied") }), ["a", "b", "c", "d"], "test objects");
  expect(left).toEqual(["a", "c"]);
  expect([...objects].sort()).toEqual(["a", "c"]);
});

test.each(["transient", "permanent", "no-bucket"] as const)("any other store failure (%s) fails the call", async (kind) => {
  const objects = new Set(["a", "b"]);
  await expect(deleteOrLeave(store(objects, { a: refused(kind) }), ["a", "b"], "test objects")).rejects.toBeInstanceOf(StoreError);
  expect(objects.has("a")).toBe(true);
});

test("an error that is not a store error (a bug) fails the call", async () => {
  await expect(deleteOrLeave(store(new Set(["a"]), { a: () => new TypeError("boom") }), ["a"], "test objects")).rejects.toBeInstanceOf(TypeError);
});

const cfg = { s3: structuredClone(DEFAULTS.s3) } as Config;
const chunk = (index: number, o: Partial<ChunkState> = {}): ChunkState => ({ index, plainSize: 100, blake3: "b", cipherSize: 150, sha256: "s", uploaded: true, ...o });
const stream = (size: number) => ({ size, blake3: "x" });

function refusal(f: () => unknown): ZrbError {
  let err: ZrbError | undefined;
  try {
    f();
  } catch (e) {
    err = e as ZrbError;
  }
  expect(err?.exitCode).toBe(ExitCode.FAILURE);
  return err!;
}

test("buildManifest: every part from 0, each recorded as stored, adding up to the stream; anything else is no manifest (exit 1)", () => {
  const m = buildManifest(cfg, backupState({ chunks: [chunk(0), chunk(1)] }), stream(200), "2.3");
  expect(m.parts.map((p) => [p.index, p.cipherSize, p.sha256])).toEqual([[0, 150, "s"], [1, 150, "s"]]);
  expect(m.stream.size).toBe(200);
  expect(refusal(() => buildManifest(cfg, backupState({ chunks: [chunk(0), chunk(1, { uploaded: false })] }), stream(200), "2.3")).message).toContain("part(s) 1 not recorded as stored");
  const holed: ChunkState[] = [chunk(0)];
  holed[2] = chunk(2);
  expect(refusal(() => buildManifest(cfg, backupState({ chunks: holed }), stream(200), "2.3")).message).toContain("part(s) 1 not recorded as stored");
  expect(refusal(() => buildManifest(cfg, backupState({ chunks: [chunk(0), chunk(1)] }), stream(250), "2.3")).message).toContain("hold 200 bytes of the 250-byte stream");
  expect(refusal(() => buildManifest(cfg, backupState({ chunks: [chunk(0), chunk(1, { sha256: undefined })] }), stream(200), "2.3")).message).toContain("no manifest written");
  refusal(() => buildManifest(cfg, backupState({ chunks: [] }), stream(0), "2.3"));
});

/**
 * finishBackup, discardState and commitManifest against a local-directory store and a stand-in
 * zfs (ZRB_ZFS) that records every hold and release, and whether the state file was still there
 * at that moment.
 */
describe("the end of a backup and a discarded one", () => {
  const task = { name: "t", pool: "tank", dataset: "ds", fullName: "tank/ds" } as unknown as Task;
  const fcfg = { store: "offsite", s3: { ...structuredClone(DEFAULTS.s3), enabled: false } } as unknown as Config;
  let dir = "";
  let rd: RunDir;
  let done = () => {};
  beforeEach(() => {
    ({ dir, done } = standInDir("zrb-finish-", (d) => {
      rd = new RunDir(join(d, "base"), "tank", "ds");
      return `#!/bin/sh
D=$(dirname "$0")
case "$1" in
  get) printf 'tank/ds\\t-\\ntank/ds@zrb_level0_old\\t1\\n'; exit 0 ;;
  hold|release) if [ -f "${rd.statePath}" ]; then s=state; else s=nostate; fi; echo "$* $s" >> "$D/calls"; exit 0 ;;
esac
echo "unexpected: $*" >&2
exit 1
`;
    }));
  });
  afterEach(() => done());
  const calls = () => (existsSync(join(dir, "calls")) ? readFileSync(join(dir, "calls"), "utf8").split("\n").filter((l) => l !== "") : []);
  const oldHeads: Heads = { format: HEADS_FORMAT, updatedAt: new Date(0).toISOString(), levels: { "0": { backupId: "B0", snapshot: { name: "tank/ds@zrb_level0_old", guid: "7" }, finishedAt: new Date(0).toISOString() } } };
  const manifest = { backupId: "B1", pool: "tank", dataset: "ds", level: 0, snapshot: { name: "tank/ds@zrb_level0_new", guid: "8" }, finishedAt: new Date(1000).toISOString() } as Manifest;

  /** A local store whose put of `failKey` fails, that lists the uploads it is given and records aborts. */
  class Flaky extends LocalStore {
    failKey = "";
    uploads: { key: string; uploadId: string }[] = [];
    aborted: string[] = [];
    override async put(key: string, body: Uint8Array | string, o?: PutOptions): Promise<void> {
      if (key === this.failKey) throw new StoreError("transient", `${key}: connection reset`);
      return super.put(key, body, o);
    }
    override async listUploads(prefix: string): Promise<{ key: string; uploadId: string }[]> {
      return this.uploads.filter((u) => u.key.startsWith(prefix));
    }
    override async abortUpload(_key: string, uploadId: string): Promise<void> {
      this.aborted.push(uploadId);
    }
  }

  function begun(): { state: BackupState; holds: SendHolds } {
    const state = backupState({ snapshot: { name: "tank/ds@zrb_level0_new", guid: "8" }, parent: null });
    rd.writeState(state);
    mkdirSync(rd.spillDir("B1"), { recursive: true });
    writeFileSync(join(rd.spillDir("B1"), "part-000000.age"), "x");
    return { state, holds: new SendHolds(holdTags(fcfg).send) };
  }

  test("heads not stored: the state, spill files, base holds and send holds all stay for the rerun", async () => {
    const store = new Flaky(join(dir, "store"));
    store.failKey = headsKey("tank", "ds");
    const { state, holds } = begun();
    await holds.take([state.snapshot.name]);
    await expect(finishBackup(fcfg, store, task, rd, state, manifest, holds, undefined, NO_TRUST, Promise.resolve(oldHeads))).rejects.toThrow("connection reset");
    expect(existsSync(rd.statePath)).toBe(true);
    expect(existsSync(join(rd.spillDir("B1"), "part-000000.age"))).toBe(true);
    expect(calls()).toEqual(["hold zrb-send.offsite tank/ds@zrb_level0_new state"]);
  });

  test("heads stored: the new base is held before the old one and the send holds are released, the state goes last, then the spill files", async () => {
    const store = new Flaky(join(dir, "store"));
    const { state, holds } = begun();
    await holds.take([state.snapshot.name]);
    await finishBackup(fcfg, store, task, rd, state, manifest, holds, undefined, NO_TRUST, Promise.resolve(oldHeads));
    expect(calls()).toEqual([
      "hold zrb-send.offsite tank/ds@zrb_level0_new state",
      "hold zrb.offsite tank/ds@zrb_level0_new state",
      "release zrb.offsite tank/ds@zrb_level0_old state",
      "release zrb-send.offsite tank/ds@zrb_level0_new state",
    ]);
    expect(existsSync(rd.statePath)).toBe(false);
    expect(existsSync(rd.spillDir("B1"))).toBe(false);
  });

  test("discarding: another backup's uploads are not aborted, a finished backup's parts are kept, the store's own send tag is released from the snapshot and its parent — or nothing with keepHolds", async () => {
    const store = new Flaky(join(dir, "store"));
    const state = backupState({ level: 1, snapshot: { name: "tank/ds@zrb_level1_new", guid: "8" }, parent: { name: "tank/ds@zrb_level0_old", guid: "7", backupId: "B0", level: 0 } });
    const mine = partKey("tank", "ds", 1, "B1", 0);
    const theirs = partKey("tank", "ds", 1, "B2", 0);
    store.uploads = [
      { key: partKey("tank", "ds", 1, "B1", 1), uploadId: "u-mine" },
      { key: theirs, uploadId: "u-theirs" }, // another host's backup in flight at the same level
    ];
    await store.put(mine, "part");
    await store.put(manifestKey("tank", "ds", "B1"), "manifest"); // killed after its manifest was stored
    rd.writeState(state);
    const warn = spyOn(log, "warn").mockImplementation(() => {});
    try {
      expect(await discardState(store, state, rd, { keepHolds: true, sendTag: "zrb-send.offsite" })).toEqual({ partsKept: true });
      expect(store.aborted).toEqual(["u-mine"]);
      expect(await store.head(mine)).toBeTruthy();
      expect(calls()).toEqual([]);
      expect(existsSync(rd.statePath)).toBe(false);

      rd.writeState(state);
      await discardState(store, state, rd, { sendTag: "zrb-send.offsite" });
      expect(calls().map((c) => c.replace(/ (no)?state$/, ""))).toEqual(["release zrb-send.offsite tank/ds@zrb_level1_new", "release zrb-send.offsite tank/ds@zrb_level0_old"]);
    } finally {
      warn.mockRestore();
    }
  });

  test("committing a manifest aborts the backup's own stray uploads only", async () => {
    const store = new Flaky(join(dir, "store"));
    store.uploads = [
      { key: partKey("tank", "ds", 0, "B1", 3), uploadId: "u-mine" },
      { key: partKey("tank", "ds", 0, "B2", 0), uploadId: "u-theirs" },
    ];
    const m = { ...manifest, parent: null } as Manifest;
    await commitManifest(fcfg, store, m);
    expect(store.aborted).toEqual(["u-mine"]);
    expect(await store.head(manifestKey("tank", "ds", "B1"))).toBeTruthy();
  });
});
