/**
 * The configuration file: read, validate up front, and turn into a typed Config.
 *
 * Keeps the original zrb's keys (base_dir, age_public_key, s3.*, tasks[].*) working and adds
 * optional ones (age_recipients, chunk_size, workers, local_store, s3.checksum_mode).
 * Every problem is a one-line ZrbError (exit code CONFIG) that names the file, the line and
 * column where the YAML node is, the key path (e.g. `tasks[2].pool`) and the expected form.
 * Unknown keys are not fatal: each one becomes a warning (with a "did you mean" suggestion)
 * for the caller to log. Credentials and age private keys are refused and never echoed.
 * The reference for users is docs/config.md; keep the two in step.
 */
import { readFile, stat } from "node:fs/promises";
import { posix } from "node:path";
import { bech32 } from "@scure/base";
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  Scalar,
} from "yaml";
import { configError, ZrbError } from "../util/errors.ts";
import { formatSize, parseSize } from "../util/size.ts";

export interface Task {
  name: string;
  description: string;
  pool: string;
  dataset: string;
  enabled: boolean;
  /** "pool/dataset" or "pool" */
  fullName: string;
}

export type ChecksumMode = "WHEN_REQUIRED" | "WHEN_SUPPORTED";

export interface Config {
  /** The config file's path, as given. */
  path: string;
  baseDir: string;
  /** age X25519 recipients (age1…), lowercase, de-duplicated; age_public_key first. Never empty. */
  recipients: string[];
  chunkSize: number;
  workers: number;
  /** Where objects go when s3.enabled is false. */
  localStore: string;
  s3: {
    enabled: boolean;
    bucket: string;
    /** "" or "a/b/" (no leading '/', trailing '/'). */
    prefix: string;
    region: string;
    /** Set ⇒ path-style addressing. No trailing '/'. */
    endpoint?: string;
    checksumMode: ChecksumMode;
    storageClass: { manifest: string; backupData: string[] };
    retry: { maxAttempts: number };
  };
  tasks: Task[];
}

export const STORAGE_CLASSES = [
  "STANDARD",
  "REDUCED_REDUNDANCY",
  "STANDARD_IA",
  "ONEZONE_IA",
  "INTELLIGENT_TIERING",
  "GLACIER",
  "GLACIER_IR",
  "DEEP_ARCHIVE",
  "OUTPOSTS",
  "SNOW",
  "EXPRESS_ONEZONE",
] as const;
export const CHECKSUM_MODES = ["WHEN_REQUIRED", "WHEN_SUPPORTED"] as const;

export const DEFAULTS = {
  chunkSize: 3 * 1024 ** 3,
  workers: 4,
  region: "us-east-1",
  checksumMode: "WHEN_REQUIRED" as ChecksumMode,
  manifestClass: "STANDARD",
  backupDataClasses: ["STANDARD"],
  maxAttempts: 5,
} as const;

export const LIMITS = {
  chunkSize: { min: 64 * 1024, max: 5 * 1024 ** 4 },
  workers: { min: 1, max: 64 },
  maxAttempts: { min: 1, max: 100 },
  /** A config file larger than this is certainly not a config file. */
  fileBytes: 1024 * 1024,
} as const;

/** Known keys per level; also the source of "did you mean" suggestions. */
const KEYS = {
  root: ["base_dir", "age_public_key", "age_recipients", "chunk_size", "workers", "local_store", "s3", "tasks"],
  s3: ["enabled", "bucket", "prefix", "region", "endpoint", "checksum_mode", "storage_class", "retry"],
  storageClass: ["manifest", "backup_data"],
  retry: ["max_attempts"],
  task: ["name", "description", "pool", "dataset", "enabled"],
} as const;
/** Where each known key lives, to suggest "s3.bucket" for a top-level "bucket". */
const KEY_HOMES: [string, string][] = [
  ...KEYS.root.map((k): [string, string] => [k, k]),
  ...KEYS.s3.map((k): [string, string] => [k, `s3.${k}`]),
  ...KEYS.storageClass.map((k): [string, string] => [k, `s3.storage_class.${k}`]),
  ...KEYS.retry.map((k): [string, string] => [k, `s3.retry.${k}`]),
  ...KEYS.task.map((k): [string, string] => [k, `tasks[].${k}`]),
];

const CREDENTIAL_KEYS = new Set([
  "accesskey",
  "accesskeyid",
  "secretkey",
  "secretaccesskey",
  "awsaccesskeyid",
  "awssecretaccesskey",
  "sessiontoken",
  "awssessiontoken",
]);
const CREDENTIAL_HINT =
  "use the AWS credential chain instead (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment, ~/.aws/credentials, or AWS_PROFILE)";
const PRIVATE_KEY_RE = /AGE-SECRET-KEY-/i;

