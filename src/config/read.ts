/**
 * Reading the config's YAML tree with positions. The Reader parses the text once (strict YAML
 * 1.2, unique keys, no merge keys, one document) and turns a node into "file:line:col"; a Ctx
 * is one place in the tree — its key path (`tasks[2].pool`), the node to point at and the
 * value — which the schema's types read from and fail at. Every failure is one line, exit
 * code CONFIG; unknown keys become warnings with a "did you mean" (suggest.ts).
 */
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type Scalar } from "yaml";
import { configError } from "../util/errors.ts";
import { oneLine, quote, redact } from "../util/redact.ts";
import { closest, near } from "./suggest.ts";

export class Reader {
  readonly warnings: string[] = [];
  readonly doc: Document.Parsed;
  readonly text: string;
  private readonly lc = new LineCounter();

  constructor(
    text: string,
    readonly file: string,
    /** Where each known key lives, to suggest "s3.bucket" for a misplaced "bucket". */
    readonly homes: KeyHomes = [],
  ) {
    this.text = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    try {
      this.doc = parseDocument(this.text, { lineCounter: this.lc, prettyErrors: false, uniqueKeys: true, strict: true, merge: false });
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

  /** The node itself, an alias followed to its anchor; null for none (or an alias loop). */
  resolve(node: unknown): Node | null {
    let n = node;
    for (let i = 0; i < 8 && isAlias(n); i++) n = n.resolve(this.doc) ?? null;
    if (isAlias(n) || n == null) return null;
    return n as Node;
  }

  /** The document's top level, as a place to read from. */
  root(): Ctx {
    return new Ctx(this, "", this.resolve(this.doc.contents), this.resolve(this.doc.contents), true);
  }
}

/**
 * One place in the tree. `at` is the node messages point at: the value, or the key when the
 * value is empty, or (for a key that is absent) the mapping it is missing from — none for the
 * top level, whose missing keys name the file only.
 */
export class Ctx {
  /** The keys of this mapping, once read with mapping(); unknown ones are kept to spot a misspelt required key. */
  private fields?: Map<string, Ctx>;
  private unknown: string[] = [];
  /** Items of this list, once read with items(). */
  list?: Ctx[];

  constructor(
    readonly r: Reader,
    readonly path: string,
    readonly at: Node | null,
    readonly value: Node | null,
    readonly present: boolean,
  ) {}

  get file(): string {
    return this.r.file;
  }

  /** Absent, or present without a value (`key:`, `key: ~`). */
  get empty(): boolean {
    return this.value === null || isNull(this.value);
  }

  fail(msg: string): never {
    return this.r.fail(this.at, msg);
  }

  /** Fail with the key path followed by `rest` ("must be …", "is …"). */
  problem(rest: string): never {
    return this.fail(`${this.path} ${rest}`);
  }

  warn(msg: string): void {
    this.r.warnings.push(msg);
  }

  /** The mapping's keys (undefined when empty); keys not in `known` become warnings. */
  mapping(known: readonly string[], expect: string): this | undefined {
    if (this.empty) return undefined;
    const node = this.value!;
    if (!isMap(node)) this.fail(`${this.path === "" ? "the file" : this.path} must be ${expect}, got ${describe(node)}`);
    this.fields = new Map();
    const unknown: { key: string; at: Node }[] = [];
    for (const pair of node.items) {
      const keyNode = this.r.resolve(pair.key);
      const key = keyText(keyNode);
      if (key === undefined) {
        this.r.fail(keyNode ?? node, `${this.path === "" ? "the top level" : this.path} has a key that is not a plain string (${describe(keyNode)})`);
      }
      const value = this.r.resolve(pair.value);
      if (known.includes(key)) {
        this.fields.set(key, new Ctx(this.r, join(this.path, key), value && !isNull(value) ? value : keyNode, value, true));
      } else {
        unknown.push({ key, at: keyNode ?? node });
      }
    }
    this.unknown = unknown.map((u) => u.key);
    for (const u of unknown) {
      const hint = suggestKey(u.key, this.path, known, this.r.homes);
      this.warn(`unknown key ${join(this.path, u.key)} in ${this.r.where(u.at)} (ignored)${hint ? `; did you mean ${hint}?` : ""}`);
    }
    return this;
  }

  /** Where a key that is absent is missing from: this mapping, or just the file at the top level. */
  private get missingAt(): Node | null {
    return this.path === "" ? null : this.at;
  }

  /** The key's place; for an absent key, one with no value that points where the key is missing. */
  get(key: string): Ctx {
    return this.fields?.get(key) ?? new Ctx(this.r, join(this.path, key), this.missingAt, null, false);
  }

  /** Fail for a missing key, pointing out an unknown key next to it that looks like its misspelling. */
  missing(key: string, msg: string, at: Node | null = this.get(key).at): never {
    const typo = this.unknown.find((u) => near(u, key, 2));
    return this.r.fail(at, typo !== undefined ? `${msg}; is ${join(this.path, typo)} a misspelling of it?` : msg);
  }

  /** The list's items (undefined when empty); anything but a list fails with `example` as the expected form. */
  items(example: string): Ctx[] | undefined {
    if (this.empty) return undefined;
    const v = this.value!;
    if (!isSeq(v)) this.problem(`must be a list (${example}), got ${describe(v)}`);
    this.list = v.items.map((item, i) => {
      const node = this.r.resolve(item);
      return new Ctx(this.r, `${this.path}[${i}]`, node ?? this.at, node, true);
    });
    return this.list;
  }

  /** The value as a scalar, or undefined when it is a mapping, a list or empty. */
  scalar(): Scalar | undefined {
    return this.value !== null && isScalar(this.value) && this.value.value !== null ? this.value : undefined;
  }

  /** A one-line rendering of what is here, for "got …". */
  describe(): string {
    return describe(this.value);
  }
}

/** Where each known key lives ("bucket" → "s3.bucket"), first match wins; list items are written `tasks[]`. */
export type KeyHomes = readonly (readonly [key: string, path: string])[];

function suggestKey(key: string, path: string, known: readonly string[], homes: KeyHomes): string | undefined {
  const best = closest(key, known, 2);
  if (best !== undefined) return join(path, best);
  // A known key at the wrong level, e.g. a top-level "bucket".
  const home = homes.find(([k]) => k === key.toLowerCase().replace(/-/g, "_"))?.[1];
  if (home === undefined) return undefined;
  // Inside a list item, name the item itself: tasks[0].x, not tasks[].x.
  const list = /^(.*?)\[\]/.exec(home)?.[1];
  const item = list !== undefined ? new RegExp(`^${list.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\[\\d+\\]`).exec(path)?.[0] : undefined;
  return item !== undefined ? home.replace(`${list}[]`, item) : home;
}

export function isNull(node: Node): boolean {
  return isScalar(node) && node.value === null;
}

/** A key's text: numbers and booleans as written, "" for an empty key; undefined for a mapping or list. */
export function keyText(node: Node | null): string | undefined {
  if (node === null) return "";
  if (!isScalar(node)) return undefined;
  const v = node.value;
  if (v === null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return scalarSource(node);
  return undefined;
}

/** A scalar as written in the file (`01` stays "01", `1e3` stays "1e3"). */
export function scalarSource(node: Scalar): string {
  const src = (node as Scalar & { source?: unknown }).source;
  return typeof src === "string" ? src : String(node.value);
}

/** A short, one-line, never-multiline rendering of what was found. */
export function describe(node: Node | null): string {
  if (node === null) return "nothing";
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return "an empty value";
    if (typeof v === "string") return quote(v);
    if (typeof v === "boolean") {
      const src = scalarSource(node);
      return /^(true|false)$/i.test(src) ? String(v) : quote(src);
    }
    if (typeof v === "number" || typeof v === "bigint") return quote(scalarSource(node)).slice(1, -1);
    return "a value of an unsupported type";
  }
  return "an unsupported value";
}

/** The yaml library's message without its " at line L, column C:" tail and code excerpt. */
function yamlProblem(message: string): string {
  return oneLine(message)
    .replace(/ at line \d+, column \d+:?\s*$/, "")
    .replace(/[\s:]+$/, "");
}

/** `path.key`, the key quoted when it is not a plain word (or looks like a secret). */
export function join(path: string, key: string): string {
  const k = /^[A-Za-z0-9_-]+$/.test(key) && redact(key) === key ? key : quote(key, 40);
  return path === "" ? k : `${path}.${k}`;
}
