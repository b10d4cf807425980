/**
 * One logger for the whole tool. Human lines go to stderr (stdout stays for results
 * a script parses, e.g. --json). Secrets never pass through here: callers log names,
 * sizes and hashes, never key material or credentials.
 */
import { createConsola } from "consola";

export const log = createConsola({
  level: process.env.ZRB_LOG_LEVEL ? Number(process.env.ZRB_LOG_LEVEL) : 3,
  stderr: process.stderr,
  stdout: process.stderr,
  formatOptions: { date: false, colors: process.stderr.isTTY ?? false, compact: true },
});

export function setQuiet(quiet: boolean): void {
  if (quiet) log.level = 1;
}

export function setVerbose(verbose: boolean): void {
  if (verbose) log.level = 4;
}
