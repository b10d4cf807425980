/** `zrb verify` of one dataset (a task's, or one child of a recursive task): the selected chain, or the rotation's slice, and its report. */
import type { Task } from "../config/config.ts";
import { loadCatalog, type Catalog } from "../pipeline/catalog.ts";
import type { Selector } from "../pipeline/restore/index.ts";
import { verifyRotating, type RotationReport } from "../pipeline/rotate.ts";
import { backupsToVerify, headerOnlyLine, verifyBackups, type VerifyReport } from "../pipeline/verify.ts";
import { restoreScratchRoot } from "../state/rundir.ts";
import type { Trust } from "../records/trust.ts";
import type { ObjectStore } from "../store/store.ts";
import { integrityError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import { printable } from "../util/text.ts";
import type { JobContext, JobResult } from "./job.ts";

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
    const headerOnly = headerOnlyLine(report);
    if (headerOnly) process.stdout.write(headerOnly + "\n");
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

/** What to verify, from the flags. */
export interface VerifyAsk {
  selector: Selector;
  sample?: number;
  rotate?: number;
  onlyBackup: boolean;
  identities?: string[];
  trust: Trust;
  json: boolean;
}

/** Verify one dataset (a task's, or one child of a recursive task): the selected chain, or the rotation's slice. */
export async function verifyDataset(job: Pick<JobContext, "config" | "store" | "reporter" | "signal">, task: Task, o: VerifyAsk, catalog?: Catalog): Promise<JobResult> {
  const { config, store, reporter, signal } = job;
  const { identities } = o;
  const cat = catalog ?? (await loadCatalog(store, task.pool, task.dataset, o.trust));
  if (o.rotate !== undefined) {
    const run = await verifyRotating(store, [...cat.manifests.values()], {
      days: o.rotate,
      identities,
      signal,
      scratch: restoreScratchRoot(config.baseDir),
      workers: config.workers,
      connections: config.s3.concurrency,
      storageClass: config.s3.storageClass.manifest,
      pool: task.pool,
      dataset: task.dataset,
      progress: reporter,
    });
    return reportRotation(run, cat, store, o.json);
  }
  const { backups, chainBroken } = backupsToVerify(cat, o.selector, task.fullName, store, o.onlyBackup);
  const report = await verifyBackups(store, backups, { identities, sample: o.sample, signal, scratch: restoreScratchRoot(config.baseDir), workers: config.workers, connections: config.s3.concurrency, progress: reporter });
  const result = { ...report, ...(chainBroken ? { chainBroken, ok: false } : {}) };
  if (!o.json) {
    for (const b of report.backups)
      process.stdout.write(
        printable(`${b.backupId}  level ${b.level}  ${b.snapshot.split("@")[1] ?? b.snapshot}  ${b.checked}/${b.parts} parts checked  stream BLAKE3: ${b.streamBlake3}  records: ${b.streamRecords}`) + "\n",
      );
    for (const p of report.parts.filter((x) => !x.ok)) process.stdout.write(printable(`FAILED ${p.key}: ${p.error}`) + "\n");
    if (!report.decrypted) process.stdout.write("ciphertext only (sizes and SHA-256): pass --private-key to check the plaintext too\n");
    const headerOnly = headerOnlyLine(report);
    if (headerOnly) process.stdout.write(headerOnly + "\n");
  }
  if (chainBroken) return { result, error: integrityError(`verification failed: ${chainBroken}`) };
  if (!report.ok) {
    const failed = report.parts.filter((x) => !x.ok);
    // Failed parts, and backups with a problem of their own (stream BLAKE3, records, catalog).
    const bad = failed.length + report.backups.filter((b) => b.error).length;
    const first = failed[0]?.error ?? report.backups.find((b) => b.error)?.error ?? "";
    return { result, error: integrityError(`verification failed: ${bad} problem(s) in ${store.location}, the first: ${first}`) };
  }
  if (!o.json) log.success(`${report.parts.length} part(s) verified in ${store.location}`);
  return { result };
}
