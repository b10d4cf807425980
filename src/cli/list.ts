import { defineCommand } from "citty";
import { applyOutput, configArg, loadAll, outputArgs, printJson, taskArg } from "./common.ts";
import { loadCatalog, type CatalogEntry } from "../pipeline/catalog.ts";
import { formatSize } from "../util/size.ts";
import { formatTable } from "./table.ts";
import { resolveTrust, trustArgs, warnNoSigningKey } from "./trust.ts";
import { loadIdentityFile } from "../crypto/keys.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { listTree } from "./list-tree.ts";
import { childArg, parseChild } from "./tree.ts";
import { writePaged } from "./pager.ts";

export default defineCommand({
  meta: {
    name: "list",
    description:
      "List every backup of the task found in the store (the bucket is the catalog; no local state is needed): " +
      "level, snapshot, parent, time, parts, bytes, storage class, whether it is signed, the chain it belongs to and whether that chain is complete (restorable). " +
      "With --verify-key (or a --private-key file that records one) a backup not signed with that key is shown as not restorable. " +
      "A recursive task is listed one line per child (its backups, the newest, gone or excluded); --child lists one child's backups.",
  },
  args: {
    ...configArg,
    ...taskArg,
    "private-key": { type: "string", alias: "i", description: "age identity file: only its recorded verification key is used (nothing is decrypted)", valueHint: "FILE" },
    ...trustArgs,
    ...childArg,
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const loaded = await loadAll(args, { allowDisabled: true });
    const { store } = loaded;
    warnNoSigningKey(loaded.config, "zrb list");
    const key = args["private-key"] ? await loadIdentityFile(args["private-key"]) : undefined;
    const trust = await resolveTrust(args, key?.verifyKey, loaded.config);
    const only = parseChild(args.child, loaded.task);
    if (loaded.task.recursive && only === undefined) return listTree(loaded.task, store, trust, !!args.json);
    const task = only === undefined ? loaded.task : childTask(loaded.task, only);
    const entries = (await loadCatalog(store, task.pool, task.dataset, trust)).entries;
    if (args.json) {
      printJson(entries);
      return;
    }
    writePaged(listLines(entries, task.fullName, store.location).join("\n") + "\n");
  },
});

/**
 * The text of `zrb list`: one row per backup, numbers right-aligned and sizes in binary units so
 * that a chain of hundreds of backups reads down its columns, then one line of totals.
 */
export function listLines(entries: CatalogEntry[], dataset: string, location: string): string[] {
  if (entries.length === 0) return [`no backups of ${dataset} in ${location}`];
  const rows = entries.map((e) => [
    e.backupId,
    String(e.level),
    e.snapshot.split("@")[1] ?? e.snapshot,
    e.parentBackupId ?? "-",
    String(e.parts),
    formatSize(e.bytes),
    e.storageClass,
    e.signed ? "yes" : "no",
    e.restorable ? "yes" : "NO: " + e.problem!.message,
  ]);
  const head = ["BACKUP ID", "LVL", "SNAPSHOT", "PARENT", "PARTS", "SIZE", "CLASS", "SIGNED", "RESTORABLE"];
  const chains = new Set(entries.map((e) => e.chain[0] ?? e.backupId)).size;
  const broken = entries.filter((e) => !e.restorable).length;
  const stored = entries.reduce((a, e) => a + e.storedBytes, 0);
  return [
    ...formatTable(head, rows, "", { right: [1, 4, 5] }),
    `${entries.length} backup(s) in ${chains} chain(s), ${formatSize(stored)} stored${broken ? `; ${broken} NOT restorable` : ""}`,
  ];
}
