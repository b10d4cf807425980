/**
 * `zrb rekey`: hand every backup of a task to new age recipients without re-uploading it
 * (pipeline/rekey/). Flag parsing, key loading, the summary line and --json events here.
 */
import { storeArg } from "./stores.ts";
import { defineCommand } from "citty";
import { readFile } from "node:fs/promises";
import { applyOutput, configArg, interruptSignal, loadStores, taskArg } from "./common.ts";
import { resolveTrust, trustArgs } from "./trust.ts";
import { repeatedFlag } from "./common.ts";
import { loadIdentityFile } from "../crypto/keys.ts";
import { checkRecipient } from "../crypto/recipient.ts";
import { readSigningKey } from "../crypto/signing.ts";
import { rekey, type RekeyEvent, type RekeyResult } from "../pipeline/rekey/index.ts";
import { bucketChildren } from "../pipeline/tree/known.ts";
import { childTask } from "../pipeline/tree/children.ts";
import type { Task } from "../config/config.ts";
import { warnUnauthenticated } from "../records/trust.ts";
import { ExitCode, ZrbError, fsError, usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { now } from "../util/clock.ts";

/** The new recipients: every --to-recipient, or the age1… lines of --to-recipients-file (comments allowed). */
async function newRecipients(args: { "to-recipient"?: string; "to-recipients-file"?: string }): Promise<string[]> {
  const flags = repeatedFlag("to-recipient", args["to-recipient"]);
  const file = args["to-recipients-file"];
  if (flags.length > 0 && file) throw usageError("give --to-recipient or --to-recipients-file, not both");
  let raw: { value: string; where: string }[];
  if (file) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      throw fsError(err, "reading recipients file", file);
    }
    raw = text
      .split("\n")
      .map((l, i) => ({ value: l.trim(), where: `line ${i + 1} of ${file}` }))
      .filter((r) => r.value !== "" && !r.value.startsWith("#"));
    if (raw.length === 0) throw usageError(`${file} holds no recipient (age1… lines); write the new public keys into it`);
  } else {
    if (flags.length === 0) throw usageError("say who the backups go to: --to-recipient age1… (repeatable) or --to-recipients-file FILE");
    raw = flags.map((value, i) => ({ value, where: `--to-recipient #${i + 1}` }));
  }
  const out: string[] = [];
  for (const r of raw) {
    const c = checkRecipient(r.value);
    if ("problem" in c) throw usageError(`${r.where} ${c.problem}`);
    if (!out.includes(c.recipient)) out.push(c.recipient);
  }
  return out;
}

export function summaryLine(r: RekeyResult): string {
  const verb = r.dryRun ? "would be rewrapped" : "rewrapped";
  const d = r.dryRun ? "bytes to download" : "bytes downloaded";
  const c = r.dryRun ? "bytes to copy server-side" : "bytes copied server-side";
  return `rekey: ${r.parts} parts of ${r.backups} backups ${verb}, ${r.downloadedBytes} ${d}, ${r.copiedBytes} ${c}`;
}

