import { defineCommand } from "citty";
import { applyOutput, configArg, loadStores, outputArgs, printJson, taskArg } from "./common.ts";
import { storeArg } from "./stores.ts";
import { usageError } from "../util/errors.ts";
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
    ...storeArg,
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const stores = await loadStores(args, { allowDisabled: true });
    warnNoSigningKey(stores[0]!.config, "zrb list");
    const key = args["private-key"] ? await loadIdentityFile(args["private-key"]) : undefined;
    const trust = await resolveTrust(args, key?.verifyKey, stores[0]!.config);
    const only = parseChild(args.child, stores[0]!.task);
    if (stores[0]!.task.recursive && only === undefined) {
      if (args.json && stores.length > 1) throw usageError(`task ${stores[0]!.task.name} has ${stores.length} stores (${stores.map((s) => s.name).join(", ")}); with --json pass --store NAME for a tree's list`);
      for (const s of stores) {
        if (stores.length > 1) process.stdout.write(`store ${s.name} (${s.store.location}):\n`);
        await listTree(s.task, s.store, trust, !!args.json);
      }
      return;
    }
    const task = only === undefined ? stores[0]!.task : childTask(stores[0]!.task, only);
    const each = await Promise.all(stores.map(async (s) => ({ store: s.name, location: s.store.location, entries: (await loadCatalog(s.store, task.pool, task.dataset, trust)).entries })));
    // One store: today's output. Several: each store's list under its name (--json: one object per store).
    if (args.json) return printJson(each.length === 1 ? each[0]!.entries : each.map(({ store, entries }) => ({ store, entries })));
    const text = each.map((e) => (each.length > 1 ? [`store ${e.store} (${e.location}):`] : []).concat(listLines(e.entries, task.fullName, e.location)).join("\n"));
    writePaged(text.join("\n\n") + "\n");
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
