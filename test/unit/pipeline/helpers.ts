/** Shared by the pipeline unit tests: a fresh backup state of tank/ds (backup id B1), with overrides. */
import type { BackupState } from "../../../src/state/rundir.ts";

export function backupState(o: Partial<BackupState> = {}): BackupState {
  return {
    format: "zrb-state/1",
    backupId: "B1",
    level: 0,
    pool: "tank",
    dataset: "ds",
    snapshot: { name: "tank/ds@s", guid: "1" },
    parent: null,
    sendFlags: [],
    chunkSize: 1 << 20,
    recipients: ["age1x"],
    startedAt: new Date().toISOString(),
    chunks: [],
    ...o,
  };
}
