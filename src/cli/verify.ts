/** `zrb verify`: flag parsing around pipeline/verify.ts. */
import { defineCommand } from "citty";
import { applyOutput, configArg, interruptSignal, loadAll, outputArgs, printJson, taskArg } from "./common.ts";
import { parseSelector, selectArgs } from "./restore.ts";
import { parseIdentityFile } from "../crypto/keys.ts";
import { loadCatalog } from "../pipeline/catalog.ts";
import { backupsToVerify, verifyBackups } from "../pipeline/verify.ts";
import { assertSafeBaseDir } from "../state/basedir.ts";
import { restoreScratchRoot } from "../state/rundir.ts";
import { integrityError, usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { printable } from "../util/text.ts";

export default defineCommand({
  meta: {
    name: "verify",
    description:
      "Check what is stored without zfs: download every part of a backup's chain (or --sample N random parts), " +
      "check its size and SHA-256; with --private-key also decrypt it and check its BLAKE3 and the whole-stream BLAKE3. " +
      "Without a key only the ciphertext is checked (the NAS itself never holds the private key). " +
      "Without a selector it checks the newest backup's chain, and a broken link in it fails the verification.",
  },
  args: {
    ...configArg,
    ...taskArg,
    ...selectArgs,
    "private-key": { type: "string", alias: "i", description: "age identity file: also decrypt and check the plaintext hashes", valueHint: "FILE" },
    sample: { type: "string", description: "Check only N randomly chosen parts of the chain", valueHint: "N" },
    "only-backup": { type: "boolean", description: "Check only the selected backup, not the rest of its chain", default: false },
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const selector = parseSelector(args);
    let sample: number | undefined;
    if (args.sample !== undefined) {
      sample = Number(args.sample);
      if (!Number.isInteger(sample) || sample < 1) throw usageError(`--sample must be a whole number ≥ 1, got ${JSON.stringify(args.sample)}`);
    }
    const intr = interruptSignal();
    try {
      const { config, task, store } = await loadAll(args, { allowDisabled: true, signal: intr.signal });
      assertSafeBaseDir(config.baseDir, { create: true });
      const identities = args["private-key"] ? await parseIdentityFile(args["private-key"]) : undefined;
      const cat = await loadCatalog(store, task.pool, task.dataset);
      const { backups, chainBroken } = backupsToVerify(cat, selector, task.fullName, store, !!args["only-backup"]);
      const report = await verifyBackups(store, backups, { identities, sample, signal: intr.signal, scratch: restoreScratchRoot(config.baseDir), workers: config.workers });
      if (args.json) printJson({ ...report, ...(chainBroken ? { chainBroken, ok: false } : {}) });
      else {
        for (const b of report.backups)
          process.stdout.write(
            printable(`${b.backupId}  level ${b.level}  ${b.snapshot.split("@")[1] ?? b.snapshot}  ${b.checked}/${b.parts} parts checked  stream BLAKE3: ${b.streamBlake3}`) + "\n",
          );
        for (const p of report.parts.filter((x) => !x.ok)) process.stdout.write(printable(`FAILED ${p.key}: ${p.error}`) + "\n");
        if (!report.decrypted) process.stdout.write("ciphertext only (sizes and SHA-256): pass --private-key to check the plaintext too\n");
      }
      if (chainBroken) throw integrityError(`verification failed: ${chainBroken}`);
      if (!report.ok) {
        const failed = report.parts.filter((x) => !x.ok);
        const bad = failed.length + report.backups.filter((b) => b.streamBlake3 === "mismatch").length;
        const first = failed[0]?.error ?? report.backups.find((b) => b.error)?.error ?? "";
        throw integrityError(`verification failed: ${bad} problem(s) in ${store.location}, the first: ${first}`);
      }
      if (!args.json) log.success(`${report.parts.length} part(s) verified in ${store.location}`);
    } finally {
      intr.dispose();
    }
  },
});
