/**
 * systemd unit text for zrb. Pure functions: config in, files (path relative to the unit
 * directory + content) out; src/cli/systemd.ts writes them and talks to systemctl.
 *
 * Layout (docs/install-nas.md explains the choice):
 *   zrb-backup@.service    instance "TASK:LEVEL": snapshot at LEVEL (ExecStartPre), then back it up (ExecStart)
 *   zrb-backup@.timer      shared timer settings; the schedule of each instance is a drop-in
 *   zrb-snapshot@.service  instance "TASK:LEVEL": an extra local snapshot only (no upload)
 *   zrb-snapshot@.timer    as above; only enabled when a schedule is asked for
 *   zrb-backup@TASK:LEVEL.timer.d/zrb-schedule.conf   OnCalendar= of one instance
 *   zrb-prune@.service     instance "TASK": zrb prune by tasks[].retention (only tasks that have one)
 *   zrb-verify@.service    instance "TASK": zrb verify --rotate (every stored part read once per 90 days)
 *   zrb-drill@.service     instance "TASK": zrb drill (restore into a throwaway pool, compare with the
 *                          source snapshot), monthly; only when drill.private_key is set (a drill decrypts)
 *   zrb-prune@.timer, zrb-verify@.timer, zrb-drill@.timer, zrb-{prune,verify,drill}@TASK.timer.d/zrb-schedule.conf   as above
 *   zrb-failure@.service   OnFailure= of every service: instance = the failed unit; a journal line
 *                          by default, pointed at a notifier with a drop-in (docs/install-nas.md)
 *
 * The level travels in the instance name because one template timer can only start its own
 * instance and cannot pass arguments; ':' is a legal unit-name character and task names are
 * [A-Za-z0-9._-] (config/schema.ts), so "TASK:LEVEL" never needs systemd-escape. The service
 * hands the raw instance (%i) to `zrb systemd run`, which splits it and runs the ordinary
 * `zrb snapshot` / `zrb backup` code in-process.
 */
import { posix } from "node:path";
import { STOP_GRACE_SECONDS } from "../util/abort.ts";
import type { Config, Task } from "../config/config.ts";
import { storesOf, taskStores } from "../config/stores.ts";

export const SCHEDULE_DROPIN = "zrb-schedule.conf";
export const DEFAULT_FULL_CALENDAR = "Sun *-*-* 02:00:00";
/** Not on the full backup's day, so the two do not collide on the per-dataset lock every week. */
export const DEFAULT_INCREMENTAL_CALENDAR = "Mon..Sat *-*-* 02:30:00";
export const ENV_FILE = "/etc/zrb/env";
/**
 * zrb stops within seconds of SIGTERM and exits by itself after STOP_GRACE_SECONDS at the latest
 * (state kept); systemd's SIGKILL is only the backstop for a hung process.
 */
export const STOP_TIMEOUT_SEC = STOP_GRACE_SECONDS + 40;
export const RANDOM_DELAY = "20min";
/** Daily, well after the backups of the night (a prune meeting a backup still running exits 4 and runs the next day). */
export const DEFAULT_PRUNE_CALENDAR = "*-*-* 06:00:00";
/** Weekly, mid-week and away from the nightly backups (verify takes no lock; it only reads). */
export const DEFAULT_VERIFY_CALENDAR = "Wed *-*-* 12:00:00";

/** Monthly, on the 1st, after the night's backups. */
export const DEFAULT_DRILL_CALENDAR = "*-*-01 04:00:00";

export type UnitKind = "backup" | "snapshot" | "prune" | "verify" | "drill";

/** What each unit does, and its instance form: per task and level, or per task. */
const KINDS: Record<UnitKind, { what: string; timer: string; instance: "TASK:LEVEL" | "TASK" }> = {
  backup: { what: "snapshot and encrypted backup", timer: "backup", instance: "TASK:LEVEL" },
  snapshot: { what: "local snapshot (no upload)", timer: "extra local snapshot", instance: "TASK:LEVEL" },
  prune: { what: "retention (zrb prune: old backups and snapshots)", timer: "retention", instance: "TASK" },
  verify: { what: "rotating verification of the stored parts (zrb verify --rotate)", timer: "rotating verification", instance: "TASK" },
  drill: { what: "restore drill (zrb drill: restore into a throwaway pool, compare with the snapshot)", timer: "restore drill", instance: "TASK" },
};

