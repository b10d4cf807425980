/**
 * Shared by the unit tests: a fresh backup state of tank/ds (backup id B1), synthetic manifests of
 * tank/photos, a LocalStore in a directory of its own, a stand-in zfs or zpool binary, and a
 * LocalStore that records (or refuses) its deletes.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Manifest } from "../../../src/records/manifest.ts";
import { STATE_FORMAT, type BackupState } from "../../../src/state/rundir.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { partKey } from "../../../src/store/layout.ts";
import { StoreError, type ObjectInfo, type StoreErrorKind } from "../../../src/store/store.ts";
import { log } from "../../../src/util/log.ts";

export function backupState(o: Partial<BackupState> = {}): BackupState {
  return {
    format: "zrb-state/1",
    backupId: "B1",
    level: 0,
    pool: "tank",
    dataset: "ds",
    snapshot: { name: "tank/ds@s", guid: "1" },
    parent: null,
    sendFlags: [],
    chunkSize: 1 << 20,
    recipients: ["age1x"],
    startedAt: new Date().toISOString(),
    chunks: [],
    ...o,
  };
}

/** Monday 2027-03-01 02:00Z: when the synthetic histories of the catalog and prune tests start. */
export const T0 = Date.UTC(2027, 2, 1, 2);
/** The start stamp of a backup id (YYYYMMDDTHHMMSSZ) at time `t`. */
export const stamp = (t: number) => new Date(t).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");

let n = 0;
/** A manifest of tank/photos, a backup started at `t`, with `parts` parts of 1 MiB each (no bytes behind it). */
export function mk(level: number, t: number, parent: Manifest | null, o: { parts?: number; storageClass?: string; snapName?: string } = {}): Manifest {
  const id = `${stamp(t)}-L${level}-${(++n).toString(16).padStart(6, "0")}`;
  const parts = Array.from({ length: o.parts ?? 1 }, (_, i) => ({
    index: i,
    key: partKey("tank", "photos", level, id, i),
    plainSize: 1024 * 1024,
    cipherSize: 1024 * 1024 + 200,
    sha256: "0".repeat(64),
    blake3: "0".repeat(64),
  }));
  return {
    format: "zrb-manifest/1",
    backupId: id,
    pool: "tank",
    dataset: "photos",
    level,
    snapshot: { name: `tank/photos@${o.snapName ?? `zrb_level${level}_${stamp(t)}`}`, guid: String(1000 + n) },
    parent: parent && { name: parent.snapshot.name, guid: parent.snapshot.guid, backupId: parent.backupId, level: parent.level },
    send: { flags: [], zfs: "zfs" },
    stream: { size: parts.length * 1024 * 1024, blake3: "0".repeat(64) },
    recipients: [],
    storageClass: o.storageClass ?? "STANDARD",
    chunkSize: 1024 * 1024,
    parts,
    tool: { name: "zrb", version: "test" },
    host: "nas",
    startedAt: new Date(t).toISOString(),
    finishedAt: new Date(t + 60_000).toISOString(),
  };
}

/** Every part of every manifest as a listed object, written when its backup finished. */
export const listingOf = (ms: Manifest[]): ObjectInfo[] => ms.flatMap((m) => m.parts.map((p) => ({ key: p.key, size: p.cipherSize, lastModified: new Date(m.finishedAt) })));

/** `fn` with a LocalStore in a fresh directory (`dir`, for other files too), removed afterwards. */
export async function withStore(fn: (store: LocalStore, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "zrb-unit-"));
  try {
    await fn(new LocalStore(join(dir, "store")), dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A stand-in `zfs` (or `zpool`): writes `script` to `<dir>/<tool>`, makes it executable and points
 * ZRB_ZFS (or ZRB_ZPOOL) at it. Returns the function that puts the variable back as it was (unset
 * if it was unset); removing `dir` is the caller's. Throws (ENOENT and the like) if the script
 * cannot be written, e.g. when `dir` does not exist; the variable is then left untouched.
 */
export function standIn(dir: string, script: string, tool: "zfs" | "zpool" = "zfs"): () => void {
  const env = tool === "zfs" ? "ZRB_ZFS" : "ZRB_ZPOOL";
  const bin = join(dir, tool);
  writeFileSync(bin, script);
  chmodSync(bin, 0o755);
  const saved = process.env[env];
  process.env[env] = bin;
  return () => {
    if (saved === undefined) delete process.env[env];
    else process.env[env] = saved;
  };
}

/**
 * A LocalStore that records the keys it deletes, in order, and refuses to delete the keys in
 * `refuse`: delete throws a StoreError of that kind (as a bucket policy, an object lock or a legal
 * hold would) and deletes nothing. Any other failure is LocalStore's own.
 */
export class RecordingStore extends LocalStore {
  deletes: string[] = [];
  refuse = new Map<string, StoreErrorKind>();
  override async delete(key: string): Promise<void> {
    const kind = this.refuse.get(key);
    if (kind) throw new StoreError(kind, `${key}: refused (${kind})`);
    this.deletes.push(key);
    await super.delete(key);
  }
}

/**
 * A fresh directory (named from `prefix`) with a stand-in zfs in it (standIn), for one test.
 * `script` may be a function of the directory, for a script that names files in it. `done` puts
 * ZRB_ZFS back and removes the directory. Throws if the directory or the script cannot be made
 * (or `script` throws); the directory is then removed and ZRB_ZFS left untouched.
 */
export function standInDir(prefix: string, script: string | ((dir: string) => string)): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let restore: () => void;
  try {
    restore = standIn(dir, typeof script === "string" ? script : script(dir));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    done: () => {
      restore();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One test's scene for a run against a local-directory store: standInDir(prefix, zfsScript), a
 * `Store` in the directory's `store` folder, and log.warn and log.info silenced. `done` puts the
 * log and ZRB_ZFS back and removes the directory. Throws what standInDir or the Store's
 * constructor throws; nothing is then left changed.
 */
export function storeScene<S extends LocalStore>(prefix: string, Store: new (root: string) => S, zfsScript: string): { dir: string; store: S; done: () => void } {
  const scene = standInDir(prefix, zfsScript);
  let store: S;
  try {
    store = new Store(join(scene.dir, "store"));
  } catch (err) {
    scene.done();
    throw err;
  }
  const saved = { warn: log.warn, info: log.info };
  log.warn = () => {};
  log.info = () => {};
  const done = () => {
    log.warn = saved.warn;
    log.info = saved.info;
    scene.done();
  };
  return { dir: scene.dir, store, done };
}

/** A state of tank/photos for backup `id` (level 1 on `parent`): chunk 0 stored, chunk 1 in a multipart upload. */
export function stateOf(id: string, parent: Manifest, uploadId: string): BackupState {
  return {
    format: STATE_FORMAT,
    backupId: id,
    level: 1,
    pool: "tank",
    dataset: "photos",
    snapshot: { name: "tank/photos@zrb_level1_20270310T020000Z", guid: "77" },
    parent: { name: parent.snapshot.name, guid: parent.snapshot.guid, backupId: parent.backupId, level: 0 },
    sendFlags: [],
    chunkSize: 1024,
    recipients: ["age1x"],
    startedAt: new Date().toISOString(),
    chunks: [
      { index: 0, plainSize: 1024, blake3: "0".repeat(64), cipherSize: 1224, sha256: "0".repeat(64), uploaded: true },
      { index: 1, plainSize: 1024, blake3: "0".repeat(64), uploaded: false, multipart: { uploadId, partSize: 512, parts: [] } },
    ],
  };
}