// ---------------------------------------------------------------------------------------------
// Public API

/** Read and validate a config file. A missing or unreadable file is a one-line error naming it. */
export async function loadConfig(path: string): Promise<{ config: Config; warnings: string[] }> {
  let bytes: Uint8Array;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw configError(`config file ${path} is a directory; pass the YAML file itself`);
    if (!st.isFile() && !st.isFIFO()) throw configError(`config file ${path} is not a regular file`);
    if (st.isFile() && st.size > LIMITS.fileBytes) {
      throw configError(`config file ${path} is ${formatSize(st.size)}; a zrb config is a small YAML file (at most 1 MiB)`);
    }
    bytes = await readFile(path);
  } catch (err) {
    if (err instanceof ZrbError) throw err;
    throw readError(err, path);
  }
  if (bytes.length > LIMITS.fileBytes) {
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
  const r = new Reader(text, path);
  const config = readConfig(r);
  return { config, warnings: r.warnings };
}

/** The task called `name`; unknown names list the tasks (with a suggestion), disabled ones say how to enable them. */
export function findTask(config: Config, name: string, opts: { allowDisabled?: boolean } = {}): Task {
  const task = config.tasks.find((t) => t.name === name);
  if (!task) {
    const names = config.tasks.map((t) => t.name);
    const best = closest(name, names, 2);
    const hint = best !== undefined ? `; did you mean ${best}?` : "";
    throw configError(`no task named ${show(name)} in ${config.path}${hint} (tasks: ${names.join(", ")})`);
  }
  if (!task.enabled && !opts.allowDisabled) {
    throw configError(`task ${task.name} is disabled in ${config.path} (set enabled: true)`);
  }
  return task;
}

/** Storage class for the data of a level-`level` backup: backup_data[level], or its last entry past the end. */
export function storageClassFor(config: Config, level: number): string {
  if (!Number.isSafeInteger(level) || level < 0) {
    throw configError(`backup level must be a whole number from 0 upward, got ${level}`);
  }
  const list = config.s3.storageClass.backupData;
  return list[Math.min(level, list.length - 1)] ?? DEFAULTS.manifestClass;
}

// ---------------------------------------------------------------------------------------------
// Reading the YAML tree

interface Entry {
  /** Key path for messages, e.g. `tasks[2].pool`. */
  path: string;
  /** Node to point at (the value, or the key when the value is empty). */
  at: Node | null;
  /** Resolved value (aliases followed); null for an empty value. */
  value: Node | null;
}

/** A mapping's known keys, plus the unknown ones (to spot a misspelt required key). */
type Fields = Map<string, Entry> & { unknown?: string[] };

class Reader {
  readonly warnings: string[] = [];
  readonly doc: Document.Parsed;
  private readonly lc = new LineCounter();

  constructor(
    readonly text: string,
    readonly file: string,
  ) {
    if (text.charCodeAt(0) === 0xfeff) this.text = text.slice(1);
    try {
      this.doc = parseDocument(this.text, {
        lineCounter: this.lc,
        prettyErrors: false,
        uniqueKeys: true,
        strict: true,
        merge: false,
      });
    } catch (err) {
      // The parser is not expected to throw, but a config problem must never surface as a crash.
      throw configError(`${file}: YAML could not be parsed: ${oneLine((err as Error)?.message ?? String(err))}`);
    }
    const first = this.doc.errors[0];
    if (first) {
      const problem =
        first.code === "MULTIPLE_DOCS"
          ? "the file holds more than one YAML document (a second '---'); a zrb config is one document"
          : yamlProblem(first.message);
      throw configError(`${this.where(first.pos[0])}: YAML syntax error: ${problem}`);
    }
    for (const w of this.doc.warnings) this.warnings.push(`${this.where(w.pos[0])}: YAML warning: ${yamlProblem(w.message)}`);
  }

  /** "file:line:col" for a node or an offset; just "file" when there is none. */
  where(at: Node | number | null | undefined): string {
    const offset = typeof at === "number" ? at : at?.range?.[0];
    if (offset === undefined) return this.file;
    const { line, col } = this.lc.linePos(offset);
    return `${this.file}:${line}:${col}`;
  }

  fail(at: Node | number | null | undefined, msg: string): never {
    throw configError(`${this.where(at)}: ${msg}`);
  }

  resolve(node: unknown): Node | null {
    let n = node;
    for (let i = 0; i < 8 && isAlias(n); i++) n = n.resolve(this.doc) ?? null;
    if (isAlias(n)) return null;
    if (n == null) return null;
    return n as Node;
  }

