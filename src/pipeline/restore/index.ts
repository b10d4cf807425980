/**
 * Restore: plan the chain from the bucket alone and apply it with `zfs receive`, verified.
 *
 *   catalog ──► select (select.ts) ──► plan: which steps the target lacks (plan.ts)
 *     ──► thaw archived parts (thaw.ts) ──► check the identity opens the chain (decrypt.ts)
 *     ──► for each step: fetch (fetch.ts) → decrypt (decrypt.ts) → receive (receive.ts)
 *
 * One set of Workers for the whole run (parallel/): the file worker writes and SHA-256s the
 * downloads, the crypto workers open a part's runs all at once.
 * Streaming, no plaintext scratch: scratch disk holds at most `ahead` ciphertext parts, never
 * the stream. A verified, completed step is kept: a rerun resumes after it (the target's
 * snapshots are matched to the chain by guid).
 */
import type { Config, Task } from "../../config/config.ts";
import type { ObjectStore } from "../../store/store.ts";
import type { Manifest } from "../../records/manifest.ts";
import { acquireLock } from "../../state/lock.ts";
import { assertSafeBaseDir } from "../../state/basedir.ts";
import { restoreLockPath, restoreScratchRoot } from "../../state/rundir.ts";
import { loadCatalog, type Catalog } from "../catalog.ts";
import * as zfs from "../../zfs/zfs.ts";
import { usageError, zfsError } from "../../util/errors.ts";
import { checkInterrupted } from "../../util/abort.ts";
import { log } from "../../util/log.ts";
import { warnUnauthenticated, type Trust } from "../../records/trust.ts";
import { selectBackup, shortSnap, type Selector } from "./select.ts";
import { checkTargetName, inspect, type RestorePlan } from "./plan.ts";
import { ensureThawed, type ThawProgress, type ThawTier } from "./thaw.ts";
import { preflightIdentity } from "./decrypt.ts";
import { applyStep } from "./receive.ts";
import { RANGE_BYTES } from "./fetch.ts";
import { checkStreamEnds } from "./ends.ts";
import type { TransferProgress } from "../../report/progress.ts";
import { withThreads } from "../parallel/index.ts";
import type { ThreadPool } from "../parallel/pool.ts";

export type { Selector } from "./select.ts";
export type { RestorePlan, StepPlan } from "./plan.ts";
export type { ThawProgress, ThawTier } from "./thaw.ts";

export interface RestoreOptions {
  target: string;
  selector: Selector;
  force: boolean;
  /** The age identities (from the private key file); required unless planOnly. */
  identities?: string[];
  /** Which backups to believe (records/trust.ts). */
  trust: Trust;
  planOnly: boolean;
  thaw?: { tier: ThawTier; days: number };
  /** Parts downloaded ahead (and on scratch disk) at most. */
  ahead?: number;
  signal?: AbortSignal;
  /** Progress of thaw requests (called once per run, after all requests were sent). */
  onThaw?: (p: ThawProgress) => void;
  /** Bytes received (of the steps to apply, all together) and parts verified. */
  progress?: TransferProgress;
  /** The dataset's catalog, when the caller has already read it (a recursive task's restore). */
  catalog?: Catalog;
  /** The target's parent is restored first by the same run (a recursive task's child). */
  parentComing?: boolean;
  /** The tree run's Workers (lent, not started and stopped per child). */
  threads?: ThreadPool;
}

export interface RestoreResult {
  plan: RestorePlan;
  thaw?: ThawProgress;
  applied: { backupId: string; level: number; snapshot: string; seconds: number }[];
  /** Snapshot now at the head of the target (full name), when something was restored or already present. */
  restored?: string;
}

/** A resumable partial receive on the target: refused without --force, aborted with it. */
async function checkPartialReceive(target: string, force: boolean, caps: zfs.ZfsCaps): Promise<void> {
  const token = await zfs.getProp(target, "receive_resume_token");
  if (!token || token === "-") return;
  if (!force)
    throw zfsError(
      `${target} holds a partially received stream (receive_resume_token is set), probably from an interrupted run; discard it with: zfs receive -A ${target}, or rerun with --force`,
    );
  await zfs.abortReceive(target, caps);
}

