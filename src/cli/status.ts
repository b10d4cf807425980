/**
 * `zrb status`: what a NAS owner checks in the morning — for every task, is a backup running
 * (and whose lock), is one interrupted (and how far it got), and what the newest backup at
 * each level is, from the bucket's heads (the catalog) and the local cache. With --max-age it is
 * also a freshness check for Nagios or cron (report/freshness.ts): exit 10 when the newest
 * backup of an enabled task (or of each --level) is older, naming it.
 */
import { defineCommand } from "citty";
import { existsSync } from "node:fs";
import { holderAlive, readLockInfo } from "../state/lock.ts";
import { RunDir } from "../state/rundir.ts";
import { readHeads, type Heads } from "../state/heads.ts";
import { ExitCode, ZrbError } from "../util/errors.ts";
import { formatSize } from "../util/size.ts";
import { formatEta as formatAge } from "../report/progress.ts";
import { printable } from "../util/text.ts";
import { applyOutput, configArg, loadConfigLogged, outputArgs, parseLevel, printJson, storeFor } from "./common.ts";
import { parseDuration } from "../pipeline/cleanup.ts";
import { checkFreshness, describeStale, type FreshnessCheck } from "../report/freshness.ts";
import { now } from "../util/clock.ts";

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
  /** With --max-age: one check per --level (or one for any level). */
  freshness?: FreshnessCheck[];
}

/** --level for freshness: one level or several, comma-separated ("0,1"). */
function parseLevels(v: unknown): number[] | null {
  if (v === undefined || v === "") return null;
  return [...new Set(String(v).split(",").map((x) => parseLevel(x.trim())))].sort((a, b) => a - b);
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
    "max-age": {
      type: "string",
      description: "Exit 10 when the newest backup of an enabled task (or of --task) is older than this, e.g. 26h or 8d, naming it (for Nagios or cron)",
      valueHint: "DURATION",
    },
    level: { type: "string", alias: "l", description: "With --max-age: check the newest backup at each of these levels (or lower) instead, e.g. 0 or 0,1", valueHint: "N[,N…]" },
    ...outputArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const maxAge = args["max-age"] !== undefined ? String(args["max-age"]) : undefined;
    const maxAgeMs = maxAge !== undefined ? parseDuration(maxAge, "--max-age") : undefined;
    const levels = parseLevels(args.level);
    if (levels && maxAge === undefined) throw new ZrbError("--level only applies with --max-age (zrb status --max-age 8d --level 0)", ExitCode.USAGE);
    const at = now();
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
      let freshness: FreshnessCheck[] | undefined;
      try {
        const h: Heads = await readHeads(store, t.pool, t.dataset);
        heads = Object.entries(h.levels)
          .map(([k, v]) => ({ level: Number(k), backupId: v.backupId, snapshot: v.snapshot.name, finishedAt: v.finishedAt }))
          .sort((a, b) => a.level - b.level);
        if (maxAgeMs !== undefined && (t.enabled || args.task)) freshness = checkFreshness(t.name, t.fullName, h, levels, maxAgeMs, at);
      } catch (err) {
        // Freshness cannot be judged without the heads: that is the run's error (exit 6…).
        if (maxAgeMs !== undefined && (t.enabled || args.task)) throw err;
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
        ...(freshness ? { freshness } : {}),
      });
    }
    const stale = out.flatMap((s) => s.freshness ?? []).filter((c) => c.stale);
    const staleError = () =>
      new ZrbError(`${stale.length} stale: ${stale.map((c) => describeStale(c, maxAge!)).join("; ")}`, ExitCode.STALE);
    if (args.json) {
      printJson(out);
      if (stale.length) throw staleError();
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
      for (const c of s.freshness ?? [])
        lines.push(c.stale ? `  STALE: ${describeStale(c, maxAge!)}` : `  fresh: the newest backup${c.level === null ? "" : ` at level ≤ ${c.level}`} finished ${formatAge(c.ageSeconds)} ago (--max-age ${maxAge})`);
    }
    process.stdout.write(lines.map(printable).join("\n") + "\n");
    if (stale.length) throw staleError();
  },
});
