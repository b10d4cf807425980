/**
 * `zrb cleanup`: remove what interrupted or abandoned runs left in the store for one task —
 * multipart uploads never completed or aborted (providers bill their parts forever) and part
 * objects no manifest refers to — without touching anything a finished backup or the
 * resumable backup in backup_state.yaml still needs. Runs under the dataset's lock, so it
 * never races a backup on this host; --older-than also spares work younger than the given
 * age (e.g. a backup of the same dataset from another host). --dry-run lists and changes nothing.
 */
import { defineCommand } from "citty";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Config, Task } from "../config/config.ts";
import { releaseStraySendHolds, runDir, type BackupState } from "../pipeline/backup.ts";
import * as zfs from "../zfs/zfs.ts";
import { acquireLock } from "../state/lock.ts";
import { readYaml } from "../state/atomic.ts";
import { dataPrefix, fullName, listManifests } from "../state/manifest.ts";
import type { ObjectStore } from "../store/store.ts";
import { usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { formatSize } from "../util/size.ts";
import { applyOutput, configArg, loadAll, outputArgs, printJson, taskArg } from "./common.ts";

export interface CleanupOptions {
  dryRun: boolean;
  /** Only touch uploads/objects at least this old (ms); 0 = any age. */
  olderThanMs: number;
  now?: Date;
}

export interface CleanupResult {
  dryRun: boolean;
  uploads: { key: string; uploadId: string; initiated?: string }[];
  orphans: { key: string; size: number; lastModified?: string }[];
  orphanBytes: number;
  spillDirs: string[];
  kept: { resumableBackupId: string | null; manifests: number };
}

/** "30s", "15m", "24h", "7d" → milliseconds. */
export function parseDuration(v: string, flag = "--older-than"): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(v.trim());
  if (!m) throw usageError(`${flag} must be a duration like 30m, 24h or 7d, got ${JSON.stringify(v)}`);
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}

/** The object keys of backup parts: data/<fs>/level<N>/<backup id>/<name> — nothing of a child dataset. */
function isPartKey(base: string, key: string): boolean {
  return key.startsWith(base) && /^level\d+\/[0-9A-Za-z-]+\/[^/]+$/.test(key.slice(base.length));
}

export async function cleanup(cfg: Config, task: Task, store: ObjectStore, opts: CleanupOptions): Promise<CleanupResult> {
  const dir = runDir(cfg, task);
  const lock = acquireLock(join(dir, "zrb.lock"), `dataset ${task.fullName}`, "zrb cleanup");
  try {
    const now = (opts.now ?? new Date()).getTime();
    const oldEnough = (d?: Date) => opts.olderThanMs <= 0 || (d !== undefined && now - d.getTime() >= opts.olderThanMs);
    const base = `data/${fullName(task.pool, task.dataset)}/`;

    // What must stay: every part of every manifest, and the interrupted backup that a rerun resumes.
    const state = await readYaml<BackupState>(join(dir, "backup_state.yaml"));
    const keepPrefix = state?.backupId ? dataPrefix(state.pool, state.dataset, state.level, state.backupId) : null;
    const keepUploads = new Set<string>();
    for (const c of state?.chunks ?? []) if (c?.multipart?.uploadId) keepUploads.add(c.multipart.uploadId);
    const ms = await listManifests(store, task.pool, task.dataset);
    const referenced = new Set<string>();
    for (const m of ms) for (const p of m.parts) referenced.add(p.key);

    const uploads = (await store.listUploads(base))
      .filter((u) => isPartKey(base, u.key) && !keepUploads.has(u.uploadId) && oldEnough(u.initiated))
      .map((u) => ({ key: u.key, uploadId: u.uploadId, ...(u.initiated ? { initiated: u.initiated.toISOString() } : {}) }));
    const orphans = (await store.list(base))
      .filter((o) => isPartKey(base, o.key) && !referenced.has(o.key) && !(keepPrefix && o.key.startsWith(keepPrefix)) && oldEnough(o.lastModified))
      .map((o) => ({ key: o.key, size: o.size, ...(o.lastModified ? { lastModified: o.lastModified.toISOString() } : {}) }));
    const spillRoot = join(dir, "spill");
    const spillDirs = existsSync(spillRoot) ? readdirSync(spillRoot).filter((d) => d !== state?.backupId).map((d) => join(spillRoot, d)) : [];

    const verb = opts.dryRun ? "would" : "will";
    for (const u of uploads) log.info(`${verb} abort multipart upload ${u.key} (upload id ${u.uploadId}${u.initiated ? `, started ${u.initiated}` : ""})`);
    for (const o of orphans) log.info(`${verb} delete orphan object ${o.key} (${formatSize(o.size)})`);
    for (const d of spillDirs) log.info(`${verb} remove stale spill directory ${d}`);
    if (!opts.dryRun) {
      // Send holds a killed run leaked (its state lost): everything but the resumable backup's.
      if (await zfs.datasetExists(task.fullName).catch(() => false))
        await releaseStraySendHolds(task.fullName, [state?.snapshot?.name, state?.parent?.name]);
      for (const u of uploads) await store.abortUpload(u.key, u.uploadId);
      for (const o of orphans) await store.delete(o.key);
      for (const d of spillDirs) rmSync(d, { recursive: true, force: true });
    }
    return {
      dryRun: opts.dryRun,
      uploads,
      orphans,
      orphanBytes: orphans.reduce((a, o) => a + o.size, 0),
      spillDirs,
      kept: { resumableBackupId: state?.backupId ?? null, manifests: ms.length },
    };
  } finally {
    lock.release();
  }
}

export default defineCommand({
  meta: {
    name: "cleanup",
    description:
      "Abort dangling multipart uploads and delete orphan part objects of the task (under data/<pool>/<dataset>/, referenced by no manifest " +
      "and not by the resumable backup in backup_state.yaml). Takes the dataset's lock, so it never races a backup on this host.",
  },
  args: {
    ...configArg,
    ...taskArg,
    "dry-run": { type: "boolean", description: "List what would be removed; change nothing", default: false },
    "older-than": { type: "string", description: "Only remove uploads/objects at least this old, e.g. 24h or 7d (default: any age)", valueHint: "AGE" },
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const olderThanMs = args["older-than"] !== undefined ? parseDuration(String(args["older-than"])) : 0;
    const { config, task, store } = await loadAll(args, { allowDisabled: true });
    const r = await cleanup(config, task, store, { dryRun: !!args["dry-run"], olderThanMs });
    if (args.json) printJson(r);
    else
      log.success(
        `cleanup of ${task.fullName}: ${r.dryRun ? "would abort" : "aborted"} ${r.uploads.length} dangling upload(s), ` +
          `${r.dryRun ? "would delete" : "deleted"} ${r.orphans.length} orphan object(s) (${formatSize(r.orphanBytes)})` +
          (r.kept.resumableBackupId ? `; kept the resumable backup ${r.kept.resumableBackupId}` : "") +
          ` in ${store.location}`,
      );
  },
});
