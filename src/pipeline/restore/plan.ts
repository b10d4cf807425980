/**
 * The restore plan: for each step of the chain (level 0 → … → the chosen backup), whether the
 * target already holds it (matched by snapshot guid), what must be downloaded, and which parts
 * sit in an archived storage class. Changes nothing; `--plan` prints it.
 */
import type { ObjectInfo, ObjectStore } from "../../store/store.ts";
import { ARCHIVED_CLASSES } from "../../store/store.ts";
import { dataPrefix } from "../../store/layout.ts";
import type { Manifest } from "../../records/manifest.ts";
import * as zfs from "../../zfs/zfs.ts";
import { datasetProblem } from "../../zfs/names.ts";
import { storeError, usageError, zfsError } from "../../util/errors.ts";

export interface StepPlan {
  step: number;
  level: number;
  backupId: string;
  snapshot: string;
  snapshotGuid: string;
  parentSnapshot: string | null;
  parts: number;
  /** Ciphertext bytes to download. */
  downloadBytes: number;
  /** Size of the zfs send stream. */
  streamBytes: number;
  storageClasses: string[];
  /** Objects in an archived class (GLACIER / DEEP_ARCHIVE), and how many of them are readable now. */
  archived: number;
  thawed: number;
  thawing: number;
  action: "present" | "receive";
}

export interface RestorePlan {
  source: string;
  location: string;
  target: string;
  targetExists: boolean;
  backupId: string;
  snapshot: string;
  force: boolean;
  steps: StepPlan[];
  /** Index of the first step to apply (steps before it are already on the target). */
  resumeFrom: number;
  /** Archived objects of the steps to apply that are not readable yet. */
  frozen: number;
  warnings: string[];
}

export interface Inspected {
  plan: RestorePlan;
  chain: Manifest[];
  /** key → object info (class, restore status) of every part of the steps to apply. */
  objects: Map<string, ObjectInfo>;
  targetSnaps: zfs.Snapshot[];
}

export function checkTargetName(target: string): void {
  if (!target) throw usageError("--target POOL/DATASET is required (where to restore to, e.g. tank/restored)");
  if (target.includes("@")) throw usageError(`--target ${target} must be a dataset, not a snapshot (drop the @…)`);
  const why = datasetProblem(target);
  if (why) throw usageError(`--target ${JSON.stringify(target)} is not a valid dataset name: ${why}`);
}

/** `parentComing`: the target's parent is restored first by the same run (a tree's --plan), so it need not exist yet. */
/**
 * `listed`: the data objects the catalog was built from, when it was read moments ago (one
 * listing per step fewer); a part missing there is looked for once more in a listing of its own.
 */
export async function inspect(store: ObjectStore, chain: Manifest[], target: string, force: boolean, fs: string, parentComing = false, listed?: Map<string, ObjectInfo>): Promise<Inspected> {
  const pool = target.split("/")[0]!;
  if (!(await zfs.poolExists(pool)))
    throw zfsError(`pool ${pool} (of --target ${target}) does not exist; create it (zpool create) or import it (zpool import ${pool}), or choose another --target`);
  const targetExists = await zfs.datasetExists(target);
  if (!targetExists) {
    const parent = target.slice(0, target.lastIndexOf("/"));
    if (parent !== pool && !parentComing && !(await zfs.datasetExists(parent)))
      throw zfsError(`parent ${parent} of --target ${target} does not exist; create it first (zfs create -p ${parent}) or choose another --target`);
  }
  const targetSnaps = targetExists ? await zfs.listSnapshots(target) : [];
  const guids = new Set(targetSnaps.map((s) => s.guid));
  let have = -1;
  chain.forEach((m, i) => {
    if (guids.has(m.snapshot.guid)) have = i;
  });
  const warnings: string[] = [];
  if (targetExists && have < 0 && !force)
    throw zfsError(
      `target ${target} already exists and holds none of the snapshots of this chain; ` +
        `choose a new --target, or add --force to overwrite it (zfs receive -F: its current contents are replaced)`,
    );
  if (targetExists && have >= 0) {
    const after = targetSnaps.filter((s) => s.createtxg > targetSnaps.find((t) => t.guid === chain[have]!.snapshot.guid)!.createtxg);
    if (after.length && have < chain.length - 1)
      warnings.push(`${target} has snapshots newer than ${chain[have]!.snapshot.name.split("@")[1]} (e.g. ${after[0]!.name}); the next incremental receive needs --force (zfs receive -F rolls them back)`);
  }
  const objects = new Map<string, ObjectInfo>();
  const steps: StepPlan[] = [];
  let frozen = 0;
  for (const [i, m] of chain.entries()) {
    const present = i <= have;
    const known = listed && m.parts.every((p) => listed.has(p.key)) ? listed : undefined;
    const stepListed = known ?? new Map((await store.list(dataPrefix(m.pool, m.dataset, m.level, m.backupId))).map((o) => [o.key, o]));
    const classes = new Set<string>();
    let archived = 0;
    let thawed = 0;
    let thawing = 0;
    for (const p of m.parts) {
      let info = stepListed.get(p.key);
      if (!info) throw storeError(`part ${p.index} of backup ${m.backupId} is missing: ${store.urlOf(p.key)}; run zrb list to see which backups are intact`);
      const cls = info.storageClass ?? m.storageClass ?? "STANDARD";
      classes.add(cls);
      if (ARCHIVED_CLASSES.has(cls)) {
        archived++;
        if (!present) {
          const h = await store.head(p.key);
          if (h) info = { ...info, ...h, storageClass: cls };
          if (info.restore === "available") thawed++;
          else if (info.restore === "ongoing") thawing++;
          if (info.restore !== "available") frozen++;
        }
      } else {
        info = { ...info, storageClass: cls };
      }
      if (!present) objects.set(p.key, info);
    }
    steps.push({
      step: i + 1,
      level: m.level,
      backupId: m.backupId,
      snapshot: m.snapshot.name,
      snapshotGuid: m.snapshot.guid,
      parentSnapshot: m.parent?.name ?? null,
      parts: m.parts.length,
      downloadBytes: m.parts.reduce((a, p) => a + p.cipherSize, 0),
      streamBytes: m.stream.size,
      storageClasses: [...classes].sort(),
      archived,
      thawed,
      thawing,
      action: present ? "present" : "receive",
    });
  }
  const last = chain.at(-1)!;
  return {
    plan: {
      source: fs,
      location: store.location,
      target,
      targetExists,
      backupId: last.backupId,
      snapshot: last.snapshot.name,
      force,
      steps,
      resumeFrom: have + 1,
      frozen,
      warnings,
    },
    chain,
    objects,
    targetSnaps,
  };
}