export interface Schedule {
  kind: UnitKind;
  task: string;
  /** For backup and snapshot units; prune and verify run per task. */
  level?: number;
  /** A prune of one store of a task with several (instance TASK:STORE). */
  store?: string;
  /** systemd OnCalendar= expression. */
  calendar: string;
}

export interface UnitOptions {
  /** Absolute path of the zrb binary. */
  bin: string;
  /** Absolute path of the config file. */
  configPath: string;
  /** Level-0 (full) backup calendar. */
  full: string;
  /** Level-1 (incremental) backup calendar. */
  incremental: string;
  /** Extra local level-1 snapshots (zrb-snapshot@TASK:1.timer), or undefined for none. */
  snapshot?: string;
  /** zrb prune of each enabled task that has a retention policy (default DEFAULT_PRUNE_CALENDAR). */
  prune?: string;
  /** The prune calendar of a store, by store name (`--prune-store cold=monthly`), instead of `prune`. */
  pruneStores?: Record<string, string>;
  /** zrb verify --rotate of each enabled task (default DEFAULT_VERIFY_CALENDAR). */
  verify?: string;
  /** zrb drill of each enabled task when drill.private_key is set (default DEFAULT_DRILL_CALENDAR). */
  drill?: string;
}

export interface UnitFile {
  /** Relative to the unit directory, e.g. "zrb-backup@.service" or "zrb-backup@home:0.timer.d/zrb-schedule.conf". */
  path: string;
  content: string;
}

export const instanceName = (task: string, level?: number): string => (level === undefined ? task : `${task}:${level}`);
export const unitName = (kind: UnitKind, task: string, level: number | undefined, type: "service" | "timer"): string =>
  `zrb-${kind}@${instanceName(task, level)}.${type}`;

/** A prune or verify instance: a task name; null if it is not one. */
export function parseTaskInstance(instance: string): string | null {
  return /^[A-Za-z0-9._-]+$/.test(instance) ? instance : null;
}

/** A prune instance: TASK, or TASK:STORE for one store of a task with several; null if it is neither. */
export function parsePruneInstance(instance: string): { task: string; store?: string } | null {
  const m = /^([A-Za-z0-9._-]+)(?::([A-Za-z][A-Za-z0-9._-]{0,31}))?$/.exec(instance);
  return m ? { task: m[1]!, ...(m[2] !== undefined ? { store: m[2] } : {}) } : null;
}

/** Split "TASK:LEVEL" (the inverse of instanceName); null if it is not of that form. */
export function parseInstance(instance: string): { task: string; level: number } | null {
  const m = /^([A-Za-z0-9._-]+):(\d{1,2})$/.exec(instance);
  return m ? { task: m[1]!, level: Number(m[2]) } : null;
}

/**
 * Quote one word for a unit file: specifiers (%) and variables ($) are not expanded,
 * whitespace, quotes and backslashes survive. Plain words are left as they are.
 */
