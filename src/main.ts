#!/usr/bin/env bun
/**
 * zrb — ZFS Remote Backup. Entry point: dispatches to one file per command and turns
 * every error into one line on stderr and a documented exit code.
 */
import "./heap.ts"; // first: it may start zrb again before anything else runs
import { runCommand, type CommandDef } from "citty";
import { ExitCode, ZrbError } from "./util/errors.ts";
import { syncStdout } from "./util/stdout.ts";
import { VERSION } from "./version.ts";
import { printable } from "./util/text.ts";
import { didYouMean } from "./config/suggest.ts";
import genkey from "./cli/genkey.ts";
import rekey from "./cli/rekey.ts";
import snapshot from "./cli/snapshot.ts";
import backup from "./cli/backup.ts";
import check from "./cli/check.ts";
import list from "./cli/list.ts";
import find from "./cli/find.ts";
import restore from "./cli/restore.ts";
import verify from "./cli/verify.ts";
import drill from "./cli/drill.ts";
import systemd from "./cli/systemd.ts";
import cleanup from "./cli/cleanup.ts";
import prune from "./cli/prune.ts";
import status from "./cli/status.ts";
import plan from "./cli/plan.ts";
import iamPolicy from "./cli/iam-policy.ts";
import { versionText } from "./cli/version.ts";
import { helpColours, helpParagraph, helpWidth, renderHelp } from "./cli/help.ts";

const EXIT_CODES = `Exit codes: 0 ok, 1 unexpected failure, 2 usage, 3 config, 4 locked by another run, 5 zfs, 6 object store, 7 integrity (hash/size mismatch), 8 crypto (key), 9 local I/O (disk full, permissions), 10 a backup older than zrb status --max-age, 11 systemd (systemctl missing or failed, in zrb systemd), 130/143 interrupted (SIGINT/SIGTERM; state is kept and the next run resumes).`;

const VERSION_HELP = `zrb --version prints the version; zrb --version --verbose also the runtime and the crypto code paths it runs on (native addons or the slower portable fallbacks, and why).`;

const commands: Record<string, CommandDef<any>> = { genkey, snapshot, backup, restore, verify, drill, list, find, status, plan, check, systemd, cleanup, prune, rekey, "iam-policy": iamPolicy };

const main: CommandDef<any> = {
  meta: {
    name: "zrb",
    version: VERSION,
    description: "ZFS Remote Backup: encrypted, resumable ZFS snapshot backups to S3-compatible storage, and verified restores.",
  },
  subCommands: commands,
};

/**
 * Reject unknown options instead of silently ignoring them. Returns the arguments to run with:
 * an option whose definition has an `optionalValue` (see cli/common.ts) and is given without a
 * value gets that value inserted.
 */
