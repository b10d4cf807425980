import { defineCommand } from "citty";
import { loadConfigLogged, outputArgs, applyOutput, parseLevel, printJson, requireTask } from "./common.ts";
import { findTask } from "../config/config.ts";
import * as zfs from "../zfs/zfs.ts";
import { usageError, zfsError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { poolTree } from "../pipeline/tree/children.ts";
import type { Task } from "../config/config.ts";

export default defineCommand({
  meta: {
    name: "snapshot",
    description:
      "Create POOL/DATASET@zrb_level<N>_<UTC timestamp> for a later `zrb backup --level N`. " +
      "The dataset comes from a config task (--config/--task) or is given directly (--pool/--dataset). " +
      "For a recursive task it is one atomic `zfs snapshot -r`: the same name on the dataset and every child (excluded children too; they are never sent).",
  },
  args: {
    config: { type: "string", alias: "c", description: "Path to the YAML config file", valueHint: "FILE" },
    task: { type: "string", alias: "t", description: "Task name in the config", valueHint: "NAME" },
    pool: { type: "string", description: "Pool (instead of --config/--task)", valueHint: "POOL" },
    dataset: { type: "string", description: "Dataset below the pool (instead of --config/--task)", valueHint: "DATASET" },
    prefix: { type: "string", description: "Snapshot name prefix (default zrb_level<N>_)", valueHint: "PREFIX" },
    level: { type: "string", alias: "l", description: "Backup level the snapshot is for (0 = full)", valueHint: "N" },
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const level = parseLevel(args.level);
    let fs: string;
    let task: Task | undefined;
    if (args.pool) {
      if (args.config || args.task) throw usageError("give either --config/--task or --pool/--dataset, not both");
      fs = args.dataset ? `${args.pool}/${args.dataset}` : String(args.pool);
    } else {
      if (!args.config) throw usageError("--config FILE with --task NAME (or --pool/--dataset) is required");
      const config = await loadConfigLogged(String(args.config));
      task = findTask(config, requireTask(args.task));
      fs = task.fullName;
    }
    const prefix = args.prefix ? String(args.prefix) : zfs.levelPrefix(level);
    if (!/^[A-Za-z0-9_.:-]+$/.test(prefix)) throw usageError(`--prefix ${JSON.stringify(prefix)} may contain only letters, digits and _ . : -`);
    if (!(await zfs.datasetExists(fs))) throw zfsError(`dataset ${fs} does not exist`);
    // A tree: refuse a volume as its root, and say which exclude patterns match nothing.
    const tree = task?.recursive ? await poolTree(task) : undefined;
    for (const p of tree?.unmatched ?? []) log.warn(`exclude pattern ${JSON.stringify(p)} of task ${task!.name} matches no child of ${fs}`);
    const name = await zfs.createSnapshot(fs, prefix + zfs.snapshotTimestamp(), { recursive: !!tree });
    if (tree) log.info(`${name}: one atomic snapshot of ${fs} and its ${tree.all.length - 1} child dataset(s)`);
    if (args.json) printJson({ snapshot: name, level, ...(tree ? { recursive: true, datasets: tree.all.length } : {}) });
    else process.stdout.write(name + "\n");
    log.debug(`created ${name}`);
  },
});
