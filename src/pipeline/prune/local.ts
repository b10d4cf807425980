/**
 * The pool's own snapshots: which `zrb_level<N>_<time>` snapshots `zrb prune` destroys
 * (retention.local, default: keep the last 7 days), and the destroying, one `zfs destroy` of
 * one snapshot at a time. Whatever the policy says, these stay:
 *   - any snapshot whose name zrb did not give (only zrb_level<N>_YYYYMMDDTHHMMSSZ is a candidate);
 *   - a held snapshot (userrefs > 0: zrb's own base hold, a send hold, or anyone else's);
 *   - the snapshot of each head (the base of the next incremental), matched by guid;
 *   - the newest snapshot of each level (what the next backup at that level sends);
 *   - the snapshot and base of the interrupted backup in backup_state.yaml — this store's and,
 *     for a task with several stores, every other store's (`others`): a store that was
 *     stopped cleanly (no send holds left) must still find them when it resumes.
 */
import type { Heads } from "../../records/heads.ts";
import type { BackupState } from "../../state/rundir.ts";
import * as zfs from "../../zfs/zfs.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { applyPolicy, policyReasonText, type Policy, type PolicyReason } from "./policy.ts";

/** Without retention.local: keep what the next backups need, plus the last 7 days. */
export const DEFAULT_LOCAL_POLICY: Policy = { within: 7 * 86_400_000 };

export type SnapshotKeepReason =
  | PolicyReason
  | { rule: "held"; userrefs: number }
  | { rule: "head"; level: number }
  | { rule: "newest-of-level"; level: number }
  | { rule: "resumable" };

export interface SnapshotDecision {
  name: string;
  level: number;
  time: string;
  action: "keep" | "destroy";
  reasons: SnapshotKeepReason[];
}

export function planLocal(
  snaps: zfs.Snapshot[],
  userrefs: Map<string, number>,
  heads: Heads,
  state: BackupState | null,
  policy: Policy,
  now: Date,
  others: BackupState[] = [],
): SnapshotDecision[] {
  const ours = snaps.flatMap((s) => {
    const n = zfs.parseZrbSnapshotName(s.short);
    return n ? [{ s, ...n }] : [];
  });
  const why = new Map<string, SnapshotKeepReason[]>(ours.map((o) => [o.s.name, []]));
  for (const [id, rs] of applyPolicy(ours.map((o) => ({ id: o.s.name, time: o.time })), policy, now)) why.get(id)!.push(...rs);
  const headGuids = new Map(Object.entries(heads.levels).map(([level, h]) => [h.snapshot.guid, Number(level)]));
  const stateGuids = new Set([state, ...others].flatMap((s) => [s?.snapshot?.guid, s?.parent?.guid]).filter((g) => g !== undefined));
  for (const o of ours) {
    const rs = why.get(o.s.name)!;
    const refs = userrefs.get(o.s.name) ?? 0;
    if (refs > 0) rs.push({ rule: "held", userrefs: refs });
    if (headGuids.has(o.s.guid)) rs.push({ rule: "head", level: headGuids.get(o.s.guid)! });
    if (stateGuids.has(o.s.guid)) rs.push({ rule: "resumable" });
    if (zfs.newestLevelSnapshot(snaps, o.level)?.name === o.s.name) rs.push({ rule: "newest-of-level", level: o.level });
  }
  return ours.map((o) => {
    const reasons = why.get(o.s.name)!;
    return { name: o.s.name, level: o.level, time: o.time.toISOString(), action: reasons.length > 0 ? "keep" : "destroy", reasons };
  });
}

/** Destroy the snapshots the plan gives up, one at a time; returns those zfs refused (held or cloned meanwhile). */
export async function destroySnapshots(plan: SnapshotDecision[], signal?: AbortSignal): Promise<string[]> {
  const refused: string[] = [];
  for (const d of plan) {
    if (d.action !== "destroy") continue;
    checkInterrupted(signal);
    if (!(await zfs.tryDestroy(d.name))) refused.push(d.name);
  }
  return refused;
}

export function snapshotReasonText(r: SnapshotKeepReason): string {
  switch (r.rule) {
    case "held":
      return `held (${r.userrefs} hold${r.userrefs > 1 ? "s" : ""})`;
    case "head":
      return `base of the next backups (head of level ${r.level})`;
    case "newest-of-level":
      return `newest of level ${r.level} (the next level-${r.level} backup sends it)`;
    case "resumable":
      return "needed by the interrupted backup in backup_state.yaml";
    default:
      return policyReasonText(r);
  }
}
