/**
 * What anything that deletes from the bucket (`zrb cleanup`, `zrb prune`) must never delete,
 * read before it deletes a thing: every manifest of the dataset, the resumable backup of
 * backup_state.yaml, and every backup in flight on any host (its trusted in-flight marker,
 * records/marker.ts). A part is an orphan only when it is provably unreferenced, so when any
 * manifest or the state file cannot be read, nothing is deleted at all (exit 7): the parts it
 * describes would look orphaned, and they may be the base of the whole chain. And what no record
 * accounts for is still spared while it is younger than `prune.orphan_grace` (graceSplit): it
 * may be a backup whose marker this host could not see or trust.
 *
 * Order matters against a backup finishing meanwhile: the caller lists the data first, then the
 * markers are read, then the manifests. A part seen in that listing was uploaded after its
 * marker was written, and the marker is deleted only after the manifest is written, so the part
 * is claimed by one of the two.
 */
import type { Task } from "../config/config.ts";
import { listManifests, type Manifest } from "../records/manifest.ts";
import { readMarkers, type MarkerRead } from "../records/marker.ts";
import { manifestTrustProblem, type Trust } from "../records/trust.ts";
import { formatDuration, roughAge } from "../util/duration.ts";
import { log } from "../util/log.ts";
import type { BackupState, RunDir } from "../state/rundir.ts";
import { backupIdOfCatalogKey, dataPrefix, isPartKey } from "../store/layout.ts";
import type { ObjectInfo, ObjectStore } from "../store/store.ts";
import { integrityError } from "../util/errors.ts";

export interface References {
  /** The resumable backup, or null. */
  state: BackupState | null;
  /** Every manifest of the dataset, oldest first. */
  manifests: Manifest[];
  /** The resumable backup's own data prefix: its parts have no manifest yet. */
  keepPrefix: string | null;
  /** Multipart uploads the resumable backup continues. */
  keepUploads: Set<string>;
  /** Data prefixes of the backups in flight on any host (trusted markers), the local resumable one's too. */
  keepPrefixes: string[];
  /** Every in-flight marker of the dataset; `untrusted` says why one protects nothing. */
  markers: MarkerRead[];
  /** Trusted markers whose backup has a trusted manifest: moot, for prune and cleanup to delete. */
  moot: string[];
}

/** Read what must stay; `what` ("cleanup", "prune") names the command in the refusal. */
export async function readReferences(store: ObjectStore, task: Task, rd: RunDir, what: string, trust: Trust): Promise<References> {
  const stopped = `${what} of ${task.fullName} stopped, nothing was deleted`;
  const read = await rd.readState();
  if (read.kind === "unusable")
    throw integrityError(
      `${stopped}: ${rd.statePath} cannot be read (${read.why}) and may describe an interrupted backup whose parts would look orphaned; ` +
        `run the next backup (it discards that file) or remove it, then rerun ${what}`,
    );
  const state = read.kind === "ok" ? read.state : null;
  const markers = await readMarkers(store, task.pool, task.dataset, trust);
  const unreadable: { key: string; message: string }[] = [];
  const manifests = await listManifests(store, task.pool, task.dataset, (key, message) => unreadable.push({ key, message }));
  if (unreadable.length > 0) {
    const u = unreadable[0]!;
    throw integrityError(
      `${stopped}: manifest ${u.key} cannot be read (${u.message})` +
        (unreadable.length > 1 ? ` (and ${unreadable.length - 1} more)` : "") +
        `; a part is deleted only when no manifest can refer to it: put back a good copy of that manifest, use the zrb version that wrote it, or remove it if its backup is truly gone`,
    );
  }
  const keepUploads = new Set<string>();
  for (const c of state?.chunks ?? []) if (c?.multipart?.uploadId) keepUploads.add(c.multipart.uploadId);
  const keepPrefix = state?.backupId ? dataPrefix(state.pool, state.dataset, state.level, state.backupId) : null;
  const committed = new Set(manifests.filter((m) => manifestTrustProblem(m, trust) === undefined).map((m) => m.backupId));
  const keepPrefixes = keepPrefix ? [keepPrefix] : [];
  const moot: string[] = [];
  for (const r of markers) {
    if (r.untrusted) {
      // A marker that vanished meanwhile is its backup finishing: its manifest is read after it.
      if (r.marker || !/^it is gone/.test(r.untrusted)) log.warn(`in-flight marker ${store.urlOf(r.key)} is not trusted: ${r.untrusted}; it protects nothing by itself and is left alone`);
      continue;
    }
    const m = r.marker!;
    if (committed.has(m.backupId)) {
      moot.push(r.key);
      continue;
    }
    keepPrefixes.push(dataPrefix(task.pool, task.dataset, m.level, m.backupId));
    log.info(
      `kept backup ${m.backupId} (level ${m.level}): in flight on ${m.host || "an unnamed host"} since ${m.startedAt}, ` +
        `${m.progress.parts} part(s) stored by ${m.updatedAt}; zrb cleanup --abandon ${m.backupId} gives it up`,
    );
  }
  return { state, manifests, keepPrefix, keepUploads, keepPrefixes, markers, moot };
}

