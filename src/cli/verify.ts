/** `zrb verify`: flag parsing around pipeline/verify.ts. */
import { defineCommand } from "citty";
import { applyOutput, configArg, optionalValue, taskArg } from "./common.ts";
import { runJob, transferArgs, type JobResult } from "./job.ts";
import { parseSelector, selectArgs } from "./restore.ts";
import { loadIdentityFile } from "../crypto/keys.ts";
import { resolveTrust, trustArgs } from "./trust.ts";
import { warnUnauthenticated } from "../state/trust.ts";
import { loadCatalog, type Catalog } from "../pipeline/catalog.ts";
import { verifyRotating, type RotationReport } from "../pipeline/rotate.ts";
import { backupsToVerify, verifyBackups, type VerifyReport } from "../pipeline/verify.ts";
import type { ObjectStore } from "../store/store.ts";
import { assertSafeBaseDir } from "../state/basedir.ts";
import { restoreScratchRoot } from "../state/rundir.ts";
import { integrityError, usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { printable } from "../util/text.ts";

export const DEFAULT_ROTATE_DAYS = 90;

/** --rotate DAYS: a whole number of days; it covers every backup, so no selector, sample or --only-backup. */
function parseRotate(v: string, args: Record<string, unknown>): number {
  if (!/^\d{1,4}$/.test(v) || Number(v) < 1 || Number(v) > 3650) throw usageError(`--rotate must be a whole number of days from 1 to 3650, got ${JSON.stringify(v)}`);
  const clash = ["backup-id", "snapshot", "level", "sample", "only-backup"].find((k) => args[k] !== undefined && args[k] !== false);
  if (clash) throw usageError(`--rotate reads every backup of the task in turn and cannot be combined with --${clash}; run them separately`);
  return Number(v);
}

/** The rotation's report as a job result: lines on stdout, the error when it failed. */
function reportRotation(run: { report: VerifyReport; rotation: RotationReport }, cat: Catalog, store: ObjectStore, json: boolean): JobResult {
  const { report, rotation: r } = run;
  const broken = cat.entries.filter((e) => !e.restorable);
  const result = { ...report, rotation: r, corrupt: cat.corrupt.map((c) => c.key), notRestorable: broken.map((e) => e.backupId), ok: report.ok && broken.length === 0 && cat.corrupt.length === 0 };
  if (!json) {
    for (const b of report.backups)
      process.stdout.write(printable(`${b.backupId}  level ${b.level}  ${b.snapshot.split("@")[1] ?? b.snapshot}  ${b.checked}/${b.parts} parts checked`) + "\n");
    for (const p of report.parts.filter((x) => !x.ok)) process.stdout.write(printable(`FAILED ${p.key}: ${p.error}`) + "\n");
    if (!report.decrypted) process.stdout.write("ciphertext only (sizes and SHA-256): pass --private-key to check the plaintext too\n");
  }
  if (!report.ok) {
    const first = report.parts.find((x) => !x.ok)?.error ?? "";
    return { result, error: integrityError(`rotating verification failed: ${r.failed} part(s) bad in ${store.location}, the first: ${first}; they are read again on every run until fixed`) };
  }
  if (cat.corrupt.length)
    return { result, error: integrityError(`rotating verification: manifest ${cat.corrupt[0]!.key} cannot be read (${cat.corrupt[0]!.message}); its parts cannot be checked`) };
  if (broken.length)
    return {
      result,
      error: integrityError(`rotating verification: backup ${broken[0]!.backupId} cannot be restored: ${broken[0]!.problem!.message}${broken.length > 1 ? ` (and ${broken.length - 1} more)` : ""}; see zrb list`),
    };
  if (!json) {
    const cover = r.overdueAfter === 0 ? `every part read within the last ${r.days} days (the oldest read ${r.oldest?.slice(0, 10) ?? "-"})` : `${r.overdueAfter} part(s) not read within ${r.days} days yet, read first on the next runs`;
    log.success(`rotation: ${r.checked} of ${r.parts} part(s) checked in ${store.location}; ${cover}${r.archived ? `; ${r.archived} part(s) in archive classes not read (thaw them to check)` : ""}`);
  }
  return { result };
}

export default defineCommand({
  meta: {
    name: "verify",
    description:
      "Check what is stored without zfs: download every part of a backup's chain (or --sample N random parts), " +
      "check its size and SHA-256; with --private-key also decrypt it and check its BLAKE3 and the whole-stream BLAKE3. " +
      "Without a key only the ciphertext is checked (the NAS itself never holds the private key). " +
      "Without a selector it checks the newest backup's chain, and a broken link in it fails the verification. " +
      "--rotate DAYS instead reads, on each run, the slice of every backup's parts whose turn has come, so that every stored part is read at least once per DAYS (the weekly systemd timer uses it).",
  },
  args: {
    ...configArg,
    ...taskArg,
    ...selectArgs,
    "private-key": { type: "string", alias: "i", description: "age identity file: also decrypt and check the plaintext hashes", valueHint: "FILE" },
    ...trustArgs,
    sample: { type: "string", description: "Check only N randomly chosen parts of the chain", valueHint: "N" },
    rotate: optionalValue(
      {
        type: "string",
        description: `Rotating verification of every backup of the task: read the slice of parts whose turn has come, so that each part is read at least once per DAYS (default ${DEFAULT_ROTATE_DAYS}); progress is kept in the bucket`,
        valueHint: "DAYS",
      },
      String(DEFAULT_ROTATE_DAYS),
    ),
    "only-backup": { type: "boolean", description: "Check only the selected backup, not the rest of its chain", default: false },
    ...transferArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const selector = parseSelector(args);
    let sample: number | undefined;
    if (args.sample !== undefined) {
      sample = Number(args.sample);
      if (!Number.isInteger(sample) || sample < 1) throw usageError(`--sample must be a whole number ≥ 1, got ${JSON.stringify(args.sample)}`);
    }
    const rotate = args.rotate !== undefined ? parseRotate(String(args.rotate), args) : undefined;
    await runJob(args, { command: "verify", level: selector.level }, async ({ config, task, store, reporter, signal }) => {
      assertSafeBaseDir(config.baseDir, { create: true });
      const key = args["private-key"] ? await loadIdentityFile(args["private-key"]) : undefined;
      const identities = key?.identities;
      const trust = await resolveTrust(args, key?.verifyKey);
      warnUnauthenticated(trust, "verify");
      const cat = await loadCatalog(store, task.pool, task.dataset, trust);
      if (rotate !== undefined) {
        const run = await verifyRotating(store, [...cat.manifests.values()], {
          days: rotate,
          identities,
          signal,
          scratch: restoreScratchRoot(config.baseDir),
          workers: config.workers,
          storageClass: config.s3.storageClass.manifest,
          pool: task.pool,
          dataset: task.dataset,
          progress: reporter,
        });
        return reportRotation(run, cat, store, !!args.json);
      }
      const { backups, chainBroken } = backupsToVerify(cat, selector, task.fullName, store, !!args["only-backup"]);
      const report = await verifyBackups(store, backups, { identities, sample, signal, scratch: restoreScratchRoot(config.baseDir), workers: config.workers, progress: reporter });
      const result = { ...report, ...(chainBroken ? { chainBroken, ok: false } : {}) };
      if (!args.json) {
        for (const b of report.backups)
          process.stdout.write(
            printable(`${b.backupId}  level ${b.level}  ${b.snapshot.split("@")[1] ?? b.snapshot}  ${b.checked}/${b.parts} parts checked  stream BLAKE3: ${b.streamBlake3}  records: ${b.streamRecords}`) + "\n",
          );
        for (const p of report.parts.filter((x) => !x.ok)) process.stdout.write(printable(`FAILED ${p.key}: ${p.error}`) + "\n");
        if (!report.decrypted) process.stdout.write("ciphertext only (sizes and SHA-256): pass --private-key to check the plaintext too\n");
      }
      if (chainBroken) return { result, error: integrityError(`verification failed: ${chainBroken}`) };
      if (!report.ok) {
        const failed = report.parts.filter((x) => !x.ok);
        const bad = failed.length + report.backups.filter((b) => b.streamBlake3 === "mismatch").length;
        const first = failed[0]?.error ?? report.backups.find((b) => b.error)?.error ?? "";
        return { result, error: integrityError(`verification failed: ${bad} problem(s) in ${store.location}, the first: ${first}`) };
      }
      if (!args.json) log.success(`${report.parts.length} part(s) verified in ${store.location}`);
      return { result };
    });
  },
});
