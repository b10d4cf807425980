/**
 * `zrb find`: which restore points hold the paths a glob matches, from the file catalogs alone
 * (no data part is read). Every trusted backup whose chain resolves is a point; its files are
 * rebuilt from its chain's catalogs (state.ts), each catalog fetched once, checked against its
 * manifest's size and SHA-256 (a mismatch is exit 7) and decrypted with the private key. A point
 * whose chain lacks a catalog (catalog off, a volume, a listing that failed, an older zrb) is
 * named, not guessed at. Also the library answer to "which points have this path" that
 * `zrb restore --path` gives when a path is missing from the chosen snapshot.
 */
import type { ObjectStore } from "../../store/store.ts";
import { MAX_CATALOG_BYTES, openCatalog, type FileCatalog, type FileEntry } from "../../records/file-catalog.ts";
import type { Trust } from "../../records/trust.ts";
import { loadCatalog, type CatalogEntry } from "../catalog.ts";
import { applyCatalog, type PointFiles } from "./state.ts";
import { compileGlob } from "./glob.ts";
import { compareTimes } from "../../util/clock.ts";

/** A restore point as `zrb restore --backup-id` / `--snapshot` take it. */
export interface FoundPoint {
  backupId: string;
  snapshot: string;
  level: number;
  finishedAt: string;
  restorable: boolean;
}

export interface FoundVersion {
  type: FileEntry["type"];
  size: number;
  mtime: number;
  /** The newest and oldest points holding this version, and how many do. */
  newest: FoundPoint;
  oldest: FoundPoint;
  points: number;
}

export interface FoundPath {
  path: string;
  /** Not in the newest point searched: deleted since `lastSeen`. */
  deleted: boolean;
  lastSeen: FoundPoint;
  /** Newest first. */
  versions: FoundVersion[];
}

export interface FindResult {
  dataset: string;
  pattern: string;
  /** Points searched (with --since, those finished since). */
  searched: number;
  newest: FoundPoint | null;
  noCatalog: { backupId: string; why: string }[];
  matches: FoundPath[];
}

const pointOf = (e: CatalogEntry): FoundPoint => ({ backupId: e.backupId, snapshot: e.snapshot, level: e.level, finishedAt: e.finishedAt, restorable: e.restorable });

/** Every point's files (only paths `keep` accepts), oldest first; the points that have no catalog, and why. */
async function pointFiles(store: ObjectStore, pool: string, dataset: string, identities: string[], trust: Trust, keep: (p: string) => boolean) {
  const cat = await loadCatalog(store, pool, dataset, trust);
  const files = new Map<string, PointFiles>();
  const points: { point: FoundPoint; files: PointFiles }[] = [];
  const noCatalog: FindResult["noCatalog"] = [];
  const opened = new Map<string, FileCatalog>();
  for (const e of cat.entries) {
    if (e.problem?.kind === "unauthenticated" || e.chain.at(-1) !== e.backupId) continue; // not trusted, or its chain does not resolve
    const ref = cat.manifests.get(e.backupId)!.catalog;
    const prev = e.parentBackupId === null ? null : files.get(e.parentBackupId);
    if (!ref || (ref.kind === "changes" && !prev)) {
      noCatalog.push({ backupId: e.backupId, why: ref ? "a backup of its chain has no catalog" : "it has no catalog" });
      continue;
    }
    let c = opened.get(ref.key);
    if (!c) {
      const body = await store.get(ref.key, { maxBytes: MAX_CATALOG_BYTES });
      if (body === null) {
        noCatalog.push({ backupId: e.backupId, why: `its catalog ${store.urlOf(ref.key)} is missing (zrb verify reports it)` });
        continue;
      }
      c = await openCatalog(body, ref, identities);
      opened.set(ref.key, c);
    }
    const f = applyCatalog(prev ?? null, c, keep);
    files.set(e.backupId, f);
    points.push({ point: pointOf(e), files: f });
  }
  return { points, noCatalog };
}

const sameVersion = (v: FoundVersion, e: FileEntry) => v.type === e.type && v.size === e.size && v.mtime === e.mtime;

/** The paths matching `pattern` at each point since `since`, newest first. */
export async function findFiles(
  store: ObjectStore,
  pool: string,
  dataset: string,
  o: { pattern: string; identities: string[]; trust: Trust; since?: Date },
): Promise<FindResult> {
  const match = compileGlob(o.pattern);
  const all = await pointFiles(store, pool, dataset, o.identities, o.trust, match);
  const since = o.since?.toISOString();
  const points = all.points.filter((p) => since === undefined || compareTimes(p.point.finishedAt, since) >= 0).reverse();
  const found = new Map<string, FoundPath>();
  for (const { point, files } of points) {
    for (const e of files.values()) {
      let f = found.get(e.path);
      if (!f) {
        f = { path: e.path, deleted: point !== points[0]!.point, lastSeen: point, versions: [] };
        found.set(e.path, f);
      }
      const v = f.versions.at(-1);
      if (v && sameVersion(v, e)) {
        v.oldest = point;
        v.points++;
      } else f.versions.push({ type: e.type, size: e.size, mtime: e.mtime, newest: point, oldest: point, points: 1 });
    }
  }
  const matches = [...found.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { dataset: dataset ? `${pool}/${dataset}` : pool, pattern: o.pattern, searched: points.length, newest: points[0]?.point ?? null, noCatalog: all.noCatalog, matches };
}

/**
 * The restore points whose catalogs hold `path` (relative to the dataset's root), newest first:
 * what `zrb restore --path` names when the path is not in the snapshot asked for.
 */
export async function restorePointsHolding(store: ObjectStore, pool: string, dataset: string, path: string, identities: string[], trust: Trust): Promise<FoundPoint[]> {
  const rel = path.replace(/^\/+/, "").replace(/\/+$/, "");
  const { points } = await pointFiles(store, pool, dataset, identities, trust, (p) => p === rel);
  return points.filter((p) => p.files.has(rel)).map((p) => p.point).reverse();
}
