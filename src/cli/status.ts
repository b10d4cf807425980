/**
 * `zrb status`: what a NAS owner checks in the morning — for every task, is a backup running
 * (and whose lock), is one interrupted (and how far it got), and what the newest backup at
 * each level is, from the bucket's heads (the catalog) and the local cache. With --max-age it is
 * also a freshness check for Nagios or cron (report/freshness.ts): exit 10 when the newest
 * backup of an enabled task (or of each --level) is older, naming it.
 */
import { defineCommand } from "citty";
import type { Task } from "../config/config.ts";
import { treeLockPath } from "../state/rundir.ts";
import type { Trust } from "../records/trust.ts";
import { resolveTrust, trustArgs, warnNoSigningKey } from "./trust.ts";
import type { ObjectStore } from "../store/store.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { allChildren, onlyChild } from "../pipeline/tree/known.ts";
import { childArg, parseChild } from "./tree.ts";
import { childState } from "./list-tree.ts";
import { datasetStatus, lockStatus, type DatasetStatus, type FreshnessAsk, type LockStatus } from "./status-dataset.ts";
import { ExitCode, ZrbError } from "../util/errors.ts";
import { formatSize } from "../util/size.ts";
import { formatEta as formatAge } from "../report/progress.ts";
import { printable } from "../util/text.ts";
import { applyOutput, configArg, loadConfigLogged, outputArgs, parseLevel, printJson, storeFor } from "./common.ts";
import { parseDuration } from "../pipeline/cleanup.ts";
import { DEFAULT_STALE_MS, describeStale, newestLine } from "../report/freshness.ts";
import { now } from "../util/clock.ts";
import type { Config } from "../config/config.ts";
import { selectStores, storeArg, storeLabel, viewOf } from "./stores.ts";
import { storesOf } from "../config/stores.ts";

type TaskStatus = {
  task: string;
  enabled: boolean;
  /** The store, for a task with several (one entry per store; none for an s3 section's one store). */
  store?: string;
} & (DatasetStatus | TreeStatus);

interface TreeStatus extends LockStatus {
  dataset: string;
  recursive: true;
  children: (DatasetStatus & { child: string; state: string })[];
}

/** --level for freshness: one level or several, comma-separated ("0,1"). */
function parseLevels(v: unknown): number[] | null {
  if (v === undefined || v === "") return null;
  return [...new Set(String(v).split(",").map((x) => parseLevel(x.trim())))].sort((a, b) => a - b);
}

export default defineCommand({
  meta: {
    name: "status",
    description:
      "Show, for every task (or --task), whether a backup is running (lock holder), whether one was interrupted and will resume " +
      "(backup id, level, parts done), and the newest backup at each level from the store's heads. Beside every task (and child) the age of its newest backup in words " +
      "(\"newest backup 3 h ago\"), marked STALE when older than --max-age (2d without it). Changes nothing.",
  },
  args: {
    ...configArg,
    task: { type: "string", alias: "t", description: "Only this task", valueHint: "NAME" },
    "max-age": {
      type: "string",
      description: "Exit 10 when the newest backup of an enabled task (or of --task) is older than this, e.g. 26h or 8d, naming it (for Nagios or cron)",
      valueHint: "DURATION",
    },
    level: { type: "string", alias: "l", description: "With --max-age: check the newest backup at each of these levels (or lower) instead, e.g. 0 or 0,1", valueHint: "N[,N…]" },
    ...trustArgs,
    ...childArg,
    ...storeArg,
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const maxAge = args["max-age"] !== undefined ? String(args["max-age"]) : undefined;
    const maxAgeMs = maxAge !== undefined ? parseDuration(maxAge, "--max-age") : undefined;
    const levels = parseLevels(args.level);
    if (args.child !== undefined && !args.task) throw new ZrbError("--child needs --task (the recursive task the child belongs to)", ExitCode.USAGE);
    if (levels && maxAge === undefined) throw new ZrbError("--level only applies with --max-age (zrb status --max-age 8d --level 0)", ExitCode.USAGE);
    const at = now();
    const config = await loadConfigLogged(String(args.config));
    const tasks = args.task ? config.tasks.filter((t) => t.name === args.task) : config.tasks;
    if (args.task && tasks.length === 0)
      throw new ZrbError(`no task ${args.task} in ${config.path} (tasks: ${config.tasks.map((t) => t.name).join(", ")})`, ExitCode.CONFIG);
    warnNoSigningKey(config, "zrb status");
    const trust = await resolveTrust(args, undefined, config);
    const out: TaskStatus[] = [];
    const locations: string[] = [];
    // Store by store (cli/stores.ts): each store of a task is its own entry, fresh or stale on its own.
    for (const { task: t, name, view } of statusStores(config, tasks, args.store)) {
      const store = storeFor(view.config);
      const label = storeLabel(name);
      const fresh = maxAgeMs !== undefined && (t.enabled || args.task) ? { task: label ? `${t.name} in store ${name}` : t.name, maxAgeMs, levels, at } : undefined;
      const only = parseChild(args.child, t);
      const head = { task: t.name, enabled: t.enabled, ...(label ? { store: label } : {}) };
      const baseDir = view.config.baseDir;
      if (t.recursive) out.push({ ...head, ...(await treeStatus(baseDir, store, view.task, trust, fresh, only)) });
      else out.push({ ...head, ...(await datasetStatus(baseDir, store, t.pool, t.dataset, trust, fresh)) });
      locations.push(store.location);
    }
    const stale = out.flatMap((s) => ("children" in s ? s.children.flatMap((c) => c.freshness ?? []) : (s.freshness ?? []))).filter((c) => c.stale);
    const staleError = () =>
      new ZrbError(`${stale.length} stale: ${stale.map((c) => describeStale(c, maxAge!)).join("; ")}`, ExitCode.STALE);
    if (args.json) {
      printJson(out);
      if (stale.length) throw staleError();
      return;
    }
    const lines: string[] = [];
    // Beside every task (and child): its newest backup's age in words, marked STALE past --max-age (or DEFAULT_STALE_MS).
    const newest = (d: DatasetStatus) => (d.heads ? `  ${newestLine(d.heads, at, maxAgeMs ?? DEFAULT_STALE_MS, maxAge ?? "2d")}` : "");
    for (const [i, s] of out.entries()) {
      const location = locations[i]!;
      lines.push(`${s.task} (${s.dataset})${s.store ? ` → store ${s.store}` : ""}${"children" in s ? ` recursive, ${s.children.length} child dataset(s)` : newest(s)}${s.enabled ? "" : " [disabled]"}`);
      lockLines(s, lines, "  ");
      if (!("children" in s)) datasetLines(s, lines, "  ", location, maxAge);
      else
        for (const c of s.children) {
          lines.push(`  ${c.child === "" ? "." : c.child} (${c.dataset})${c.state === "backed up" ? newest(c) : ` [${c.state}]`}`);
          lockLines(c, lines, "    ");
          datasetLines(c, lines, "    ", location, maxAge);
        }
    }
    process.stdout.write(lines.map(printable).join("\n") + "\n");
    if (stale.length) throw staleError();
  },
});

