/**
 * The status of one dataset (a task's, or one child of a recursive task): whose lock, which
 * interrupted backup, the heads in the bucket and, with --max-age, their freshness. Local state
 * and the bucket are read; nothing changes.
 */
import { existsSync } from "node:fs";
import { checkFreshness, type FreshnessCheck } from "../report/freshness.ts";
import { readHeads } from "../records/heads.ts";
import { lockHeld, readLockInfo } from "../state/lock.ts";
import { RunDir } from "../state/rundir.ts";
import type { ObjectStore } from "../store/store.ts";
import { manifestKey } from "../store/layout.ts";
import { canVerify, NO_TRUST, type Trust } from "../records/trust.ts";

export interface LockStatus {
  running: { pid: number; command: string; since: string } | null;
  staleLock: boolean;
}

export interface DatasetStatus extends LockStatus {
  dataset: string;
  interrupted: { backupId: string; level: number; snapshot: string; partsDone: number; bytesDone: number; startedAt: string } | null;
  heads: { level: number; backupId: string; snapshot: string; finishedAt: string }[] | null;
  headsError?: string;
  stateError?: string;
  /** A verification key is known (and --allow-unsigned not given): heads and freshness count signed backups only. */
  signedOnly?: boolean;
  /** signedOnly and no signed backup, but unsigned (or foreign-signed) ones are in the bucket. */
  unsignedOnly?: boolean;
  /** With --max-age: one check per --level (or one for any level). */
  freshness?: FreshnessCheck[];
}

/**
 * Who holds a lock file. The kernel's flock decides, not the host name it records: a lock file
 * left by a kill -9 is stale even when the host has been renamed since (issue 20).
 */
export function lockStatus(path: string): LockStatus {
  if (!existsSync(path)) return { running: null, staleLock: false };
  const l = readLockInfo(path);
  if (lockHeld(path)) return { running: l ? { pid: l.pid, command: `${l.command} on ${l.host}`, since: l.since } : { pid: 0, command: "a zrb run (its lock file is being written)", since: "?" }, staleLock: false };
  return { running: null, staleLock: existsSync(path) };
}

export interface FreshnessAsk {
  task: string;
  maxAgeMs: number;
  levels: number[] | null;
  at: Date;
}

/** Without `fresh`, a store error reading the heads is shown; with it, it is the run's error (freshness cannot be judged). */
export async function datasetStatus(baseDir: string, store: ObjectStore, pool: string, dataset: string, trust: Trust, fresh?: FreshnessAsk): Promise<DatasetStatus> {
  const rd = new RunDir(baseDir, pool, dataset);
  const lock = lockStatus(rd.lockPath);
  const read = await rd.readState();
  const st = read.kind === "ok" ? read.state : null;
  const done = st?.chunks?.filter((c) => c?.uploaded) ?? [];
  const out: DatasetStatus = {
    dataset: rd.fs,
    ...lock,
    interrupted:
      st && !lock.running
        ? { backupId: st.backupId, level: st.level, snapshot: st.snapshot.name, partsDone: done.length, bytesDone: done.reduce((a, c) => a + c.plainSize, 0), startedAt: st.startedAt }
        : null,
    heads: null,
  };
  if (read.kind === "unusable") out.stateError = `${rd.statePath} cannot be resumed (${read.why}); the next backup discards it`;
  try {
    const h = await readHeads(store, pool, dataset, trust, await rd.lastHeadsSequence());
    out.heads = Object.entries(h.levels)
      .map(([k, v]) => ({ level: Number(k), backupId: v.backupId, snapshot: v.snapshot.name, finishedAt: v.finishedAt }))
      .sort((a, b) => a.level - b.level);
    const signedOnly = canVerify(trust) && !trust.allowUnsigned;
    if (signedOnly) out.signedOnly = true;
    if (signedOnly && out.heads.length === 0 && Object.keys((await readHeads(store, pool, dataset, NO_TRUST)).levels).length > 0) out.unsignedOnly = true;
    if (fresh) {
      out.freshness = checkFreshness(fresh.task, rd.fs, h, fresh.levels, fresh.maxAgeMs, fresh.at, signedOnly);
      // Fresh only if it is there: heads.yaml outlives a manifest deleted by hand or a lifecycle rule.
      for (const c of out.freshness)
        if (c.newest && !c.stale && !(await store.head(manifestKey(pool, dataset, c.newest.backupId)))) Object.assign(c, { stale: true, gone: true });
    }
  } catch (err) {
    if (fresh) throw err;
    out.headsError = (err as Error).message;
  }
  return out;
}
