/**
 * What is derived from the schema tree by walking it: every key with its path (for "did you
 * mean" when a key sits at the wrong level, for the fuzzers and the docs) and the defaults.
 */
import type { KeyHomes } from "./read.ts";
import { type AnyField, type DefaultsOf, outName, type Shape, type Type, type TypeInfo } from "./types.ts";

export interface KeyInfo {
  key: string;
  /** "base_dir", "s3.storage_class.manifest", "tasks[].name". */
  path: string;
  field: AnyField;
}

/** The mapping a type reads, if it reads one (directly, suffix ".", or as a list's items, suffix "[]."). */
export function shapeOf(info: TypeInfo): { shape: Shape; suffix: string } | undefined {
  if (info.shape) return { shape: info.shape, suffix: "." };
  if (info.item?.info.shape) return { shape: info.item.info.shape, suffix: "[]." };
  return undefined;
}

/** Every key under `type`: a mapping's own keys first, then those of its sub-mappings in order. */
export function keysOf(type: Type<unknown, unknown>): KeyInfo[] {
  return keysOfShape(type.info.shape ?? {}, "");
}

function keysOfShape(shape: Shape, prefix: string): KeyInfo[] {
  const own = Object.entries(shape).map(([key, field]) => ({ key, path: prefix + key, field }));
  const nested = own.flatMap(({ path, field }) => {
    const sub = shapeOf(field.type.info);
    return sub ? keysOfShape(sub.shape, path + sub.suffix) : [];
  });
  return [...own, ...nested];
}

/** Where each key lives, for "did you mean s3.bucket?" on a top-level `bucket`. */
export function homesOf(type: Type<unknown, unknown>): KeyHomes {
  return keysOf(type).map((k) => [k.key, k.path] as const);
}

/** The defaults that are values (not computed from other keys), by camelCase name; sub-mappings nested. */
export function defaultsOf<S extends Shape>(type: Type<unknown, DefaultsOf<S>>): DefaultsOf<S> {
  return defaultsOfShape(type.info.shape ?? {}) as DefaultsOf<S>;
}

function defaultsOfShape(shape: Shape): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(shape)) {
    if (f.mode !== "default") continue;
    const v = f.spec.value;
    if (v === undefined && f.type.info.shape) out[outName(key, f)] = defaultsOfShape(f.type.info.shape);
    else if (typeof v !== "function" && v !== undefined) out[outName(key, f)] = structuredClone(v);
  }
  return out;
}
