/**
 * `zrb plan`: before committing to a schedule and storage classes, what the bucket costs and how
 * long a disaster restore takes — read from the bucket alone (listings and manifests, never a
 * data part) and the price table (report/prices.ts). Per task:
 *   - bytes stored per storage class (parts, manifests and heads: every object under the
 *     dataset's prefixes, a recursive task's children included), and their monthly cost;
 *   - the early-delete charges a prune now would incur: the task's retention policy applied as
 *     `zrb prune --allow-early-delete` would (prune/plan.ts), the GB-days still billed for what it
 *     deletes before its class's minimum duration;
 *   - the newest restore point (of every child, for a tree): its chain's bytes to download and
 *     to receive, the time at the rate of the last restore or verify (the metrics file) or a
 *     given rate, the download's egress and retrieval cost, and for archive classes each thaw
 *     tier's time and cost.
 * Everything is an estimate: list prices of a dated table, no requests, no taxes, no discounts.
 */
import type { Config, Task } from "../config/config.ts";
import { readHeads } from "../records/heads.ts";
import { listManifests, type Manifest } from "../records/manifest.ts";
import { manifestTrustProblem, type Trust } from "../records/trust.ts";
import { datasetDataPrefix, isPartKey, manifestDir } from "../store/layout.ts";
import { ARCHIVED_CLASSES, type ObjectInfo, type ObjectStore } from "../store/store.ts";
import { buildCatalog, type CatalogEntry } from "./catalog.ts";
import { planBucket } from "./prune/plan.ts";
import { describePolicy, type Policy } from "./prune/policy.ts";
import { bucketChildren } from "./tree/known.ts";
import { childTask } from "./tree/children.ts";
import { minStorageDays, THAW_TIERS, type PriceTable, type ProviderPrices, type ThawTier } from "../report/prices.ts";
import { compareTimes } from "../util/clock.ts";

const GIB = 1024 ** 3;
const DAY = 86_400_000;
/** Providers prorate early-delete charges by the day over a 30-day month. */
const MONTH_DAYS = 30;

export interface Rate {
  bytesPerSecond: number;
  /** "--rate", or "restore of tank/photos at 2027-03-01T02:00:00Z" (the metrics file). */
  source: string;
}

export interface ClassUsage {
  storageClass: string;
  objects: number;
  bytes: number;
  /** Per month; null when the provider table has no price for the class. */
  monthly: number | null;
}

export interface RestorePoint {
  dataset: string;
  backupId: string;
  level: number;
  snapshot: string;
  finishedAt: string;
  /** Backups in its chain (level 0 first). */
  chain: number;
  /** Ciphertext to download. */
  downloadBytes: number;
  /** The send streams `zfs receive` takes. */
  streamBytes: number;
}

export interface TaskEstimate {
  task: string;
  dataset: string;
  recursive: boolean;
  stored: ClassUsage[];
  storedBytes: number;
  /** Null when some class has no price. */
  monthly: number | null;
  earlyDelete: {
    /** The bucket policy applied; null: the task has none, so prune deletes nothing. */
    policy: string | null;
    deletes: number;
    bytes: number;
    /** What the deleted backups still cost until their minimum duration, in GiB-days. */
    gibDays: number;
    cost: number | null;
  };
  restore: {
    points: RestorePoint[];
    /** Datasets without a restorable point (a child never backed up, a broken chain). */
    missing: string[];
    downloadBytes: number;
    streamBytes: number;
    seconds: number | null;
    /** Download charges: egress beyond any free allowance, plus retrieval fees. */
    downloadCost: number | null;
    archived: { storageClass: string; bytes: number }[];
    thaw: { tier: ThawTier; hours: number; cost: number }[];
  };
}

export interface EstimateInput {
  config: Config;
  task: Task;
  store: ObjectStore;
  trust: Trust;
  /** The provider's prices; undefined: figures without costs. */
  prices?: ProviderPrices;
  rate?: Rate;
  now: Date;
}

/** One dataset's objects and trusted catalog. */
async function readDataset(store: ObjectStore, pool: string, dataset: string, trust: Trust) {
  const dataListing = await store.list(datasetDataPrefix(pool, dataset));
  const ms = await listManifests(store, pool, dataset, () => {});
  const cat = buildCatalog(ms, [], dataListing, trust);
  return { dataListing, ms, cat };
}

const cost = (bytes: number, perGb: number | undefined) => (perGb === undefined ? null : (bytes / GIB) * perGb);
const sum = (xs: (number | null)[]) => (xs.some((x) => x === null) ? null : xs.reduce<number>((a, x) => a + x!, 0));

