/**
 * The scalar types of the config schema: strings, booleans, integers, sizes ("3GiB"), rates
 * ("20MiB/s"), durations ("24h"), one-of enums and absolute paths. Each reads one value and
 * fails at it with the key path and the expected form ("workers must be from 1 to 64, got 0").
 */
import { posix } from "node:path";
import { ZrbError } from "../util/errors.ts";
import { formatDuration, parseDuration } from "../util/duration.ts";
import { quote } from "../util/redact.ts";
import { formatSize, parseRate, parseSize } from "../util/size.ts";
import type { Ctx } from "./read.ts";
import { scalarSource } from "./read.ts";
import { didYouMean } from "./suggest.ts";
import { scalarText, Type } from "./types.ts";

const plain = (v: unknown) => (v === "" ? '""' : String(v));

/** A string. `keepBlank`: a blank string is a value, not "not set". */
export function str(opts: { keepBlank?: boolean } = {}): Type<string> {
  return new Type({ name: "string", show: plain }, (c) => scalarText(c, opts.keepBlank));
}

/** true or false; YAML 1.1's yes/no/on/off are refused, never silently taken as booleans. */
export function bool(): Type<boolean> {
  return new Type({ name: "boolean", show: plain }, (c) => {
    if (c.empty) return undefined;
    const v = c.scalar();
    if (v !== undefined && typeof v.value === "boolean" && /^(true|false)$/i.test(scalarSource(v))) return v.value;
    return c.problem(`must be true or false, got ${c.describe()}`);
  });
}

/**
 * A whole number from min to max, written as a number (not a quoted string) in decimal digits:
 * YAML also reads `1e3`, `0x10` and `0o17` as numbers, which the command-line flags of the same
 * settings refuse (the --keep-* flags of retention counts), so the file refuses them too.
 */
export function int(min: number, max: number): Type<number> {
  return new Type({ name: "integer", show: plain }, (c) => {
    if (c.empty) return undefined;
    const v = c.scalar();
    const n = v?.value;
    if (typeof n !== "number" || !Number.isSafeInteger(n)) return c.problem(`must be a whole number from ${min} to ${max}, got ${c.describe()}`);
    if (!/^-?\d+$/.test(scalarSource(v!))) return c.problem(`must be a whole number from ${min} to ${max} written in decimal digits (like ${n}), got ${c.describe()}`);
    if (n < min || n > max) return c.problem(`must be from ${min} to ${max}, got ${n}`);
    return n;
  });
}

/**
 * A number or a string (sizes, rates, durations); undefined if empty; anything else fails with
 * `form`. A blank string is not "not set" here: it fails to parse, naming the key.
 */
function numberOrText(c: Ctx, form: string): string | number | undefined {
  if (c.empty) return undefined;
  const v = c.scalar()?.value;
  if (typeof v === "string" || typeof v === "number") return v;
  return c.problem(`${form}, got ${c.describe()}`);
}

/** parse(), with its one-line ZrbError moved to the value's position. */
function at<T>(c: Ctx, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ZrbError) return c.fail(err.message);
    throw err;
  }
}

const compact = (bytes: number) => formatSize(bytes).replace(" ", "");

/** A byte size: a whole number of bytes or "3GiB" (util/size.ts), from min to max; `why` explains the range. */
export function size(opts: { min: number; max: number; why?: string }): Type<number> {
  const form = "must be a size such as 3GiB, 512MiB or a whole number of bytes";
  return new Type({ name: "size", show: compact }, (c) => {
    const raw = numberOrText(c, form);
    if (raw === undefined) return undefined;
    const n = at(c, () => parseSize(raw, c.path));
    if (n < opts.min || n > opts.max) {
      const why = opts.why ? ` (${opts.why})` : "";
      return c.problem(`must be from ${formatSize(opts.min)} to ${formatSize(opts.max)}${why}, got ${formatSize(n)}`);
    }
    return n;
  });
}

/** Bytes per second, written "20MiB/s" (util/size.ts), from min to max. */
export function rate(opts: { min: number; max: number }): Type<number> {
  return new Type({ name: "rate", show: (v: number) => `${compact(v)}/s` }, (c) => {
    const raw = numberOrText(c, "must be a rate such as 20MiB/s");
    if (raw === undefined) return undefined;
    const n = at(c, () => parseRate(raw, c.path));
    if (n < opts.min || n > opts.max) return c.problem(`must be from ${formatSize(opts.min)}/s to ${formatSize(opts.max)}/s, got ${formatSize(n)}/s`);
    return n;
  });
}

/** Milliseconds, written "30s", "15m", "24h", "7d" or "2w" (util/duration.ts), from min to max ms. */
export function duration(opts: { min: number; max: number }): Type<number> {
  return new Type({ name: "duration", show: formatDuration }, (c) => {
    const raw = numberOrText(c, "must be a duration like 30m, 24h or 7d");
    if (raw === undefined) return undefined;
    const text = String(raw);
    const d = parseDuration(text);
    if ("problem" in d) return c.problem(d.problem);
    if (d.ms < opts.min || d.ms > opts.max) {
      return c.problem(`must be from ${formatDuration(opts.min)} to ${formatDuration(opts.max)}, got ${quote(text)}`);
    }
    return d.ms;
  });
}

/**
 * One of `values`, written exactly; a near miss gets a suggestion. `what` leads the list in
 * messages. `keepBlank`: a blank string is refused like any other wrong value.
 */
export function enumOf<const V extends string>(values: readonly V[], what = "one of", opts: { keepBlank?: boolean } = {}): Type<V> {
  const name = values.map((v) => `\`${v}\``).join(" \\| ");
  return new Type({ name, show: plain, values }, (c) => {
    const v = scalarText(c, opts.keepBlank);
    if (v === undefined) return undefined;
    if ((values as readonly string[]).includes(v)) return v as V;
    return c.problem(`must be ${what}: ${values.join(", ")}; got ${quote(v)}${didYouMean(v, values, 3)}`);
  });
}

/** An absolute path, normalised (no "//", no trailing '/'). */
export function absolutePath(): Type<string> {
  return str()
    .then((raw, c) => {
      if (raw.includes("\0")) c.problem("must not contain a NUL character");
      if (!raw.startsWith("/")) c.problem(`must be an absolute path (starting with /), got ${quote(raw)}`);
      const p = posix.normalize(raw);
      return p.length > 1 ? p.replace(/\/+$/, "") : p;
    })
    .named("absolute path");
}
