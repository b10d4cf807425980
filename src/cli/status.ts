/**
 * `zrb status`: what a NAS owner checks in the morning — for every task, is a backup running
 * (and whose lock), is one interrupted (and how far it got), and what the newest backup at
 * each level is, from the bucket's heads (the catalog) and the local cache.
 */
import { defineCommand } from "citty";
import { existsSync } from "node:fs";
import { holderAlive, readLockInfo } from "../state/lock.ts";
import { RunDir } from "../state/rundir.ts";
import { readHeads, type Heads } from "../state/heads.ts";
import { ExitCode, ZrbError } from "../util/errors.ts";
import { formatSize } from "../util/size.ts";
import { printable } from "../util/text.ts";
import { applyOutput, configArg, loadConfigLogged, outputArgs, printJson, storeFor } from "./common.ts";

interface TaskStatus {
  task: string;
  dataset: string;
  enabled: boolean;
  running: { pid: number; command: string; since: string } | null;
  staleLock: boolean;
  interrupted: { backupId: string; level: number; snapshot: string; partsDone: number; bytesDone: number; startedAt: string } | null;
  heads: { level: number; backupId: string; snapshot: string; finishedAt: string }[] | null;
  headsError?: string;
  stateError?: string;
}

export default defineCommand({
  meta: {
    name: "status",
    description:
      "Show, for every task (or --task), whether a backup is running (lock holder), whether one was interrupted and will resume " +
      "(backup id, level, parts done), and the newest backup at each level from the store's heads. Changes nothing.",
  },
  args: {
    ...configArg,
    task: { type: "string", alias: "t", description: "Only this task", valueHint: "NAME" },
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const config = await loadConfigLogged(String(args.config));
    const tasks = args.task ? config.tasks.filter((t) => t.name === args.task) : config.tasks;
    if (args.task && tasks.length === 0)
      throw new ZrbError(`no task ${args.task} in ${config.path} (tasks: ${config.tasks.map((t) => t.name).join(", ")})`, ExitCode.CONFIG);
    const store = storeFor(config);
    const out: TaskStatus[] = [];
    for (const t of tasks) {
      let stateError: string | undefined;
      const rd = new RunDir(config.baseDir, t.pool, t.dataset);
      let running: TaskStatus["running"] = null;
      let staleLock = false;
      if (existsSync(rd.lockPath)) {
        const l = readLockInfo(rd.lockPath);
        // A lock from another host (shared base_dir) cannot be checked from here: shown as held.
        if (l && holderAlive(l)) running = { pid: l.pid, command: `${l.command} on ${l.host}`, since: l.since };
        else staleLock = true;
      }
      const read = await rd.readState();
      const st = read.kind === "ok" ? read.state : null;
      if (read.kind === "unusable") stateError = `${rd.statePath} cannot be resumed (${read.why}); the next backup discards it`;
      const done = st?.chunks?.filter((c) => c?.uploaded) ?? [];
      const interrupted =
        st && !running
          ? {
              backupId: st.backupId,
              level: st.level,
              snapshot: st.snapshot.name,
              partsDone: done.length,
              bytesDone: done.reduce((a, c) => a + c.plainSize, 0),
              startedAt: st.startedAt,
            }
          : null;
      let heads: TaskStatus["heads"] = null;
      let headsError: string | undefined;
      try {
        const h: Heads = await readHeads(store, t.pool, t.dataset);
        heads = Object.entries(h.levels)
          .map(([k, v]) => ({ level: Number(k), backupId: v.backupId, snapshot: v.snapshot.name, finishedAt: v.finishedAt }))
          .sort((a, b) => a.level - b.level);
      } catch (err) {
        headsError = (err as Error).message;
      }
      out.push({
        task: t.name,
        dataset: t.fullName,
        enabled: t.enabled,
        running,
        staleLock,
        interrupted,
        heads,
        ...(headsError ? { headsError } : {}),
        ...(stateError ? { stateError } : {}),
      });
    }
    if (args.json) {
      printJson(out);
      return;
    }
    const lines: string[] = [];
    for (const s of out) {
      lines.push(`${s.task} (${s.dataset})${s.enabled ? "" : " [disabled]"}`);
      if (s.running) lines.push(`  running: ${s.running.command}, pid ${s.running.pid}, since ${s.running.since}`);
      if (s.staleLock) lines.push("  stale lock left by a dead run (the next run takes it over)");
      if (s.interrupted)
        lines.push(
          `  interrupted: level ${s.interrupted.level} backup ${s.interrupted.backupId} of ${s.interrupted.snapshot}, ` +
            `${s.interrupted.partsDone} part(s) / ${formatSize(s.interrupted.bytesDone)} stored; the next run resumes it`,
        );
      if (s.stateError) lines.push(`  ${s.stateError}`);
      if (s.headsError) lines.push(`  store: ${s.headsError}`);
      else if (s.heads && s.heads.length === 0) lines.push(`  no backups in ${store.location} yet`);
      else for (const h of s.heads ?? []) lines.push(`  level ${h.level}: ${h.snapshot.split("@")[1]}  backup ${h.backupId}  finished ${h.finishedAt}`);
    }
    process.stdout.write(lines.map(printable).join("\n") + "\n");
  },
});