async function checkFlags(cmd: CommandDef<any>, name: string, argv: string[]): Promise<string[]> {
  const subs = (await cmd.subCommands) as Record<string, CommandDef<any>> | undefined;
  if (subs) {
    const sub = argv[0] !== undefined ? subs[argv[0]] : undefined;
    if (!sub) throw new ZrbError(`zrb ${name}: expected one of ${Object.keys(subs).join(", ")}${argv[0] ? `, got ${JSON.stringify(argv[0])}${didYouMean(argv[0], Object.keys(subs))}` : ""} (see zrb ${name} --help)`, ExitCode.USAGE);
    return [argv[0]!, ...(await checkFlags(sub, `${name} ${argv[0]}`, argv.slice(1)))];
  }
  argv = [...argv];
  const defs = (typeof cmd.args === "function" ? await cmd.args() : await cmd.args) ?? {};
  const known = new Set<string>();
  const takesValue = new Set<string>();
  const canonical = new Map<string, string>();
  const optional = new Map<string, string>();
  const repeatable = new Set<string>();
  for (const [k, d] of Object.entries<any>(defs)) {
    if (d.type === "positional") continue;
    if (typeof d.optionalValue === "string") optional.set(k, d.optionalValue);
    // Options that collect every value (read with repeatedFlag, cli/trust.ts) may be given again.
    if (d.repeatable === true) repeatable.add(k);
    const names = [k, ...(d.alias ? [d.alias].flat() : [])];
    for (const n of names) {
      known.add(n);
      canonical.set(n, k);
      if (d.type !== "boolean") takesValue.add(n);
      if (d.type === "boolean") known.add(`no-${n}`);
    }
  }
  const given = new Map<string, string>();
  // Positional arguments (zrb find PATTERN): as many bare words as the command declares.
  let bare = Object.values<any>(defs).filter((d) => d.type === "positional").length;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (!a.startsWith("-") && bare > 0) {
      bare--;
      continue;
    }
    if (!a.startsWith("-") || a === "-") throw new ZrbError(`zrb ${name}: unexpected argument ${JSON.stringify(a)} (see zrb ${name} --help)`, ExitCode.USAGE);
    const flag = a.replace(/^--?/, "").split("=")[0]!;
    if (!known.has(flag))
      throw new ZrbError(
        `zrb ${name}: unknown option ${a.split("=")[0]}${didYouMean(flag, [...known].filter((k) => k.length > 1), 2, (k) => `--${k}`)} (see zrb ${name} --help)`,
        ExitCode.USAGE,
      );
    if (takesValue.has(flag)) {
      // One value per option: `-l 0 -l 1` must not silently mean level 1.
      const c = canonical.get(flag)!;
      const prev = given.get(c);
      if (prev !== undefined && !repeatable.has(c))
        throw new ZrbError(`zrb ${name}: option --${c} given twice (${prev} and ${a.split("=")[0]}); give it once (see zrb ${name} --help)`, ExitCode.USAGE);
      given.set(c, a.split("=")[0]!);
    }
    if (takesValue.has(flag) && !a.includes("=")) {
      const dflt = optional.get(canonical.get(flag)!);
      if (i + 1 >= argv.length || argv[i + 1]!.startsWith(dflt === undefined ? "--" : "-")) {
        if (dflt === undefined) throw new ZrbError(`zrb ${name}: option ${a} needs a value (see zrb ${name} --help)`, ExitCode.USAGE);
        argv.splice(i + 1, 0, dflt);
      }
      i++;
    }
  }
  return argv;
}

/** Help of `cmd` (named `path`) followed by the given paragraphs, wrapped to the pipe's or terminal's width (cli/help.ts). */
async function usage(cmd: CommandDef<any>, path: string, ...paragraphs: string[]): Promise<string> {
  const width = helpWidth();
  const text = await renderHelp(cmd, path, { width, colour: helpColours(), version: VERSION });
  return [text, ...paragraphs.map((p) => helpParagraph(p, width))].join("\n\n") + "\n";
}

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(await usage(main, "zrb", VERSION_HELP, EXIT_CODES));
    if (!name) throw new ZrbError("a command is required (usage above; see zrb --help)", ExitCode.USAGE);
    return ExitCode.OK;
  }
  if (name === "--version" || name === "-V" || name === "version") {
    process.stdout.write(versionText(rest));
    return ExitCode.OK;
  }
  const cmd = commands[name];
  if (!cmd) throw new ZrbError(`unknown command ${JSON.stringify(name)}${didYouMean(name, Object.keys(commands))} (see zrb --help)`, ExitCode.USAGE);
  if (rest.includes("--help") || rest.includes("-h")) {
    const subs = (await cmd.subCommands) as Record<string, CommandDef<any>> | undefined;
    const sub = subs && rest[0] ? subs[rest[0]] : undefined;
    process.stdout.write(await usage(sub ?? cmd, sub ? `zrb ${name} ${rest[0]}` : `zrb ${name}`, EXIT_CODES));
    return ExitCode.OK;
  }
  await runCommand(cmd, { rawArgs: await checkFlags(cmd, name, rest) });
  return ExitCode.OK;
}

syncStdout();
try {
  process.exitCode = await run(process.argv.slice(2));
} catch (err) {
  if (err instanceof ZrbError) {
    process.stderr.write(`zrb: error: ${printable(err.message)}\n`);
    if (process.env.ZRB_DEBUG && err.cause) console.error(err.cause);
    process.exitCode = err.exitCode;
  } else {
    const e = err as Error;
    process.stderr.write(`zrb: internal error: ${printable(e?.message ?? String(err))} (please report this; run with ZRB_DEBUG=1 for a stack trace)\n`);
    if (process.env.ZRB_DEBUG) console.error(e?.stack);
    process.exitCode = ExitCode.FAILURE;
  }
}
// Keep-alive sockets of the S3 client must not keep a finished run alive.
await new Promise<void>((r) => process.stdout.write("", () => r()));
process.exit(process.exitCode ?? 0);
