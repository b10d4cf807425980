/**
 * The combinators the config schema is written in, so that the schema is written once: a
 * `Type<T>` knows how to read a T from a place in the YAML tree (read.ts) and how to fail
 * there in one line; a `Field` adds whether the key is required, optional or defaulted, the
 * camelCase name it gets in the result (`base_dir` → `baseDir` by itself; `.field()` to
 * choose another) and its documentation. The TypeScript type of a config, the known keys
 * (for "did you mean"), the defaults and the reference table in docs/config.md are all
 * derived from one tree of these (schema.ts, walk.ts).
 *
 * Conventions every type keeps: an empty value (`key:`, `key: ~`) and a blank string are
 * "not set" (the field's default applies) unless a type says otherwise; strings take numbers
 * and booleans as written (`name: 2024` is "2024"); booleans are only true/false.
 */
import { isScalar } from "yaml";
import type { Ctx } from "./read.ts";
import { scalarSource } from "./read.ts";

/** How a type is documented and walked; kept through check/then/named. */
export interface TypeInfo {
  /** For the docs' Type column: "integer", "absolute path", "`A` \| `B`". */
  name: string;
  /** "age recipients" for "list of age recipients"; default: name + "s". */
  plural?: string;
  /** A default value as the docs show it (inside backticks). */
  show?: (v: never) => string;
  /** An enum's values, for the docs. */
  values?: readonly string[];
  /** An object's fields, a list's item type: what walk.ts descends into. */
  shape?: Shape;
  item?: Type<unknown, unknown>;
}

/** What a default is computed from: the fields of the same mapping read so far (camelCase). */
export type Siblings = Readonly<Record<string, unknown>>;

/**
 * Reads a T from a place in the tree; undefined means "not set". `Def` is, for an object, the
 * shape of its defaults (what DEFAULTS shows); `never` for everything else.
 */
export class Type<T, Def = never> {
  declare readonly _def: Def;

  constructor(
    readonly info: TypeInfo,
    readonly read: (c: Ctx) => T | undefined,
    /** The value of an absent object: its fields' defaults. Only objects have one. */
    readonly whenAbsent?: (c: Ctx) => T,
  ) {}

  /** A further rule: `rule` returns the rest of the message ("must …", "is …") or undefined. */
  check(rule: (v: T) => string | undefined): Type<T, Def> {
    return this.then((v, c) => {
      const why = rule(v);
      return why === undefined ? v : c.problem(why);
    });
  }

  /** Transform the value once read (normalise it, derive fields); fail with c.problem/c.fail. */
  then<U>(fn: (v: T, c: Ctx) => U): Type<U, Def> {
    const read = (c: Ctx) => {
      const v = this.read(c);
      return v === undefined ? undefined : fn(v, c);
    };
    const absent = this.whenAbsent;
    return new Type<U, Def>(this.info, read, absent && ((c) => fn(absent(c), c)));
  }

  /** Another name in the docs' Type column. */
  named(name: string, plural?: string): Type<T, Def> {
    return new Type<T, Def>({ ...this.info, name, plural }, this.read, this.whenAbsent);
  }

  /** Not set: the key is left out of the result. */
  optional(): Field<T, "optional"> {
    return new Field(this, "optional", {});
  }

  /**
   * Not set: `value`, or what `value(siblings)` computes, or with no argument (objects only)
   * the object with every field at its default.
   */
  default(): Field<T, "default", undefined, Def>;
  default(value: (siblings: Siblings) => T): Field<T, "default", undefined, never>;
  default(value: T): Field<T, "default", undefined, T>;
  default(value?: T | ((siblings: Siblings) => T)): Field<T, "default", undefined, unknown> {
    if (value === undefined && !this.whenAbsent) throw new Error(`schema: ${this.info.name} has no default of its own; give one`);
    return new Field(this, "default", { value });
  }

  /**
   * Not set is an error: "<key> is required (<hint>)". With `empty`, a key that is written
   * but empty (`dataset: ~`) takes that value; only a key left out is an error.
   */
  required(hint: string, opts: { empty?: T } = {}): Field<T, "required"> {
    return new Field(this, "required", { hint, empty: opts.empty });
  }
}

export type Mode = "required" | "optional" | "default";

export interface FieldDoc {
  text: string;
  /** Marked "(new)": an extension over the original zrb's keys. */
  new?: boolean;
  /** The Default column, when the value does not say it well ("`<base_dir>/store`"). */
  default?: string;
  /** The Type column, when the type's name does not fit. */
  type?: string;
}

/** A key of a mapping: its type, whether it must be there, its name in the result, its docs. */
export class Field<T, M extends Mode, N extends string | undefined = undefined, D = never> {
  declare readonly _default: D;

  constructor(
    readonly type: Type<T, unknown>,
    readonly mode: M,
    readonly spec: { value?: unknown; hint?: string; empty?: T },
    readonly outName: N = undefined as N,
    readonly docs?: FieldDoc,
    readonly rules: readonly Rule[] = [],
  ) {}

  /** The name in the result, when it is not the key in camelCase. */
  field<K extends string>(name: K): Field<T, M, K, D> {
    return new Field(this.type, this.mode, this.spec, name, this.docs, this.rules);
  }

  doc(text: string, more: Omit<FieldDoc, "text"> = {}): Field<T, M, N, D> {
    return new Field(this.type, this.mode, this.spec, this.outName, { text, ...more }, this.rules);
  }

  /**
   * A rule across keys, checked as soon as this key is read (so problems are reported in the
   * order of the file's keys): it sees the keys read so far, this one included, and the
   * mapping's place to fail at (`c.get(key)`, `c.missing(key, …)`).
   */
  rule(check: Rule): Field<T, M, N, D> {
    return new Field(this.type, this.mode, this.spec, this.outName, this.docs, [...this.rules, check]);
  }
}

