/**
 * The local run directory of one dataset, `base_dir/run/<pool>/<dataset>/`, and everything in
 * it: the lock, the resume state (read with its format check), the spill directories and the
 * local copy of the heads. Nothing else builds these paths.
 */
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { readYaml, writeFileAtomic, writeFileAtomicAsync } from "./atomic.ts";
import type { MultipartProgress } from "../store/store.ts";
import type { SnapshotRef } from "../records/manifest.ts";
import { isSnapshotOf } from "../zfs/names.ts";
import { ZrbError } from "../util/errors.ts";

export const STATE_FORMAT = "zrb-state/1";

export interface ChunkState {
  index: number;
  plainSize: number;
  blake3: string;
  cipherSize?: number;
  sha256?: string;
  uploaded: boolean;
  multipart?: MultipartProgress;
}

/** The resumable progress of one backup (backup_state.yaml). */
export interface BackupState {
  format: "zrb-state/1";
  backupId: string;
  level: number;
  pool: string;
  dataset: string;
  snapshot: SnapshotRef;
  parent: (SnapshotRef & { backupId: string; level: number }) | null;
  sendFlags: string[];
  chunkSize: number;
  recipients: string[];
  startedAt: string;
  chunks: ChunkState[];
  /**
   * Multipart uploads begun early, for parts still being sealed (store/s3-growing.ts). Never
   * resumed: a killed run's spill file of such a part is not kept, so their pieces were never
   * checked against a recorded SHA-256; the next run aborts them.
   */
  sealingUploads?: { index: number; uploadId: string }[];
}

export type StateRead = { kind: "none" } | { kind: "ok"; state: BackupState } | { kind: "unusable"; why: string };

export class RunDir {
  readonly dir: string;
  constructor(
    baseDir: string,
    readonly pool: string,
    readonly dataset: string,
  ) {
    this.dir = join(baseDir, "run", pool, ...(dataset ? dataset.split("/") : []));
  }
  get fs(): string {
    return this.dataset ? `${this.pool}/${this.dataset}` : this.pool;
  }
  get lockPath(): string {
    return join(this.dir, "zrb.lock");
  }
  get statePath(): string {
    return join(this.dir, "backup_state.yaml");
  }
  /** Local copy of the bucket's heads.yaml (a cache; the bucket's copy wins). */
  get headsCachePath(): string {
    return join(this.dir, "last_backup_manifest.yaml");
  }
  /**
   * The sequence of the last heads.yaml this host wrote (0 when none or unreadable): a bucket
   * whose heads are older was rolled back (records/heads.ts).
   */
  async lastHeadsSequence(): Promise<number> {
    try {
      const h = await readYaml<{ sequence?: unknown }>(this.headsCachePath);
      return typeof h?.sequence === "number" && Number.isSafeInteger(h.sequence) && h.sequence > 0 ? h.sequence : 0;
    } catch {
      return 0;
    }
  }
  get spillRoot(): string {
    return join(this.dir, "spill");
  }
  spillDir(backupId: string): string {
    return join(this.spillRoot, backupId);
  }

  /** The resume state: none, usable, or there but unusable (a newer format, torn by hand, forged). */
  async readState(): Promise<StateRead> {
    let raw: unknown;
    try {
      raw = await readYaml<unknown>(this.statePath);
    } catch (err) {
      if (err instanceof ZrbError) return { kind: "unusable", why: "it is not valid YAML" };
      throw err;
    }
    if (raw === null) return { kind: "none" };
    const why = stateProblem(raw, this.fs);
    return why ? { kind: "unusable", why } : { kind: "ok", state: raw as BackupState };
  }
  writeState(state: BackupState): void {
    writeFileAtomic(this.statePath, stateText(state));
  }
  /** writeState() on the thread pool (the state is serialized now); one at a time. */
  writeStateAsync(state: BackupState): Promise<void> {
    return writeFileAtomicAsync(this.statePath, stateText(state));
  }
  removeState(): void {
    rmSync(this.statePath, { force: true });
  }
}

/**
 * backup_state.yaml's text: YAML, with each chunk's record on one line as a flow mapping (JSON,
 * which YAML 1.2 reads as it is), last. The state is written after every sealed part, every
 * multipart piece and every stored part, so a backup of n parts serializes it ≈ 2n times with
 * up to n records: YAML.stringify took ≈ 20 ms for 514 records, most of what a 64 KiB part cost
 * (a 32 MiB backup in 514 parts: 11.8 s, 12.5 CPU s); JSON.stringify takes < 1 % of that.
 */
