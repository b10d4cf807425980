/**
 * The configuration file: read, validate up front, and turn into a typed Config.
 *
 * Keeps the original zrb's keys (base_dir, age_public_key, s3.*, tasks[].*) working and adds
 * optional ones (age_recipients, chunk_size, workers, local_store, s3.checksum_mode).
 * Every problem is a one-line ZrbError (exit code CONFIG) that names the file, the line and
 * column where the YAML node is, the key path (e.g. `tasks[2].pool`) and the expected form.
 * Unknown keys are not fatal: each one becomes a warning (with a "did you mean" suggestion)
 * for the caller to log. Credentials and age private keys are refused and never echoed.
 *
 * This file is the public face; the keys are in schema.ts and docs/config.md's reference
 * tables are generated from it (README.md in this directory has the layout).
 */
import { readFile, stat } from "node:fs/promises";
import { configError, ZrbError } from "../util/errors.ts";
import { oneLine, quote } from "../util/redact.ts";
import { formatSize } from "../util/size.ts";
import { Reader } from "./read.ts";
import { type Config, ROOT, type Task } from "./schema.ts";
import { refuseSecrets } from "./secrets.ts";
import { didYouMean } from "./suggest.ts";
import { defaultsOf, homesOf } from "./walk.ts";

export { CHECKSUM_MODES, type ChecksumMode, type Config, STORAGE_CLASSES, type Task } from "./schema.ts";

/** The defaults of the keys that have a fixed one (camelCase, nested like Config). */
export const DEFAULTS = defaultsOf(ROOT);
const KEY_HOMES = homesOf(ROOT);

/** A config file larger than this is certainly not a config file. */
const MAX_FILE_BYTES = 1024 * 1024;

/** Read and validate a config file. A missing or unreadable file is a one-line error naming it. */
export async function loadConfig(path: string): Promise<{ config: Config; warnings: string[] }> {
  let bytes: Uint8Array;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw configError(`config file ${path} is a directory; pass the YAML file itself`);
    if (!st.isFile() && !st.isFIFO()) throw configError(`config file ${path} is not a regular file`);
    if (st.isFile() && st.size > MAX_FILE_BYTES) {
      throw configError(`config file ${path} is ${formatSize(st.size)}; a zrb config is a small YAML file (at most 1 MiB)`);
    }
    bytes = await readFile(path);
  } catch (err) {
    if (err instanceof ZrbError) throw err;
    throw readError(err, path);
  }
  if (bytes.length > MAX_FILE_BYTES) {
    throw configError(`config file ${path} is larger than 1 MiB; a zrb config is a small YAML file`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw configError(`config file ${path} is not UTF-8 text; save it as UTF-8 YAML`);
  }
  return parseConfig(text, path);
}

function readError(err: unknown, path: string): ZrbError {
  const code = (err as { code?: string })?.code;
  switch (code) {
    case "ENOENT":
      return configError(`config file ${path} does not exist; create it (see docs/config.md) or pass --config <file>`);
    case "EACCES":
    case "EPERM":
      return configError(`cannot read config file ${path}: permission denied; run as root or make it readable by this user`);
    case "EISDIR":
      return configError(`config file ${path} is a directory; pass the YAML file itself`);
    case "ENOTDIR":
      return configError(`config file ${path} does not exist (a parent is not a directory)`);
    default:
      return configError(`cannot read config file ${path}: ${oneLine((err as Error)?.message ?? String(err))}`);
  }
}

/** Validate config text. `path` is only used in messages and copied to Config.path. */
export function parseConfig(text: string, path: string): { config: Config; warnings: string[] } {
  const r = new Reader(text, path, KEY_HOMES);
  refuseSecrets(r);
  const root = r.root();
  if (root.empty) r.fail(null, "the file is empty; it needs at least base_dir, age_public_key and tasks (see docs/config.md)");
  const config = ROOT.read(root)!;
  return { config, warnings: r.warnings };
}

/** The task called `name`; unknown names list the tasks (with a suggestion), disabled ones say how to enable them. */
export function findTask(config: Config, name: string, opts: { allowDisabled?: boolean } = {}): Task {
  const task = config.tasks.find((t) => t.name === name);
  if (!task) {
    const names = config.tasks.map((t) => t.name);
    throw configError(`no task named ${quote(name)} in ${config.path}${didYouMean(name, names)} (tasks: ${names.join(", ")})`);
  }
  if (!task.enabled && !opts.allowDisabled) {
    throw configError(`task ${task.name} is disabled in ${config.path} (set enabled: true)`);
  }
  return task;
}

/**
 * The task of the config other than `task` that backs up dataset `fullName` itself (a child a
 * tree excludes, given a task of its own): its retention, not `task`'s, decides for that dataset.
 */
export function otherTaskOf(config: Config, task: Task, fullName: string): Task | undefined {
  return config.tasks.find((o) => o.name !== task.name && o.fullName === fullName);
}

/** Storage class for the data of a level-`level` backup: backup_data[level], or its last entry past the end. */
export function storageClassFor(config: Config, level: number): string {
  if (!Number.isSafeInteger(level) || level < 0) {
    throw configError(`backup level must be a whole number from 0 upward, got ${level}`);
  }
  const list = config.s3.storageClass.backupData;
  return list[Math.min(level, list.length - 1)] ?? DEFAULTS.s3.storageClass.manifest;
}