export function quoteWord(s: string): string {
  const lit = s.replaceAll("%", "%%").replaceAll("$", "$$$$");
  if (/^[A-Za-z0-9_@%$+=:,./-]+$/.test(lit)) return lit;
  return `"${lit.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** Paths zrb writes to: base_dir (state, spill chunks, TMPDIR, drill pools; every store's state), each local store and drill.dir, when they lie elsewhere. */
export function writablePaths(config: Config): string[] {
  const paths = [config.baseDir];
  const inside = (p: string, dir: string) => p === dir || p.startsWith(dir === "/" ? "/" : dir + "/");
  for (const s of storesOf(config)) if (!s.s3.enabled && !inside(s.localStore, config.baseDir) && !paths.includes(s.localStore)) paths.push(s.localStore);
  if (config.drill.dir !== undefined && !inside(config.drill.dir, config.baseDir)) paths.push(config.drill.dir);
  return paths;
}

/**
 * Directories zrb writes to only if they exist: the metrics file's (node_exporter's textfile
 * directory, which zrb never creates). "-" lets the unit start without it; zrb then warns.
 */
export function optionalWritablePaths(config: Config): string[] {
  const f = config.monitoring.metricsFile;
  if (!f) return [];
  const dir = posix.dirname(f);
  return writablePaths(config).some((p) => dir === p || dir.startsWith(p === "/" ? "/" : p + "/")) ? [] : [dir];
}

export const tmpDirFor = (config: Config): string => posix.join(config.baseDir, "tmp");

/**
 * The timers `zrb systemd install` creates for this config: two backups per enabled task, extra
 * snapshots if asked, then a verify per enabled task and a prune per enabled task that has a
 * retention policy, its own or one of its stores' (without one `zrb prune` refuses to run). One
 * prune timer per task: `zrb prune` goes store by store, each with its own retention (a store
 * that keeps monthly backups has nothing to delete on the other days).
 */
export function schedules(config: Config, opts: Pick<UnitOptions, "full" | "incremental" | "snapshot" | "prune" | "verify" | "pruneStores" | "drill">): Schedule[] {
  const out: Schedule[] = [];
  const enabled = config.tasks.filter((t: Task) => t.enabled);
  for (const t of enabled) {
    out.push({ kind: "backup", task: t.name, level: 0, calendar: opts.full });
    out.push({ kind: "backup", task: t.name, level: 1, calendar: opts.incremental });
    if (opts.snapshot) out.push({ kind: "snapshot", task: t.name, level: 1, calendar: opts.snapshot });
  }
  for (const t of enabled) {
    out.push(...pruneSchedules(config, t, opts));
    out.push({ kind: "verify", task: t.name, calendar: opts.verify ?? DEFAULT_VERIFY_CALENDAR });
    if (config.drill.privateKey) out.push({ kind: "drill", task: t.name, calendar: opts.drill ?? DEFAULT_DRILL_CALENDAR });
  }
  return out;
}

/**
 * The prune timers of a task: one (instance TASK) when it has one store, or when none of its
 * stores has a calendar of its own; else one per store that has a retention policy (instance
 * TASK:STORE, `zrb prune --store STORE`), so that a hot store can be pruned daily and a cold
 * one monthly (`--prune-store cold=monthly`).
 */
function pruneSchedules(config: Config, t: Task, opts: Pick<UnitOptions, "prune" | "pruneStores">): Schedule[] {
  const calendar = opts.prune ?? DEFAULT_PRUNE_CALENDAR;
  const stores = storesOf(config).filter((s) => taskStores(config, t).includes(s.name));
  const own = stores.filter((s) => opts.pruneStores?.[s.name] !== undefined);
  if (stores.length < 2 || own.length === 0)
    return t.retention || stores.some((s) => s.retention) ? [{ kind: "prune", task: t.name, calendar }] : [];
  return stores.filter((s) => s.retention ?? t.retention).map((s) => ({ kind: "prune", task: t.name, store: s.name, calendar: opts.pruneStores?.[s.name] ?? calendar }));
}

/** A timer instance: TASK:LEVEL (backup, snapshot), TASK:STORE (a store's prune) or TASK. */
export const scheduleInstance = (s: Schedule): string => (s.store !== undefined ? `${s.task}:${s.store}` : instanceName(s.task, s.level));

function service(kind: UnitKind, config: Config, opts: UnitOptions): string {
  const zrb = (step: UnitKind) =>
    [opts.bin, "systemd", "run", "--step", step, "--config", opts.configPath, "--instance", "%i"].map((w) => (w === "%i" ? w : quoteWord(w))).join(" ");
  const tmp = tmpDirFor(config);
  const { what, instance } = KINDS[kind];
  const exec =
    kind === "backup"
      ? [
          `# Take the snapshot this run sends, then send it; if the snapshot fails nothing is sent.`,
          `ExecStartPre=${zrb("snapshot")}`,
          `ExecStart=${zrb("backup")}`,
        ]
      : [`ExecStart=${zrb(kind)}`];
  return `# Generated by \`zrb systemd install\`; re-run it after changing the config or moving the binary.
# Instance: ${instance}, e.g. zrb-${kind}@${instance === "TASK" ? "photos" : "photos:1"}.service. Local changes belong in a drop-in
# (systemctl edit zrb-${kind}@.service), which a re-install leaves alone.
[Unit]
Description=zrb ${what} of task %i (${instance})
# A failed run starts ${FAILURE_UNIT.replace("@.", "@<this unit>.")}: point it at your notifier.
OnFailure=${FAILURE_UNIT.replace("@.", "@%n.")}
Wants=network-online.target
After=network-online.target zfs.target zfs-import.target zfs-mount.service

[Service]
Type=oneshot
# A full backup can take days; never kill it for running long.
TimeoutStartSec=infinity
# SIGTERM to zrb only (KillMode=mixed): zrb stops its zfs send, saves its resume state and
# releases its send holds and the lock itself, and exits by itself within ${STOP_GRACE_SECONDS} s;
# whatever is left after TimeoutStopSec is SIGKILLed (also safe: state files are atomic).
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=${STOP_TIMEOUT_SEC}s
# Native crypto addons are unpacked into $TMPDIR when zrb starts and /tmp is often noexec:
# use a directory under base_dir (exec allowed, writable below), created by the first
# ExecStartPre. Without it zrb still works, on the wasm/JS fallback (≈ 10× slower).
Environment=${quoteWord(`TMPDIR=${tmp}`)}
ExecStartPre=/bin/mkdir -p -m 0700 ${quoteWord(tmp)}
${exec.join("\n")}
# Credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE…): root-only file, never this unit.
EnvironmentFile=-${ENV_FILE}
# Be a polite neighbour to the NAS's real work.
Nice=10
CPUSchedulingPolicy=batch
IOSchedulingClass=best-effort
IOSchedulingPriority=7

# --- Hardening ---
# Root, but only with CAP_SYS_ADMIN: the ZFS ioctls behind zfs snapshot/send/hold/release
# check exactly that capability (/dev/zfs itself is mode 0666). No CAP_DAC_OVERRIDE, CAP_FOWNER
# or CAP_CHOWN: zrb only reads and writes files root owns (the config, base_dir), so plain
# ownership grants access; a base_dir owned by another user fails loudly (exit 9), not silently.
User=root
CapabilityBoundingSet=CAP_SYS_ADMIN
AmbientCapabilities=
NoNewPrivileges=yes
# The whole file system read-only except base_dir (and local_store when S3 is off, and the
# metrics file's directory when monitoring.metrics_file is set).
ProtectSystem=strict
${[...writablePaths(config).map((p) => `ReadWritePaths=${quoteWord(p)}`), ...optionalWritablePaths(config).map((p) => `ReadWritePaths=${quoteWord(`-${p}`)}`)].join("\n")}
# read-only, not yes: root's ~/.aws (the AWS credential chain) must stay readable.
ProtectHome=read-only
PrivateTmp=yes
# Devices: the usual pseudo-devices plus the ZFS control device.
DevicePolicy=closed
DeviceAllow=/dev/zfs rw
${kind === "drill" ? "# A drill compares zvols by reading their devices (the restored one and the source's clone).\nDeviceAllow=block-zvol r\n" : ""}ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# AF_NETLINK is kept for name resolution: glibc's getaddrinfo (AI_ADDRCONFIG) reads the
# configured address families over netlink.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# Only the system calls of an ordinary service, in the native ABI. A call outside the set kills
# the run (status=31/SYS in systemctl status): loud, and like SIGKILL it leaves a resumable
# state. Proven with OpenZFS 2.3 (the VM tier runs these units); should your zfs need more, a
# drop-in with an empty SystemCallFilter= lifts it (docs/install-nas.md).
SystemCallArchitectures=native
SystemCallFilter=@system-service
${kind === "drill" ? "# A drill mounts and unmounts its throwaway pool (and a clone of the source): the mount calls too.\nSystemCallFilter=@mount\n" : ""}# Not tightened, on purpose: MemoryDenyWriteExecute (the JavaScript JIT needs W+X memory);
# PrivateDevices (its private /dev has no /dev/zfs); PrivateUsers (the ZFS ioctls need the real
# root); ProtectProc=invisible (it would hide another zrb's pid, and the lock would look stale);
# PrivateNetwork/IPAddressDeny (the object store is anywhere).
`;
}

