/**
 * A recursive task's known children (`manifests/<pool>/<dataset>/tree.yaml`, signed like the
 * heads): which children the tree has had, since which run, and which disappeared (destroyed or
 * excluded) at which run. It lives in the bucket, so that a rebuilt NAS still knows that a child
 * is gone (reported once, its backups kept), and a restore knows which children belonged to a
 * run. The backups themselves never depend on it: each child's chain is complete on its own, and
 * a missing or unreadable tree.yaml only loses these dates (rebuilt by the next backup).
 */
import YAML from "yaml";
import { readRecord } from "./record.ts";
import type { Config } from "../config/config.ts";
import type { SigningKey } from "../crypto/signing.ts";
import { fullName, treeKey } from "../store/layout.ts";
import type { ObjectStore } from "../store/store.ts";
import { log } from "../util/log.ts";
import { datasetPathProblem } from "../zfs/names.ts";
import type { Signature } from "../crypto/signing.ts";
import { signTree, treeTrusted, type Trust } from "./trust.ts";

export const TREE_FORMAT = "zrb-tree/1";
const MAX_TREE_BYTES = 16 * 1024 * 1024;

export interface TreeChild {
  /** Relative to the task's dataset; "" is the dataset itself. */
  name: string;
  type: "filesystem" | "volume";
  /** Start of the run that first backed it up (again, after it was gone). */
  since: string;
  /** Start of the run that found it gone, and why. */
  gone?: string;
  reason?: "destroyed" | "excluded";
}

export interface TreeRecord {
  format: string;
  updatedAt: string;
  children: TreeChild[];
  signature?: Signature;
}

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

/** Why a parsed tree.yaml is not usable, or undefined. */
export function treeProblem(v: unknown): string | undefined {
  const t = v as TreeRecord;
  if (!t || typeof t !== "object" || Array.isArray(t)) return "it is not a mapping";
  if (t.format !== TREE_FORMAT) return `unknown format ${JSON.stringify(String(t.format)).slice(0, 40)}`;
  if (!Array.isArray(t.children)) return "it has no children list";
  const seen = new Set<string>();
  for (const [i, c] of t.children.entries()) {
    if (!c || typeof c !== "object" || typeof c.name !== "string" || datasetPathProblem(c.name)) return `child ${i} has a bad name`;
    if (seen.has(c.name)) return `child ${JSON.stringify(c.name)} is listed twice`;
    seen.add(c.name);
    if (c.type !== "filesystem" && c.type !== "volume") return `child ${JSON.stringify(c.name)} has a bad type`;
    if (typeof c.since !== "string" || !TIME.test(c.since)) return `child ${JSON.stringify(c.name)} has a bad since time`;
    if (c.gone !== undefined && (typeof c.gone !== "string" || !TIME.test(c.gone))) return `child ${JSON.stringify(c.name)} has a bad gone time`;
    if (c.reason !== undefined && c.reason !== "destroyed" && c.reason !== "excluded") return `child ${JSON.stringify(c.name)} has a bad reason`;
  }
  return undefined;
}

const warned = new Set<string>();

/** The record in the bucket; null when there is none, or (with one warning) when it is unreadable or not signed as `trust` requires. */
export async function readTree(store: ObjectStore, pool: string, dataset: string, trust: Trust): Promise<TreeRecord | null> {
  const key = treeKey(pool, dataset);
  const r = await readRecord<TreeRecord>(store, key, MAX_TREE_BYTES, treeProblem);
  if (r.kind === "none") return null;
  const why = r.kind === "unusable" ? r.why : treeTrusted(r.value, pool, dataset, trust) ? undefined : `it is not signed with ${trust.source}'s key`;
  if (r.kind === "ok" && !why) return r.value;
  if (!warned.has(key)) {
    warned.add(key);
    log.warn(`${key} in ${store.location} is not used (${why}): which children of ${fullName(pool, dataset)} are gone, and since when each is backed up, is not known; the next backup rewrites it`);
  }
  return null;
}

export async function writeTree(cfg: Config, store: ObjectStore, pool: string, dataset: string, t: TreeRecord, signer: SigningKey | undefined): Promise<void> {
  const signed = signer ? signTree(t, pool, dataset, signer) : t;
  await store.put(treeKey(pool, dataset), YAML.stringify(signed, { lineWidth: 0 }), { storageClass: cfg.s3.storageClass.manifest });
}

export interface TreeRun {
  /** When the run started (ISO). */
  at: string;
  /** Children backed up this run (their backup of the run's snapshot is in the bucket). */
  backedUp: { rel: string; type: TreeChild["type"] }[];
  /** Every child on the pool now, excluded ones too. */
  onPool: Set<string>;
  excluded: Set<string>;
}

/** The record after a run, and the children it found gone (each is reported once: by this run). */
export function advanceTree(prev: TreeRecord | null, run: TreeRun): { next: TreeRecord; gone: TreeChild[] } {
  const byName = new Map((prev?.children ?? []).map((c) => [c.name, { ...c }]));
  const gone: TreeChild[] = [];
  for (const c of byName.values()) {
    if (c.gone !== undefined) continue;
    const reason = !run.onPool.has(c.name) ? "destroyed" : run.excluded.has(c.name) ? "excluded" : undefined;
    if (!reason) continue;
    c.gone = run.at;
    c.reason = reason;
    gone.push(c);
  }
  for (const b of run.backedUp) {
    const c = byName.get(b.rel);
    if (c && c.gone === undefined) continue;
    byName.set(b.rel, { name: b.rel, type: b.type, since: run.at });
  }
  const children = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { next: { format: TREE_FORMAT, updatedAt: run.at, children }, gone };
}

/** Whether two records say the same (apart from when they were written and their signature). */
export function sameTree(a: TreeRecord | null, b: TreeRecord): boolean {
  return !!a && JSON.stringify(a.children) === JSON.stringify(b.children);
}
