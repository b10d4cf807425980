/**
 * Which backups `zrb prune` deletes from the bucket, and why each one stays — pure: the catalog,
 * the heads, the resume state and a listing go in, one decision per backup comes out.
 *
 *   0. trust first: a manifest that is not trusted (unsigned where keys are known, forged,
 *      signed by another key) is never a point, never keeps another backup, never shifts a
 *      window and is never deleted: it is reported ("not trusted: …") and left alone. A point
 *      dated more than a day ahead of this host's clock is reported and left alone the same way.
 *   1. points: every restorable backup — every manifest of its chain trusted, every part present
 *      with its size, no part that `verify --rotate` found bad — at the time in its snapshot's
 *      name (zrb_level<N>_YYYYMMDDTHHMMSSZ) or, for another name, its manifest's startedAt; the
 *      policy (policy.ts) keeps some of them, its windows counted from now. No policy: every
 *      backup stays.
 *   2. always kept: the heads (the bases of the next backups at each level, from trusted
 *      records only); the resumable backup of backup_state.yaml and its base; a backup that
 *      cannot be restored (reported, never counted as a point, never deleted automatically:
 *      putting back a lost manifest may repair it).
 *   3. chain safety: every ancestor of a kept backup is kept.
 *   2b. object lock: a backup whose manifest is locked (retain-until in the future) stays —
 *      the store would refuse the delete anyway — and with it its chain (3).
 *   4. cost: a backup whose parts are younger than their storage class's minimum duration is
 *      kept until then (deleting it sooner saves nothing), unless early deletes are allowed —
 *      then with its ancestors (3 again).
 * Deletion order (deletionOrder): higher levels first, newest first, so that a prune stopped
 * at any point leaves only complete chains (and orphan parts, which the next prune removes).
 */
import { chooseParent, headsFromManifests, type Heads } from "../../records/heads.ts";
import type { Manifest } from "../../records/manifest.ts";
import type { BackupState } from "../../state/rundir.ts";
import { backupIdTime } from "../../store/layout.ts";
import type { ObjectInfo } from "../../store/store.ts";
import { minStorageDays } from "../../report/prices.ts";
import { parseZrbSnapshotName } from "../../zfs/zfs.ts";
import type { CatalogEntry } from "../catalog.ts";
import { applyPolicy, newestFirst, policyReasonText, type Policy, type PolicyReason } from "./policy.ts";

const DAY = 86_400_000;
/** Providers bill GB-months of 2^30 bytes. */
const GIB = 1024 ** 3;

/** Why a backup stays. */
export type KeepReason =
  | PolicyReason
  | { rule: "no-policy" }
  | { rule: "head"; level: number }
  | { rule: "resumable" }
  | { rule: "resumable-base" }
  | { rule: "not-restorable"; problem: string }
  /** Not trusted (unsigned, forged, another key's): never decides anything, left alone. */
  | { rule: "not-trusted"; problem: string }
  /** Dated more than a day ahead of this host's clock: not a point, left alone. */
  | { rule: "future"; time: string }
  | { rule: "ancestor"; of: string }
  /** Past a lost manifest: the backup that one was most probably built on, kept for a repair. */
  | { rule: "probable-ancestor"; of: string; lost: string; untrusted?: true }
  | { rule: "min-storage"; storageClass: string; days: number; freeFrom: string; gbDays: number }
  /** Its manifest is under object lock until then: the store would refuse the delete. */
  | { rule: "object-lock"; until: string };

export interface BackupDecision {
  backupId: string;
  level: number;
  snapshot: string;
  /** The point's time (ISO 8601). */
  time: string;
  storageClass: string;
  action: "keep" | "delete";
  reasons: KeepReason[];
  parts: number;
  /** Ciphertext bytes of its parts. */
  bytes: number;
  /** For a delete before the storage class's minimum duration: what the provider still bills. */
  earlyGbDays?: number;
}

