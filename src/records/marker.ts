/**
 * The in-flight marker of a backup in progress (`manifests/<pool>/<dataset>/<id>.inflight.yaml`).
 *
 * Why: a prune or cleanup on another host (docs/install-nas.md's split setup) cannot see the
 * NAS's backup_state.yaml, so the parts of a running backup, or of one killed and not resumed
 * yet, have no manifest and looked like orphans: they were deleted, and the NAS then wrote a
 * manifest naming them. The NAS now says in the bucket which backup is in flight (id, level,
 * host, when it started, how far it got), signed with its signing key, before the first part is
 * uploaded; it refreshes the progress now and then (time-based, never more than once per part)
 * and tries to delete the marker once the manifest is written (a NAS role without delete right
 * leaves it: a marker whose manifest exists is moot, and prune and cleanup remove it).
 *
 * Readers (references.ts) spare the data prefix of a backup whose marker is trusted; an
 * untrusted one (unsigned where keys are known, forged, another dataset's) protects nothing by
 * itself and is never deleted automatically — only `zrb cleanup --abandon ID` removes a marker.
 * Reads are bounded and validated like every record (record.ts): what does not parse is reported.
 */
import { hostname } from "node:os";
import YAML from "yaml";
import type { Signature, SigningKey } from "../crypto/signing.ts";
import { backupIdOfMarkerKey, isMarkerKey, manifestDir, markerKey } from "../store/layout.ts";
import { StoreError, type ObjectStore } from "../store/store.ts";
import { now } from "../util/clock.ts";
import { log } from "../util/log.ts";
import { readRecord } from "./record.ts";
import type { BackupState } from "../state/rundir.ts";
import { MARKER_DOMAIN, recordTrustProblem, signRecord, type Trust } from "./trust.ts";

export const MARKER_FORMAT = "zrb-inflight/1";
const MAX_MARKER_BYTES = 64 * 1024;
/** How often a running backup refreshes its marker's progress (at most once per uploaded part). */
export const MARKER_REFRESH_MS = 5 * 60_000;

export interface Marker {
  format: string;
  backupId: string;
  level: number;
  host: string;
  startedAt: string;
  updatedAt: string;
  /** Plaintext bytes and parts stored so far. */
  progress: { bytes: number; parts: number };
  /** Made with the NAS's signing key over the record placed at its pool and dataset (records/trust.ts). */
  signature?: Signature;
}

/** A marker as found in the bucket. */
export interface MarkerRead {
  key: string;
  /** The id its key names. */
  backupId: string;
  /** The record, when it is readable and well-formed. */
  marker?: Marker;
  /** Why it cannot protect anything (unreadable, malformed, not trusted), or undefined. */
  untrusted?: string;
}

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;
const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

/** Why a parsed marker at the key of backup `id` is not usable, or undefined. */
export function markerProblem(v: unknown, id: string): string | undefined {
  const m = v as Marker;
  if (!m || typeof m !== "object" || Array.isArray(m)) return "it is not a mapping";
  if (m.format !== MARKER_FORMAT) return `unknown format ${JSON.stringify(String(m.format)).slice(0, 40)}`;
  if (m.backupId !== id) return `it names backup ${JSON.stringify(String(m.backupId)).slice(0, 70)}, not the ${id} of its key`;
  if (!Number.isSafeInteger(m.level) || m.level < 0 || m.level > 999) return "it has no valid level";
  if (typeof m.host !== "string" || m.host.length > 255) return "it has no valid host";
  if (typeof m.startedAt !== "string" || !TIME.test(m.startedAt) || typeof m.updatedAt !== "string" || !TIME.test(m.updatedAt)) return "it has bad times";
  if (!m.progress || !isCount(m.progress.bytes) || !isCount(m.progress.parts)) return "it has no valid progress";
  return undefined;
}

/** The marker of a backup as its state says it is now. */
export function markerOf(state: BackupState): Marker {
  const stored = state.chunks.filter((c) => c?.uploaded);
  return {
    format: MARKER_FORMAT,
    backupId: state.backupId,
    level: state.level,
    host: hostname(),
    startedAt: state.startedAt,
    updatedAt: now().toISOString(),
    progress: { bytes: stored.reduce((a, c) => a + c.plainSize, 0), parts: stored.length },
  };
}

