import { defineCommand } from "citty";
import { configArg, parseLevel, taskArg } from "./common.ts";
import { runJob, transferArgs } from "./job.ts";
import { backup } from "../pipeline/backup/index.ts";
import { log } from "../util/log.ts";
import { runTreeBackup } from "./backup-tree.ts";
import { childArg, parseChild } from "./tree.ts";

export default defineCommand({
  meta: {
    name: "backup",
    description:
      "Send the newest zrb_level<N>_ snapshot of the task's dataset, encrypted, to the store. " +
      "Level 0 is a full send; level N ≥ 1 is an incremental from the snapshot of the most recent backup at any lower level " +
      "(dump(8) semantics: repeated level 1 = differentials, 1→2→3 = incremental chain). " +
      "An interrupted run (kill, power loss, network) resumes where it stopped on the next run. " +
      "A snapshot already backed up at that level is not sent again (--force sends it anyway). " +
      "A recursive task backs up every child as its own chain, one after the other (a new child at level 0); one failing does not stop the others, and the exit code is the worst child's. " +
      "With several stores, every store side by side: one zfs send feeds the stores that need the same stream, and a store that fails does not stop the others.",
  },
  args: {
    ...configArg,
    ...taskArg,
    level: { type: "string", alias: "l", description: "Backup level: 0 = full, N ≥ 1 = incremental from the newest lower-level backup", valueHint: "N" },
    force: { type: "boolean", description: "Send the snapshot even if it is already backed up at this level", default: false },
    ...childArg,
    ...transferArgs,
  },
  async run({ args }) {
    const level = parseLevel(args.level);
    await runJob(args, { command: "backup", level, shareSends: true }, async (job) => {
      const { config, task, store, reporter, signal, sends } = job;
      const only = parseChild(args.child, task);
      if (task.recursive) return runTreeBackup(job, { level, force: !!args.force, only, json: !!args.json });
      const t0 = performance.now();
      const r = await backup(config, task, store, { level, force: !!args.force, signal, progress: reporter, sends });
      const secs = Math.round(((performance.now() - t0) / 1000) * 10) / 10;
      if (r.kind === "already") {
        if (!args.json)
          log.success(
            `${r.snapshot} is already backed up at level ${r.level} (backup ${r.backupId}); nothing sent. ` +
              `Take a new snapshot first (zrb snapshot --config ${config.path} --task ${task.name} --level ${r.level}), or pass --force to send it again`,
          );
        return { result: { skipped: true, backupId: r.backupId, level: r.level, snapshot: r.snapshot, seconds: secs }, bytes: 0 };
      }
      const m = r.manifest;
      const summary = {
        skipped: false,
        backupId: m.backupId,
        level: m.level,
        snapshot: m.snapshot.name,
        parent: m.parent?.name ?? null,
        parentBackupId: m.parent?.backupId ?? null,
        parts: m.parts.length,
        streamBytes: m.stream.size,
        storedBytes: m.parts.reduce((a, p) => a + p.cipherSize, 0),
        blake3: m.stream.blake3,
        manifest: r.manifestKey,
        /** The file catalog: its stored size and entries, or null when none was made. */
        catalog: m.catalog ? { key: m.catalog.key, bytes: m.catalog.size, entries: m.catalog.entries, kind: m.catalog.kind } : null,
        resumed: r.resumed,
        seconds: secs,
      };
      if (!args.json)
        log.success(
          `backup ${m.backupId}: level ${m.level} ${m.snapshot.name}${m.parent ? ` (from ${m.parent.name})` : ""}, ` +
            `${m.parts.length} part(s), ${m.stream.size} bytes in ${secs}s → ${store.location}` +
            (m.catalog ? `; file catalog ${m.catalog.entries} ${m.catalog.kind === "full" ? "entries" : "changes"}, ${m.catalog.size} bytes` : "; no file catalog"),
        );
      return { result: summary, bytes: m.stream.size };
    });
  },
});