export interface BucketPlanInput {
  entries: CatalogEntry[];
  manifests: Map<string, Manifest>;
  heads: Heads;
  state: BackupState | null;
  /** null: no bucket policy, every backup stays. */
  policy: Policy | null;
  /** The dataset's data objects (for each part's age). */
  objects: Map<string, ObjectInfo>;
  now: Date;
  allowEarlyDelete: boolean;
  /** A storage class's minimum storage duration in days at this store's provider (report/prices.ts minStorageDays); AWS's table when absent. */
  minDays?: (storageClass: string) => number;
  /** backupId → its manifest's object-lock retain-until date, where the store reported one. */
  lockedUntil?: Map<string, Date>;
  /** backupId → why its manifest is not trusted (records/trust.ts). */
  untrusted?: Map<string, string>;
  /** backupId → what `verify --rotate` last found bad in its parts. */
  bad?: Map<string, string>;
}

/** A point may be at most this far ahead of this host's clock before it is called "future". */
const FUTURE_SLACK = DAY;

/** A point's time: the timestamp in a zrb snapshot name, else when its backup started. */
export function pointTime(m: Pick<Manifest, "snapshot" | "startedAt">): Date {
  const short = m.snapshot.name.slice(m.snapshot.name.indexOf("@") + 1);
  return parseZrbSnapshotName(short)?.time ?? new Date(m.startedAt);
}

/** Why a catalog entry cannot be restored for prune's purposes (its chain, or a part verify found bad), or undefined. */
function restoreProblem(e: CatalogEntry, bad: Map<string, string>): string | undefined {
  if (!e.restorable) return e.problem?.message ?? "its chain is broken";
  const at = e.chain.find((id) => bad.has(id));
  return at === undefined ? undefined : `verify --rotate found a bad part in ${at === e.backupId ? "it" : `backup ${at} of its chain`}: ${bad.get(at)}`;
}

export function planBucket(i: BucketPlanInput): BackupDecision[] {
  const why = new Map<string, KeepReason[]>(i.entries.map((e) => [e.backupId, []]));
  const add = (id: string | undefined, r: KeepReason) => id !== undefined && why.get(id)?.push(r);
  const untrusted = i.untrusted ?? new Map<string, string>();
  const bad = i.bad ?? new Map<string, string>();
  const future = new Set(i.entries.filter((e) => pointTime(i.manifests.get(e.backupId)!).getTime() > i.now.getTime() + FUTURE_SLACK).map((e) => e.backupId));
  const decides = (id: string) => !untrusted.has(id) && !future.has(id);
  const points = i.entries
    .filter((e) => decides(e.backupId) && restoreProblem(e, bad) === undefined)
    .map((e) => ({ id: e.backupId, time: pointTime(i.manifests.get(e.backupId)!) }));
  if (i.policy) for (const [id, rs] of applyPolicy(points, i.policy, i.now)) for (const r of rs) add(id, r);
  else for (const e of i.entries) add(e.backupId, { rule: "no-policy" });
  for (const [level, h] of Object.entries(i.heads.levels)) if (decides(h.backupId)) add(h.backupId, { rule: "head", level: Number(level) });
  add(i.state?.backupId, { rule: "resumable" });
  add(i.state?.parent?.backupId, { rule: "resumable-base" });
  for (const [id, problem] of untrusted) add(id, { rule: "not-trusted", problem });
  for (const id of future) if (!untrusted.has(id)) add(id, { rule: "future", time: pointTime(i.manifests.get(id)!).toISOString() });
  for (const e of i.entries) {
    const problem = decides(e.backupId) ? restoreProblem(e, bad) : undefined;
    if (problem) add(e.backupId, { rule: "not-restorable", problem });
  }
  for (const [id, until] of i.lockedUntil ?? []) if (until.getTime() > i.now.getTime()) add(id, { rule: "object-lock", until: until.toISOString() });
  keepAncestors(i, why);
  for (const e of i.entries) {
    if (why.get(e.backupId)!.length > 0) continue;
    const early = earlyDelete(i.manifests.get(e.backupId)!, i.objects, i.now, i.minDays);
    if (early && !i.allowEarlyDelete) add(e.backupId, { rule: "min-storage", ...early });
  }
  keepAncestors(i, why);
  return i.entries.map((e) => {
    const m = i.manifests.get(e.backupId)!;
    const reasons = why.get(e.backupId)!;
    const early = reasons.length === 0 ? earlyDelete(m, i.objects, i.now, i.minDays) : null;
    return {
      backupId: e.backupId,
      level: e.level,
      snapshot: e.snapshot,
      time: pointTime(m).toISOString(),
      storageClass: e.storageClass,
      action: reasons.length > 0 ? "keep" : "delete",
      reasons,
      parts: e.parts,
      bytes: e.storedBytes,
      ...(early ? { earlyGbDays: early.gbDays } : {}),
    };
  });
}