/** The template OnFailure= starts with the failed unit's name as its instance. */
export const FAILURE_UNIT = "zrb-failure@.service";

function failureService(): string {
  return `# Generated by \`zrb systemd install\`. Started by OnFailure= when a zrb-backup@ or zrb-snapshot@
# run fails, with the failed unit's name as its instance (%i). By default it only writes a line to
# the journal. Point it at your notifier with a drop-in, which a re-install leaves alone:
#   systemctl edit zrb-failure@.service
#     [Service]
#     ExecStart=
#     ExecStart=/usr/local/bin/notify-admin "zrb: %i failed on %H"
[Unit]
Description=zrb failure hook for %i

[Service]
Type=oneshot
ExecStart=/bin/echo "zrb: %i failed; see journalctl -u %i"
`;
}

function timer(kind: UnitKind): string {
  const { timer: what, instance } = KINDS[kind];
  return `# Generated by \`zrb systemd install\`. The schedule (OnCalendar=) of each instance is in
# zrb-${kind}@${instance}.timer.d/${SCHEDULE_DROPIN}; the settings here are shared.
[Unit]
Description=zrb ${what} timer for task %i (${instance})

[Timer]
# A run missed while the NAS was off happens at the next boot.
Persistent=true
# Spread runs so several tasks (and several NAS) do not start in the same second.
RandomizedDelaySec=${RANDOM_DELAY}
AccuracySec=1min

[Install]
WantedBy=timers.target
`;
}