export function stateText(state: BackupState): string {
  const { chunks, ...rest } = state;
  const head = YAML.stringify(rest, { lineWidth: 0 });
  // Array.from: a chunk not recorded yet (sealed out of order) is a hole, written as null.
  const lines = Array.from(chunks, (c) => `  - ${c ? JSON.stringify(c) : "null"}\n`);
  return `${head}chunks:${lines.length ? `\n${lines.join("")}` : " []\n"}`;
}


/** A recursive task's lock (the tree's), beside its root dataset's own zrb.lock. */
export function treeLockPath(baseDir: string, pool: string, dataset: string): string {
  return join(new RunDir(baseDir, pool, dataset).dir, "tree.lock");
}

const isInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const HEX64 = /^[0-9a-f]{64}$/;

/** Why a parsed backup_state.yaml cannot be resumed, or undefined. */
export function stateProblem(v: unknown, fs: string): string | undefined {
  const s = v as BackupState;
  if (!s || typeof s !== "object" || Array.isArray(s)) return "it is not a mapping";
  if (s.format !== STATE_FORMAT) return `it has format ${JSON.stringify(String(s.format)).slice(0, 40)}, this zrb resumes ${STATE_FORMAT}`;
  if (typeof s.backupId !== "string" || !/^[0-9A-Za-z-]{1,64}$/.test(s.backupId)) return "it has no valid backupId";
  if (!isInt(s.level)) return "it has no valid level";
  if (`${s.pool}${s.dataset ? `/${s.dataset}` : ""}` !== fs) return `it describes another dataset`;
  const snapOk = (r: SnapshotRef | null | undefined) => !!r && isSnapshotOf(r.name, fs) && typeof r.guid === "string" && /^\d+$/.test(r.guid);
  if (!snapOk(s.snapshot)) return "it has no valid snapshot";
  if (s.parent !== null && (!snapOk(s.parent) || typeof s.parent.backupId !== "string" || !isInt(s.parent.level))) return "it has a bad parent";
  if (s.level > 0 && !s.parent) return "a level above 0 without a parent";
  if (!Array.isArray(s.sendFlags) || !s.sendFlags.every((f) => typeof f === "string" && /^-[A-Za-z]+$/.test(f))) return "it has bad send flags";
  if (!isInt(s.chunkSize) || s.chunkSize === 0) return "it has no valid chunkSize";
  if (!Array.isArray(s.recipients) || s.recipients.length === 0 || !s.recipients.every((r) => typeof r === "string")) return "it has no recipients";
  if (typeof s.startedAt !== "string") return "it has no start time";
  if (!Array.isArray(s.chunks)) return "it has no chunk list";
  const early = s.sealingUploads;
  if (early !== undefined && (!Array.isArray(early) || !early.every((u) => u && isInt(u.index) && typeof u.uploadId === "string" && u.uploadId !== "")))
    return "it has a bad list of early uploads";
  for (const [i, c] of s.chunks.entries()) {
    if (c === null || c === undefined) continue;
    if (c.index !== i || !isInt(c.plainSize) || !HEX64.test(String(c.blake3)) || typeof c.uploaded !== "boolean") return `chunk ${i} is malformed`;
    if (c.sha256 !== undefined && (!HEX64.test(String(c.sha256)) || !isInt(c.cipherSize))) return `chunk ${i} has a bad ciphertext record`;
  }
  return undefined;
}

/** Where restore and verify keep ciphertext parts while they check them: base_dir/restore-scratch/. */
export function restoreScratchRoot(baseDir: string): string {
  return join(baseDir, "restore-scratch");
}

/** The longest file name Linux file systems take (NAME_MAX). */
const NAME_MAX = 255;

/**
 * One restore per target at a time: base_dir/restore-scratch/<target, URI-encoded>.lock. A
 * dataset name may be 255 bytes and encoding triples some of them ('/', ':', ' '), so a name
 * that would not fit in NAME_MAX keeps a readable head and ends in the SHA-256 of the whole
 * target: still one name per target, and one that can be created (issue 20: exit 9 before).
 */
export function restoreLockPath(baseDir: string, target: string): string {
  const encoded = encodeURIComponent(target);
  if (encoded.length + ".lock".length <= NAME_MAX) return join(restoreScratchRoot(baseDir), `${encoded}.lock`);
  const hash = createHash("sha256").update(target).digest("hex");
  // encodeURIComponent's output is ASCII, so characters are bytes; cut before a partial %XX.
  const head = encoded.slice(0, 160).replace(/%[0-9A-F]?$/, "");
  return join(restoreScratchRoot(baseDir), `${head}~${hash}.lock`);
}
