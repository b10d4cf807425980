/**
 * One logger for the whole tool. Human lines go to stderr (stdout stays for results
 * a script parses, e.g. --json). Secrets never pass through here: callers log names,
 * sizes and hashes, never key material or credentials. Every message passes through
 * `printable`: names from the bucket or from zfs can never write control characters.
 */
import { createConsola } from "consola";
import { printable } from "./text.ts";

const c = createConsola({
  level: process.env.ZRB_LOG_LEVEL ? Number(process.env.ZRB_LOG_LEVEL) : 3,
  stderr: process.stderr,
  stdout: process.stderr,
  // No colour codes where they would be garbage: not a terminal, or NO_COLOR set (no-color.org).
  formatOptions: { date: false, colors: (process.stderr.isTTY ?? false) && !process.env.NO_COLOR, compact: true },
});

/** A line redrawn in place at the bottom of a terminal (the progress line): cleared before a message, redrawn after. */
export interface LiveLine {
  clear(): void;
  redraw(): void;
}
let live: LiveLine | null = null;

export function setLiveLine(l: LiveLine | null): void {
  live = l;
}

type Fn = (msg: string) => void;
const clean = (fn: (m: string) => void): Fn => (msg: string) => {
  live?.clear();
  fn(printable(String(msg)));
  live?.redraw();
};

export const log = {
  debug: clean((m) => c.debug(m)),
  info: clean((m) => c.info(m)),
  warn: clean((m) => c.warn(m)),
  error: clean((m) => c.error(m)),
  success: clean((m) => c.success(m)),
  get level(): number {
    return c.level;
  },
  set level(v: number) {
    c.level = v;
  },
};

export function setQuiet(quiet: boolean): void {
  if (quiet) log.level = 1;
}

export function setVerbose(verbose: boolean): void {
  if (verbose) log.level = 4;
}
