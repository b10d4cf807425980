/**
 * The catalog, read from the store alone: every manifest of a dataset, each resolved to its
 * chain (level 0 → … → this backup, following parent backup ids and snapshot guids) and
 * checked for completeness (every manifest and part object present, sizes equal). A problem
 * is typed: which backup is the broken link, what kind of damage, and a message.
 */
import type { ObjectInfo, ObjectStore } from "../store/store.ts";
import { listManifests, readManifest, type Manifest } from "../records/manifest.ts";
import { backupIdOfKey, dataPrefix, datasetDataPrefix, manifestKey } from "../store/layout.ts";
import { ZrbError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { NO_TRUST, manifestTrustProblem, type Trust } from "../records/trust.ts";

export type ProblemKind = "manifest-missing" | "manifest-unreadable" | "part-missing" | "part-size" | "link-mismatch" | "unauthenticated";

export interface ChainProblem {
  /** The backup whose own objects (or link) are broken. */
  at: string;
  kind: ProblemKind;
  message: string;
}

/** Missing objects are the store's doing (exit 6); damage and bad links are integrity (exit 7). */
export const isMissing = (p: ChainProblem) => p.kind === "manifest-missing" || p.kind === "part-missing";

export interface CatalogEntry {
  backupId: string;
  level: number;
  snapshot: string;
  snapshotGuid: string;
  parentBackupId: string | null;
  parentSnapshot: string | null;
  finishedAt: string;
  parts: number;
  bytes: number;
  storedBytes: number;
  storageClass: string;
  /** The manifest carries a signature (whether it checks is in `problem`, given a verification key). */
  signed: boolean;
  /** Backup ids from the level-0 root to this one (as far as it resolves). */
  chain: string[];
  restorable: boolean;
  problem?: ChainProblem;
}

export interface Catalog {
  manifests: Map<string, Manifest>;
  /** Readable manifests, oldest first. */
  entries: CatalogEntry[];
  /** Manifests that could not be read: left out of the chains, reported by key. */
  corrupt: { key: string; backupId: string; message: string }[];
  /** backupId → why its own manifest is not trusted (its signature checked once, here). */
  untrusted: Map<string, string>;
  /** The dataset's data objects as listed for this catalog (key → info). */
  objects: Map<string, ObjectInfo>;
}

/** A problem in m's own link to its parent, or in the parent's existence. */
function linkProblem(m: Manifest, p: Manifest | undefined, unreadable: Set<string>): ChainProblem | null {
  const par = m.parent!;
  if (!p)
    return unreadable.has(par.backupId)
      ? { at: par.backupId, kind: "manifest-unreadable", message: `parent backup ${par.backupId} (level ${par.level}) has a manifest that cannot be read` }
      : { at: par.backupId, kind: "manifest-missing", message: `parent backup ${par.backupId} (level ${par.level}) is missing` };
  if (p.snapshot.guid !== par.guid)
    return { at: m.backupId, kind: "link-mismatch", message: `parent backup ${p.backupId} is of snapshot guid ${p.snapshot.guid}, ${m.backupId} needs ${par.guid}` };
  if (p.level >= m.level) return { at: m.backupId, kind: "link-mismatch", message: `parent backup ${p.backupId} has level ${p.level} ≥ ${m.level}` };
  return null;
}

/** Resolve the chain root → m; throws a ChainError when a link is missing or inconsistent. */
export function resolveChain(m: Manifest, byId: Map<string, Manifest>, unreadable = new Set<string>()): Manifest[] {
  const chain: Manifest[] = [m];
  const seen = new Set([m.backupId]);
  let cur = m;
  while (cur.parent) {
    const p = byId.get(cur.parent.backupId);
    const problem = linkProblem(cur, p, unreadable);
    if (problem) throw new ChainError(problem);
    if (seen.has(p!.backupId)) throw new ChainError({ at: p!.backupId, kind: "link-mismatch", message: `chain of ${m.backupId} loops at ${p!.backupId}` });
    seen.add(p!.backupId);
    chain.unshift(p!);
    cur = p!;
  }
  if (cur.level !== 0) throw new ChainError({ at: cur.backupId, kind: "link-mismatch", message: `chain starts at level ${cur.level}, not at a full (level 0) backup` });
  return chain;
}

export class ChainError extends Error {
  constructor(readonly problem: ChainProblem) {
    super(problem.message);
    this.name = "ChainError";
  }
}

/** A problem with the stored objects of m itself (part missing or of the wrong size). */
function partsProblem(m: Manifest, sizes: Map<string, number>): ChainProblem | null {
  for (const p of m.parts) {
    const size = sizes.get(p.key);
    if (size === undefined) return { at: m.backupId, kind: "part-missing", message: `part ${p.index} (${p.key}) of ${m.backupId} is missing` };
    if (size !== p.cipherSize)
      return { at: m.backupId, kind: "part-size", message: `part ${p.index} (${p.key}) of ${m.backupId} is ${size} bytes, manifest says ${p.cipherSize}` };
  }
  return null;
}

/** m's own authenticity problem, from the catalog's one check of every signature. */
function untrustedProblem(m: Manifest, untrusted: Map<string, string>): ChainProblem | null {
  const why = untrusted.get(m.backupId);
  return why === undefined ? null : { at: m.backupId, kind: "unauthenticated", message: `backup ${m.backupId} cannot be trusted: ${why}` };
}

/** A problem with m's own authenticity under `trust` (records/trust.ts). */
function trustProblem(m: Manifest, trust: Trust): ChainProblem | null {
  const why = manifestTrustProblem(m, trust);
  return why ? { at: m.backupId, kind: "unauthenticated", message: `backup ${m.backupId} cannot be trusted: ${why}` } : null;
}

/** The catalog of a dataset; with a verification key in `trust`, unsigned or forged backups are not restorable. */
export async function loadCatalog(store: ObjectStore, pool: string, dataset: string, trust: Trust = NO_TRUST): Promise<Catalog> {
  const corrupt: Catalog["corrupt"] = [];
  const ms = await listManifests(store, pool, dataset, (key, message) => {
    corrupt.push({ key, backupId: backupIdOfKey(key), message });
    log.warn(`${message} (left out)`);
  });
  // After the manifests', not alongside: against a stalled endpoint two requests at once would
  // each say their retry, where one line says it (stall.test).
  return buildCatalog(ms, corrupt, await store.list(datasetDataPrefix(pool, dataset)), trust);
}

/** The catalog of manifests already read, given a listing of the dataset's data prefix. */
export function buildCatalog(ms: Manifest[], corrupt: Catalog["corrupt"], listing: ObjectInfo[], trust: Trust = NO_TRUST): Catalog {
  const unreadable = new Set(corrupt.map((c) => c.backupId));
  const byId = new Map(ms.map((m) => [m.backupId, m]));
  const sizes = new Map<string, number>();
  for (const o of listing) sizes.set(o.key, o.size);
  const untrusted = new Map<string, string>();
  for (const m of ms) {
    const why = manifestTrustProblem(m, trust);
    if (why !== undefined) untrusted.set(m.backupId, why);
  }
  const own = new Map(ms.map((m) => [m.backupId, untrustedProblem(m, untrusted) ?? partsProblem(m, sizes)]));
  const entries = ms.map((m): CatalogEntry => {
    let chain: string[] = [];
    let problem: ChainProblem | undefined;
    try {
      const c = resolveChain(m, byId, unreadable);
      chain = c.map((x) => x.backupId);
      problem = c.map((x) => own.get(x.backupId)).find((p) => p) ?? undefined;
    } catch (err) {
      if (!(err instanceof ChainError)) throw err;
      problem = err.problem;
    }
    return {
      backupId: m.backupId,
      level: m.level,
      snapshot: m.snapshot.name,
      snapshotGuid: m.snapshot.guid,
      parentBackupId: m.parent?.backupId ?? null,
      parentSnapshot: m.parent?.name ?? null,
      finishedAt: m.finishedAt,
      parts: m.parts.length,
      bytes: m.stream.size,
      storedBytes: m.parts.reduce((a, p) => a + p.cipherSize, 0),
      storageClass: m.storageClass,
      signed: m.signature !== undefined,
      chain,
      restorable: problem === undefined,
      ...(problem !== undefined ? { problem } : {}),
    };
  });
  return { manifests: byId, entries, corrupt, untrusted, objects: new Map(listing.map((o) => [o.key, o])) };
}

export async function catalog(store: ObjectStore, pool: string, dataset: string): Promise<CatalogEntry[]> {
  return (await loadCatalog(store, pool, dataset)).entries;
}

/**
 * Whether backup `backupId` (of level `level`) can be restored, reading only its own chain from
 * the store (its manifests, and a listing of each one's parts): null if it can, else the broken
 * link closest to level 0 (with its level: a new backup at that level repairs the chain).
 * Used before a backup is built on it.
 */
export async function chainProblem(
  store: ObjectStore,
  pool: string,
  dataset: string,
  backupId: string,
  level: number,
  trust: Trust = NO_TRUST,
): Promise<(ChainProblem & { level: number }) | null> {
  let id = backupId;
  let idLevel = level;
  let child: Manifest | null = null;
  let found: (ChainProblem & { level: number }) | null = null;
  const seen = new Set<string>();
  for (;;) {
    let m: Manifest | null;
    try {
      m = await readManifest(store, manifestKey(pool, dataset, id), { pool, dataset });
    } catch (err) {
      if (!(err instanceof ZrbError)) throw err;
      return { at: id, level: idLevel, kind: "manifest-unreadable", message: `manifest ${manifestKey(pool, dataset, id)} cannot be read: ${err.message}` };
    }
    if (!m) return { at: id, level: idLevel, kind: "manifest-missing", message: `its manifest ${manifestKey(pool, dataset, id)} is missing` };
    const untrusted = trustProblem(m, trust);
    if (child) {
      const p = linkProblem(child, m, new Set());
      if (p) return { ...p, level: child.level };
    }
    const sizes = new Map((await store.list(dataPrefix(pool, dataset, m.level, m.backupId))).map((o) => [o.key, o.size]));
    const own = untrusted ?? partsProblem(m, sizes);
    if (own) found = { ...own, level: m.level };
    if (!m.parent) return m.level === 0 ? found : { at: m.backupId, level: m.level, kind: "link-mismatch", message: `chain starts at level ${m.level}, not at a full (level 0) backup` };
    if (seen.has(m.backupId)) return { at: m.backupId, level: m.level, kind: "link-mismatch", message: `chain of ${backupId} loops at ${m.backupId}` };
    seen.add(m.backupId);
    child = m;
    id = m.parent.backupId;
    idLevel = m.parent.level;
  }
}

/** Start time of a backup id (its first 16 characters, YYYYMMDDTHHMMSSZ), or "" if it has none. */
const idTime = (id: string) => (/^\d{8}T\d{6}Z/.test(id) ? id.slice(0, 16) : "");

/**
 * The newest restore point: the newest readable backup, unless a manifest that cannot be read
 * belongs to a backup that started later (then that unreadable one is the newest point).
 */
export function newestPoint(cat: Catalog): { entry: CatalogEntry } | { corrupt: Catalog["corrupt"][number] } | null {
  const entry = cat.entries.at(-1);
  const t = entry ? idTime(entry.backupId) : "";
  const newer = cat.corrupt.filter((c) => idTime(c.backupId) > t).sort((a, b) => (a.backupId < b.backupId ? -1 : 1)).at(-1);
  if (newer) return { corrupt: newer };
  return entry ? { entry } : null;
}