export default defineCommand({
  meta: {
    name: "rekey",
    description:
      "Give every backup of a task (or --backup-id) to new age recipients without re-uploading it: each part's file key is unwrapped with the old " +
      "private key and wrapped to the new recipients; the object is rewritten in the store (its first ~5 MiB uploaded, the rest copied server-side) " +
      "and its manifest re-signed. Run it where signing_key is. Resumable: rerun after an interruption. Afterwards set age_public_key to the new key " +
      "and see docs/security.md (rotate keys) for what the old key can still read.",
  },
  args: {
    ...configArg,
    ...taskArg,
    ...storeArg,
    "private-key": { type: "string", alias: "i", description: "The OLD age identity file: it opens the parts now", valueHint: "FILE" },
    "to-recipient": { type: "string", description: "A new recipient (age1…); repeatable", valueHint: "AGE1", repeatable: true },
    "to-recipients-file": { type: "string", description: "A file of new recipients, one age1… per line", valueHint: "FILE" },
    "backup-id": { type: "string", description: "Rekey only this backup", valueHint: "ID" },
    "dry-run": { type: "boolean", description: "Say which backups and parts would be rewritten and how many bytes would move; change nothing", default: false },
    ...trustArgs,
    json: { type: "boolean", description: "JSON-lines events (part, backup, skipped) ending with a done event", default: false },
    verbose: { type: "boolean", alias: "v", description: "More detail on stderr", default: false },
    quiet: { type: "boolean", alias: "q", description: "Only warnings and errors on stderr", default: false },
  },
  async run({ args }) {
    applyOutput(args);
    if (!args["private-key"]) throw usageError("--private-key FILE (the OLD identity, which opens the parts now) is required");
    const recipients = await newRecipients(args);
    const emit = (name: string, fields: Record<string, unknown>) => {
      if (args.json) process.stdout.write(JSON.stringify({ event: name, time: now().toISOString(), command: "rekey", task: args.task, ...fields }) + "\n");
    };
    const { signal, dispose } = interruptSignal();
    let reported = false;
    try {
      // Every store of the task (or --store): a key rotation that left one store on the old key would not be one.
      const stores = await loadStores(args, { signal, allowDisabled: true });
      const { config, task } = stores[0]!;
      const key = await loadIdentityFile(args["private-key"]);
      const trust = await resolveTrust(args, key.verifyKey, config);
      warnUnauthenticated(trust, "rekey");
      const signer = config.signingKeyFile ? await readSigningKey(config.signingKeyFile) : undefined;
      // A recursive task: every child with backups in the bucket, one dataset at a time.
      if (task.recursive && args["backup-id"] !== undefined) throw usageError("--backup-id names one dataset's backup; it cannot be used with a recursive task");
      if (stores.length > 1 && args["backup-id"] !== undefined) throw usageError(`--backup-id names a backup of one store; pass --store NAME too (stores: ${stores.map((s) => s.name).join(", ")})`);
      const result: RekeyResult = { dryRun: !!args["dry-run"], backups: 0, parts: 0, downloadedBytes: 0, copiedBytes: 0, skipped: [] };
      for (const { name, config: view, store } of stores) {
        const label = stores.length > 1 ? { store: name } : {};
        const datasets: Task[] = task.recursive ? (await bucketChildren(store, task, trust)).children.map((c) => childTask(task, c.rel)) : [task];
        for (const t of datasets) {
          const r = await rekey(view, t, store, {
            identities: key.identities,
            recipients,
            trust,
            signer,
            backupId: args["backup-id"],
            dryRun: !!args["dry-run"],
            signal,
            onEvent: ({ event, ...fields }: RekeyEvent) => emit(event, { dataset: t.fullName, ...label, ...fields }),
          });
          result.backups += r.backups;
          result.parts += r.parts;
          result.downloadedBytes += r.downloadedBytes;
          result.copiedBytes += r.copiedBytes;
          result.skipped.push(...r.skipped);
        }
      }
      if (!result.dryRun && result.parts > 0 && !config.recipients.every((r) => recipients.includes(r)))
        log.warn(`${config.path} still encrypts new backups to ${config.recipients.filter((r) => !recipients.includes(r)).join(", ")}; set age_public_key (age_recipients) to the new key`);
      // Backups left as they were (still opening with the old key only): the job is not finished.
      const first = result.skipped[0];
      const failure = first
        ? new ZrbError(
            `${result.skipped.length} backup(s) were not rekeyed and still open only with the old key (${first.backupId}: ${first.reason}); fix that and rerun`,
            Math.min(...result.skipped.map((x) => x.exitCode)) as ExitCode,
          )
        : undefined;
      if (!args.json) process.stdout.write(summaryLine(result) + "\n");
      else if (failure) {
        reported = true;
        emit("error", { message: failure.message, exitCode: failure.exitCode, result });
      } else emit("done", { result });
      if (failure) throw failure;
    } catch (err) {
      if (args.json && !reported && err instanceof ZrbError) emit("error", { message: err.message, exitCode: err.exitCode });
      throw err;
    } finally {
      dispose();
    }
  },
});
