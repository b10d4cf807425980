/** `zrb prune`: the policy from flags or the config, and the explanation, around pipeline/prune/. */
import { storeArg, storeLabel } from "./stores.ts";
import { DEFAULT_STORE } from "../config/stores.ts";
import { defineCommand } from "citty";
import type { Config, Task } from "../config/config.ts";
import { MAX_KEEP_COUNT } from "../config/schema.ts";
import { prune } from "../pipeline/prune/index.ts";
import { DEFAULT_LOCAL_POLICY } from "../pipeline/prune/local.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { printPlan, refusals, summaryLine } from "./prune-report.ts";
import { pruneTree } from "./prune-tree.ts";
import { childArg, parseChild, refuseChildOfOtherTask } from "./tree.ts";
import { CALENDAR_RULES, describePolicy, policyProblem, type Policy } from "../pipeline/prune/policy.ts";
import { parseDuration } from "../util/duration.ts";
import { usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { configArg, outputArgs, taskArg } from "./common.ts";
import { runJob } from "./job.ts";
import { requireKeyToDelete, resolveTrust, trustArgs } from "./trust.ts";

const count = (what: string) => ({ type: "string", description: what, valueHint: "N" }) as const;

const keepArgs = {
  "keep-last": count("Keep the N newest backups"),
  "keep-hourly": count("Keep the newest backup of each of the last N hours that have one (UTC)"),
  "keep-daily": count("Keep the newest backup of each of the last N days that have one (UTC)"),
  "keep-weekly": count("Keep the newest backup of each of the last N ISO weeks that have one (UTC)"),
  "keep-monthly": count("Keep the newest backup of each of the last N months that have one (UTC)"),
  "keep-yearly": count("Keep the newest backup of each of the last N years that have one (UTC)"),
  "keep-within": { type: "string", description: "Keep every backup younger than this, counted back from now (this host's clock): 7d, 4w, 365d", valueHint: "DURATION" },
} as const;

type KeepFlags = Partial<Record<keyof typeof keepArgs, string>>;

/** The policy the --keep-* flags give, or null when none is given. Bad values are usage errors. */
export function flagPolicy(args: KeepFlags): Policy | null {
  const p: Policy = {};
  let given = false;
  for (const rule of ["last", ...CALENDAR_RULES] as const) {
    const v = args[`keep-${rule}`];
    if (v === undefined) continue;
    given = true;
    // The config's rule too (config/scalars.ts int()): decimal digits only, never 1e3 or 0x10.
    if (!/^\d{1,7}$/.test(String(v))) throw usageError(`--keep-${rule} must be a whole number ≥ 0 (0 turns the rule off), got ${JSON.stringify(String(v))}`);
    if (Number(v) > MAX_KEEP_COUNT) throw usageError(`--keep-${rule} must be from 0 to ${MAX_KEEP_COUNT}, got ${Number(v)}`);
    p[rule] = Number(v);
  }
  if (args["keep-within"] !== undefined) {
    given = true;
    const d = parseDuration(String(args["keep-within"]));
    if ("problem" in d) throw usageError(`--keep-within ${d.problem}`);
    p.within = d.ms;
  }
  if (!given) return null;
  const why = policyProblem(p);
  if (why) throw usageError(`the --keep-* flags keep nothing: ${why}; give at least one rule of 1 or more (e.g. --keep-daily 7 --keep-weekly 4), prune never deletes every backup`);
  return p;
}

/** A config policy (camelCase keys) as a Policy. */
function fromConfig(r: { keepLast?: number; keepHourly?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; keepYearly?: number; keepWithin?: number }): Policy {
  return { last: r.keepLast, hourly: r.keepHourly, daily: r.keepDaily, weekly: r.keepWeekly, monthly: r.keepMonthly, yearly: r.keepYearly, within: r.keepWithin };
}

/** Bucket and local policies: the flags replace the config's bucket rules; no policy at all is refused. */
export function resolvePolicies(args: KeepFlags, config: Config, task: Task): { bucket: Policy | null; local: Policy } {
  const flags = flagPolicy(args);
  const r = task.retention;
  const { local, ...bucketRules } = r ?? {};
  const configBucket = Object.values(bucketRules).some((v) => v !== undefined) ? fromConfig(bucketRules) : null;
  if (!flags && !r)
    throw usageError(
      `no retention policy for task ${task.name}${storeLabel(config.store ?? DEFAULT_STORE) ? ` in store ${config.store}` : ""}: give --keep-* flags (e.g. --keep-daily 7 --keep-weekly 4 --keep-monthly 12) or set tasks[].retention (or stores[].retention) in ${config.path}; zrb never prunes without one`,
    );
  if (flags && configBucket) log.info(`the --keep-* flags replace tasks[].retention of ${task.name} (${describePolicy(configBucket)}) for this run`);
  return { bucket: flags ?? configBucket, local: local ? fromConfig(local) : DEFAULT_LOCAL_POLICY };
}

export default defineCommand({
  meta: {
    name: "prune",
    description:
      "Delete old backups from the bucket and old zrb_level<N>_ snapshots from the pool by a retention policy (restic's rules: " +
      "the newest backup of each of the last N hours/days/ISO weeks/months/years that have one, the last N, everything within a duration of the newest; ORed). " +
      "The --keep-* flags replace tasks[].retention of the config; retention.local (default: the last 7 days) governs the snapshots. " +
      "Never deleted: an ancestor of a kept backup, the bases of the next backups, the interrupted backup, a backup that cannot be restored (reported), " +
      "parts younger than their storage class's minimum duration (unless --allow-early-delete), held snapshots and snapshots zrb did not name. " +
      "Takes the dataset's lock; a manifest that cannot be read stops it (exit 7); a delete the store refuses is skipped and reported (exit 6). " +
      "A recursive task is pruned child by child with the task's policy; the backups of a child that is gone from the pool are kept, and said so, unless it is pruned by name with --child; an excluded child is not touched at all (neither its backups nor its snapshots).",
  },
  args: {
    ...configArg,
    ...taskArg,
    ...storeArg,
    ...keepArgs,
    "dry-run": { type: "boolean", description: "Print, per backup and snapshot, keep or delete and why; change nothing", default: false },
    "allow-early-delete": { type: "boolean", description: "Also delete parts younger than their storage class's minimum duration (billed anyway)", default: false },
    ...trustArgs,
    ...childArg,
    ...outputArgs,
  },
  async run({ args }) {
    flagPolicy(args); // bad flags fail before the config is read
    const dryRun = !!args["dry-run"];
    // A real prune, success or failure, updates the metrics file (zrb_prune_*); a dry run does not.
    await runJob(args, { command: "prune", record: !dryRun }, async ({ config, task: t, store, signal }) => {
      const only = parseChild(args.child, t);
      const policies = resolvePolicies(args, config, t);
      const trust = await resolveTrust(args, undefined, config);
      if (!dryRun) requireKeyToDelete(trust, args, "zrb prune", config.path);
      const opts = { policy: policies.bucket, local: policies.local, dryRun, allowEarlyDelete: !!args["allow-early-delete"], trust, signal };
      if (t.recursive && only === undefined) return await pruneTree(config, t, store, opts, !!args.json);
      if (only !== undefined) refuseChildOfOtherTask(config, t, only, "zrb prune");
      const task = only === undefined ? t : childTask(t, only);
      const t0 = performance.now();
      const r = await prune(config, task, store, opts);
      if (!args.json) printPlan(r);
      const refused = refusals(r);
      if (!refused && !args.json) log.success(summaryLine(r));
      const bytes = r.dryRun ? 0 : r.summary.bytes;
      // --child: the series is the child's, as if it were a task of its own.
      const runs = only === undefined ? undefined : [{ dataset: task.fullName, ok: !refused, exitCode: refused?.exitCode ?? 0, seconds: Math.round((performance.now() - t0) / 100) / 10, bytes }];
      return { result: r, bytes, ...(runs ? { runs } : {}), ...(refused ? { error: refused } : {}) };
    });
  },
});
