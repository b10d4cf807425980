import { defineCommand } from "citty";
import { pickRestoreStore } from "./restore-store.ts";
import { applyOutput, configArg, interruptSignal, loadAll, parseLevel, printJson, taskArg } from "./common.ts";
import { runJob, transferArgs } from "./job.ts";
import { restore, type Selector, type ThawProgress, type ThawTier } from "../pipeline/restore/index.ts";
import { usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { resolveTrust, trustArgs } from "./trust.ts";
import { loadIdentityFile } from "../crypto/keys.ts";
import { childArg, parseChild } from "./tree.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { printTreePlan, runTreeRestore } from "./restore-tree.ts";
import { formatPlan } from "./restore-plan.ts";
import { pathArgs, runPathRestore } from "./restore-path.ts";

const TIERS = ["Bulk", "Standard", "Expedited"] as const;

/** Selection flags shared by restore and verify. */
export const selectArgs = {
  snapshot: { type: "string", description: "Restore the backup of this snapshot (name after '@', or the full name)", valueHint: "NAME" },
  level: { type: "string", alias: "l", description: "Restore the newest backup at this level", valueHint: "N" },
  "backup-id": { type: "string", description: "Restore exactly this backup (see zrb list)", valueHint: "ID" },
} as const;

export function parseSelector(args: { snapshot?: string; level?: string; "backup-id"?: string }): Selector {
  const given = [args.snapshot, args.level, args["backup-id"]].filter((v) => v !== undefined && v !== "");
  if (given.length > 1) throw usageError("use only one of --snapshot, --level and --backup-id");
  const sel: Selector = {};
  if (args.snapshot) sel.snapshot = args.snapshot;
  if (args.level !== undefined && args.level !== "") sel.level = parseLevel(args.level);
  if (args["backup-id"]) sel.backupId = args["backup-id"];
  return sel;
}


export default defineCommand({
  meta: {
    name: "restore",
    description:
      "Restore a backup chain from the store alone (no local state needed) into --target with zfs receive. " +
      "Plans level 0 → … → the chosen backup, downloads parts ahead in parallel, checks every part's SHA-256 before decrypting, " +
      "its BLAKE3 after, and the whole-stream BLAKE3 before zfs receive may commit. Resumes after the last step already on the target. " +
      "A recursive task's tree is rebuilt under --target (<target>/<child>, parents first), every child as of the same run: " +
      "the run of the dataset's newest backup, or of --snapshot/--level/--backup-id; --child restores one child alone into --target. " +
      "--path REL --to DIR restores single files or directories instead: the chain goes into a throwaway pool, the paths are copied into DIR (modes, owners, times, symlinks kept), the pool is destroyed.",
  },
  args: {
    ...configArg,
    ...taskArg,
    target: { type: "string", description: "Dataset to restore into, e.g. tank/restored (created if missing)", valueHint: "POOL/DATASET" },
    "private-key": { type: "string", alias: "i", description: "age identity file (from zrb genkey or age-keygen)", valueHint: "FILE" },
    ...selectArgs,
    ...trustArgs,
    force: { type: "boolean", description: "Overwrite an existing target (zfs receive -F); with --path, existing files in --to", default: false },
    ...pathArgs,
    plan: { type: "boolean", description: "Print the steps and change nothing", default: false },
    "dry-run": { type: "boolean", description: "Same as --plan", default: false },
    thaw: { type: "boolean", description: "Request archived (GLACIER/DEEP_ARCHIVE) objects of the chain, then restore once available", default: false },
    tier: { type: "string", description: "Thaw tier: Bulk (default), Standard or Expedited", valueHint: "TIER" },
    days: { type: "string", description: "Days the thawed copies stay readable (default 7)", valueHint: "N" },
    parallel: { type: "string", description: "Parts downloaded ahead (scratch disk ≤ N × chunk_size; default 2, or up to 16 when parts are small: enough to keep s3.concurrency ranges queued twice over)", valueHint: "N" },
    ...childArg,
    ...transferArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const selector = parseSelector(args);
    const planOnly = !!(args.plan || args["dry-run"]);
    const ahead = parseAhead(args.parallel);
    if (args.path !== undefined || args.to !== undefined) return runPathRestore(args, selector, ahead);
    if (!args.target) throw usageError("--target POOL/DATASET is required (where to restore to, e.g. tank/restored)");
    if (planOnly && args.thaw) throw usageError("--plan changes nothing, so it cannot --thaw; drop one of them");
    let thaw: { tier: ThawTier; days: number } | undefined;
    if (args.thaw) {
      const tier = (args.tier ?? "Bulk") as ThawTier;
      if (!TIERS.includes(tier)) throw usageError(`--tier must be one of ${TIERS.join(", ")}, got ${JSON.stringify(args.tier)}`);
      const days = args.days === undefined ? 7 : Number(args.days);
      if (!Number.isInteger(days) || days < 1 || days > 365) throw usageError(`--days must be a whole number 1–365, got ${JSON.stringify(args.days)}`);
      thaw = { tier, days };
    } else if (args.tier !== undefined || args.days !== undefined) throw usageError("--tier and --days only apply with --thaw");
    if (!planOnly && !args["private-key"])
      throw usageError("--private-key FILE is required to restore (the age identity file made by zrb genkey or age-keygen)");
    if (planOnly) return printPlan(args, selector);
    const key = await loadIdentityFile(args["private-key"]!);
    const pickStore = pickRestoreStore(async (config) => resolveTrust(args, key.verifyKey, config));
    await runJob(args, { command: "restore", level: selector.level, pickStore }, async ({ config, task: t, store, reporter, signal }) => {
      const trust = await resolveTrust(args, key.verifyKey, config);
      const only = parseChild(args.child, t);
      const common = { selector, force: !!args.force, identities: key.identities, trust, thaw, ahead, signal, onThaw: thawLine(!!args.json) };
      if (t.recursive && only === undefined) return runTreeRestore(config, t, store, args.target!, { ...common, planOnly: false, progress: reporter, json: !!args.json });
      const task = only === undefined ? t : childTask(t, only);
      const t0 = performance.now();
      const r = await restore(config, task, store, {
        target: args.target!,
        selector,
        force: !!args.force,
        identities: key.identities,
        trust,
        planOnly: false,
        thaw,
        ahead,
        signal,
        progress: reporter,
        onThaw: common.onThaw,
      });
      const secs = Math.round(((performance.now() - t0) / 1000) * 10) / 10;
      if (!args.json && r.applied.length === 0) log.success(`${r.restored} is already restored; nothing to do`);
      else if (!args.json)
        log.success(
          `restored ${r.restored} (${r.applied.length} step(s): ${r.applied.map((a) => `level ${a.level}`).join(" → ")}) from ${store.location} in ${secs}s`,
        );
      return { result: { ...r, seconds: secs } };
    });
  },
});

/** --parallel N: parts downloaded ahead, 1–64 (default: 2, more with small parts: pipeline/restore partsAhead). */
function parseAhead(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const ahead = Number(v);
  if (!Number.isInteger(ahead) || ahead < 1 || ahead > 64) throw usageError(`--parallel must be a whole number 1–64, got ${JSON.stringify(v)}`);
  return ahead;
}

function thawLine(json: boolean) {
  return (p: ThawProgress) => {
    if (!json) log.info(`thaw: ${p.requested} requested, ${p.ongoing} ongoing, ${p.available} available of ${p.total} archived objects`);
  };
}

/** --plan: print the steps, change nothing (no progress, no metrics: nothing moves). */
async function printPlan(
  args: { config: string; task?: string; target?: string; force?: boolean; json?: boolean; child?: string; "private-key"?: string; "verify-key"?: string; "allow-unsigned"?: boolean; store?: string },
  selector: Selector,
): Promise<void> {
  const intr = interruptSignal();
  try {
    const loaded = await loadAll(args, { allowDisabled: true, signal: intr.signal });
    const { config, store } = loaded;
    const key = args["private-key"] ? await loadIdentityFile(args["private-key"]) : undefined;
    const trust = await resolveTrust(args, key?.verifyKey, config);
    const only = parseChild(args.child, loaded.task);
    if (loaded.task.recursive && only === undefined)
      return printTreePlan(config, loaded.task, store, args.target!, { selector, force: !!args.force, planOnly: true, trust, signal: intr.signal }, !!args.json);
    const task = only === undefined ? loaded.task : childTask(loaded.task, only);
    const r = await restore(config, task, store, { target: args.target!, selector, force: !!args.force, planOnly: true, trust, signal: intr.signal });
    if (args.json) printJson(r.plan);
    else process.stdout.write(formatPlan(r.plan));
  } finally {
    intr.dispose();
  }
}
