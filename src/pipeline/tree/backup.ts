/**
 * `zrb backup` of a recursive task: the single-dataset backup (backup/index.ts), once per child.
 *
 *   tree lock ─► the children on the pool (children.ts: order, excludes, names) ─► the run's
 *   snapshot: the newest zrb_level<N>_ snapshot of the task's dataset ─► per child, one at a time
 *   (so the spill budget is the single backup's; one Worker pool, parallel/pool.ts, serves every
 *   child in turn instead of each starting its own): its level (level.ts),
 *   backup(), again when it only finished an interrupted backup of an older snapshot
 *   ─► the known children in the bucket (records/tree.ts): children gone since the last run are
 *   reported, once; their backups stay.
 * Every child keeps its own lock, state, holds and heads. A child that fails is reported and the
 * next one runs; an interrupt stops the run (every child's state is saved: the rerun resumes).
 */
import { otherTaskOf, type Config, type Task } from "../../config/config.ts";
import { readSigningKey } from "../../crypto/signing.ts";
import { assertSafeBaseDir } from "../../state/basedir.ts";
import { readHeads } from "../../records/heads.ts";
import { acquireLock } from "../../state/lock.ts";
import { treeLockPath } from "../../state/rundir.ts";
import { advanceTree, readTree, sameTree, writeTree, type TreeChild } from "../../records/tree.ts";
import { nasTrust, type Trust } from "../../records/trust.ts";
import { RunDir } from "../../state/rundir.ts";
import type { ObjectStore } from "../../store/store.ts";
import { now } from "../../util/clock.ts";
import { configError, usageError, zfsError } from "../../util/errors.ts";
import { log } from "../../util/log.ts";
import * as zfs from "../../zfs/zfs.ts";
import type { TransferProgress } from "../../report/progress.ts";
import { backup, type BackupResult } from "../backup/index.ts";
import { excludePatternProblem } from "../../zfs/exclude.ts";
import { childLabel, childTask, poolTree, type Child } from "./children.ts";
import { childLevel, levelNote } from "./level.ts";
import { failed, type ChildOutcome } from "./outcome.ts";
import { driveChildren, type Step } from "./drive.ts";
import { withThreadPool, type ThreadPool } from "../parallel/pool.ts";
import type { SendShare } from "../backup/shared-send.ts";

/** What the reporter hears about the children, besides the transfer of each. */
export interface TreeProgress extends TransferProgress {
  child(c: { rel: string; dataset: string; level?: number; note?: string }): void;
  childDone(o: ChildOutcome): void;
}

export interface TreeBackupOptions {
  level: number;
  force?: boolean;
  /** Only this child (relative name, "" for the task's dataset). */
  only?: string;
  signal?: AbortSignal;
  progress?: TreeProgress;
  /** The run's senders shared with the other stores (backup/shared-send.ts). */
  sends?: SendShare;
}

export interface TreeBackupResult {
  /** The run's snapshot (the name after '@'), on every child. */
  snapshot: string;
  children: ChildOutcome<BackupResult & { level: number; note?: string }>[];
  excluded: string[];
  /** Children found gone by this run (destroyed or excluded now); their backups are kept. */
  gone: TreeChild[];
  /** tree.yaml could not be written (the backups themselves are done). */
  recordError?: ChildOutcome;
}

export async function backupTree(cfg: Config, task: Task, store: ObjectStore, opts: TreeBackupOptions): Promise<TreeBackupResult> {
  assertSafeBaseDir(cfg.baseDir, { create: true });
  const lock = acquireLock(treeLockPath(cfg.baseDir, task.pool, task.dataset), `tree ${task.fullName}`, `zrb backup --level ${opts.level}`);
  try {
    const at = now().toISOString();
    if (!(await zfs.datasetExists(task.fullName))) throw zfsError(`dataset ${task.fullName} (task ${task.name}) does not exist; check tasks[].pool/dataset in ${cfg.path}`);
    const tree = await poolTree(task);
    for (const p of tree.unmatched) log.warn(`exclude pattern ${JSON.stringify(p)} of task ${task.name} matches no child of ${task.fullName}`);
    const snapshot = runSnapshot(cfg, task, await zfs.listSnapshots(task.fullName), opts.level);
    const signer = cfg.signingKeyFile ? await readSigningKey(cfg.signingKeyFile) : undefined;
    const trust: Trust = nasTrust(signer, cfg.verifyKeys);
    const children = pick(tree.children, opts.only, task);
    const out: TreeBackupResult = { snapshot, children: [], excluded: tree.excluded.map((c) => c.rel), gone: [] };
    for (const r of tree.refused) {
      if (opts.only !== undefined && r.rel !== opts.only) continue;
      const fix = excludePatternProblem(r.rel) ? "rename it (zfs rename)" : `rename it (zfs rename) or add ${JSON.stringify(r.rel)} to the task's exclude`;
      out.children.push(failed(r.rel, r.fs, configError(`child ${r.fs} of task ${task.name} cannot be backed up: ${r.why}; ${fix}`)));
      log.error(out.children.at(-1)!.message!);
    }
    // One set of Workers for every child (pool.ts), stopped when the children are done.
    const done = await withThreadPool(cfg.workers, (threads) => driveChildren(children, (c) => backupChild(cfg, task, store, c, snapshot, trust, { ...opts, threads }), { signal: opts.signal, progress: opts.progress }));
    out.children.push(...done);
    out.children.sort((a, b) => tree.all.findIndex((c) => c.rel === a.rel) - tree.all.findIndex((c) => c.rel === b.rel));
    await record(cfg, task, store, { tree, out, at, signer, trust });
    return out;
  } finally {
    lock.release();
  }
}

