/**
 * Drills killed with -9 (or a host that lost power) leave their pool, sparse file and clone
 * behind. The next drill, `zrb restore --path` and `zrb cleanup` remove them — only what is
 * provably a drill's and provably dead (pool.ts has the names):
 *   - a pool named zrbdrill<12 hex> whose vdev is <drill.dir>/<that name>.img,
 *   - a file <drill.dir>/zrbdrill<12 hex>.img or .lock (or an empty mount directory) with no pool on it,
 *   - a dataset <pool>/zrbdrill<12 hex>-src (pool: a task's pool) whose zrb:drill property
 *     is that id (its drill's lock: the one its zrb:drill-lock names, whichever drill.dir),
 *   - a staging directory of `restore --path` listed in <drill.dir>/zrbdrill<12 hex>.stages
 *     (stage.ts says what else it must be),
 * and in every case no live process holds <drill.dir>/zrbdrill<id>.lock (a drill running now
 * holds it from before it makes anything until after it removed everything).
 */
import { readdirSync, rmSync } from "node:fs";
import type { Config } from "../../config/config.ts";
import { lockHeld } from "../../state/lock.ts";
import { fsError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";
import * as zpool from "../../zfs/zpool.ts";
import { DRILL_LOCK_PROPERTY, DRILL_PREFIX, DRILL_PROPERTY, cloneName, dirProblem, drillDir, drillNames, removeDrill, removeEmptyDirs } from "./pool.ts";
import { removeStaleStages } from "./stage.ts";

export interface StaleRemoved {
  pools: string[];
  clones: string[];
  files: string[];
  /** restore --path's staging directories. */
  stages: string[];
}

const POOL_RE = new RegExp(`^${DRILL_PREFIX}([0-9a-f]{12})$`);
const ENTRY_RE = new RegExp(`^${DRILL_PREFIX}([0-9a-f]{12})(\\.img|\\.src|\\.lock|\\.stages)?$`);

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Remove the leftovers of dead drills (see the header); `sourcePools`: the pools whose root may
 * hold a drill's clone. `dryRun`: only say what would be removed.
 */
export async function removeStaleDrills(cfg: Pick<Config, "baseDir" | "drill">, sourcePools: string[], o: { dryRun?: boolean } = {}): Promise<StaleRemoved> {
  const dir = drillDir(cfg);
  const out: StaleRemoved = { pools: [], clones: [], files: [], stages: [] };
  // Every drill makes drill.dir first and keeps its file and lock there: without it, nothing here
  // can be a drill's (a prune host without zfs runs `zrb cleanup` too, and needs no zpool).
  // What is in a drill.dir others can write may be theirs (a link where a mount directory was):
  // nothing of it is removed, and nothing is destroyed on its word (a drill refuses it too).
  // One stat decides both: a drill.dir removed meanwhile is no drill.dir, not an internal error.
  let unsafe: string | undefined;
  try {
    unsafe = dirProblem(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return out;
    throw fsError(err, "checking drill.dir", dir);
  }
  if (unsafe) {
    log.warn(`${unsafe}; the leftovers of killed drills there are left alone until then`);
    return out;
  }
  const dead = (id: string) => !lockHeld(drillNames(dir, id).lock);
  for (const src of [...new Set(sourcePools)]) {
    for (const c of await zpool.childrenWithProps(src, [DRILL_PROPERTY, DRILL_LOCK_PROPERTY])) {
      const [id, lock] = c.values as [string, string];
      if (!POOL_RE.test(DRILL_PREFIX + id) || c.name !== cloneName(src, id)) continue;
      // The lock its drill holds, in whichever drill.dir (another store's is base_dir/stores/<name>/drill);
      // a clone made before zrb named it there: this drill.dir's.
      if (lockHeld(lock.startsWith("/") ? lock : drillNames(dir, id).lock)) continue;
      const why = o.dryRun ? undefined : await zpool.destroyClone(c.name);
      if (why) log.warn(`cannot destroy the stale drill clone ${c.name}: ${why}`);
      else out.clones.push(c.name);
    }
  }
  const pools = await zpool.listPools();
  for (const p of pools) {
    const id = POOL_RE.exec(p)?.[1];
    if (!id || !dead(id)) continue;
    const n = drillNames(dir, id);
    if (!(await zpool.poolVdevPaths(p)).includes(n.file)) continue; // a pool of that name on something else: not ours
    if (o.dryRun || (await removeDrill(n))) out.pools.push(p);
  }
  for (const e of entries(dir)) {
    const m = ENTRY_RE.exec(e);
    const pool = `${DRILL_PREFIX}${m?.[1]}`;
    if (!m || (pools.includes(pool) && !out.pools.includes(pool)) || !dead(m[1]!)) continue;
    if (m[2] === ".stages") {
      const r = await removeStaleStages({ id: m[1]!, stages: `${dir}/${e}` }, o.dryRun);
      out.stages.push(...r.stages);
      if (o.dryRun || !r.done) continue;
    }
    if (o.dryRun) continue;
    if (m[2] === ".img" || m[2] === ".lock" || m[2] === ".stages") rmSync(`${dir}/${e}`, { force: true });
    else removeEmptyDirs(`${dir}/${e}`);
    out.files.push(`${dir}/${e}`);
  }
  const did = o.dryRun ? "would remove" : "removed";
  for (const p of out.pools) log.info(`${did} the stale drill pool ${p} (its drill was killed)`);
  for (const c of out.clones) log.info(`${did} the stale drill clone ${c} (its drill was killed)`);
  for (const s of out.stages) log.info(`${did} the stale staging directory ${s} (its restore --path was killed)`);
  return out;
}
