/**
 * What anything that deletes from the bucket (`zrb cleanup`, `zrb prune`) must never delete,
 * read before it deletes a thing: every manifest of the dataset and the resumable backup of
 * backup_state.yaml. A part is an orphan only when it is provably unreferenced, so when any
 * manifest or the state file cannot be read, nothing is deleted at all (exit 7): the parts it
 * describes would look orphaned, and they may be the base of the whole chain.
 */
import type { Task } from "../config/config.ts";
import { listManifests, type Manifest } from "../state/manifest.ts";
import type { BackupState, RunDir } from "../state/rundir.ts";
import { dataPrefix, isPartKey } from "../store/layout.ts";
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
}

/** Read what must stay; `what` ("cleanup", "prune") names the command in the refusal. */
export async function readReferences(store: ObjectStore, task: Task, rd: RunDir, what: string): Promise<References> {
  const stopped = `${what} of ${task.fullName} stopped, nothing was deleted`;
  const read = await rd.readState();
  if (read.kind === "unusable")
    throw integrityError(
      `${stopped}: ${rd.statePath} cannot be read (${read.why}) and may describe an interrupted backup whose parts would look orphaned; ` +
        `run the next backup (it discards that file) or remove it, then rerun ${what}`,
    );
  const state = read.kind === "ok" ? read.state : null;
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
  return {
    state,
    manifests,
    keepPrefix: state?.backupId ? dataPrefix(state.pool, state.dataset, state.level, state.backupId) : null,
    keepUploads,
  };
}

/**
 * The part objects under `base` (the dataset's data prefix, from a listing of it) that none of
 * `manifests` refers to and that are not the resumable backup's. The parts of a backup that a
 * manifest names as its parent are never orphans, even when that parent's manifest is lost:
 * putting the manifest back repairs the chain, deleting the parts would not.
 */
export function orphanParts(listing: ObjectInfo[], base: string, manifests: Manifest[], keepPrefix: string | null): ObjectInfo[] {
  const referenced = new Set<string>();
  for (const m of manifests) for (const p of m.parts) referenced.add(p.key);
  const kept = manifests.flatMap((m) => (m.parent ? [dataPrefix(m.pool, m.dataset, m.parent.level, m.parent.backupId)] : []));
  if (keepPrefix) kept.push(keepPrefix);
  return listing.filter((o) => isPartKey(base, o.key) && !referenced.has(o.key) && !kept.some((k) => o.key.startsWith(k)));
}