const place = (pool: string, dataset: string) => ({ pool, dataset });

/** Write (or refresh) the marker of `state`'s backup, signed when the NAS has a signing key. */
export async function writeMarker(store: ObjectStore, state: BackupState, signer: SigningKey | undefined, storageClass?: string): Promise<void> {
  const m = markerOf(state);
  const body = signer ? signRecord(m, MARKER_DOMAIN, signer, place(state.pool, state.dataset)) : m;
  // Transient: no object-lock retention, so that it can be deleted once its manifest is written.
  await store.put(markerKey(state.pool, state.dataset, state.backupId), YAML.stringify(body, { lineWidth: 0 }), { transient: true, ...(storageClass ? { storageClass } : {}) });
}

/**
 * Delete a marker; true when it is gone. Never fails the run: a refusal (the NAS role has no
 * delete right, object lock) is expected and only logged at debug level, any other store
 * failure (past the retries) in one info line — the marker is moot once its manifest exists,
 * and prune or cleanup removes it.
 */
export async function deleteMarker(store: ObjectStore, pool: string, dataset: string, backupId: string): Promise<boolean> {
  const key = markerKey(pool, dataset, backupId);
  try {
    await store.delete(key);
    return true;
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    if (err.kind === "access-denied" || err.kind === "locked") log.debug(`left the in-flight marker ${key} (${err.message}); prune or cleanup removes it`);
    else log.info(`could not delete the in-flight marker ${key} (${err.message}); prune or cleanup removes it`);
    return false;
  }
}

/** Every marker directly under the dataset's manifests prefix (not its children's), read and judged under `trust`. */
export async function readMarkers(store: ObjectStore, pool: string, dataset: string, trust: Trust): Promise<MarkerRead[]> {
  const dir = manifestDir(pool, dataset);
  const out: MarkerRead[] = [];
  for (const o of await store.list(dir)) {
    if (!isMarkerKey(dir, o.key)) continue;
    out.push(await judgeMarker(store, o.key, pool, dataset, trust));
  }
  return out;
}

/** One marker, read and judged; a marker that vanished meanwhile (its backup finished) is not protecting anything. */
export async function judgeMarker(store: ObjectStore, key: string, pool: string, dataset: string, trust: Trust): Promise<MarkerRead> {
  const backupId = backupIdOfMarkerKey(key);
  if (!/^[0-9A-Za-z-]{1,64}$/.test(backupId)) return { key, backupId, untrusted: "its key names no valid backup id" };
  const r = await readRecord<Marker>(store, key, MAX_MARKER_BYTES, (v) => markerProblem(v, backupId));
  if (r.kind === "none") return { key, backupId, untrusted: "it is gone (its backup finished or was abandoned meanwhile)" };
  if (r.kind === "unusable") return { key, backupId, untrusted: r.why };
  const why = recordTrustProblem(r.value, MARKER_DOMAIN, trust, place(pool, dataset));
  return { key, backupId, marker: r.value, ...(why ? { untrusted: why } : {}) };
}

/**
 * Keeps a running backup's marker fresh: touch() after each stored part rewrites it when the
 * last write is older than MARKER_REFRESH_MS (so at most one request per part, and a few per
 * hour). A failed refresh is a warning: the marker written at the start still protects the backup.
 */
export class MarkerHeartbeat {
  private last = now().getTime();
  private busy = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly state: BackupState,
    private readonly signer: SigningKey | undefined,
    private readonly storageClass?: string,
    private readonly everyMs = MARKER_REFRESH_MS,
  ) {}

  /** Write the marker now (the start of a run: before the first part). */
  async start(): Promise<void> {
    await writeMarker(this.store, this.state, this.signer, this.storageClass);
    this.last = now().getTime();
  }

  async touch(): Promise<void> {
    if (this.busy || now().getTime() - this.last < this.everyMs) return;
    this.busy = true;
    try {
      await writeMarker(this.store, this.state, this.signer, this.storageClass);
      this.last = now().getTime();
    } catch (err) {
      log.warn(`could not refresh the in-flight marker of backup ${this.state.backupId}: ${(err as Error).message}`);
      this.last = now().getTime();
    } finally {
      this.busy = false;
    }
  }
}
