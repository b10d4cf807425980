/** What `zrb prune` prints: per backup and snapshot keep or delete and why, the summary line, and refused deletes as the run's error. */
import type { PruneResult } from "../pipeline/prune/index.ts";
import { snapshotReasonText } from "../pipeline/prune/local.ts";
import { gibDays, keepReasonText } from "../pipeline/prune/plan.ts";
import { ExitCode, ZrbError, zfsError } from "../util/errors.ts";
import { formatSize } from "../util/size.ts";
import { formatTable } from "./table.ts";

export function printPlan(r: PruneResult): void {
  const out: string[] = [];
  const verb = (a: string) => (r.dryRun ? `would ${a}` : a);
  out.push(`prune of ${r.dataset} in ${r.location}${r.dryRun ? " (dry run: nothing changes)" : ""}`);
  out.push(`  bucket policy: ${r.policy.bucket ?? "none (every backup is kept)"}; local snapshots: ${r.policy.local}`);
  const rows = r.backups.map((b) => [
    b.action === "keep" ? "keep" : verb("delete"),
    b.backupId,
    `L${b.level}`,
    b.snapshot.slice(b.snapshot.indexOf("@") + 1),
    b.action === "keep" ? b.reasons.map(keepReasonText).join("; ") : `${b.parts + 1} object(s), ${formatSize(b.bytes)}${b.earlyGbDays ? `, early delete: ${gibDays(b.earlyGbDays)} billed anyway` : ""}`,
  ]);
  if (rows.length) out.push(...formatTable(["BACKUP", "ID", "LVL", "SNAPSHOT", "WHY"], rows, "  "));
  for (const o of r.orphans) out.push(`  ${verb("delete")} orphan part ${o.key} (${formatSize(o.size)})`);
  for (const b of r.inflight) out.push(`  keep in-flight backup ${b.backupId} (running or interrupted on ${b.host || "an unnamed host"}, marker of ${b.updatedAt}): its parts are not orphans`);
  for (const x of r.spared) out.push(`  spare ${x.key}: ${x.why}`);
  for (const m of r.untrustedMarkers) out.push(`  in-flight marker ${m.key} is not trusted: ${m.why} (left alone)`);
  if (r.local) {
    const srows = r.local.map((s) => [s.action === "keep" ? "keep" : verb("destroy"), s.name, s.action === "keep" ? s.reasons.map(snapshotReasonText).join("; ") : ""]);
    if (srows.length) out.push(...formatTable(["SNAPSHOT", "NAME", "WHY"], srows, "  "));
  }
  process.stdout.write(out.join("\n") + "\n");
}

export function summaryLine(r: PruneResult): string {
  const s = r.summary;
  const [del, destroy] = r.dryRun ? ["would delete", "would destroy"] : ["deleted", "destroyed"];
  const parts = [
    `${del} ${s.deleted} backup(s)${r.orphans.length ? ` and ${r.orphans.length} orphan part(s)` : ""} (${s.objects} object(s), ${formatSize(s.bytes)}), kept ${s.kept}`,
  ];
  if (r.local) parts.push(`${destroy} ${s.snapshotsDestroyed} local snapshot(s)`);
  if (r.inflight.length) parts.push(`spared ${r.inflight.length} backup(s) in flight`);
  if (r.spared.length) parts.push(`spared ${r.spared.length} unclaimed part(s) younger than prune.orphan_grace`);
  if (s.keptForMinStorage) {
    const gb = r.backups.flatMap((b) => b.reasons).reduce((a, x) => a + (x.rule === "min-storage" ? x.gbDays : 0), 0);
    parts.push(`${s.keptForMinStorage} backup(s) kept until their storage class's minimum duration (deleting them now: ${gibDays(gb)} billed anyway)`);
  }
  if (s.earlyDeleteGbDays) parts.push(`early deletion billed anyway: ${gibDays(s.earlyDeleteGbDays)}`);
  const locked = r.backups.filter((b) => b.reasons.some((x) => x.rule === "object-lock")).length;
  if (locked) parts.push(`${locked} backup(s) kept under object lock`);
  if (r.locked.length) parts.push(`${r.locked.length} object(s) still under object lock, left for a later prune`);
  if (r.keptForChain.length) parts.push(`${r.keptForChain.length} backup(s) kept because a backup the store did not delete is built on them`);
  return `prune of ${r.dataset}: ${parts.join("; ")}`;
}

/** Refused deletes are reported skips with their own exit code: 6 for the bucket, 5 for snapshots. */
export function refusals(r: PruneResult): ZrbError | null {
  if (r.refused.length) {
    const f = r.refused[0]!;
    return new ZrbError(
      `prune of ${r.dataset}: the store refused ${r.refused.length} delete(s), the first: ${f.message}; everything else was done${r.keptForChain.length ? `, except the ${r.keptForChain.length} backup(s) a refused one is built on, kept with it,` : ""} and nothing refused looks complete (a manifest goes first). ` +
        `Object lock or a bucket policy denying s3:DeleteObject keeps them until it ends; otherwise grant s3:DeleteObject. The next prune retries them`,
      ExitCode.STORE,
    );
  }
  if (r.refusedSnapshots.length)
    return zfsError(`prune of ${r.dataset}: zfs refused to destroy ${r.refusedSnapshots.length} snapshot(s), the first ${r.refusedSnapshots[0]} (held or cloned meanwhile); they are left, everything else was done`);
  return null;
}

