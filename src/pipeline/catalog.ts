/**
 * The catalog, read from the store alone: every manifest of a dataset, each resolved
 * to its chain (level 0 → … → this backup, following parent backup ids and snapshot
 * guids) and checked for completeness (every manifest and part object present, sizes equal).
 */
import type { ObjectStore } from "../store/store.ts";
import { fullName, listManifests, type Manifest } from "../state/manifest.ts";
import { log } from "../util/log.ts";

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
  /** Backup ids from the level-0 root to this one. */
  chain: string[];
  restorable: boolean;
  problem?: string;
}

export interface Catalog {
  manifests: Map<string, Manifest>;
  entries: CatalogEntry[];
  /** Manifests that could not be parsed: left out of the chains, reported by key. */
  corrupt: { key: string; backupId: string; message: string }[];
}

/** Resolve the chain root → m. Throws a message when a link is missing or inconsistent. */
export function resolveChain(m: Manifest, byId: Map<string, Manifest>): Manifest[] {
  const chain: Manifest[] = [m];
  const seen = new Set([m.backupId]);
  let cur = m;
  while (cur.parent) {
    const p = byId.get(cur.parent.backupId);
    if (!p) throw new Error(`parent backup ${cur.parent.backupId} (level ${cur.parent.level}) is missing`);
    if (p.snapshot.guid !== cur.parent.guid)
      throw new Error(`parent backup ${p.backupId} is of snapshot guid ${p.snapshot.guid}, ${cur.backupId} needs ${cur.parent.guid}`);
    if (p.level >= cur.level) throw new Error(`parent backup ${p.backupId} has level ${p.level} ≥ ${cur.level}`);
    if (seen.has(p.backupId)) throw new Error(`chain of ${m.backupId} loops at ${p.backupId}`);
    seen.add(p.backupId);
    chain.unshift(p);
    cur = p;
  }
  if (cur.level !== 0) throw new Error(`chain starts at level ${cur.level}, not at a full (level 0) backup`);
  return chain;
}

export async function loadCatalog(store: ObjectStore, pool: string, dataset: string): Promise<Catalog> {
  const corrupt: Catalog["corrupt"] = [];
  const ms = await listManifests(store, pool, dataset, (key, message) => {
    const backupId = key.slice(key.lastIndexOf("/") + 1).replace(/\.manifest\.yaml$/, "");
    corrupt.push({ key, backupId, message });
    log.warn(`${message} (left out)`);
  });
  const byId = new Map(ms.map((m) => [m.backupId, m]));
  const objects = new Map<string, number>();
  for (const o of await store.list(`data/${fullName(pool, dataset)}/`)) objects.set(o.key, o.size);
  const partsOk = new Map<string, string | null>();
  for (const m of ms) {
    let problem: string | null = null;
    for (const p of m.parts) {
      const size = objects.get(p.key);
      if (size === undefined) {
        problem = `part ${p.index} (${p.key}) is missing`;
        break;
      }
      if (size !== p.cipherSize) {
        problem = `part ${p.index} (${p.key}) is ${size} bytes, manifest says ${p.cipherSize}`;
        break;
      }
    }
    partsOk.set(m.backupId, problem);
  }
  const entries = ms.map((m): CatalogEntry => {
    let chain: string[] = [];
    let problem: string | undefined;
    try {
      const c = resolveChain(m, byId);
      chain = c.map((x) => x.backupId);
      for (const x of c) {
        const pr = partsOk.get(x.backupId);
        if (pr) {
          problem = x.backupId === m.backupId ? pr : `in ${x.backupId}: ${pr}`;
          break;
        }
      }
    } catch (err) {
      problem = (err as Error).message;
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
      chain,
      restorable: problem === undefined,
      ...(problem !== undefined ? { problem } : {}),
    };
  });
  return { manifests: byId, entries, corrupt };
}

export async function catalog(store: ObjectStore, pool: string, dataset: string): Promise<CatalogEntry[]> {
  return (await loadCatalog(store, pool, dataset)).entries;
}