  /**
   * The keys of a mapping (undefined if absent or empty). Unknown keys become warnings;
   * `where` is the node to point at when the mapping is the wrong type.
   */
  map(node: Node | null, path: string, known: readonly string[], at: Node | null = node): Fields | undefined {
    if (node === null || isNull(node)) return undefined;
    if (!isMap(node)) {
      const what = path === "" ? "the file" : path;
      const expect =
        path === "" ? "a mapping of keys (base_dir, age_public_key, s3, tasks)" : "a mapping (indented key: value lines)";
      this.fail(at, `${what} must be ${expect}, got ${describe(node)}`);
    }
    const fields: Fields = new Map();
    const unknown: { key: string; at: Node }[] = [];
    for (const pair of node.items) {
      const keyNode = this.resolve(pair.key);
      const key = keyText(keyNode);
      if (key === undefined) {
        this.fail(keyNode ?? node, `${path === "" ? "the top level" : path} has a key that is not a plain string (${describe(keyNode)})`);
      }
      const value = this.resolve(pair.value);
      const entryPath = join(path, key);
      if ((known as readonly string[]).includes(key)) {
        fields.set(key, { path: entryPath, at: value && !isNull(value) ? value : keyNode, value });
      } else {
        unknown.push({ key, at: keyNode ?? node });
      }
    }
    fields.unknown = unknown.map((u) => u.key);
    for (const u of unknown) {
      const hint = suggestKey(u.key, path, known);
      this.warnings.push(
        `unknown key ${join(path, u.key)} in ${this.where(u.at)} (ignored)${hint ? `; did you mean ${hint}?` : ""}`,
      );
    }
    return fields;
  }
}

function isNull(node: Node): boolean {
  return isScalar(node) && node.value === null;
}

function keyText(node: Node | null): string | undefined {
  if (node === null) return "";
  if (!isScalar(node)) return undefined;
  const v = node.value;
  if (v === null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return scalarSource(node);
  return undefined;
}

function scalarSource(node: Scalar): string {
  const src = (node as Scalar & { source?: unknown }).source;
  return typeof src === "string" ? src : String(node.value);
}

/** A short, one-line, never-multiline rendering of what was found. */
function describe(node: Node | null): string {
  if (node === null) return "nothing";
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return "an empty value";
    if (typeof v === "string") return show(v);
    if (typeof v === "boolean") {
      const src = scalarSource(node);
      return /^(true|false)$/i.test(src) ? String(v) : show(src);
    }
    if (typeof v === "number" || typeof v === "bigint") return show(scalarSource(node)).slice(1, -1);
    return "a value of an unsupported type";
  }
  return "an unsupported value";
}

