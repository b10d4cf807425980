import { defineCommand } from "citty";
import { join } from "node:path";
import { applyOutput, configArg, interruptSignal, loadAll, outputArgs, printJson, taskArg } from "./common.ts";
import { parseSelector, selectArgs } from "./restore.ts";
import { parseIdentityFile } from "../crypto/age.ts";
import { ChainError, loadCatalog, newestPoint, resolveChain } from "../pipeline/catalog.ts";
import type { Manifest } from "../state/manifest.ts";
import { verifyBackups } from "../pipeline/restore.ts";
import { integrityError, storeError, usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { assertSafeBaseDir } from "../state/basedir.ts";
import { printable } from "../util/text.ts";

export default defineCommand({
  meta: {
    name: "verify",
    description:
      "Check what is stored without zfs: download every part of a backup's chain (or --sample N random parts), " +
      "check its size and SHA-256; with --private-key also decrypt it and check its BLAKE3 and the whole-stream BLAKE3. " +
      "Without a key only the ciphertext is checked (the NAS itself never holds the private key).",
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
    const { config, task, store } = await loadAll(args, { allowDisabled: true, signal: intr.signal });
    assertSafeBaseDir(config.baseDir, { create: true });
    const identities = args["private-key"] ? await parseIdentityFile(args["private-key"]) : undefined;
    const cat = await loadCatalog(store, task.pool, task.dataset);
    // Verification must look at broken backups too: pick by id/snapshot/level without the restorable filter.
    let backups: Manifest[];
    let chainBroken: string | undefined;
    const explicit = selector.backupId ?? selector.snapshot ?? selector.level;
    if (explicit !== undefined) {
      const e = cat.entries.filter((x) =>
        selector.backupId !== undefined
          ? x.backupId === selector.backupId
          : selector.snapshot !== undefined
            ? (x.snapshot.split("@")[1] ?? x.snapshot) === selector.snapshot.replace(/^.*@/, "")
            : x.level === selector.level,
      ).at(-1);
      if (!e) throw usageError(`no such backup of ${task.fullName} in ${store.location}; run zrb list to see the backups`);
      const m = cat.manifests.get(e.backupId)!;
      let chain = [m];
      if (!args["only-backup"]) {
        try {
          chain = resolveChain(m, cat.manifests);
        } catch (err) {
          log.warn(`checking only ${m.backupId}: its chain cannot be resolved: ${(err as Error).message}`);
        }
      }
      backups = chain;
    } else {
      // What a restore of the newest point needs: its chain as far as it resolves; a broken
      // link is itself a failure of the verification (exit 7), checked parts or not.
      const n = newestPoint(cat);
      if (!n) throw storeError(`no backups of ${task.fullName} in ${store.location}; check s3.bucket, s3.prefix and the task's pool/dataset in the config`);
      if ("corrupt" in n) throw integrityError(`verification failed: the newest backup ${n.corrupt.backupId} cannot be restored: ${n.corrupt.message}`);
      const m = cat.manifests.get(n.entry.backupId)!;
      try {
        backups = resolveChain(m, cat.manifests);
      } catch (err) {
        if (!(err instanceof ChainError)) throw err;
        chainBroken = `the newest backup ${m.backupId} (level ${m.level}) cannot be restored: ${err.problem.message}`;
        backups = resolvablePart(m, cat.manifests);
      }
      if (args["only-backup"]) backups = [m];
    }
    try {
      const report = await verifyBackups(store, backups, {
        identities,
        sample,
        attempts: config.s3.retry.maxAttempts,
        signal: intr.signal,
        scratch: join(config.baseDir, "restore-scratch"),
      });
      if (args.json) printJson(report);
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

/** The chain of m from m back to the first missing or mismatched link, oldest first. */
function resolvablePart(m: Manifest, byId: Map<string, Manifest>): Manifest[] {
  const out = [m];
  for (let cur = m; cur.parent; ) {
    const p = byId.get(cur.parent.backupId);
    if (!p || p.snapshot.guid !== cur.parent.guid || out.includes(p)) break;
    out.unshift(p);
    cur = p;
  }
  return out;
}