/**
 * Mark every ancestor of a kept backup, naming the newest kept backup that needs it. Past a
 * lost manifest the chain goes on with the backup the lost one was most probably built on
 * (probableParent), so that putting the lost manifest back still repairs it. Past an untrusted
 * manifest too: it is kept (never deleted by prune), but its parent link is a forger's word, so
 * the chain goes on as if it were lost — a forged middle manifest must not cut the signed base
 * below it loose.
 */
function keepAncestors(i: BucketPlanInput, why: Map<string, KeepReason[]>): void {
  const untrusted = i.untrusted ?? new Map<string, string>();
  // An untrusted manifest keeps nothing: its parent link is the forger's word.
  const kept = i.entries
    .filter((e) => why.get(e.backupId)!.length > 0 && !untrusted.has(e.backupId))
    .map((e) => ({ id: e.backupId, time: pointTime(i.manifests.get(e.backupId)!) }));
  type Broken = { id: string; untrusted: boolean } | undefined;
  for (const k of newestFirst(kept)) {
    const seen = new Set([k.id]);
    const mark = (id: string, broken: Broken) => {
      const rs = why.get(id)!;
      if (rs.some((r) => r.rule === "ancestor" || r.rule === "probable-ancestor")) return;
      rs.push(broken ? { rule: "probable-ancestor", of: k.id, lost: broken.id, ...(broken.untrusted ? { untrusted: true as const } : {}) } : { rule: "ancestor", of: k.id });
    };
    // The links to follow: k's own, then those an untrusted manifest claims (below).
    const todo: { link: Manifest["parent"]; broken: Broken }[] = [{ link: i.manifests.get(k.id)?.parent ?? null, broken: undefined }];
    for (let next = todo.pop(); next; next = todo.pop()) {
      let { link, broken } = next;
      while (link) {
        let p = i.manifests.get(link.backupId);
        if (p && untrusted.has(p.backupId)) {
          const first = !seen.has(p.backupId);
          if (first) {
            seen.add(p.backupId);
            mark(p.backupId, broken);
          }
          broken ??= { id: p.backupId, untrusted: true };
          // Its own parent link may be genuine (only its signature stripped): followed too, once
          // (forged links may go round in a circle), which can only keep more. What decides is
          // the trusted way on, the probable parent.
          if (first && p.parent) todo.push({ link: p.parent, broken });
          p = probableParent(link, i.manifests, untrusted);
        } else if (!p) {
          broken ??= { id: link.backupId, untrusted: false };
          p = probableParent(link, i.manifests, untrusted);
        }
        if (!p || seen.has(p.backupId)) break;
        seen.add(p.backupId);
        mark(p.backupId, broken);
        link = p.parent;
      }
    }
  }
}

/**
 * The backup a backup whose manifest is lost (or not trusted) was most probably built on:
 * dump(8)'s rule replayed over the trusted manifests that had finished when it started (its id
 * carries that time, to the second). An untrusted manifest is never the answer: a forged level 0
 * dated just before would otherwise take the real base's place.
 */
