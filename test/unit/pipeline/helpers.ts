/** Shared by the unit tests: a fresh backup state of tank/ds (backup id B1), synthetic manifests of tank/photos, a LocalStore in a directory of its own. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Manifest } from "../../../src/records/manifest.ts";
import type { BackupState } from "../../../src/state/rundir.ts";
import { LocalStore } from "../../../src/store/local.ts";
import { partKey } from "../../../src/store/layout.ts";
import type { ObjectInfo } from "../../../src/store/store.ts";

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