function scheduleDropIn(s: Schedule): string {
  const what =
    s.kind === "backup" ? (s.level === 0 ? "full (level 0) backup" : `level-${s.level} backup`) : s.kind === "snapshot" ? `extra level-${s.level} snapshot` : KINDS[s.kind].timer;
  return `# Generated by \`zrb systemd install\`: ${what} of task ${s.task}${s.store !== undefined ? ` in store ${s.store}` : ""}.
[Timer]
OnCalendar=${s.calendar}
`;
}

/** Every file `zrb systemd install` writes for this config, in a stable order. */
export function renderUnits(config: Config, opts: UnitOptions): UnitFile[] {
  const files: UnitFile[] = [
    { path: "zrb-backup@.service", content: service("backup", config, opts) },
    { path: "zrb-backup@.timer", content: timer("backup") },
    { path: "zrb-snapshot@.service", content: service("snapshot", config, opts) },
    { path: "zrb-snapshot@.timer", content: timer("snapshot") },
    { path: "zrb-prune@.service", content: service("prune", config, opts) },
    { path: "zrb-prune@.timer", content: timer("prune") },
    { path: "zrb-verify@.service", content: service("verify", config, opts) },
    { path: "zrb-verify@.timer", content: timer("verify") },
    { path: "zrb-drill@.service", content: service("drill", config, opts) },
    { path: "zrb-drill@.timer", content: timer("drill") },
    { path: FAILURE_UNIT, content: failureService() },
  ];
  for (const s of schedules(config, opts))
    files.push({ path: `zrb-${s.kind}@${scheduleInstance(s)}.timer.d/${SCHEDULE_DROPIN}`, content: scheduleDropIn(s) });
  return files;
}
