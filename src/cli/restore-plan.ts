/** The restore plan as a table (`zrb restore --plan`, and each child's plan of a tree): what would be received, from where, at what cost. */
import type { RestorePlan } from "../pipeline/restore/index.ts";
import { formatSize } from "../util/size.ts";
import { printable } from "../util/text.ts";
import { formatTable } from "./table.ts";

export function formatPlan(plan: RestorePlan): string {
  const lines = [
    `restore plan: ${plan.source} → ${plan.target} (${plan.targetExists ? "exists" : "new dataset"}${plan.force ? ", --force: zfs receive -F" : ""}) from ${plan.location}`,
  ];
  const rows = plan.steps.map((s) => [
    String(s.step),
    String(s.level),
    s.snapshot.split("@")[1] ?? s.snapshot,
    s.backupId,
    String(s.parts),
    formatSize(s.downloadBytes),
    s.storageClasses.join(",") + (s.archived ? ` (archived: ${s.thawed}/${s.archived} thawed${s.thawing ? `, ${s.thawing} thawing` : ""})` : ""),
    s.action === "present" ? "on target already" : "receive",
  ]);
  const head = ["STEP", "LVL", "SNAPSHOT", "BACKUP ID", "PARTS", "DOWNLOAD", "CLASS", "ACTION"];
  lines.push(...formatTable(head, rows, "  "));
  const todo = plan.steps.filter((s) => s.action === "receive");
  lines.push(
    todo.length
      ? `${todo.length} step(s) to apply, ${formatSize(todo.reduce((a, s) => a + s.downloadBytes, 0))} to download`
      : `nothing to do: ${plan.target} already holds ${plan.snapshot.split("@")[1]}`,
  );
  if (plan.frozen) lines.push(`${plan.frozen} archived object(s) are not readable yet: run with --thaw to request them`);
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  return lines.map(printable).join("\n") + "\n";
}