/** The run's snapshot: the newest of the level on the task's dataset (zrb snapshot made it on every child at once). */
function runSnapshot(cfg: Config, task: Task, snaps: zfs.Snapshot[], level: number): string {
  const s = zfs.newestLevelSnapshot(snaps, level);
  if (!s)
    throw zfsError(
      `no snapshot ${task.fullName}@${zfs.levelPrefix(level)}* to back up; create one on the whole tree with: zrb snapshot --config ${cfg.path} --task ${task.name} --level ${level}`,
    );
  return s.short;
}

function pick(children: Child[], only: string | undefined, task: Task): Child[] {
  if (only === undefined) return children;
  const c = children.filter((x) => x.rel === only);
  if (c.length === 0) throw usageError(`--child ${childLabel(only)}: ${task.fullName}${only ? "/" + only : ""} is not a child that task ${task.name} backs up (not on the pool, or excluded)`);
  return c;
}

type Done = BackupResult & { level: number; note?: string };

async function backupChild(cfg: Config, task: Task, store: ObjectStore, c: Child, snapshot: string, trust: Trust, opts: TreeBackupOptions & { threads: ThreadPool }): Promise<Step<Done>> {
  const ct = childTask(task, c.rel);
  let snaps = await zfs.listSnapshots(c.fs);
  if (!snaps.some((s) => s.short === snapshot)) return { status: "skipped", message: `no snapshot @${snapshot} (created after zrb snapshot ran?); the next run backs it up` };
  // At most twice: a first pass may only finish an interrupted backup of an older snapshot.
  for (let pass = 0; ; pass++) {
    const lvl = childLevel(opts.level, await readHeads(store, ct.pool, ct.dataset, trust, await new RunDir(cfg.baseDir, ct.pool, ct.dataset).lastHeadsSequence()), snaps);
    const note = levelNote(lvl);
    if (note) log.info(`${c.fs}: ${note}`);
    opts.progress?.child({ rel: c.rel, dataset: c.fs, level: lvl.level, note });
    const r = await backup(cfg, ct, store, { level: lvl.level, snapshot, force: opts.force, signal: opts.signal, progress: opts.progress, threads: opts.threads, sends: opts.sends });
    const sent = r.kind === "done" ? r.manifest.snapshot.name : r.snapshot;
    if (sent === `${c.fs}@${snapshot}` || pass > 0) return { status: "ok", result: { ...r, level: lvl.level, note } };
    log.info(`${c.fs}: finished the interrupted backup of ${sent}; now the run's snapshot @${snapshot}`);
    snaps = await zfs.listSnapshots(c.fs);
  }
}

/** Update tree.yaml: children backed up now are known; children gone since the last run are reported once. */
async function record(
  cfg: Config,
  task: Task,
  store: ObjectStore,
  x: { tree: Awaited<ReturnType<typeof poolTree>>; out: TreeBackupResult; at: string; signer: Parameters<typeof writeTree>[5]; trust: Trust },
): Promise<void> {
  const prev = await readTree(store, task.pool, task.dataset, x.trust);
  const all = x.tree.all;
  const type = (rel: string) => all.find((c) => c.rel === rel)!.type;
  const { next, gone } = advanceTree(prev, {
    at: x.at,
    backedUp: x.out.children.filter((o) => o.status === "ok").map((o) => ({ rel: o.rel, type: type(o.rel) })),
    onPool: new Set(all.map((c) => c.rel)),
    excluded: new Set(x.tree.excluded.map((c) => c.rel)),
  });
  x.out.gone = gone;
  for (const g of gone) {
    const full = `${task.fullName}${g.name ? "/" + g.name : ""}`;
    // A child excluded to give it a task of its own: that task's prune decides for its backups.
    const owner = otherTaskOf(cfg, task, full);
    log.warn(
      `${full} is ${g.reason === "excluded" ? "excluded now" : "gone from the pool"}: its backups are kept in ${store.location}; ` +
        (owner ? `task ${owner.name} backs it up now, and zrb prune --task ${owner.name} prunes them` : `zrb list shows them, zrb prune --task ${task.name} --child ${childLabel(g.name)} prunes them`),
    );
  }
  if (sameTree(prev, next)) return;
  try {
    await writeTree(cfg, store, task.pool, task.dataset, next, x.signer);
  } catch (err) {
    if (x.out.children.length === 0) throw err;
    x.out.recordError = failed("", task.fullName, err);
    log.error(`could not record the tree's children in ${store.location}: ${x.out.recordError.message}; the next backup records them`);
  }
}
