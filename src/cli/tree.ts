/**
 * What the commands share for recursive tasks: the --child option, and the summary that names
 * every child with what happened to it (a table on stdout; with --json the same in the result).
 */
import { otherTaskOf, type Config, type Task } from "../config/config.ts";
import type { ChildOutcome } from "../pipeline/tree/outcome.ts";
import { childLabel } from "../pipeline/tree/children.ts";
import { usageError } from "../util/errors.ts";
import { printable } from "../util/text.ts";
import { formatTable } from "./table.ts";
import type { ChildRun } from "./job.ts";

export const childArg = {
  child: {
    type: "string",
    description: "Recursive tasks: only this child, by its name relative to the task's dataset (alice, alice/cache; . for the dataset itself)",
    valueHint: "REL",
  },
} as const;

/**
 * --child as a relative name ("" for the task's dataset). A full dataset name below the task's
 * dataset is taken too. Refused for a task that is not recursive.
 */
export function parseChild(v: string | undefined, task: Task): string | undefined {
  if (v === undefined) return undefined;
  if (!task.recursive) throw usageError(`--child only applies to a recursive task; task ${task.name} backs up ${task.fullName} alone`);
  let rel = v.trim().replace(/^\.\/+/, "").replace(/\/+$/, "");
  if (rel === "." || rel === task.fullName) rel = "";
  else if (rel.startsWith(task.fullName + "/")) rel = rel.slice(task.fullName.length + 1);
  if (rel !== "" && (rel.startsWith("/") || rel.split("/").some((p) => p === "" || p === "." || p === "..")))
    throw usageError(`--child ${JSON.stringify(v)}: give the child's name relative to ${task.fullName} (e.g. alice or alice/cache), or . for ${task.fullName} itself`);
  return rel;
}

/**
 * Refuse `--child rel` of recursive task `task` when another task of the config backs up that
 * dataset itself (a child the tree excludes, given a task of its own): the other task's
 * retention decides for it, and this task's would prune its backups and snapshots. Throws a
 * usage error naming the other task.
 */
export function refuseChildOfOtherTask(config: Config, task: Task, rel: string, command: string): void {
  const full = rel === "" ? task.fullName : `${task.fullName}/${rel}`;
  const other = otherTaskOf(config, task, full);
  if (other)
    throw usageError(`--child ${rel || "."}: ${full} is backed up by task ${other.name} of ${config.path}, whose retention decides for it; run ${command} --task ${other.name}`);
}

/** One row per child: its name, what happened, and the command's own words for it. */
export function childRows(outcomes: ChildOutcome[], detail: (o: ChildOutcome) => string): string[][] {
  return outcomes.map((o) => [childLabel(o.rel), o.status === "failed" ? `FAILED (exit ${o.exitCode})` : o.status, o.status === "ok" ? detail(o) : (o.message ?? "")]);
}

export function printChildren(title: string, outcomes: ChildOutcome[], detail: (o: ChildOutcome) => string, extra: string[][] = []): void {
  const lines = [title, ...formatTable(["CHILD", "STATUS", "WHAT"], [...childRows(outcomes, detail), ...extra], "  ")];
  process.stdout.write(lines.map(printable).join("\n") + "\n");
}

/** The metrics series of each child that ran (skipped children did nothing to record). */
export function childRuns(outcomes: ChildOutcome[], level: (o: ChildOutcome) => number | undefined): ChildRun[] {
  return outcomes
    .filter((o) => o.status !== "skipped")
    .map((o) => ({ dataset: o.dataset, level: level(o), ok: o.status === "ok", exitCode: o.exitCode, seconds: o.seconds, bytes: o.bytes ?? 0 }));
}