export function classUsage(objects: ObjectInfo[], prices: ProviderPrices | undefined): ClassUsage[] {
  const by = new Map<string, ClassUsage>();
  for (const o of objects) {
    const c = o.storageClass || "STANDARD";
    const u = by.get(c) ?? { storageClass: c, objects: 0, bytes: 0, monthly: null };
    u.objects++;
    u.bytes += o.size;
    by.set(c, u);
  }
  const out = [...by.values()].sort((a, b) => b.bytes - a.bytes);
  for (const u of out) u.monthly = prices ? cost(u.bytes, prices.classes[u.storageClass]?.perGbMonth) : null;
  return out;
}

/** The month's bill for these classes: their sum, at least the provider's minimum. */
export function monthlyTotal(usage: ClassUsage[], prices: ProviderPrices | undefined): number | null {
  if (!prices) return null;
  const s = sum(usage.map((u) => u.monthly));
  return s === null ? null : Math.max(s, prices.minimumMonthly ?? 0);
}

/** The newest restorable point's chain: its bytes, by class. */
function newestPoint(dataset: string, entries: CatalogEntry[], ms: Map<string, Manifest>): { point: RestorePoint; byClass: Map<string, number> } | null {
  const e = [...entries].filter((x) => x.restorable).sort((a, b) => compareTimes(a.finishedAt, b.finishedAt)).at(-1);
  if (!e) return null;
  const chain = e.chain.map((id) => ms.get(id)!);
  const byClass = new Map<string, number>();
  for (const m of chain) byClass.set(m.storageClass, (byClass.get(m.storageClass) ?? 0) + m.parts.reduce((a, p) => a + p.cipherSize, 0));
  return {
    point: {
      dataset,
      backupId: e.backupId,
      level: e.level,
      snapshot: e.snapshot,
      finishedAt: e.finishedAt,
      chain: chain.length,
      downloadBytes: [...byClass.values()].reduce((a, b) => a + b, 0),
      streamBytes: chain.reduce((a, m) => a + m.stream.size, 0),
    },
    byClass,
  };
}

/** What downloading `byClass` costs: egress beyond the free allowance (a share of what is stored), plus retrieval fees. */
export function downloadCost(byClass: Map<string, number>, storedBytes: number, prices: ProviderPrices | undefined): number | null {
  if (!prices) return null;
  const total = [...byClass.values()].reduce((a, b) => a + b, 0);
  const billable = Math.max(0, total - (prices.freeEgressRatio ?? 0) * storedBytes);
  let c = (billable / GIB) * prices.egressPerGb;
  for (const [cls, bytes] of byClass) c += cost(bytes, prices.classes[cls]?.retrievalPerGb ?? 0)!;
  return c;
}

/** Every thaw tier the archived classes offer: the slowest class's hours, the sum of costs (a tier missing in a class: not offered). */
export function thawTiers(archived: Map<string, number>, prices: ProviderPrices | undefined): { tier: ThawTier; hours: number; cost: number }[] {
  if (!prices || archived.size === 0) return [];
  const out: { tier: ThawTier; hours: number; cost: number }[] = [];
  for (const tier of THAW_TIERS) {
    let hours = 0;
    let c = 0;
    let offered = true;
    for (const [cls, bytes] of archived) {
      const t = prices.classes[cls]?.thaw?.[tier];
      if (!t) offered = false;
      else {
        hours = Math.max(hours, t.hours);
        c += (bytes / GIB) * t.perGb;
      }
    }
    if (offered) out.push({ tier, hours, cost: c });
  }
  return out;
}

/** GiB-days still billed for a backup's parts deleted at `now`, before `days` after each was stored. */
export function earlyGibDays(m: Manifest, objects: Map<string, ObjectInfo>, now: Date, days: number): number {
  let g = 0;
  for (const p of m.parts) {
    const created = objects.get(p.key)?.lastModified?.getTime() ?? Date.parse(m.finishedAt);
    const left = (created + days * DAY - now.getTime()) / DAY;
    if (left > 0) g += (p.cipherSize / GIB) * left;
  }
  return g;
}

type Early = TaskEstimate["earlyDelete"] & { perClass: Map<string, number> };

/**
 * What a prune now (with --allow-early-delete) would delete from one dataset, and the GiB-days
 * still billed for it: the provider's minimum durations where the table has them (Wasabi bills
 * 90 days of STANDARD), else AWS's (store.ts).
 */