/** Blank out what must never reach a log: age private keys and AWS-style keys put under the wrong key. */
function redact(s: string): string {
  return s
    .replace(/AGE-SECRET-KEY-\S*/gi, "AGE-SECRET-KEY-…")
    .replace(/\b(AKIA|ASIA)[A-Z0-9]{16}\b/g, "$1…")
    .replace(/(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/g, "(a 40-character secret?)");
}

/** Quote a value for a message: one line, truncated, redacted. */
function show(s: string, max = 80): string {
  const safe = redact(s);
  return JSON.stringify(safe.length > max ? `${safe.slice(0, max)}…` : safe);
}

function oneLine(s: string): string {
  return redact(s.replace(/\s*\n[\s\S]*$/, ""));
}

/** The yaml library's message without its " at line L, column C:" tail and code excerpt. */
function yamlProblem(message: string): string {
  return oneLine(message)
    .replace(/ at line \d+, column \d+:?\s*$/, "")
    .replace(/[\s:]+$/, "");
}

function join(path: string, key: string): string {
  const k = /^[A-Za-z0-9_-]+$/.test(key) && redact(key) === key ? key : show(key, 40);
  return path === "" ? k : `${path}.${k}`;
}

// ---------------------------------------------------------------------------------------------
// "Did you mean"

/** Optimal-string-alignment distance: edits, with a swap of two neighbours counting as one. */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  if (Math.abs(m - n) > 3) return Math.abs(m - n);
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) => {
    const row = new Array<number>(n + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= n; j++) d[0]![j] = j;
  for (let i = 1; i <= m; i++) {
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[m]![n]!;
}

const fold = (s: string) => s.toLowerCase().replace(/-/g, "_");

function closest(word: string, candidates: readonly string[], maxDistance: number): string | undefined {
  let best: string | undefined;
  let bestD = maxDistance + 1;
  for (const c of candidates) {
    const dist = editDistance(fold(word), fold(c));
    // "2" is two edits from "s3", but that is no suggestion: fewer edits than the word has letters.
    if (dist < bestD && dist < word.length) {
      best = c;
      bestD = dist;
    }
  }
  return best;
}

function suggestKey(key: string, path: string, known: readonly string[]): string | undefined {
  const near = closest(key, known, 2);
  if (near !== undefined) return join(path, near);
  // A known key at the wrong level, e.g. a top-level "bucket".
  const home = KEY_HOMES.find(([k]) => k === fold(key));
  if (home) return home[1].replace(/^tasks\[\]/, path.startsWith("tasks[") ? path : "tasks[]");
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Typed accessors

function str(r: Reader, e: Entry | undefined): string | undefined {
  if (!e || e.value === null || isNull(e.value)) return undefined;
  const v = e.value;
  if (isScalar(v)) {
    if (typeof v.value === "string") return v.value;
    // `name: 2024` or `pool: 1e3`: take the text as written (the original tool did too).
    if (typeof v.value === "number" || typeof v.value === "boolean" || typeof v.value === "bigint") return scalarSource(v);
  }
  r.fail(e.at, `${e.path} must be a string, got ${describe(v)}`);
}

function bool(r: Reader, e: Entry | undefined): boolean | undefined {
  if (!e || e.value === null || isNull(e.value)) return undefined;
  const v = e.value;
  // Only true/false: YAML 1.1's yes/no/on/off are refused, never silently taken as booleans.
  if (isScalar(v) && typeof v.value === "boolean" && /^(true|false)$/i.test(scalarSource(v))) return v.value;
  r.fail(e.at, `${e.path} must be true or false, got ${describe(v)}`);
}

function int(r: Reader, e: Entry | undefined, min: number, max: number): number | undefined {
  if (!e || e.value === null || isNull(e.value)) return undefined;
  const v = e.value;
  const n = isScalar(v) ? v.value : undefined;
  if (typeof n !== "number" || !Number.isSafeInteger(n)) {
    r.fail(e.at, `${e.path} must be a whole number from ${min} to ${max}, got ${describe(v)}`);
  }
  if (n < min || n > max) r.fail(e.at, `${e.path} must be from ${min} to ${max}, got ${n}`);
  return n;
}

function list(r: Reader, e: Entry | undefined, example: string): { node: Node | null; path: string }[] | undefined {
  if (!e || e.value === null || isNull(e.value)) return undefined;
  const v = e.value;
  if (!isSeq(v)) r.fail(e.at, `${e.path} must be a list (${example}), got ${describe(v)}`);
  return v.items.map((item, i) => ({ node: r.resolve(item), path: `${e.path}[${i}]` }));
}

function itemEntry(item: { node: Node | null; path: string }, parent: Node | null): Entry {
  return { path: item.path, at: item.node ?? parent, value: item.node };
}

function required<T>(r: Reader, value: T | undefined, fields: Fields | undefined, path: string, key: string, at: Node | null, hint: string): T {
  if (value !== undefined) return value;
  return missing(r, fields, path, key, at, `${join(path, key)} is required (${hint})`);
}

/** Fail for a missing key, pointing out an unknown key next to it that looks like its misspelling. */
function missing(r: Reader, fields: Fields | undefined, path: string, key: string, at: Node | null, msg: string): never {
  const typo = fields?.unknown?.find((u) => editDistance(fold(u), fold(key)) <= 2);
  r.fail(at, typo !== undefined ? `${msg}; is ${join(path, typo)} a misspelling of it?` : msg);
}

// ---------------------------------------------------------------------------------------------
// Security: credentials and private keys are refused wherever they appear, without echoing them.

function refuseSecrets(r: Reader): void {
  const stack: { node: unknown; path: string }[] = [{ node: r.doc.contents, path: "" }];
  while (stack.length > 0) {
    const { node, path } = stack.pop()!;
    // Aliases are not followed: every anchored node is visited where it is defined.
    if (isMap(node)) {
      const next: { node: unknown; path: string }[] = [];
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? keyText(pair.key as Node) : undefined;
        const p = key !== undefined ? join(path, key) : path;
        if (key !== undefined && CREDENTIAL_KEYS.has(key.toLowerCase().replace(/[-_. ]/g, ""))) {
          r.fail(
            pair.key as Node,
            `${p}: zrb never reads S3 credentials from the config file; remove this key and ${CREDENTIAL_HINT}`,
          );
        }
        next.push({ node: pair.key, path: p }, { node: pair.value, path: p });
      }
      stack.push(...next.reverse());
    } else if (isSeq(node)) {
      stack.push(...node.items.map((item, i) => ({ node: item, path: `${path}[${i}]` })).reverse());
    } else if (isScalar(node) && typeof node.value === "string" && PRIVATE_KEY_RE.test(node.value)) {
      r.fail(node, privateKeyMessage(path));
    }
  }
  // Comments too: a private key has no business on this machine at all.
  const m = PRIVATE_KEY_RE.exec(r.text);
  if (m) {
    r.fail(
      m.index,
      "this file contains an age private key (AGE-SECRET-KEY-…), perhaps in a comment; delete it and keep the private key off this machine",
    );
  }
}

function privateKeyMessage(path: string): string {
  if (path === "age_public_key" || path.startsWith("age_recipients[")) {
    return `${path} contains a private key; put the public key (age1…) here and keep the private key off this machine`;
  }
  const what = path === "" ? "this file" : path;
  return `${what} contains an age private key; delete it, put the public key (age1…) in age_public_key and keep the private key off this machine`;
}

// ---------------------------------------------------------------------------------------------
// Field validators

const BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const X25519_RECIPIENT_LENGTH = 62; // "age1" + 52 data + 6 checksum characters

/** An age X25519 recipient, lowercased; anything else is an error at `e`. */
function recipient(r: Reader, e: Entry, raw: string): string {
  const s = raw.trim();
  const bad = (why: string): never => r.fail(e.at, `${e.path} is not a valid age public key: ${why}`);
  if (/^ssh-(ed25519|rsa)\b/.test(s)) {
    r.fail(e.at, `${e.path} is an SSH key; zrb needs an age X25519 public key (age1…): generate a key pair with age-keygen on another machine`);
  }
  if (s !== s.toLowerCase() && s !== s.toUpperCase()) bad("it mixes upper and lower case");
  const l = s.toLowerCase();
  if (!l.startsWith("age1")) {
    r.fail(e.at, `${e.path} must be an age public key (age1… as printed by age-keygen), got ${show(s)}`);
  }
  const sep = l.lastIndexOf("1");
  const hrp = l.slice(0, sep);
  if (hrp === "age1pq") {
    r.fail(e.at, `${e.path} is a post-quantum age recipient (age1pq1…); zrb supports X25519 recipients (age1…, from age-keygen) only`);
  }
  if (hrp !== "age" && /^age1[a-z0-9]{1,20}$/.test(hrp)) {
    r.fail(e.at, `${e.path} is an age plugin recipient (${hrp}1…); zrb supports X25519 recipients (age1…, from age-keygen) only`);
  }
  for (let i = 4; i < l.length; i++) {
    if (!BECH32_CHARSET.includes(l[i]!)) {
      bad(`character ${show(s[i]!)} at position ${i + 1} cannot occur in one (the alphabet has no 1, b, i or o)`);
    }
  }
  if (l.length !== X25519_RECIPIENT_LENGTH) {
    bad(`it has ${l.length} characters, expected ${X25519_RECIPIENT_LENGTH}; copy it again (age-keygen -y prints it)`);
  }
  try {
    // 52 data characters are 260 bits: exactly 32 bytes plus zero padding (fromWords checks it).
    const { prefix, words } = bech32.decode(l as `${string}1${string}`);
    if (prefix !== "age" || bech32.fromWords(words).length !== 32) throw new Error("not an X25519 key");
  } catch {
    bad("its checksum does not match (a typo or a damaged copy); copy it again (age-keygen -y prints it)");
  }
  return l;
}

/** S3 bucket naming rules (the portable subset every provider accepts). */
function bucketProblem(b: string): string | undefined {
  if (b.length < 3 || b.length > 63) return `it has ${b.length} characters, expected 3 to 63`;
  const badChar = /[^a-z0-9.-]/.exec(b);
  if (badChar) {
    const c = badChar[0];
    return /[A-Z]/.test(c) ? `it has an uppercase letter ${show(c)}` : `it contains ${show(c)}`;
  }
  if (!/^[a-z0-9]/.test(b) || !/[a-z0-9]$/.test(b)) return "it must start and end with a letter or digit";
  if (b.includes("..")) return "it has two periods in a row";
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(b)) return "it is formatted like an IP address";
  return undefined;
}
const BUCKET_RULES = "3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit";