function probableParent(lost: { backupId: string; level: number }, manifests: Map<string, Manifest>, untrusted: Map<string, string>): Manifest | undefined {
  const started = backupIdTime(lost.backupId);
  if (!started) return undefined;
  const before = [...manifests.values()].filter((m) => !untrusted.has(m.backupId) && Date.parse(m.finishedAt) < started.getTime() + 1000);
  const p = chooseParent(headsFromManifests(before), lost.level);
  return p ? manifests.get(p.backupId) : undefined;
}

/**
 * When a backup's parts are younger than their class's minimum storage duration: the day the
 * last of them becomes free to delete, and what deleting them now would still be billed
 * (GiB-days). A part's age counts from its LastModified in the listing (the provider's clock
 * bills it), or from the manifest's finish time when the listing has none. `minDays`: the
 * provider's minimum per class (Wasabi bills 90 days of every object); AWS's by default.
 */
export function earlyDelete(
  m: Manifest,
  objects: Map<string, ObjectInfo>,
  now: Date,
  minDays: (storageClass: string) => number = (c) => minStorageDays(undefined, c),
): { storageClass: string; days: number; freeFrom: string; gbDays: number } | null {
  const days = minDays(m.storageClass);
  if (days === 0) return null;
  let freeFrom = 0;
  let gbDays = 0;
  for (const p of m.parts) {
    const created = objects.get(p.key)?.lastModified?.getTime() ?? Date.parse(m.finishedAt);
    const free = created + days * DAY;
    freeFrom = Math.max(freeFrom, free);
    if (free > now.getTime()) gbDays += (p.cipherSize / GIB) * ((free - now.getTime()) / DAY);
  }
  if (freeFrom <= now.getTime()) return null;
  return { storageClass: m.storageClass, days, freeFrom: new Date(freeFrom).toISOString(), gbDays: Math.round(gbDays * 1e6) / 1e6 };
}

/** Children before their parents (a child's level is always higher), newest first. */
export function deletionOrder(ds: BackupDecision[]): BackupDecision[] {
  return ds.filter((d) => d.action === "delete").sort((a, b) => b.level - a.level || (a.time < b.time ? 1 : a.time > b.time ? -1 : a.backupId < b.backupId ? 1 : -1));
}

/** GiB-days for people: three significant digits. */
export function gibDays(n: number): string {
  return `${n >= 100 ? Math.round(n) : Number(n.toPrecision(3))} GiB-days`;
}

export function keepReasonText(r: KeepReason): string {
  switch (r.rule) {
    case "no-policy":
      return "no bucket policy";
    case "head":
      return `head of level ${r.level} (base of the next backups)`;
    case "resumable":
      return "the interrupted backup in backup_state.yaml";
    case "resumable-base":
      return "base of the interrupted backup in backup_state.yaml";
    case "not-restorable":
      return `NOT RESTORABLE, kept for repair: ${r.problem}`;
    case "not-trusted":
      return `not trusted: ${r.problem}; left alone (never a restore point, never deleted by prune)`;
    case "future":
      return `dated ${r.time}, more than a day ahead of this host's clock: left alone, not counted as a restore point`;
    case "ancestor":
      return `ancestor of ${r.of}`;
    case "probable-ancestor":
      return `probably an ancestor of ${r.of} (whose chain is broken at the ${r.untrusted ? "untrusted" : "lost"} manifest of ${r.lost}; kept for a repair)`;
    case "object-lock":
      return `object lock until ${r.until.slice(0, 10)}`;
    case "min-storage":
      return `${r.storageClass} bills ${r.days} days: free to delete from ${r.freeFrom.slice(0, 10)} (early delete: ${gibDays(r.gbDays)} billed anyway; --allow-early-delete)`;
    default:
      return policyReasonText(r);
  }
}
