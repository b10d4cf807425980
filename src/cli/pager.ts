/**
 * Long output on a terminal goes through a pager, as git and systemctl do: `zrb list` of a chain
 * of hundreds of backups. Only when stdout is a terminal and the text is taller than it; never on
 * a pipe, in the journal or with --json. $ZRB_PAGER, else $PAGER, else `less -FRX` (quits at once
 * when the text fits, keeps colours, leaves the screen); an empty value or `cat` turns it off.
 * A pager that cannot be started is no error: the text is written as it is.
 */
import { spawnSync } from "node:child_process";

/** The pager command for this environment, or null for none. */
export function pagerCommand(env: Record<string, string | undefined> = process.env): string | null {
  const p = env.ZRB_PAGER ?? env.PAGER ?? "less -FRX";
  return p.trim() === "" || p.trim() === "cat" ? null : p;
}

/** Write `text` to stdout, through the pager when stdout is a terminal shorter than the text. */
export function writePaged(text: string): void {
  const rows = process.stdout.isTTY ? process.stdout.rows : 0;
  const cmd = pagerCommand();
  if (!rows || !cmd || text.split("\n").length <= rows) {
    process.stdout.write(text);
    return;
  }
  const r = spawnSync("/bin/sh", ["-c", cmd], { input: text, stdio: ["pipe", "inherit", "inherit"], env: { LESS: "FRX", ...process.env } });
  if (r.error || r.status === 127) process.stdout.write(text);
}
