/**
 * The bucket layout, in one place. Under the configured prefix:
 *   data/<pool>/<dataset>/level<N>/<backup id>/part-000000.age   one age file per chunk, in stream order
 *   manifests/<pool>/<dataset>/<backup id>.manifest.yaml          one per finished backup (the commit point)
 *   manifests/<pool>/<dataset>/<backup id>.catalog.age             its file catalog, age-encrypted (records/file-catalog.ts)
 *   manifests/<pool>/<dataset>/<backup id>.inflight.yaml          the marker of a backup in progress (records/marker.ts)
 *   manifests/<pool>/<dataset>/heads.yaml                         the per-level heads (a cache of the manifests)
 *   manifests/<pool>/<dataset>/verify-rotation.yaml               progress of `zrb verify --rotate`
 *   manifests/<pool>/<dataset>/tree.yaml                          a recursive task's known children
 * A child of a recursive task is a dataset like any other: its keys sit below its parent's
 * (data/<pool>/<dataset>/<child>/…), which is why a child may not be named like those files.
 * Backup ids (20261124T023000Z-L1-3fa9c2) are unique per run and sort by start time.
 */
import { now } from "../util/clock.ts";

export function fullName(pool: string, dataset: string): string {
  return dataset ? `${pool}/${dataset}` : pool;
}

/** Everything of one dataset's data (parts of every backup): data/<pool>/<dataset>/ */
export function datasetDataPrefix(pool: string, dataset: string): string {
  return `data/${fullName(pool, dataset)}/`;
}

/** The parts of one backup: data/<pool>/<dataset>/level<N>/<backup id>/ */
export function dataPrefix(pool: string, dataset: string, level: number, backupId: string): string {
  return `${datasetDataPrefix(pool, dataset)}level${level}/${backupId}/`;
}

/** Part `index` of a backup; zero-padded so that keys sort in stream order. */
export function partKey(pool: string, dataset: string, level: number, backupId: string, index: number): string {
  return `${dataPrefix(pool, dataset, level, backupId)}${partFileName(index)}`;
}

/** part-000042.age: also the name of its spill and scratch files (never taken from a manifest). */
export function partFileName(index: number): string {
  return `part-${String(index).padStart(6, "0")}.age`;
}

/** Whether `key` is a part object of the dataset whose data prefix is `base` (not a child dataset's). */
export function isPartKey(base: string, key: string): boolean {
  return key.startsWith(base) && /^level\d+\/[0-9A-Za-z-]+\/[^/]+$/.test(key.slice(base.length));
}

export function manifestDir(pool: string, dataset: string): string {
  return `manifests/${fullName(pool, dataset)}/`;
}

export function manifestKey(pool: string, dataset: string, backupId: string): string {
  return `${manifestDir(pool, dataset)}${backupId}.manifest.yaml`;
}

export function isManifestKey(dir: string, key: string): boolean {
  return key.startsWith(dir) && key.endsWith(".manifest.yaml") && !key.slice(dir.length).includes("/");
}

/**
 * The file catalog of a backup (records/file-catalog.ts), beside its manifest. zrb rekey writes
 * a re-encrypted one under a new `tag` (…catalog-<tag>.age) before the manifest names it, so a
 * killed rekey never leaves a manifest whose catalog no longer matches it. Ends in .age, which a
 * child dataset may not (layoutNameProblem), and never in .manifest.yaml.
 */
export function catalogKey(pool: string, dataset: string, backupId: string, tag?: string): string {
  return `${manifestDir(pool, dataset)}${backupId}.catalog${tag ? `-${tag}` : ""}.age`;
}

const CATALOG_NAME = /^([0-9A-Za-z-]{1,64})\.catalog(?:-[0-9a-f]{1,32})?\.age$/;

/** The backup id of a catalog key directly under `dir`, or null for any other key. */
export function backupIdOfCatalogKey(dir: string, key: string): string | null {
  if (!key.startsWith(dir)) return null;
  return CATALOG_NAME.exec(key.slice(dir.length))?.[1] ?? null;
}

/**
 * The in-flight marker of a backup in progress (records/marker.ts), beside the manifest it becomes:
 * a child dataset cannot be named like a .yaml (layoutNameProblem), so it never clashes with a
 * child's prefix, and it never ends in .manifest.yaml, so manifest listings skip it.
 */
export function markerKey(pool: string, dataset: string, backupId: string): string {
  return `${manifestDir(pool, dataset)}${backupId}.inflight.yaml`;
}

export function isMarkerKey(dir: string, key: string): boolean {
  return key.startsWith(dir) && key.endsWith(".inflight.yaml") && !key.slice(dir.length).includes("/");
}

/** The backup id a marker key names (`…/<id>.inflight.yaml`). */
export function backupIdOfMarkerKey(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1).replace(/\.inflight\.yaml$/, "");
}

/** The backup id a manifest key names (`…/<id>.manifest.yaml`). */
export function backupIdOfKey(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1).replace(/\.manifest\.yaml$/, "");
}

/**
 * Why a child dataset's name component cannot sit beside the files the layout keeps under its
 * parent's prefixes (heads.yaml, <id>.manifest.yaml, tree.yaml, part-000000.age): on the local
 * store those are files, so a child of that name would need a directory in their place.
 */
export function layoutNameProblem(component: string): string | undefined {
  if (/\.(yaml|age)$/.test(component)) return `${JSON.stringify(component)} ends in .yaml or .age, like the files zrb keeps beside a dataset's children in the bucket (heads.yaml, <id>.manifest.yaml, part-000000.age)`;
  return undefined;
}

export function headsKey(pool: string, dataset: string): string {
  return `${manifestDir(pool, dataset)}heads.yaml`;
}

/** The known children of a recursive task, beside its root's manifests (records/tree.ts). */
export function treeKey(pool: string, dataset: string): string {
  return `${manifestDir(pool, dataset)}tree.yaml`;
}

/** Where `zrb verify --rotate` keeps its progress (in the bucket: a rebuilt NAS continues the rotation). */
export function rotationKey(pool: string, dataset: string): string {
  return `${manifestDir(pool, dataset)}verify-rotation.yaml`;
}

/** When a backup started, from its id (to the second), or null for an id of another form. */
export function backupIdTime(id: string): Date | null {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z-/.exec(id);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : null;
}

/** Unique, sortable backup id: UTC time, level, random suffix. */
export function newBackupId(level: number, at = now()): string {
  const t = at.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const rand = Buffer.from(crypto.getRandomValues(new Uint8Array(3))).toString("hex");
  return `${t}-L${level}-${rand}`;
}

/**
 * Whether `name` has the form newBackupId gives, `<time>-L<level>-<6 hex>`: the one name rule
 * for the local directories zrb names after a backup (spill, restore scratch), which cleanup
 * may remove — anything else found there is not zrb's and stays.
 */
export function isNewBackupId(name: string): boolean {
  return /^\d{8}T\d{6}Z-L\d{1,3}-[0-9a-f]{6}$/.test(name);
}
