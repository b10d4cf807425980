/** Thaw: ask for every archived object of the steps to apply at once, and count where they stand. */
import { ARCHIVED_CLASSES, StoreError, type ObjectInfo, type ObjectStore } from "../../store/store.ts";
import type { RestorePlan } from "./plan.ts";

export type ThawTier = "Bulk" | "Standard" | "Expedited";

export interface ThawProgress {
  total: number;
  requested: number;
  ongoing: number;
  available: number;
}

/** Ask for every archived object of the steps to apply at once; report how many are requested/ongoing/available. */
export async function thawObjects(
  store: ObjectStore,
  objects: ObjectInfo[],
  opts: { tier: ThawTier; days: number; concurrency?: number },
): Promise<ThawProgress> {
  const todo = objects.filter((o) => ARCHIVED_CLASSES.has(o.storageClass ?? ""));
  const prog: ThawProgress = { total: todo.length, requested: 0, ongoing: 0, available: 0 };
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const o = todo[next++]!;
      if (o.restore === "available") {
        prog.available++;
        continue;
      }
      const r = await store.thaw(o.key, { tier: opts.tier, days: opts.days });
      prog[r]++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 16, Math.max(1, todo.length)) }, worker));
  return prog;
}

/**
 * Before downloading: every archived object of the steps to apply must be readable. Without
 * --thaw that is a one-line error saying how; with it, everything is requested at once and the
 * run ends (exit 6) until all of it is available.
 */
export async function ensureThawed(
  store: ObjectStore,
  plan: RestorePlan,
  objects: ObjectInfo[],
  thaw: { tier: ThawTier; days: number } | undefined,
  onThaw?: (p: ThawProgress) => void,
): Promise<ThawProgress | undefined> {
  if (plan.frozen === 0) return undefined;
  if (!thaw) {
    const classes = [...new Set(plan.steps.flatMap((s) => s.storageClasses.filter((c) => ARCHIVED_CLASSES.has(c))))].join(", ");
    throw new StoreError(
      "archived",
      `${plan.frozen} part(s) of this chain are in an archived storage class (${classes}) and not readable yet; ` +
        `rerun with --thaw [--tier Bulk|Standard|Expedited] [--days N] to request them all, then run the same command again once they are available`,
    );
  }
  const prog = await thawObjects(store, objects, thaw);
  onThaw?.(prog);
  if (prog.available < prog.total)
    throw new StoreError(
      "archived",
      `thaw in progress: ${prog.requested} requested now, ${prog.ongoing} already thawing, ${prog.available} of ${prog.total} available; ` +
        `run the same command again later (Expedited: minutes, Standard: hours, Bulk: up to 48 h)`,
    );
  return prog;
}