async function addEarlyDeletes(acc: Early, i: EstimateInput, policy: Policy, t: Task, d: Awaited<ReturnType<typeof readDataset>>): Promise<void> {
  const untrusted = new Map<string, string>();
  for (const m of d.ms) {
    const why = manifestTrustProblem(m, i.trust);
    if (why) untrusted.set(m.backupId, why);
  }
  const objects = new Map(d.dataListing.map((o) => [o.key, o]));
  const heads = await readHeads(i.store, t.pool, t.dataset, i.trust);
  const decisions = planBucket({ entries: d.cat.entries, manifests: d.cat.manifests, heads, state: null, policy, objects, now: i.now, allowEarlyDelete: true, untrusted });
  for (const b of decisions.filter((x) => x.action === "delete")) {
    acc.deletes++;
    acc.bytes += b.bytes;
    const m = d.cat.manifests.get(b.backupId)!;
    const days = minStorageDays(i.prices, m.storageClass);
    const g = earlyGibDays(m, objects, i.now, days);
    if (g > 0) acc.perClass.set(m.storageClass, (acc.perClass.get(m.storageClass) ?? 0) + g);
  }
}

function finishEarly(acc: Early, prices: ProviderPrices | undefined): TaskEstimate["earlyDelete"] {
  const gibDays = [...acc.perClass.values()].reduce((a, b) => a + b, 0);
  const priced = prices ? sum([...acc.perClass].map(([cls, g]) => cost(g * GIB, prices.classes[cls]?.perGbMonth))) : null;
  return { policy: acc.policy, deletes: acc.deletes, bytes: acc.bytes, gibDays: Math.round(gibDays * 1e6) / 1e6, cost: priced === null ? null : priced / MONTH_DAYS };
}

/** The bucket policy of a task's config retention (prune's rule without flags), or null. */
export function taskPolicy(task: Task): Policy | null {
  const { local: _l, ...r } = task.retention ?? {};
  if (!Object.values(r).some((v) => v !== undefined)) return null;
  return { last: r.keepLast, hourly: r.keepHourly, daily: r.keepDaily, weekly: r.keepWeekly, monthly: r.keepMonthly, yearly: r.keepYearly, within: r.keepWithin };
}

export async function estimateTask(i: EstimateInput): Promise<TaskEstimate> {
  const { task, store } = i;
  // Every object of the task: a recursive task's children live under its prefixes too; a plain
  // task's prefixes may hold a child dataset that another task backs up, which is not its own.
  const data = datasetDataPrefix(task.pool, task.dataset);
  const dir = manifestDir(task.pool, task.dataset);
  const own = (o: ObjectInfo) => task.recursive || isPartKey(data, o.key) || (o.key.startsWith(dir) && !o.key.slice(dir.length).includes("/"));
  const objects = [...(await store.list(data)), ...(await store.list(dir))].filter(own);
  const stored = classUsage(objects, i.prices);
  const storedBytes = stored.reduce((a, u) => a + u.bytes, 0);
  const datasets = task.recursive ? (await bucketChildren(store, task, i.trust)).children.filter((c) => !c.excluded).map((c) => childTask(task, c.rel)) : [task];
  const policy = taskPolicy(task);
  const early: Early = { policy: policy ? describePolicy(policy) : null, deletes: 0, bytes: 0, gibDays: 0, cost: null, perClass: new Map() };
  const points: RestorePoint[] = [];
  const missing: string[] = [];
  const byClass = new Map<string, number>();
  for (const t of datasets) {
    const d = await readDataset(store, t.pool, t.dataset, i.trust);
    if (policy) await addEarlyDeletes(early, i, policy, t, d);
    const p = newestPoint(t.fullName, d.cat.entries, d.cat.manifests);
    if (!p) {
      missing.push(t.fullName);
      continue;
    }
    points.push(p.point);
    for (const [c, b] of p.byClass) byClass.set(c, (byClass.get(c) ?? 0) + b);
  }
  const downloadBytes = points.reduce((a, p) => a + p.downloadBytes, 0);
  const archived = new Map([...byClass].filter(([c]) => ARCHIVED_CLASSES.has(c)));
  return {
    task: task.name,
    dataset: task.fullName,
    recursive: !!task.recursive,
    stored,
    storedBytes,
    monthly: monthlyTotal(stored, i.prices),
    earlyDelete: finishEarly(early, i.prices),
    restore: {
      points,
      missing,
      downloadBytes,
      streamBytes: points.reduce((a, p) => a + p.streamBytes, 0),
      seconds: i.rate && points.length ? downloadBytes / i.rate.bytesPerSecond : null,
      downloadCost: points.length ? downloadCost(byClass, storedBytes, i.prices) : null,
      archived: [...archived].map(([storageClass, bytes]) => ({ storageClass, bytes })),
      thaw: thawTiers(archived, i.prices),
    },
  };
}
