/**
 * `--help` text. citty's own renderer prints each command's whole manual paragraph in the command
 * list and pads every row to the widest one (hundreds of trailing blanks), so zrb renders help
 * itself: the command list shows one short summary per command (the manual paragraph stays in
 * `zrb CMD --help`), every line is wrapped — to 100 columns on a pipe, to the terminal's width on a
 * TTY — with a hanging indent for option and command descriptions, and no line ends in a blank.
 * Colours as citty's: only on a terminal, and never with NO_COLOR, TERM=dumb, CI or TEST set.
 */
import type { ArgDef, CommandDef } from "citty";

/** Width of help on a pipe or in a file: readable in a pager, in a mail, in an issue. */
export const PIPE_WIDTH = 100;
/** Below this a terminal is treated as this wide: a narrower wrap helps nobody. */
const MIN_WIDTH = 40;

/**
 * One line per command for the command list (`zrb --help`, `zrb systemd --help`); the full
 * manual paragraph is each command's `meta.description`, shown by its own --help.
 */
export const SUMMARY: Record<string, string> = {
  genkey: "Make the private, public and signing keys (on a machine other than the NAS)",
  snapshot: "Take a zrb_level<N>_ snapshot of a task's dataset (a tree: one zfs snapshot -r)",
  backup: "Send the newest level-N snapshot, encrypted and signed, to the store; resumes",
  restore: "Find the chain, verify every part and zfs receive it into a new dataset",
  verify: "Download and check backups (hashes, decryption, signatures) without receiving",
  list: "List the backups in the bucket: level, snapshot, parent, size, class, signed",
  status: "Running or interrupted backups and each task's newest backup; --max-age for alerts",
  plan: "Estimate storage cost, early-delete charges and disaster-restore time from the bucket",
  check: "Validate the config, the datasets and bucket access; changes nothing",
  systemd: "Install, remove or run the systemd timers for snapshots, backups, prune, verify",
  "systemd install": "Write and enable the hardened timers and services for every enabled task",
  "systemd uninstall": "Stop and remove the timers and unit files zrb systemd install wrote",
  "systemd run": "Used by the units: run one step (snapshot, backup, prune, verify) for an instance",
  cleanup: "Abort dangling multipart uploads and remove orphan parts of zrb's prefix",
  prune: "Delete old backups and snapshots by the retention policy, never a needed chain",
  "iam-policy": "Print a least-privilege AWS IAM policy for the NAS, prune or restore role",
};

export type Style = { cyan(s: string): string; gray(s: string): string; head(s: string): string };

const plain: Style = { cyan: (s) => s, gray: (s) => s, head: (s) => s };
const ansi: Style = {
  cyan: (s) => `\x1b[36m${s}\x1b[39m`,
  gray: (s) => `\x1b[90m${s}\x1b[39m`,
  head: (s) => `\x1b[4m\x1b[1m${s}\x1b[22m\x1b[24m`,
};

/** Whether help gets colour codes (what citty did, plus NO_COLOR of any value: no-color.org). */
export function helpColours(out: { isTTY?: boolean } = process.stdout, env: Record<string, string | undefined> = process.env): boolean {
  return !!out.isTTY && !env.NO_COLOR && env.TERM !== "dumb" && !env.TEST && !env.CI;
}

/** The width help is wrapped to: the terminal's on a TTY (COLUMNS when the size is unknown), else PIPE_WIDTH. */
export function helpWidth(out: { isTTY?: boolean; columns?: number } = process.stdout, env: Record<string, string | undefined> = process.env): number {
  if (!out.isTTY) return PIPE_WIDTH;
  const cols = out.columns && out.columns > 0 ? out.columns : Number(env.COLUMNS) || 80;
  return Math.max(MIN_WIDTH, cols);
}

const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;

/**
 * Wrap `text` (one paragraph) to `width` columns: the first line starts after `first` (already
 * printed, `first` columns wide), the others are indented by `indent` spaces. Words longer than a
 * line are left whole (a path must stay copyable). Returns the lines, none ending in a blank.
 */
export function wrap(text: string, width: number, indent = 0, first = indent): string[] {
  const lines: string[] = [];
  let line = "";
  let used = first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const w = visible(word);
    if (line && used + 1 + w > width) {
      lines.push(line);
      line = "";
      used = indent;
    }
    line += (line ? " " : "") + word;
    used += (line === word ? 0 : 1) + w;
  }
  lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : " ".repeat(indent) + l).trimEnd());
}