function lockLines(s: LockStatus, lines: string[], indent: string): void {
  if (s.running) lines.push(`${indent}running: ${s.running.command}, pid ${s.running.pid}, since ${s.running.since}`);
  if (s.staleLock) lines.push(`${indent}stale lock left by a dead run (the next run takes it over)`);
}

function datasetLines(s: DatasetStatus, lines: string[], indent: string, location: string, maxAge: string | undefined): void {
  if (s.interrupted)
    lines.push(
      `${indent}interrupted: level ${s.interrupted.level} backup ${s.interrupted.backupId} of ${s.interrupted.snapshot}, ` +
        `${s.interrupted.partsDone} part(s) / ${formatSize(s.interrupted.bytesDone)} stored; the next run resumes it`,
    );
  if (s.stateError) lines.push(`${indent}${s.stateError}`);
  if (s.headsError) lines.push(`${indent}store: ${s.headsError}`);
  else if (s.unsignedOnly) lines.push(`${indent}no signed backup in ${location}: the backups there are unsigned or signed by an unknown key, and not trusted`);
  else if (s.heads && s.heads.length === 0) lines.push(`${indent}no ${s.signedOnly ? "signed " : ""}backups in ${location} yet`);
  else for (const h of s.heads ?? []) lines.push(`${indent}level ${h.level}: ${h.snapshot.split("@")[1]}  backup ${h.backupId}  finished ${h.finishedAt}`);
  for (const c of s.freshness ?? [])
    lines.push(c.stale ? `${indent}STALE: ${describeStale(c, maxAge!)}` : `${indent}fresh: the newest ${c.signedOnly ? "signed " : ""}backup${c.level === null ? "" : ` at level ≤ ${c.level}`} finished ${formatAge(c.ageSeconds)} ago (--max-age ${maxAge})`);
}

/** A recursive task: the tree's lock, then every child (bucket and pool); gone and excluded children are not checked for freshness. */
async function treeStatus(baseDir: string, store: ObjectStore, t: Task, trust: Trust, fresh: FreshnessAsk | undefined, only: string | undefined): Promise<TreeStatus> {
  const all = await allChildren(store, t, trust);
  const { poolHere } = all;
  const children = onlyChild(all.children, only, t, store.location);
  const out: TreeStatus = { dataset: t.fullName, recursive: true, ...lockStatus(treeLockPath(baseDir, t.pool, t.dataset)), children: [] };
  for (const c of children) {
    const state = poolHere && !c.onPool ? (c.record?.gone ? childState(c) : "not on the pool") : childState(c);
    const checked = state === "backed up" ? fresh : undefined;
    out.children.push({ child: c.rel, state, ...(await datasetStatus(baseDir, store, t.pool, childTask(t, c.rel).dataset, trust, checked)) });
  }
  return out;
}

/** Every (task, store) pair to show: each task's stores, or only --store (tasks not backed up there are left out). */
function statusStores(config: Config, tasks: Task[], flag: string | undefined) {
  if (flag !== undefined && tasks.length > 1 && !storesOf(config).some((s) => s.name === flag)) selectStores(config, tasks[0]!, flag); // the error naming the stores
  return tasks.flatMap((task) => {
    const names = flag !== undefined && tasks.length > 1 ? selectStores(config, task, undefined).filter((n) => n === flag) : selectStores(config, task, flag);
    return names.map((name) => ({ task, name, view: viewOf(config, task, name) }));
  });
}
