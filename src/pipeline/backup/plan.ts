/**
 * Plan: resume the interrupted backup or start a new one.
 *   - an unusable backup_state.yaml is discarded with a warning (never misread);
 *   - an interrupted backup at this level is resumed (exactly its recorded snapshot, matched by
 *     guid), or only finished if its manifest is already in the bucket;
 *   - one at another level is superseded and discarded (a lower one was finished before, see
 *     index.ts);
 *   - a new backup takes the newest snapshot of the level and, for level N ≥ 1, the newest
 *     lower-level head as its base — which must be restorable from the bucket with its whole
 *     chain (exit 7 otherwise) and still exist on the pool. A snapshot already backed up at this
 *     level is not sent again unless forced.
 */
import type { Config, Task } from "../../config/config.ts";
import type { ObjectStore } from "../../store/store.ts";
import { manifestKey, newBackupId } from "../../store/layout.ts";
import { readManifest, type Manifest } from "../../records/manifest.ts";
import { chooseParent, type Heads } from "../../records/heads.ts";
import { STATE_FORMAT, type BackupState, type RunDir } from "../../state/rundir.ts";
import { chainProblem } from "../catalog.ts";
import * as zfs from "../../zfs/zfs.ts";
import { ExitCode, ZrbError, integrityError, zfsError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";
import { discardState } from "./finish.ts";
import { holdTags } from "./holds.ts";
import { manifestTrustProblem, type Trust } from "../../records/trust.ts";
import { now } from "../../util/clock.ts";

export type Start =
  /** The newest snapshot of the level is already backed up at that level: nothing to send. */
  | { kind: "already"; backupId: string; level: number; snapshot: string }
  /** A killed run had written the manifest: only its bookkeeping is left. */
  | { kind: "complete"; state: BackupState; manifest: Manifest; manifestKey: string }
  | { kind: "send"; state: BackupState; resumed: boolean };

export interface PlanInput {
  cfg: Config;
  task: Task;
  store: ObjectStore;
  rd: RunDir;
  heads: Heads;
  /** The dataset's snapshots, by createtxg. */
  snaps: zfs.Snapshot[];
  caps: zfs.ZfsCaps;
  level: number;
  /** Back up exactly this snapshot (the name after '@'; a recursive task's run), not the newest of the level. */
  snapshot?: string;
  force: boolean;
  /** With the NAS's verification key: the base's chain must be signed with it. */
  trust: Trust;
}

export async function prepare(p: PlanInput): Promise<Start> {
  const { store, rd, task, level } = p;
  const read = await rd.readState();
  if (read.kind === "unusable") {
    log.warn(`${rd.statePath} cannot be resumed (${read.why}); discarding it: this backup starts fresh; zrb cleanup --abandon ID removes what the interrupted run had uploaded (cleanup lists it as in flight)`);
    rd.removeState();
  }
  const state = read.kind === "ok" ? read.state : null;
  if (state && state.level === level) return resume(p, state);
  if (state) {
    log.warn(`discarding interrupted level-${state.level} backup ${state.backupId}: this level-${level} backup supersedes it`);
    await discardState(store, state, rd, { sendTag: holdTags(p.cfg).send });
  }
  const planned = await planFresh(p);
  if (planned.kind === "already") return planned;
  const plan = await zfs.planSend(planned.target.name, planned.parent?.name, p.caps, { properties: task.sendProperties });
  const fresh: BackupState = {
    format: STATE_FORMAT,
    backupId: newBackupId(level),
    level,
    pool: task.pool,
    dataset: task.dataset,
    snapshot: { name: planned.target.name, guid: planned.target.guid, createtxg: String(planned.target.createtxg) },
    parent: planned.parent,
    sendFlags: plan.flags,
    chunkSize: p.cfg.chunkSize,
    recipients: p.cfg.recipients,
    startedAt: now().toISOString(),
    chunks: [],
  };
  rd.writeState(fresh);
  return { kind: "send", state: fresh, resumed: false };
}

async function resume(p: PlanInput, state: BackupState): Promise<Start> {
  const { store, rd, task } = p;
  const fs = task.fullName;
  // A killed run may have written the manifest already: then only the bookkeeping is left,
  // whatever happened to the snapshots since.
  const mKey = manifestKey(task.pool, task.dataset, state.backupId);
  const prior = await readManifest(store, mKey, { pool: task.pool, dataset: task.dataset });
  const forged = prior && manifestTrustProblem(prior, p.trust);
  if (forged) throw integrityError(`the manifest of the interrupted backup ${state.backupId} in ${store.location} cannot be trusted: ${forged}; remove it (it is not this NAS's) and rerun`);
  if (prior) {
    log.info(`backup ${state.backupId} was already complete in ${store.location}; finishing its bookkeeping`);
    return { kind: "complete", state, manifest: prior, manifestKey: mKey };
  }
  // Resume backs up exactly the recorded snapshot (matched by guid), even if a newer one exists.
  const still = p.snaps.find((s) => s.name === state.snapshot.name && s.guid === state.snapshot.guid);
  const base = state.parent ? p.snaps.find((s) => s.guid === state.parent!.guid) : undefined;
  if (!still || (state.parent && !base)) {
    const gone = !still ? state.snapshot : state.parent!;
    const { partsKept } = await discardState(store, state, rd, { sendTag: holdTags(p.cfg).send });
    throw zfsError(
      `the interrupted backup ${state.backupId} needs ${gone.name} (guid ${gone.guid}), which no longer exists on ${fs}; ` +
        `its uploads were aborted, ${partsKept ? "its finished parts kept" : "its parts deleted"} and its state removed: run the backup again to back up the newest snapshot`,
    );
  }
  if (state.parent && base && base.name !== state.parent.name) state.parent.name = base.name; // renamed snapshot, same guid
  log.info(`resuming interrupted backup ${state.backupId} of ${state.snapshot.name}`);
  return { kind: "send", state, resumed: true };
}

type Planned = { kind: "send"; target: zfs.Snapshot; parent: BackupState["parent"] } | Extract<Start, { kind: "already" }>;

async function planFresh(p: PlanInput): Promise<Planned> {
  const { cfg, task, store, heads, snaps, level } = p;
  const fs = task.fullName;
  const target = p.snapshot !== undefined ? snaps.find((s) => s.short === p.snapshot) : zfs.newestLevelSnapshot(snaps, level);
  if (!target && p.snapshot !== undefined) throw zfsError(`no snapshot ${fs}@${p.snapshot} to back up`);
  if (!target)
    throw zfsError(`no snapshot ${fs}@${zfs.levelPrefix(level)}* to back up; create one with: zrb snapshot --config ${cfg.path} --task ${task.name} --level ${level}`);
  const head = heads.levels[String(level)];
  if (!p.force && head && head.snapshot.guid === target.guid && !(await chainProblem(store, task.pool, task.dataset, head.backupId, level, p.trust)))
    return { kind: "already", backupId: head.backupId, level, snapshot: target.name };
  if (level === 0) return { kind: "send", target, parent: null };
  const parent = chooseParent(heads, level);
  if (!parent)
    throw new ZrbError(
      `level ${level} needs a backup at a lower level of ${fs} first, and ${store.location} has none; run: zrb backup --config ${cfg.path} --task ${task.name} --level 0`,
      ExitCode.USAGE,
    );
  const broken = await chainProblem(store, task.pool, task.dataset, parent.backupId, parent.level, p.trust);
  if (broken)
    throw integrityError(
      `level ${level} would be built on level-${parent.level} backup ${parent.backupId}, which cannot be restored from ${store.location}: ${broken.message}; ` +
        `back up a lower level first: zrb backup --config ${cfg.path} --task ${task.name} --level ${broken.level}`,
    );
  const base = snaps.find((s) => s.guid === parent.snapshot.guid);
  if (!base)
    throw zfsError(
      `the base snapshot ${parent.snapshot.name} (guid ${parent.snapshot.guid}) of level-${parent.level} backup ${parent.backupId} no longer exists on ${fs}; run a lower-level backup (e.g. --level 0)`,
    );
  if (base.createtxg >= target.createtxg)
    throw zfsError(`newest ${zfs.levelPrefix(level)}* snapshot ${target.name} is not newer than the base ${base.name} of level-${parent.level} backup ${parent.backupId}; take a new snapshot first`);
  return { kind: "send", target, parent: { name: base.name, guid: base.guid, createtxg: String(base.createtxg), backupId: parent.backupId, level: parent.level } };
}