/** Rows of a two-column list (options, commands): names left, descriptions wrapped beside them or, when the terminal is narrow, below. */
export function columns(rows: [string, string][], width: number, style: Style): string[] {
  const nameW = Math.max(...rows.map(([n]) => n.length));
  const side = 2 + nameW + 2;
  const beside = width - side >= 30;
  const out: string[] = [];
  for (const [name, desc] of rows) {
    if (beside) {
      const body = wrap(desc, width, side, side);
      out.push(("  " + style.cyan(name) + " ".repeat(nameW - name.length + 2) + body[0]).trimEnd(), ...body.slice(1));
    } else {
      out.push("  " + style.cyan(name));
      if (desc) out.push(...wrap(desc, width, 6, 0).map((l, i) => (i === 0 ? "      " + l : l)));
    }
  }
  return out;
}

function optionName(name: string, d: ArgDef): string {
  const hint = d.type === "boolean" ? "" : `=<${(d as { valueHint?: string }).valueHint ?? name.toUpperCase()}>`;
  const alias = (d as { alias?: string | string[] }).alias;
  const aliases = alias ? [alias].flat().map((a) => `-${a}`) : [];
  return [...aliases, `--${name}`].join(", ") + hint;
}

function optionRows(defs: Record<string, ArgDef>): [string, string][] {
  const rows: [string, string][] = [];
  for (const [name, d] of Object.entries(defs)) {
    if (d.type === "positional") {
      rows.push([(d as { valueHint?: string }).valueHint ?? name.toUpperCase(), d.description ?? ""]);
      continue;
    }
    const dflt = d.default === undefined || d.default === false ? "" : ` (default: ${d.default})`;
    rows.push([optionName(name, d), `${d.description ?? ""}${dflt}`]);
    if (d.type === "boolean" && d.default === true) rows.push([`--no-${name}`, `The opposite of --${name}`]);
  }
  return rows;
}

/**
 * The help of `cmd` (named `path`, e.g. "zrb systemd install"): its manual paragraph, usage,
 * options and, for a command with subcommands, one summary line per subcommand.
 */
export async function renderHelp(cmd: CommandDef<any>, path: string, o: { width: number; colour: boolean; version?: string }): Promise<string> {
  const style = o.colour ? ansi : plain;
  const meta = (typeof cmd.meta === "function" ? await cmd.meta() : await cmd.meta) ?? {};
  const defs = ((typeof cmd.args === "function" ? await cmd.args() : await cmd.args) ?? {}) as Record<string, ArgDef>;
  const subs = (typeof cmd.subCommands === "function" ? await cmd.subCommands() : await cmd.subCommands) as Record<string, CommandDef<any>> | undefined;
  const out: string[] = [];
  const title = `${meta.description ?? ""} (${path}${o.version ? ` v${o.version}` : ""})`;
  out.push(...wrap(title, o.width).map((l) => style.gray(l)), "");
  const positionals = Object.entries(defs).filter(([, d]) => d.type === "positional").map(([n, d]) => (d as { valueHint?: string }).valueHint ?? n.toUpperCase());
  const usage = `${path}${subs ? " <command>" : ""}${Object.keys(defs).length ? " [OPTIONS]" : ""}${positionals.map((p) => ` ${p}`).join("")}`;
  out.push(...wrap(`${style.head("USAGE")} ${style.cyan(usage)}`, o.width, 2), "");
  if (Object.keys(defs).length) out.push(style.head("OPTIONS"), "", ...columns(optionRows(defs), o.width, style), "");
  if (subs) {
    const prefix = path.split(" ").slice(1).join(" ");
    const rows: [string, string][] = [];
    for (const [name, sub] of Object.entries(subs)) {
      const key = prefix ? `${prefix} ${name}` : name;
      const sm = (typeof sub.meta === "function" ? await sub.meta() : await sub.meta) ?? {};
      rows.push([name, SUMMARY[key] ?? firstSentence(String(sm.description ?? ""))]);
    }
    out.push(style.head("COMMANDS"), "", ...columns(rows, o.width, style), "");
    out.push(...wrap(`Use ${style.cyan(`${path} <command> --help`)} for more information about a command.`, o.width));
  }
  return out.map((l) => l.trimEnd()).join("\n").replace(/\n+$/, "");
}

/** A fallback summary for a command without an entry in SUMMARY. */
function firstSentence(s: string): string {
  const m = /^(.*?[.;:])(\s|$)/.exec(s);
  return (m ? m[1]! : s).replace(/[.;:]$/, "");
}

/** A paragraph of help prose (exit codes, version notes) wrapped to the help width. */
export function helpParagraph(text: string, width: number): string {
  return wrap(text, width).join("\n");
}
