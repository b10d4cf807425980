/** `zrb backup` of a recursive task: pipeline/tree/backup.ts, its summary and its --json result. */
import type { BackupResult } from "../pipeline/backup/index.ts";
import { backupTree, type TreeBackupResult } from "../pipeline/tree/backup.ts";
import { treeError, type ChildOutcome } from "../pipeline/tree/outcome.ts";
import { childLabel } from "../pipeline/tree/children.ts";
import { formatSize } from "../util/size.ts";
import { log } from "../util/log.ts";
import type { JobContext, JobResult } from "./job.ts";
import { childRuns, printChildren } from "./tree.ts";

type Done = BackupResult & { level: number; note?: string };

/** The --json result of one child: what a single backup's result says, plus the child's name and outcome. */
function childJson(o: ChildOutcome<Done>): Record<string, unknown> {
  const base = { child: o.rel, dataset: o.dataset, status: o.status, exitCode: o.exitCode, seconds: o.seconds, ...(o.message ? { message: o.message } : {}) };
  const r = o.result;
  if (!r) return base;
  if (r.kind === "already") return { ...base, skipped: true, level: r.level, backupId: r.backupId, snapshot: r.snapshot, ...(r.note ? { note: r.note } : {}) };
  const m = r.manifest;
  return {
    ...base,
    skipped: false,
    level: m.level,
    ...(r.note ? { note: r.note } : {}),
    backupId: m.backupId,
    snapshot: m.snapshot.name,
    parentBackupId: m.parent?.backupId ?? null,
    parts: m.parts.length,
    streamBytes: m.stream.size,
    storedBytes: m.parts.reduce((a, p) => a + p.cipherSize, 0),
    manifest: r.manifestKey,
    catalog: m.catalog ? { bytes: m.catalog.size, entries: m.catalog.entries, kind: m.catalog.kind } : null,
    resumed: r.resumed,
  };
}

function detail(o: ChildOutcome): string {
  const r = (o as ChildOutcome<Done>).result!;
  if (r.kind === "already") return `already backed up at level ${r.level} (backup ${r.backupId})`;
  const m = r.manifest;
  return `level ${m.level}, backup ${m.backupId}, ${m.parts.length} part(s), ${formatSize(m.stream.size)}${r.resumed ? ", resumed" : ""}${r.note ? `; ${r.note}` : ""}`;
}

const streamBytes = (o: ChildOutcome) => {
  const r = (o as ChildOutcome<Done>).result;
  return r?.kind === "done" ? r.manifest.stream.size : 0;
};

export async function runTreeBackup(c: JobContext, o: { level: number; force: boolean; only?: string; json: boolean }): Promise<JobResult> {
  const { config, task, store, reporter, signal, sends } = c;
  const r: TreeBackupResult = await backupTree(config, task, store, { level: o.level, force: o.force, only: o.only, signal, progress: reporter, sends });
  const all = r.recordError ? [...r.children, r.recordError] : r.children;
  const result = {
    tree: task.fullName,
    snapshot: r.snapshot,
    children: r.children.map(childJson),
    excluded: r.excluded,
    gone: r.gone.map((g) => ({ child: g.name, reason: g.reason, since: g.since })),
    ok: all.every((x) => x.status !== "failed"),
  };
  if (!o.json) {
    const extra = [
      ...r.excluded.map((e) => [childLabel(e), "excluded", "in the snapshot, never sent"]),
      ...r.gone.map((g) => [childLabel(g.name), "gone", `${g.reason === "excluded" ? "excluded now" : "no longer on the pool"}: its backups are kept`]),
    ];
    printChildren(`backup of ${task.fullName} (run @${r.snapshot}) to ${store.location}:`, r.children, detail, extra);
  }
  for (const x of r.children) x.bytes = streamBytes(x);
  const runs = childRuns(r.children, (x) => (x as ChildOutcome<Done>).result?.level ?? o.level);
  const bytes = r.children.reduce((a, x) => a + streamBytes(x), 0);
  const error = treeError(`backup of ${task.fullName}`, all);
  if (!error && !o.json) log.success(`backup of ${task.fullName}: ${r.children.filter((x) => x.status === "ok").length} of ${r.children.length} children backed up`);
  return { result, bytes, runs, ...(error ? { error } : {}) };
}
