import { defineCommand } from "citty";
import { applyOutput, configArg, loadAll, outputArgs, printJson, taskArg } from "./common.ts";
import { catalog } from "../pipeline/catalog.ts";
import { formatTable } from "./table.ts";

export default defineCommand({
  meta: {
    name: "list",
    description:
      "List every backup of the task found in the store (the bucket is the catalog; no local state is needed): " +
      "level, snapshot, parent, time, parts, bytes, storage class, the chain it belongs to and whether that chain is complete (restorable).",
  },
  args: { ...configArg, ...taskArg, ...outputArgs },
  async run({ args }) {
    applyOutput(args);
    const { task, store } = await loadAll(args, { allowDisabled: true });
    const entries = await catalog(store, task.pool, task.dataset);
    if (args.json) {
      printJson(entries);
      return;
    }
    if (entries.length === 0) {
      process.stdout.write(`no backups of ${task.fullName} in ${store.location}\n`);
      return;
    }
    const rows = entries.map((e) => [
      e.backupId,
      String(e.level),
      e.snapshot.split("@")[1] ?? e.snapshot,
      e.parentBackupId ?? "-",
      String(e.parts),
      String(e.bytes),
      e.storageClass,
      e.restorable ? "yes" : "NO: " + e.problem,
    ]);
    const head = ["BACKUP ID", "LVL", "SNAPSHOT", "PARENT", "PARTS", "BYTES", "CLASS", "RESTORABLE"];
    process.stdout.write(formatTable(head, rows).join("\n") + "\n");
  },
});
