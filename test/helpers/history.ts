/**
 * A dataset living through simulated days, for the retention tests: each day some files change,
 * then `zrb snapshot` and `zrb backup` run at that day's instant (ZRB_NOW), and every backup is
 * recorded with its parent and the guid and file tree of its snapshot, so that any point that
 * prune keeps can later be restored and compared byte for byte, and any point it deletes can be
 * looked for in the bucket.
 */
import { rmSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import YAML from "yaml";
import { hashTree, mountpointOf, run, snapshotGuid, writeRandomFile, type S3Rig } from "./rig.ts";
import { configYaml, spawnZrb, zrb, jsonResult } from "./zrb.ts";
import type { RunResult } from "./rig.ts";

export interface Recorded {
  id: string;
  level: number;
  parent: string | null;
  snap: string;
  guid: string;
  tree: Record<string, string>;
  /** ZRB_NOW of the run (ISO 8601). */
  at: string;
}

export interface HistoryOptions {
  pool: string;
  name: string;
  bucket: string;
  s3: S3Rig;
  /** S3 endpoint to use instead of the rig's (e.g. a fault proxy). */
  endpoint?: string;
  prefix: string;
  work: string;
  recipient: string;
  keyFile: string;
  env: Record<string, string>;
  chunkSize?: string;
  /** tasks[0].retention, as YAML would have it (snake_case). */
  retention?: Record<string, unknown>;
  backupData?: string[];
  maxAttempts?: number;
  /** More top-level config keys (signing_key, verify_keys, prune, …), as YAML would have them. */
  extra?: Record<string, unknown>;
}

export class History {
  readonly backups: Recorded[] = [];
  /** The file tree of each snapshot taken, by full name. */
  private readonly trees = new Map<string, Record<string, string>>();
  private files = 0;
  private constructor(
    readonly o: HistoryOptions,
    readonly fs: string,
    readonly mnt: string,
    readonly cfg: string,
    readonly baseDir: string,
  ) {}

  static async create(o: HistoryOptions): Promise<History> {
    const fs = `${o.pool}/${o.name}`;
    await run(["zfs", "create", fs]);
    const baseDir = join(o.work, `base-${o.name}`);
    const cfg = join(o.work, `${o.name}.yaml`);
    const h = new History(o, fs, await mountpointOf(fs), cfg, baseDir);
    h.writeConfig(o.retention);
    return h;
  }

  get runDir(): string {
    return join(this.baseDir, "run", this.o.pool, this.o.name);
  }

  /** Rewrite the config with another retention (or endpoint). */
  writeConfig(retention = this.o.retention, endpoint = this.o.endpoint): void {
    const doc = YAML.parse(
      configYaml({
        baseDir: this.baseDir,
        recipients: [this.o.recipient],
        bucket: this.o.bucket,
        s3: this.o.s3,
        prefix: this.o.prefix,
        chunkSize: this.o.chunkSize ?? "64KiB",
        workers: 2,
        tasks: [{ name: "t", pool: this.o.pool, dataset: this.o.name }],
        backupData: this.o.backupData,
      }),
    );
    doc.prune = { orphan_grace: "0s" }; // what a killed prune leaves is an orphan at once, whatever ZRB_NOW says
    if (endpoint) doc.s3.endpoint = endpoint;
    if (this.o.maxAttempts) doc.s3.retry.max_attempts = this.o.maxAttempts;
    if (retention) doc.tasks[0].retention = retention;
    Object.assign(doc, this.o.extra ?? {});
    writeFileSync(this.cfg, YAML.stringify(doc));
  }

  /** `zrb ARGS --config C --task t` at the instant `at` (ZRB_NOW). */
  run(args: string[], at: string, opts: { allowFail?: boolean; env?: Record<string, string> } = {}): Promise<RunResult> {
    return zrb([...args, "--config", this.cfg, "--task", "t"], { env: { ...this.o.env, ZRB_NOW: at, ...opts.env }, allowFail: opts.allowFail });
  }

  spawn(args: string[], at: string, env: Record<string, string> = {}) {
    return spawnZrb([...args, "--config", this.cfg, "--task", "t"], { ...this.o.env, ZRB_NOW: at, ...env });
  }

  /** A day's changes: a new file, and one older file rewritten or removed; the tree stays small. */
  async change(seed: number): Promise<void> {
    const n = this.files++;
    await writeRandomFile(join(this.mnt, `day${String(n).padStart(4, "0")}.bin`), 2_000 + ((seed * 7919) % 30_000), seed);
    const names = (await readdir(this.mnt)).filter((f) => f.startsWith("day")).sort();
    if (names.length > 12) rmSync(join(this.mnt, names[0]!));
    if (names.length > 3 && seed % 3 === 0) await writeRandomFile(join(this.mnt, names[1]!), 1_000 + (seed % 5_000), seed + 1);
  }

  /** `zrb snapshot` at `at`; the snapshot's full name. */
  async snapshot(level: number, at: string): Promise<string> {
    return (await this.run(["snapshot", "--level", String(level)], at)).stdout.trim();
  }

  /** Record the backup a `zrb backup --json` run printed, of snapshot `snap`. */
  async record(out: { backupId: string; level: number; parentBackupId: string | null; snapshot: string }, at: string): Promise<Recorded> {
    const rec: Recorded = {
      id: out.backupId,
      level: out.level,
      parent: out.parentBackupId,
      snap: out.snapshot,
      guid: await snapshotGuid(out.snapshot),
      tree: this.trees.get(out.snapshot)!,
      at,
    };
    this.backups.push(rec);
    return rec;
  }

  /** Change files, snapshot at `level`, remember the tree, back it up; the recorded backup. */
  async day(level: number, at: string, seed: number): Promise<Recorded> {
    await this.change(seed);
    const snap = await this.snapshot(level, at);
    this.trees.set(snap, await hashTree(this.mnt));
    const out = jsonResult((await this.run(["backup", "--level", String(level), "--json"], at)).stdout);
    return this.record(out, at);
  }

  /** Change files and take a snapshot only (its tree remembered for a later backup). */
  async snapshotOnly(level: number, at: string, seed: number): Promise<string> {
    await this.change(seed);
    const snap = await this.snapshot(level, at);
    this.trees.set(snap, await hashTree(this.mnt));
    return snap;
  }

  byId(id: string): Recorded {
    const b = this.backups.find((x) => x.id === id);
    if (!b) throw new Error(`no recorded backup ${id}`);
    return b;
  }

  /** The recorded ids from b back to its level 0. */
  chainOf(id: string): string[] {
    const out: string[] = [];
    for (let b: Recorded | undefined = this.byId(id); b; b = b.parent ? this.byId(b.parent) : undefined) out.unshift(b.id);
    return out;
  }

  /**
   * Restore backup `id` with zrb into a fresh dataset and compare: the restored snapshot has the
   * source snapshot's guid and exactly its files (content, mode, mtime). Throws on a difference.
   */
  async restoreAndCompare(id: string, at: string): Promise<void> {
    const b = this.byId(id);
    const target = `${this.o.pool}/r${Math.random().toString(16).slice(2, 10)}`;
    await this.run(["restore", "--target", target, "--private-key", this.o.keyFile, "--backup-id", id], at);
    try {
      const short = b.snap.slice(b.snap.indexOf("@") + 1);
      const guid = await snapshotGuid(`${target}@${short}`);
      if (guid !== b.guid) throw new Error(`restored ${id}: guid ${guid}, the source snapshot has ${b.guid}`);
      await run(["zfs", "mount", target]);
      const tree = await hashTree(await mountpointOf(target));
      if (JSON.stringify(tree) !== JSON.stringify(b.tree)) throw new Error(`restored ${id}: the files differ from ${b.snap}`);
    } finally {
      for (let i = 0; i < 40; i++) {
        if ((await run(["zfs", "destroy", "-r", target], { allowFail: true })).code === 0) break;
        await Bun.sleep(250);
      }
    }
  }
}