export async function restore(cfg: Config, task: Task, store: ObjectStore, opts: RestoreOptions): Promise<RestoreResult> {
  checkTargetName(opts.target);
  if (!opts.planOnly && !opts.identities)
    throw usageError("--private-key FILE is required to restore (the age identity file made by zrb genkey or age-keygen)");
  const caps = await zfs.detectCaps();
  warnUnauthenticated(opts.trust, "restore");
  const cat = opts.catalog ?? (await loadCatalog(store, task.pool, task.dataset, opts.trust));
  const sel = selectBackup(cat, opts.selector, task.fullName, store);
  await checkPartialReceive(opts.target, opts.force, caps);
  const ins = await inspect(store, sel.chain, opts.target, opts.force, task.fullName, opts.parentComing, cat.objects);
  const { plan } = ins;
  const result: RestoreResult = { plan, applied: [] };
  if (opts.planOnly) return result;

  const toApply = ins.chain.slice(plan.resumeFrom);
  result.restored = `${opts.target}@${shortSnap(plan.snapshot)}`;
  if (toApply.length === 0) {
    log.info(`${opts.target} already holds ${shortSnap(plan.snapshot)} (guid ${sel.manifest.snapshot.guid}); nothing to do`);
    return result;
  }
  result.thaw = await ensureThawed(store, plan, [...ins.objects.values()], opts.thaw, opts.onThaw);

  const identities = opts.identities!;
  assertSafeBaseDir(cfg.baseDir, { create: true });
  const lock = acquireLock(restoreLockPath(cfg.baseDir, opts.target), `restore target ${opts.target}`, `zrb restore --target ${opts.target}`);
  // The key opens the chain, and every step's stream starts and ends as its manifest says, before
  // any byte reaches zfs receive: checked while the first step's parts download to scratch (a
  // few round trips a WAN link would otherwise idle through; nothing downloaded is decrypted
  // before its SHA-256 matched, nor received before these checks passed).
  const checks = preReceiveChecks(store, toApply, identities);
  let received = 0;
  const onBytes = (n: number) => opts.progress?.bytes(Math.round((received += n)));
  opts.progress?.start({
    backupId: sel.manifest.backupId,
    level: sel.manifest.level,
    snapshot: sel.manifest.snapshot.name,
    bytesExpected: toApply.reduce((a, m) => a + m.stream.size, 0),
    parts: toApply.reduce((a, m) => a + m.parts.length, 0),
  });
  // A Worker that dies fails the run at once: the step stops (its receive killed and cleaned up)
  // and the run ends with one line naming the Worker.
  try {
    await withThreads(cfg.workers, `restore into ${opts.target}`, opts.signal, async (threads, signal) => {
      for (const [i, m] of toApply.entries()) {
        checkInterrupted(signal);
        const n = plan.resumeFrom + i + 1;
        log.info(`step ${n}/${ins.chain.length}: level ${m.level} ${shortSnap(m.snapshot.name)} (backup ${m.backupId}, ${m.parts.length} parts, ${m.stream.size} bytes)`);
        const { seconds } = await applyStep(store, m, caps, {
          before: i === 0 ? checks : undefined,
          target: opts.target,
          // -F on every step: a forced target may be mounted, and atime updates between steps
          // would otherwise make the next incremental fail with "has been modified".
          force: opts.force,
          identities,
          scratchRoot: restoreScratchRoot(cfg.baseDir),
          ahead: opts.ahead ?? partsAhead(m, cfg.s3.concurrency),
          threads,
          signal,
          stallMs: cfg.zfs.stallTimeout,
          onBytes,
          connections: cfg.s3.concurrency,
          progress: opts.progress,
        });
        result.applied.push({ backupId: m.backupId, level: m.level, snapshot: `${opts.target}@${shortSnap(m.snapshot.name)}`, seconds });
        log.info(`step ${n}/${ins.chain.length}: ${opts.target}@${shortSnap(m.snapshot.name)} received and verified in ${seconds.toFixed(1)} s`);
      }
    }, opts.threads);
  } finally {
    lock.release();
  }
  return result;
}

/**
 * The checks before the first byte is received: the identity opens the chain's first step (the
 * clear error for a wrong key), and each step's stream ends (ends.ts); all at once. A wrong key
 * is reported as such even when an ends check fails too.
 */
function preReceiveChecks(store: ObjectStore, steps: Manifest[], identities: string[]): Promise<void> {
  const identity = preflightIdentity(store, steps[0]!, identities);
  const ends = steps.map((m) => checkStreamEnds(store, m, identities));
  for (const p of [identity, ...ends]) p.catch(() => {}); // awaited in order below
  const all = (async () => {
    await identity;
    for (const e of ends) await e;
  })();
  all.catch(() => {}); // the first step awaits it; a run that fails before has its own error
  return all;
}

/**
 * Parts downloaded ahead of the one being received: 2, or with small parts as many as keep
 * every connection's ranges queued twice over (connections × range × 2 ÷ a part's size), so the
 * link does not wait while a part is decrypted and received — 16 at most. Scratch holds that
 * many ciphertext parts: two of the default 3 GiB, or 16 × 4 MiB with 4 MiB parts.
 */
export function partsAhead(m: Manifest, connections: number): number {
  const part = Math.max(1, ...m.parts.map((p) => p.cipherSize));
  return Math.min(16, Math.max(2, Math.ceil((2 * Math.max(1, connections) * RANGE_BYTES) / part)));
}
