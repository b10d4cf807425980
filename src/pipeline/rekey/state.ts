/**
 * rekey_state.yaml (0600, next to backup_state.yaml under base_dir/run/<pool>/<dataset>): what
 * a killed rekey had done, so a rerun neither redoes a part nor loses one. Per part it records
 * the new header (age header + payload nonce, which wraps the file key to the NEW recipients
 * only: nothing secret), the sealed original header and the old sizes, BEFORE the object is
 * rewritten; `done` after the store completed it. A rerun believes the object, not the file:
 * a part whose object starts with the recorded new header is done, one that does not is
 * rewritten afresh. The file is removed once every manifest is rewritten.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { readYaml, writeFileAtomicAsync } from "../../state/atomic.ts";
import { ExitCode, ZrbError } from "../../util/errors.ts";

export const REKEY_STATE_FORMAT = "zrb-rekey-state/1";

export interface RekeyPartState {
  /** base64 of the new header + payload nonce. */
  prefix: string;
  /** The sealed original header (manifest rewrap.origin). */
  origin: string;
  /** Size of the object before the rewrite and of its header + nonce then. */
  oldSize: number;
  oldPrefixSize: number;
  done: boolean;
}

export interface RekeyState {
  format: string;
  /** The new recipients, sorted: a rerun to other recipients must not mix with this one. */
  recipients: string[];
  /** backupId → part index → progress. */
  backups: Record<string, Record<string, RekeyPartState>>;
}

export class RekeyStateFile {
  readonly path: string;
  private chain: Promise<void> = Promise.resolve();
  constructor(
    runDir: string,
    readonly state: RekeyState,
  ) {
    this.path = join(runDir, "rekey_state.yaml");
  }

  /** The state of an interrupted rekey to `recipients`, or a fresh one; a rekey to other recipients is refused. */
  static async open(runDir: string, recipients: string[]): Promise<RekeyStateFile> {
    const want = [...recipients].sort();
    const path = join(runDir, "rekey_state.yaml");
    const raw = await readYaml<RekeyState>(path);
    if (raw === null) return new RekeyStateFile(runDir, { format: REKEY_STATE_FORMAT, recipients: want, backups: {} });
    if (raw?.format !== REKEY_STATE_FORMAT || !Array.isArray(raw.recipients) || typeof raw.backups !== "object" || raw.backups === null)
      throw new ZrbError(`${path} is not a rekey state file zrb can read; move it away if no rekey is interrupted`, ExitCode.CONFIG);
    if (raw.recipients.join(",") !== want.join(","))
      throw new ZrbError(
        `an interrupted rekey to other recipients (${raw.recipients.join(", ")}) is recorded in ${path}; finish it first (rerun zrb rekey with those recipients), then rekey again`,
        ExitCode.USAGE,
      );
    return new RekeyStateFile(runDir, raw);
  }

  part(backupId: string, index: number): RekeyPartState | undefined {
    return this.state.backups[backupId]?.[String(index)];
  }

  setPart(backupId: string, index: number, p: RekeyPartState | undefined): Promise<void> {
    const b = (this.state.backups[backupId] ??= {});
    if (p) b[String(index)] = p;
    else delete b[String(index)];
    return this.save();
  }

  /** The backup's manifest is rewritten: its parts need no record any more. */
  doneBackup(backupId: string): Promise<void> {
    delete this.state.backups[backupId];
    return this.save();
  }

  /** Written atomically, one write at a time, in the order asked (the text is made now). */
  private save(): Promise<void> {
    const text = rekeyStateText(this.state);
    this.chain = this.chain.then(() => writeFileAtomicAsync(this.path, text));
    return this.chain;
  }

  /** Nothing is in progress any more. */
  async remove(): Promise<void> {
    await this.chain;
    rmSync(this.path, { force: true });
  }
}

/**
 * rekey_state.yaml's text: YAML, each part's record on one line as a JSON flow mapping (YAML 1.2
 * reads it as it is). The file is written twice per part; YAML.stringify of every record made
 * that grow with the parts of the backups in progress, as backup_state.yaml's did (state/rundir.ts).
 */
export function rekeyStateText(state: RekeyState): string {
  const { backups, ...head } = state;
  const out = [YAML.stringify(head, { lineWidth: 0 }).trimEnd()];
  const ids = Object.keys(backups);
  if (ids.length === 0) out.push("backups: {}");
  else out.push("backups:");
  for (const id of ids) {
    const parts = Object.entries(backups[id]!);
    out.push(`  ${JSON.stringify(id)}:${parts.length ? "" : " {}"}`);
    for (const [index, p] of parts) out.push(`    ${JSON.stringify(index)}: ${JSON.stringify(p)}`);
  }
  return `${out.join("\n")}\n`;
}
