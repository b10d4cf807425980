/**
 * `zrb drill`: restore a backup into a throwaway pool and compare it with the source snapshot
 * (pipeline/drill/). Flag parsing and the output line around one library call; runJob carries
 * the metrics (zrb_drill_*), the pings and the --json events. Exit 7 when files differ.
 */
import { defineCommand } from "citty";
import { applyOutput, configArg, parseSample, taskArg } from "./common.ts";
import { runJob, transferArgs, type JobResult } from "./job.ts";
import { parseSelector, selectArgs } from "./restore.ts";
import { resolveTrust, trustArgs } from "./trust.ts";
import { childArg, childRuns, parseChild, printChildren } from "./tree.ts";
import { loadIdentityFile } from "../crypto/keys.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { treeError, type ChildOutcome } from "../pipeline/tree/outcome.ts";
import { drill, drillError, drillLine, type DrillResult } from "../pipeline/drill/index.ts";
import { drillTree } from "../pipeline/drill/tree.ts";
import { usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";

const gauges = (r: DrillResult, seconds: number) => ({ duration_seconds: seconds, restore_seconds: r.restoreSeconds, files_compared: r.compared, files_differ: r.differ });

/** What a human reads: the differences, the sample, and the one summary line on stdout. */
function report(r: DrillResult, json: boolean): void {
  if (json) return;
  if (r.source === "none") log.warn(`drill: no source compared (${r.noSource}); the restore verified every part and stream`);
  if (r.sampled) log.info(`drill: --sample hashed ${r.sampled.length} file(s): ${r.sampled.slice(0, 20).join(", ")}${r.sampled.length > 20 ? ", …" : ""}`);
  for (const d of r.first) log.error(`drill: differs: ${d}`);
  process.stdout.write(drillLine(r) + "\n");
}

export default defineCommand({
  meta: {
    name: "drill",
    description:
      "Prove a backup restores: restore its chain (the newest restorable point, or --snapshot/--level/--backup-id) into a throwaway pool " +
      "on a sparse file under drill.dir, compare every file (type, mode, owner, size, SHA-256, symlink targets, the set of paths; a zvol by its bytes) " +
      "with the source snapshot when this host has it, then destroy the pool. Exit 7 when anything differs. A recursive task drills every child as of one run.",
  },
  args: {
    ...configArg,
    ...taskArg,
    "private-key": { type: "string", alias: "i", description: "age identity file (from zrb genkey or age-keygen); default: drill.private_key of the config", valueHint: "FILE" },
    ...selectArgs,
    ...trustArgs,
    sample: { type: "string", description: "Hash only N files chosen at random (all other checks still cover every path); the sample is reported", valueHint: "N" },
    ...childArg,
    ...transferArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const selector = parseSelector(args);
    const sample = parseSample(args.sample);
    await runJob(args, { command: "drill", ping: true }, async ({ config, task: t, store, reporter, signal }): Promise<JobResult> => {
      const keyFile = args["private-key"] ?? config.drill.privateKey;
      if (!keyFile) throw usageError(`--private-key FILE is required to drill (the age identity file made by zrb genkey or age-keygen), or drill.private_key in ${config.path}`);
      const key = await loadIdentityFile(keyFile);
      const trust = await resolveTrust(args, key.verifyKey, config);
      const only = parseChild(args.child, t);
      const opts = { selector, identities: key.identities, trust, sample, signal };
      if (t.recursive && only === undefined) {
        const r = await drillTree(config, t, store, { ...opts, progress: reporter });
        const json = !!args.json;
        if (!json) printChildren(`drill of ${t.fullName} as of @${r.point.snapshot}:`, r.children, (o) => drillLine((o as ChildOutcome<DrillResult>).result!));
        if (!json) for (const c of r.children) for (const d of c.result?.first ?? []) log.error(`drill: ${c.dataset}: differs: ${d}`);
        const error = treeError(`drill of ${t.fullName}`, r.children);
        const byDataset = new Map(r.children.map((c) => [c.dataset, c]));
        const runs = childRuns(r.children, () => undefined).map((run) => {
          const c = byDataset.get(run.dataset)!;
          return c.result ? { ...run, extra: gauges(c.result, c.seconds) } : run;
        });
        return { result: { tree: t.fullName, snapshot: r.point.snapshot, children: r.children }, runs, ...(error ? { error } : {}) };
      }
      const task = only === undefined ? t : childTask(t, only);
      const t0 = performance.now();
      const r = await drill(config, task, store, { ...opts, progress: reporter });
      report(r, !!args.json);
      const error = drillError(r);
      return { result: r, bytes: r.bytes, extra: gauges(r, (performance.now() - t0) / 1000), ...(error ? { error } : {}) };
    });
  },
});