function normalisePrefix(r: Reader, e: Entry, raw: string): string {
  if (/[\u0000-\u001f\u007f]/.test(raw)) r.fail(e.at, `${e.path} must not contain control characters`);
  const trimmed = raw.replace(/^\/+/, "").replace(/\/+$/, "");
  if (trimmed === "") return "";
  const segments = trimmed.split("/");
  if (segments.some((s) => s === "")) r.fail(e.at, `${e.path} must not contain empty segments ("//"), got ${show(raw)}`);
  if (segments.some((s) => s === ".." || s === ".")) {
    r.fail(e.at, `${e.path} must not contain "." or ".." segments, got ${show(raw)}`);
  }
  const out = `${trimmed}/`;
  if (new TextEncoder().encode(out).length > 512) r.fail(e.at, `${e.path} is longer than 512 bytes`);
  return out;
}

function endpointUrl(r: Reader, e: Entry, raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return r.fail(e.at, `${e.path} must be an http(s) URL such as https://s3.example.com, got ${show(raw.replace(/[?#].*$/s, "?…"))}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    r.fail(e.at, `${e.path} must be an http(s) URL such as https://s3.example.com, got ${show(raw.replace(/[?#].*$/s, "?…"))}`);
  }
  if (u.username !== "" || u.password !== "") {
    r.fail(e.at, `${e.path} must not contain a user name or password; ${CREDENTIAL_HINT}`);
  }
  // The query is never echoed: presigned-style credentials can live there.
  if (u.search !== "" || u.hash !== "")
    r.fail(e.at, `${e.path} must not have a query (?…) or fragment (#…), got ${show(`${u.protocol}//${u.host}${u.pathname}`)} followed by one; remove it`);
  return raw.trim().replace(/\/+$/, "");
}

function enumValue<T extends string>(r: Reader, e: Entry, value: string, allowed: readonly T[], what: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  const near = closest(value, allowed, 3);
  const hint = near !== undefined ? `; did you mean ${near}?` : "";
  r.fail(e.at, `${e.path} must be ${what}: ${allowed.join(", ")}; got ${show(value)}${hint}`);
}

function absolutePath(r: Reader, e: Entry, raw: string): string {
  if (raw.includes("\0")) r.fail(e.at, `${e.path} must not contain a NUL character`);
  if (!raw.startsWith("/")) r.fail(e.at, `${e.path} must be an absolute path (starting with /), got ${show(raw)}`);
  const p = posix.normalize(raw);
  return p.length > 1 ? p.replace(/\/+$/, "") : p;
}

const TASK_NAME_RE = /^[A-Za-z0-9._-]+$/;
const ZFS_COMPONENT_RE = /^[A-Za-z0-9_.: -]+$/;
const ZFS_MAX_NAME = 255;
const POOL_RESERVED = ["mirror", "raidz", "draid", "spare", "log"];

function poolProblem(pool: string): string | undefined {
  if (pool.includes("/")) return undefined; // handled by the caller with a better message
  if (!/^[A-Za-z]/.test(pool)) return "it must start with a letter";
  const c = /[^A-Za-z0-9_.: -]/.exec(pool);
  if (c) return `it contains ${show(c[0])} (allowed: letters, digits, '_', '-', '.', ':' and space)`;
  if (POOL_RESERVED.includes(pool) || /^(mirror|raidz|draid|spare)/.test(pool)) {
    return "ZFS reserves that name (mirror, raidz, draid, spare, log)";
  }
  if (pool.length > ZFS_MAX_NAME) return `it is longer than ${ZFS_MAX_NAME} characters`;
  return undefined;
}

function datasetProblem(dataset: string): string | undefined {
  if (dataset.startsWith("/")) return `it must be relative to the pool (e.g. ${show(dataset.replace(/^\/+/, ""))}), not start with '/'`;
  if (dataset.includes("@")) return "it must not contain '@' (zrb picks the snapshots itself)";
  if (dataset.includes("#")) return "it must not contain '#' (that names a bookmark)";
  if (dataset.includes("%")) return "it must not contain '%' (reserved by ZFS)";
  for (const part of dataset.split("/")) {
    if (part === "") return "it has an empty path component (a trailing '/' or '//')";
    if (part === "." || part === "..") return `it has a ${show(part)} component`;
    if (!ZFS_COMPONENT_RE.test(part)) {
      const c = /[^A-Za-z0-9_.: -]/.exec(part)![0];
      return `it contains ${show(c)} (allowed: letters, digits, '_', '-', '.', ':', space and '/' between components)`;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The schema

function readConfig(r: Reader): Config {
  refuseSecrets(r);
  const rootNode = r.resolve(r.doc.contents);
  if (rootNode === null || isNull(rootNode)) {
    r.fail(null, "the file is empty; it needs at least base_dir, age_public_key and tasks (see docs/config.md)");
  }
  const top = r.map(rootNode, "", KEYS.root)!;
  const rootAt = null; // missing top-level keys: name the file only

  // base_dir
  const baseDirEntry = top.get("base_dir");
  const baseDirRaw = required(r, emptyToUndef(str(r, baseDirEntry)), top, "", "base_dir", baseDirEntry?.at ?? rootAt, "an absolute path such as /var/lib/zrb");
  const baseDir = absolutePath(r, baseDirEntry!, baseDirRaw);

  // recipients
  const recipients: string[] = [];
  const pubEntry = top.get("age_public_key");
  const pub = emptyToUndef(str(r, pubEntry));
  if (pub !== undefined) recipients.push(recipient(r, pubEntry!, pub));
  const recEntry = top.get("age_recipients");
  for (const item of list(r, recEntry, "e.g. [age1…, age1…]") ?? []) {
    const e = itemEntry(item, recEntry!.at);
    const v = str(r, e);
    if (v === undefined || v.trim() === "") r.fail(e.at, `${e.path} is empty; give an age public key (age1…)`);
    recipients.push(recipient(r, e, v));
  }
  if (recipients.length === 0) {
    missing(
      r,
      top,
      "",
      "age_public_key",
      pubEntry?.at ?? recEntry?.at ?? rootAt,
      "no age recipient: set age_public_key (or age_recipients) to the public key (age1…) printed by age-keygen",
    );
  }

  // chunk_size, workers, local_store
  const chunkEntry = top.get("chunk_size");
  let chunkSize: number = DEFAULTS.chunkSize;
  if (chunkEntry && chunkEntry.value !== null && !isNull(chunkEntry.value)) {
    const v = chunkEntry.value;
    const raw = isScalar(v) && (typeof v.value === "number" || typeof v.value === "string") ? v.value : undefined;
    if (raw === undefined) {
      r.fail(chunkEntry.at, `chunk_size must be a size such as 3GiB, 512MiB or a whole number of bytes, got ${describe(v)}`);
    }
    try {
      chunkSize = parseSize(raw, "chunk_size");
    } catch (err) {
      r.fail(chunkEntry.at, (err as Error).message);
    }
    const { min, max } = LIMITS.chunkSize;
    if (chunkSize < min || chunkSize > max) {
      r.fail(
        chunkEntry.at,
        `chunk_size must be from ${formatSize(min)} to ${formatSize(max)} (the S3 object size limit), got ${formatSize(chunkSize)}`,
      );
    }
  }
  const workers = int(r, top.get("workers"), LIMITS.workers.min, LIMITS.workers.max) ?? DEFAULTS.workers;
  const localEntry = top.get("local_store");
  const localRaw = emptyToUndef(str(r, localEntry));
  const localStore = localRaw !== undefined ? absolutePath(r, localEntry!, localRaw) : posix.join(baseDir, "store");

  const s3 = readS3(r, top.get("s3"));
  const tasks = readTasks(r, top, top.get("tasks"));

  if (!tasks.some((t) => t.enabled)) {
    r.warnings.push(`no task is enabled in ${r.file}; tasks default to enabled: false, so set enabled: true on those to back up`);
  }
  if (!s3.enabled && s3.bucket !== "") {
    r.warnings.push(
      `s3.bucket is set but s3.enabled is not true in ${r.file}, so backups go to ${localStore}; set s3.enabled: true to use the bucket`,
    );
  }
  return { path: r.file, baseDir, recipients: [...new Set(recipients)], chunkSize, workers, localStore, s3, tasks };
}

function emptyToUndef(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === "" ? undefined : s;
}

function readS3(r: Reader, entry: Entry | undefined): Config["s3"] {
  const f = entry ? r.map(entry.value, "s3", KEYS.s3, entry.at) : undefined;
  const enabled = bool(r, f?.get("enabled")) ?? false;

  const bucketEntry = f?.get("bucket");
  const bucket = emptyToUndef(str(r, bucketEntry)) ?? "";
  if (bucket === "" && enabled) {
    missing(r, f, "s3", "bucket", bucketEntry?.at ?? entry?.at ?? null, "s3.bucket is required when s3.enabled is true (the name of an existing bucket)");
  }
  if (bucket !== "") {
    const why = bucketProblem(bucket);
    if (why) r.fail(bucketEntry!.at, `s3.bucket ${show(bucket)} is not a valid bucket name: ${why} (${BUCKET_RULES})`);
  }

  const prefixEntry = f?.get("prefix");
  const prefixRaw = str(r, prefixEntry);
  const prefix = prefixRaw !== undefined ? normalisePrefix(r, prefixEntry!, prefixRaw) : "";

  const regionEntry = f?.get("region");
  const region = emptyToUndef(str(r, regionEntry)) ?? DEFAULTS.region;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(region)) {
    r.fail(regionEntry!.at, `s3.region must be a region name such as us-east-1 (letters, digits, '-', '_', '.'), got ${show(region)}`);
  }

  const endpointEntry = f?.get("endpoint");
  const endpointRaw = emptyToUndef(str(r, endpointEntry));
  const endpoint = endpointRaw !== undefined ? endpointUrl(r, endpointEntry!, endpointRaw) : undefined;

  const csEntry = f?.get("checksum_mode");
  const csRaw = str(r, csEntry);
  const checksumMode =
    csRaw !== undefined ? enumValue(r, csEntry!, csRaw, CHECKSUM_MODES, "one of") : DEFAULTS.checksumMode;

  const scEntry = f?.get("storage_class");
  const sc = scEntry ? r.map(scEntry.value, "s3.storage_class", KEYS.storageClass, scEntry.at) : undefined;
  const manifestEntry = sc?.get("manifest");
  const manifestRaw = emptyToUndef(str(r, manifestEntry));
  const manifest =
    manifestRaw !== undefined
      ? enumValue(r, manifestEntry!, manifestRaw, STORAGE_CLASSES, "a storage class, one of")
      : DEFAULTS.manifestClass;
  const bdEntry = sc?.get("backup_data");
  const bdItems = list(r, bdEntry, "storage classes by level, e.g. [STANDARD, DEEP_ARCHIVE]");
  let backupData: string[] = [...DEFAULTS.backupDataClasses];
  if (bdItems !== undefined) {
    if (bdItems.length === 0) {
      r.fail(bdEntry!.at, "s3.storage_class.backup_data must list at least one storage class (e.g. [STANDARD]), got an empty list");
    }
    backupData = bdItems.map((item) => {
      const e = itemEntry(item, bdEntry!.at);
      const v = str(r, e);
      if (v === undefined) r.fail(e.at, `${e.path} is empty; give a storage class such as STANDARD`);
      return enumValue(r, e, v, STORAGE_CLASSES, "a storage class, one of");
    });
  }

  const retryEntry = f?.get("retry");
  const retry = retryEntry ? r.map(retryEntry.value, "s3.retry", KEYS.retry, retryEntry.at) : undefined;
  const maxAttempts =
    int(r, retry?.get("max_attempts"), LIMITS.maxAttempts.min, LIMITS.maxAttempts.max) ?? DEFAULTS.maxAttempts;

  return {
    enabled,
    bucket,
    prefix,
    region,
    ...(endpoint !== undefined ? { endpoint } : {}),
    checksumMode,
    storageClass: { manifest, backupData },
    retry: { maxAttempts },
  };
}

function readTasks(r: Reader, top: Fields, entry: Entry | undefined): Task[] {
  const items = list(r, entry, "one entry per dataset, each with name, pool and dataset");
  if (items === undefined) {
    missing(r, top, "", "tasks", entry?.at ?? null, "tasks is required (a list of tasks, each with name, pool and dataset)");
  }
  if (items.length === 0) r.fail(entry!.at, "tasks must list at least one task (name, pool, dataset)");
  const tasks: Task[] = [];
  const byName = new Map<string, number>();
  const byDataset = new Map<string, number>();
  items.forEach((item, i) => {
    const node = item.node ?? entry!.at;
    const f = r.map(item.node, item.path, KEYS.task, node);
    if (f === undefined) r.fail(node, `${item.path} is empty; give name, pool and dataset`);
    const field = (k: string) => f.get(k);

    const nameE = field("name");
    const name = required(r, emptyToUndef(str(r, nameE)), f, item.path, "name", nameE?.at ?? node, "letters, digits, '.', '_' and '-'");
    if (!TASK_NAME_RE.test(name) || name === "." || name === "..") {
      r.fail(nameE!.at, `${nameE!.path} must be letters, digits, '.', '_' and '-' only, got ${show(name)}`);
    }
    const prev = byName.get(name);
    if (prev !== undefined) r.fail(nameE!.at, `${nameE!.path} ${show(name)} is already used by tasks[${prev}]; task names must be unique`);
    byName.set(name, i);

    const description = str(r, field("description")) ?? "";

    const poolE = field("pool");
    const pool = required(r, emptyToUndef(str(r, poolE)), f, item.path, "pool", poolE?.at ?? node, "a ZFS pool name such as tank");
    if (pool.includes("/")) {
      const [p, ...rest] = pool.split("/");
      r.fail(poolE!.at, `${poolE!.path} must be a pool name without '/', got ${show(pool)}; write pool: ${p} and dataset: ${rest.join("/")}`);
    }
    const poolWhy = poolProblem(pool);
    if (poolWhy) r.fail(poolE!.at, `${poolE!.path} ${show(pool)} is not a valid ZFS pool name: ${poolWhy}`);

    const dsE = field("dataset");
    if (dsE === undefined) {
      missing(r, f, item.path, "dataset", node, `${item.path}.dataset is required (a dataset path inside the pool such as home/photos, or "" for the pool's root dataset)`);
    }
    const dataset = str(r, dsE) ?? "";
    if (dataset !== "") {
      const why = datasetProblem(dataset);
      if (why) r.fail(dsE.at, `${dsE.path} ${show(dataset)} is not a valid ZFS dataset path: ${why}`);
    }
    const fullName = dataset === "" ? pool : `${pool}/${dataset}`;
    if (fullName.length > ZFS_MAX_NAME) r.fail(dsE.at, `${dsE.path}: ${show(fullName, 40)} is longer than ${ZFS_MAX_NAME} characters`);
    const enabled = bool(r, field("enabled")) ?? false;

    const dup = byDataset.get(fullName);
    if (dup !== undefined) {
      r.fail(node, `${item.path} (${name}) backs up ${fullName}, as tasks[${dup}] already does; use one task per dataset`);
    }
    byDataset.set(fullName, i);
    tasks.push({ name, description, pool, dataset, enabled, fullName });
  });
  return tasks;
}
