/**
 * ZFS name rules in one place: what the config accepts for pools and datasets, what restore
 * accepts as a target, and what a manifest from the bucket may name as a snapshot. A name that
 * passes here contains no control character, no '@' or '#' where they do not belong, and no
 * '.'/'..' component.
 */

/** One component of a dataset path, or a snapshot's short name: letters, digits, _ . : - and space. */
export const COMPONENT_RE = /^[A-Za-z0-9_.: -]+$/;
export const MAX_NAME = 255;
const POOL_RESERVED = ["mirror", "raidz", "draid", "spare", "log"];

/** Why `pool` is not a valid pool name, or undefined. */
export function poolProblem(pool: string): string | undefined {
  if (pool === "") return "it is empty";
  if (pool.includes("/")) return "it must not contain '/'";
  if (!/^[A-Za-z]/.test(pool)) return "it must start with a letter";
  const c = /[^A-Za-z0-9_.: -]/.exec(pool);
  if (c) return `it contains ${JSON.stringify(c[0])} (allowed: letters, digits, '_', '-', '.', ':' and space)`;
  if (POOL_RESERVED.includes(pool) || /^(mirror|raidz|draid|spare)/.test(pool)) return "ZFS reserves that name (mirror, raidz, draid, spare, log)";
  if (pool.length > MAX_NAME) return `it is longer than ${MAX_NAME} characters`;
  return undefined;
}

/** Why `dataset` (the path inside the pool, "" for the root) is not valid, or undefined. */
export function datasetPathProblem(dataset: string): string | undefined {
  if (dataset === "") return undefined;
  if (dataset.startsWith("/")) return `it must be relative to the pool (e.g. ${JSON.stringify(dataset.replace(/^\/+/, ""))}), not start with '/'`;
  if (dataset.includes("@")) return "it must not contain '@' (zrb picks the snapshots itself)";
  if (dataset.includes("#")) return "it must not contain '#' (that names a bookmark)";
  if (dataset.includes("%")) return "it must not contain '%' (reserved by ZFS)";
  for (const part of dataset.split("/")) {
    if (part === "") return "it has an empty path component (a trailing '/' or '//')";
    if (part === "." || part === "..") return `it has a ${JSON.stringify(part)} component`;
    if (!COMPONENT_RE.test(part)) {
      const c = /[^A-Za-z0-9_.: -]/.exec(part)![0];
      return `it contains ${JSON.stringify(c)} (allowed: letters, digits, '_', '-', '.', ':', space and '/' between components)`;
    }
  }
  return undefined;
}

/** Why a full dataset name `pool[/path]` is not valid, or undefined. */
export function datasetProblem(name: string): string | undefined {
  const slash = name.indexOf("/");
  const pool = slash < 0 ? name : name.slice(0, slash);
  const why = poolProblem(pool) ?? (slash < 0 ? undefined : datasetPathProblem(name.slice(slash + 1)));
  if (why) return why;
  if (name.length > MAX_NAME) return `it is longer than ${MAX_NAME} characters`;
  return undefined;
}

/** Whether `name` is a snapshot `fs@short` of exactly the dataset `fs`, with a valid short name. */
export function isSnapshotOf(name: unknown, fs: string): boolean {
  if (typeof name !== "string" || !name.startsWith(fs + "@")) return false;
  const short = name.slice(fs.length + 1);
  return short !== "" && COMPONENT_RE.test(short) && name.length <= MAX_NAME;
}

/**
 * Why a child dataset's name component cannot be a run directory below its parent's (zrb's local
 * state lives in base_dir/<pool>/<dataset>/, state/rundir.ts): the parent keeps its lock, state,
 * head cache and spill directory there (and a tree its lock).
 */
export function runDirNameProblem(component: string): string | undefined {
  if (component === "spill" || /\.(lock|yaml)$/.test(component))
    return `${JSON.stringify(component)} is a name zrb uses in its parent's run directory (zrb.lock, tree.lock, backup_state.yaml, spill)`;
  return undefined;
}
