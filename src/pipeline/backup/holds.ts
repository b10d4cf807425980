/**
 * The holds zrb puts on snapshots, so that nothing — not even an outside pruner — destroys what
 * a backup needs:
 *   zrb-send  on the snapshot being sent and its base, for the run (a killed run leaks it; the
 *             next run under the dataset lock releases what is not its own);
 *   zrb       on every head's snapshot: the base of the next incremental at each level, for as
 *             long as it is a head. Only ever on snapshots of the task's own dataset.
 * Each store of a task (config/stores.ts) has its own pair of tags, `zrb.<store>` and
 * `zrb-send.<store>` (the store `default` keeps the two above): a store holds its own bases and
 * releases only its own, so a snapshot stays held while any store still needs it as a base.
 */
import type { Heads } from "../../records/heads.ts";
import * as zfs from "../../zfs/zfs.ts";
import { isSnapshotOf } from "../../zfs/names.ts";
import { log } from "../../util/log.ts";

export const SEND_HOLD = "zrb-send";
export const BASE_HOLD = "zrb";

/** The hold tags of the store a config view is for (config/stores.ts). */
export function holdTags(cfg: { store?: string }): { send: string; base: string } {
  const s = cfg.store;
  return !s || s === "default" ? { send: SEND_HOLD, base: BASE_HOLD } : { send: `${SEND_HOLD}.${s}`, base: `${BASE_HOLD}.${s}` };
}

/** The run's send holds: taken one by one, all released on every exit path. */
export class SendHolds {
  private readonly held: string[] = [];
  constructor(private readonly tag = SEND_HOLD) {}
  async take(snapshots: (string | undefined)[]): Promise<void> {
    for (const s of snapshots) {
      if (!s) continue;
      await zfs.hold(this.tag, s);
      this.held.push(s);
    }
  }
  /** Release all; a failure is logged, never thrown (this runs in finally blocks). */
  async releaseAll(): Promise<void> {
    while (this.held.length > 0) {
      const s = this.held.pop()!;
      try {
        await zfs.release(this.tag, s);
      } catch (err) {
        log.error((err as Error).message);
      }
    }
  }
}

/**
 * Release `zrb-send` holds on every snapshot of fs but `keep`. Only call it under the
 * dataset's lock: no other run of this host can be sending then, so such holds were leaked
 * by a killed run. (zfs-fuse has no `zfs holds`; releasing a tag that is not there is a no-op.)
 * Returns the snapshots that had any user hold and were tried.
 */
export async function releaseStraySendHolds(fs: string, keep: (string | undefined)[], tag = SEND_HOLD): Promise<string[]> {
  const tried: string[] = [];
  for (const [snap, n] of await zfs.userRefs(fs)) {
    if (n === 0 || keep.includes(snap)) continue;
    tried.push(snap);
    await zfs.release(tag, snap);
  }
  return tried;
}

/**
 * Keep a persistent hold on every snapshot a future incremental may start from — only ever on
 * snapshots of this dataset — and release it from snapshots that are no longer heads. A head
 * whose snapshot is gone from the pool is reported: the backup itself is complete, but the next
 * incremental above it needs a lower level first.
 */
export async function moveBaseHolds(fs: string, heads: Heads, tag = BASE_HOLD): Promise<void> {
  const want = new Set(Object.values(heads.levels).map((h) => h.snapshot.name).filter((n) => isSnapshotOf(n, fs)));
  for (const s of want) {
    if (!(await zfs.holdIfExists(tag, s)))
      log.warn(`snapshot ${s} no longer exists on ${fs}: the next incremental cannot start from it; back up a lower level next`);
  }
  for (const [snap, n] of await zfs.userRefs(fs)) {
    if (n > 0 && !want.has(snap) && snap.slice(fs.length + 1).startsWith("zrb_level")) await zfs.release(tag, snap);
  }
}