/** A rule across the keys of one mapping: the values read so far (camelCase) and the mapping's place. */
export type Rule = (siblings: Siblings, c: Ctx) => void;

export type AnyField = Field<any, Mode, string | undefined, any>;
export type Shape = Readonly<Record<string, AnyField>>;

type Camel<S extends string> = S extends `${infer H}_${infer R}` ? `${H}${Capitalize<Camel<R>>}` : S;
type OutKey<K extends string, F> = F extends Field<any, any, infer N, any> ? (N extends string ? N : Camel<K>) : never;
type ValueOf<F> = F extends Field<infer T, any, any, any> ? T : never;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type IsOptional<F> = F extends Field<any, "optional", any, any> ? true : false;

/** The result type of a mapping with fields S: optional fields are `name?: T`. */
export type ObjectOf<S extends Shape> = Simplify<
  { [K in keyof S & string as IsOptional<S[K]> extends true ? never : OutKey<K, S[K]>]: ValueOf<S[K]> } & {
    [K in keyof S & string as IsOptional<S[K]> extends true ? OutKey<K, S[K]> : never]?: ValueOf<S[K]>;
  }
>;

/** The defaults of a mapping with fields S, as far as they are values (not computed). */
export type DefaultsOf<S extends Shape> = Simplify<{
  [K in keyof S & string as S[K] extends Field<any, any, any, infer D> ? ([D] extends [never] ? never : OutKey<K, S[K]>) : never]: S[K] extends Field<
    any,
    any,
    any,
    infer D
  >
    ? D
    : never;
}>;

/** What a Type reads. */
export type Infer<X> = X extends Type<infer T, any> ? T : never;

/** "base_dir" → "baseDir". */
export function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The name a field gets in the result. */
export function outName(key: string, f: AnyField): string {
  return f.outName ?? camel(key);
}

/**
 * A mapping with the given fields, read in order. `expect` is the expected form for a value
 * that is not a mapping. Keys outside the shape are warnings (see Ctx.mapping).
 */
export function object<S extends Shape>(shape: S, opts: { expect?: string } = {}): Type<ObjectOf<S>, DefaultsOf<S>> {
  const known = Object.keys(shape);
  const expect = opts.expect ?? "a mapping (indented key: value lines)";
  const build = (c: Ctx): ObjectOf<S> => {
    const out: Record<string, unknown> = {};
    for (const [key, f] of Object.entries(shape)) {
      const v = readField(c, key, f, out);
      if (v !== undefined) out[outName(key, f)] = v;
      for (const rule of f.rules) rule(out, c);
    }
    return out as ObjectOf<S>;
  };
  const info: TypeInfo = { name: "mapping", shape };
  return new Type(info, (c) => (c.mapping(known, expect) === undefined ? undefined : build(c)), build);
}

function readField(c: Ctx, key: string, f: AnyField, siblings: Siblings): unknown {
  const fc = c.get(key);
  const v = f.type.read(fc);
  if (v !== undefined) return v;
  switch (f.mode) {
    case "optional":
      return undefined;
    case "required":
      if (fc.present && f.spec.empty !== undefined) return f.spec.empty;
      return c.missing(key, `${fc.path} is required (${f.spec.hint})`, fc.at);
    default: {
      const d = f.spec.value;
      if (d === undefined) return f.type.whenAbsent!(fc);
      return typeof d === "function" ? (d as (s: Siblings) => unknown)(siblings) : structuredClone(d);
    }
  }
}

/**
 * A list of `item`. `example` is the expected form for a value that is not a list; an empty
 * item fails with "<path>[i] is empty; give <itemHint>"; fewer than `min` items fail with
 * "<path> <minMessage>".
 */
export function list<T>(item: Type<T, unknown>, opts: { example: string; itemHint: string; min?: number; minMessage?: string }): Type<T[]> {
  const info: TypeInfo = { name: `list of ${item.info.plural ?? `${item.info.name}s`}`, item, show: (v: unknown[]) => `[${v.join(", ")}]` };
  return new Type(info, (c) => {
    const items = c.items(opts.example);
    if (items === undefined) return undefined;
    if (items.length < (opts.min ?? 0)) c.problem(opts.minMessage ?? `must list at least ${opts.min} item(s)`);
    return items.map((ic) => {
      const v = item.read(ic);
      return v === undefined ? ic.problem(`is empty; give ${opts.itemHint}`) : v;
    });
  });
}

/** The scalar's text: strings as they are, numbers and booleans as written; undefined if empty or blank. */
export function scalarText(c: Ctx, keepBlank = false): string | undefined {
  if (c.empty) return undefined;
  const v = c.scalar();
  let s: string | undefined;
  if (v !== undefined && isScalar(v)) {
    if (typeof v.value === "string") s = v.value;
    // `name: 2024` or `pool: 1e3`: take the text as written (the original tool did too).
    else if (typeof v.value === "number" || typeof v.value === "boolean" || typeof v.value === "bigint") s = scalarSource(v);
  }
  if (s === undefined) return c.problem(`must be a string, got ${c.describe()}`);
  return keepBlank || s.trim() !== "" ? s : undefined;
}

/** A list of items, where one item alone (a scalar, not in a list) also reads as a list of one. */
export function oneOrList<T>(item: Type<T, unknown>, opts: { example: string; itemHint: string }): Type<T[]> {
  const many = list(item, opts);
  const info: TypeInfo = { ...many.info, name: `${item.info.name} or ${many.info.name}` };
  return new Type(info, (c) => {
    if (c.scalar() === undefined) return many.read(c);
    const v = item.read(c);
    return v === undefined ? undefined : [v];
  });
}
