/**
 * The drill compares with the SOURCE SNAPSHOT, never the live dataset (which has moved on).
 * Two ways to read a snapshot, chosen by what this host can do, not by its version string:
 *   - `<mountpoint>/.zfs/snapshot/<snap>`: OpenZFS, when the dataset is mounted and that
 *     directory opens (it mounts on first access); nothing to create or remove;
 *   - a read-only clone `<pool>/zrbdrill<id>-src` (pool.ts names it) with the user property
 *     zrb:drill=<id>, mounted under drill.dir: zfs-fuse (no .zfs directory), a dataset not
 *     mounted, and every zvol (its clone is a device `/dev/zvol/<clone>`). `close()` destroys
 *     it; after a kill -9 stale.ts does.
 * No snapshot of that name on this host (a restore-only host, or it was pruned locally): no
 * source, and the drill says so. A snapshot of that name with another guid than the backup's is
 * compared all the same, with a warning: the files decide whether what came back is what that
 * snapshot holds (a stored stream swapped for another dataset's is caught by its content).
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import * as zfs from "../../zfs/zfs.ts";
import * as zpool from "../../zfs/zpool.ts";
import { zfsError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";
import { DRILL_LOCK_PROPERTY, DRILL_PROPERTY, cloneName, removeEmptyDirs, type DrillNames } from "./pool.ts";

export type SourceView =
  | { kind: "none"; why: string }
  | { kind: "snapdir" | "clone"; path: string; volume: boolean; close(): Promise<void> };

/** A zvol's device appears a moment after the dataset (udev): wait for it. */
export async function waitForDevice(path: string, what: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    if (existsSync(path)) return path;
    await Bun.sleep(100);
  }
  throw zfsError(`the device ${path} of ${what} did not appear within 10 s; is udev running?`);
}

function opens(dir: string): boolean {
  try {
    readdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

/** A way to read `fs@snap` (whose guid the backup recorded), or why there is none. */
export async function openSource(fs: string, snap: string, guid: string, n: DrillNames): Promise<SourceView> {
  const full = `${fs}@${snap}`;
  const have = await zfs.getProp(full, "guid");
  if (have === null) return { kind: "none", why: `${full} is not on this host` };
  if (have !== guid) log.warn(`${full} on this host has guid ${have}, the backup says its snapshot had ${guid}; comparing the files with it all the same`);
  const info = await zfs.mountInfo(fs);
  const volume = info?.type === "volume";
  if (!volume && info?.mountpoint) {
    const dir = join(info.mountpoint, ".zfs", "snapshot", snap);
    if (opens(dir)) return { kind: "snapdir", path: dir, volume: false, close: async () => {} };
  }
  const clone = cloneName(fs.split("/")[0]!, n.id);
  // The lock path too: a cleanup for another store (another drill.dir) must see this drill alive.
  const props = { [DRILL_PROPERTY]: n.id, [DRILL_LOCK_PROPERTY]: n.lock };
  if (volume) await zpool.cloneVolume(full, clone, props);
  else await zpool.cloneReadOnly(full, clone, n.srcMnt, props);
  const close = async () => {
    const why = await zpool.destroyClone(clone);
    if (why) log.warn(`cannot destroy the drill's clone ${clone}: ${why}; the next drill or zrb cleanup removes it`);
    else removeEmptyDirs(n.srcMnt); // zfs leaves the mount point behind
  };
  try {
    const path = volume ? await waitForDevice(`/dev/zvol/${clone}`, `the clone ${clone}`) : n.srcMnt;
    return { kind: "clone", path, volume, close };
  } catch (err) {
    await close();
    throw err;
  }
}
