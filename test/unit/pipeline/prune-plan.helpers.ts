/**
 * The bucket plan of `zrb prune` on a synthetic catalog, for prune-plan.test.ts and
 * prune-min-storage.test.ts: planBucket (src/pipeline/prune/plan.ts) with the catalog built
 * from the manifests and a listing of their parts, at a time 400 days after T0 by default.
 */
import { buildCatalog } from "../../../src/pipeline/catalog.ts";
import { planBucket, type BackupDecision, type BucketPlanInput } from "../../../src/pipeline/prune/plan.ts";
import type { Policy } from "../../../src/pipeline/prune/policy.ts";
import { headsFromManifests, type Heads } from "../../../src/records/heads.ts";
import type { Manifest } from "../../../src/records/manifest.ts";
import type { BackupState } from "../../../src/state/rundir.ts";
import type { ObjectInfo } from "../../../src/store/store.ts";
import { listingOf, T0 } from "./helpers.ts";

export const DAY = 86_400_000;
export const FS = "tank/photos";
export function plan(
  ms: Manifest[],
  o: { policy?: Policy | null; heads?: Heads; state?: BackupState | null; listing?: ObjectInfo[]; now?: number; allowEarlyDelete?: boolean; untrusted?: Map<string, string>; lockedUntil?: Map<string, Date>; minDays?: (c: string) => number; bad?: Map<string, string> } = {},
): BackupDecision[] {
  const listing = o.listing ?? listingOf(ms);
  const cat = buildCatalog(ms, [], listing);
  const input: BucketPlanInput = {
    entries: cat.entries,
    manifests: cat.manifests,
    heads: o.heads ?? headsFromManifests(ms),
    state: o.state ?? null,
    policy: o.policy === undefined ? { last: 1 } : o.policy,
    objects: new Map(listing.map((x) => [x.key, x])),
    now: new Date(o.now ?? T0 + 400 * DAY),
    allowEarlyDelete: o.allowEarlyDelete ?? false,
    ...(o.untrusted ? { untrusted: o.untrusted } : {}),
    ...(o.lockedUntil ? { lockedUntil: o.lockedUntil } : {}),
    ...(o.minDays ? { minDays: o.minDays } : {}),
    ...(o.bad ? { bad: o.bad } : {}),
  };
  return planBucket(input);
}
export const keptIds = (ds: BackupDecision[]) => ds.filter((d) => d.action === "keep").map((d) => d.backupId);
export const rulesOf = (ds: BackupDecision[], id: string) => ds.find((d) => d.backupId === id)!.reasons.map((r) => r.rule);