/** Whether a key lies under one of the kept prefixes. */
export const underKept = (key: string, prefixes: string[]) => prefixes.some((p) => key.startsWith(p));

/**
 * Split what no record accounts for into what may go and what `prune.orphan_grace` (or
 * `--older-than`) spares: younger than `graceMs`, or of unknown age when there is a grace.
 */
export function graceSplit<T extends { key: string }>(items: T[], at: (t: T) => Date | undefined, graceMs: number, nowMs: number, knob: string): { go: T[]; spared: (T & { why: string })[] } {
  const go: T[] = [];
  const spared: (T & { why: string })[] = [];
  for (const t of items) {
    const d = at(t);
    if (graceMs <= 0 || (d !== undefined && nowMs - d.getTime() >= graceMs)) go.push(t);
    else
      spared.push({
        ...t,
        why: `no manifest names it and no trusted in-flight marker claims it, but it is ${d ? `only ${roughAge(nowMs - d.getTime())} old` : "of unknown age"} (${knob} ${formatDuration(graceMs)}): it may be a backup running on another host`,
      });
  }
  return { go, spared };
}

/**
 * The part objects under `base` (the dataset's data prefix, from a listing of it) that none of
 * `manifests` refers to and that are not under `keep` (the resumable backup's, those in flight). The parts of a backup that a
 * manifest names as its parent are never orphans, even when that parent's manifest is lost:
 * putting the manifest back repairs the chain, deleting the parts would not.
 */
export function orphanParts(listing: ObjectInfo[], base: string, manifests: Manifest[], keep: string | string[] | null): ObjectInfo[] {
  const referenced = new Set<string>();
  for (const m of manifests) for (const p of m.parts) referenced.add(p.key);
  const kept = manifests.flatMap((m) => (m.parent ? [dataPrefix(m.pool, m.dataset, m.parent.level, m.parent.backupId)] : []));
  for (const k of Array.isArray(keep) ? keep : keep ? [keep] : []) kept.push(k);
  // A backup that has a manifest keeps every part under its id, whatever that manifest lists: a
  // manifest overwritten by someone without the signing key (parts: []) must not orphan the real parts.
  const withManifest = new Set(manifests.map((m) => m.backupId));
  const idOf = (key: string) => key.slice(base.length).split("/")[1] ?? "";
  return listing.filter((o) => isPartKey(base, o.key) && !referenced.has(o.key) && !withManifest.has(idOf(o.key)) && !kept.some((k) => o.key.startsWith(k)));
}

/**
 * The file catalogs (records/file-catalog.ts) in `listing` (of the dataset's manifest directory,
 * `dir`) that belong to no backup: the parts' rule, by backup id — a catalog is kept while any
 * manifest of its backup exists (trusted or not: a forged manifest must not orphan the real
 * catalog), while a manifest names its backup as parent, and while its backup is in flight or
 * resumable (`keep`: their data prefixes). The grace applies on top (graceSplit).
 */
export function orphanCatalogs(listing: ObjectInfo[], dir: string, manifests: Manifest[], keep: string[]): ObjectInfo[] {
  const ids = new Set<string>();
  for (const m of manifests) {
    ids.add(m.backupId);
    if (m.parent) ids.add(m.parent.backupId);
    const named = m.catalog ? backupIdOfCatalogKey(dir, m.catalog.key) : null;
    if (named) ids.add(named);
  }
  for (const k of keep) ids.add(k.replace(/\/$/, "").slice(k.replace(/\/$/, "").lastIndexOf("/") + 1));
  return listing.filter((o) => {
    const id = backupIdOfCatalogKey(dir, o.key);
    return id !== null && !ids.has(id);
  });
}
