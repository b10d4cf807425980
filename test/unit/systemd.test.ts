/**
 * `zrb systemd install|uninstall|run` and the generated units: systemd itself
 * (`systemd-analyze verify`) accepts every unit and schedule, the hardening is there,
 * --dry-run changes nothing, --no-enable writes exactly the expected files, re-installs
 * remove timers of disabled tasks, and contrib/systemd/*.example never drifts from the code.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { STOP_GRACE_SECONDS } from "../../src/util/abort.ts";
import { parseConfig } from "../../src/config/config.ts";
import { parseInstance, quoteWord, renderUnits } from "../../src/systemd/units.ts";
import { run } from "../helpers/rig.ts";
import { ensureBinary, zrb, ZRB_BIN } from "../helpers/zrb.ts";

const ROOT = join(import.meta.dir, "..", "..");
const KEY = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
const HAVE_ANALYZE = !!Bun.which("systemd-analyze");
const SYSTEMD_RUNNING = existsSync("/run/systemd/system");

let tmp: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "zrb-systemd-"));
  await ensureBinary();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function configText(baseDir: string, tasks: { name: string; enabled: boolean; retention?: string }[] = [{ name: "photos", enabled: true }, { name: "old-stuff", enabled: false }], extra = ""): string {
  return [
    `base_dir: ${JSON.stringify(baseDir)}`,
    `age_public_key: ${KEY}`,
    `s3: {enabled: true, bucket: nas-backups, prefix: zrb/}`,
    extra,
    `tasks:`,
    ...tasks.map((t) => `  - {name: ${t.name}, pool: tank, dataset: ${t.name}, enabled: ${t.enabled}${t.retention ? `, retention: ${t.retention}` : ""}}`),
    ``,
  ].join("\n");
}

function writeConfig(dir: string, text: string): string {
  mkdirSync(dir, { recursive: true });
  const p = join(dir, "config.yaml");
  writeFileSync(p, text);
  return p;
}

/** Every file below dir, relative, sorted. */
function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(join(d, e.name)) : out.push(relative(dir, join(d, e.name)));
  };
  walk(dir);
  return out.sort();
}

/**
 * systemd-analyze verify one instance of a template in unitDir. The "PATH:NAME" form is how
 * verify takes an alias (it also means a bare path containing ':' cannot be passed);
 * SYSTEMD_UNIT_PATH makes it read the instance's drop-ins from unitDir.
 */
async function verify(unitDir: string, instanceUnit: string) {
  const template = instanceUnit.replace(/@[^.]*\./, "@.");
  return run(["systemd-analyze", "verify", "--man=no", `${join(unitDir, template)}:${instanceUnit}`], {
    env: { SYSTEMD_UNIT_PATH: `${unitDir}:` },
    allowFail: true,
  });
}

describe("unit text", () => {
  const { config } = parseConfig(configText("/var/lib/zrb"), "/etc/zrb/config.yaml");
  const files = renderUnits(config, { bin: "/usr/local/bin/zrb", configPath: "/etc/zrb/config.yaml", full: "Sun 02:00", incremental: "Mon..Sat 02:30" });
  const get = (p: string) => files.find((f) => f.path === p)!.content;

  test("services carry the hardening, TMPDIR under base_dir, credentials only by EnvironmentFile", () => {
    for (const kind of ["backup", "snapshot", "prune", "verify", "drill"]) {
      const s = get(`zrb-${kind}@.service`);
      for (const line of [
        "Type=oneshot",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/zrb",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_SYS_ADMIN",
        "ProtectHome=read-only",
        "DevicePolicy=closed",
        "DeviceAllow=/dev/zfs rw",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "Environment=TMPDIR=/var/lib/zrb/tmp",
        "ExecStartPre=/bin/mkdir -p -m 0700 /var/lib/zrb/tmp",
        "EnvironmentFile=-/etc/zrb/env",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        `TimeoutStopSec=${STOP_GRACE_SECONDS + 40}s`,
        "TimeoutStartSec=infinity",
        "Nice=10",
      ])
        expect(s.split("\n")).toContain(line);
      expect(s).not.toMatch(/AWS_(ACCESS|SECRET)[A-Z_]*=/);
      expect(s).not.toContain("MemoryDenyWriteExecute=yes");
    }
    const b = get("zrb-backup@.service").split("\n");
    const pre = b.filter((l) => l.startsWith("ExecStartPre="));
    // TMPDIR exists before zrb starts; the snapshot is taken before the backup sends it.
    expect(pre).toEqual([
      "ExecStartPre=/bin/mkdir -p -m 0700 /var/lib/zrb/tmp",
      "ExecStartPre=/usr/local/bin/zrb systemd run --step snapshot --config /etc/zrb/config.yaml --instance %i",
    ]);
    expect(b).toContain("ExecStart=/usr/local/bin/zrb systemd run --step backup --config /etc/zrb/config.yaml --instance %i");
    expect(get("zrb-snapshot@.service").split("\n").filter((l) => l.startsWith("ExecStart="))).toEqual([
      "ExecStart=/usr/local/bin/zrb systemd run --step snapshot --config /etc/zrb/config.yaml --instance %i",
    ]);
  });

  test("timers are persistent with a randomized delay; schedules are per-instance drop-ins for enabled tasks only", () => {
    for (const kind of ["backup", "snapshot", "prune", "verify", "drill"]) {
      const t = get(`zrb-${kind}@.timer`).split("\n");
      expect(t).toContain("Persistent=true");
      expect(t.some((l) => /^RandomizedDelaySec=\S+/.test(l))).toBe(true);
      expect(t).toContain("WantedBy=timers.target");
    }
    expect(files.map((f) => f.path).filter((p) => p.includes(".d/"))).toEqual([
      "zrb-backup@photos:0.timer.d/zrb-schedule.conf",
      "zrb-backup@photos:1.timer.d/zrb-schedule.conf",
      "zrb-verify@photos.timer.d/zrb-schedule.conf",
    ]);
    expect(get("zrb-backup@photos:0.timer.d/zrb-schedule.conf")).toContain("OnCalendar=Sun 02:00\n");
    expect(get("zrb-backup@photos:1.timer.d/zrb-schedule.conf")).toContain("OnCalendar=Mon..Sat 02:30\n");
  });

  test("a failed run starts zrb-failure@<the unit>.service, a journal line until the user points it at a notifier", () => {
    for (const kind of ["backup", "snapshot", "prune", "verify", "drill"]) expect(get(`zrb-${kind}@.service`).split("\n")).toContain("OnFailure=zrb-failure@%n.service");
    const f = get("zrb-failure@.service");
    expect(f.split("\n")).toContain("Type=oneshot");
    expect(f).toContain('ExecStart=/bin/echo "zrb: %i failed; see journalctl -u %i"');
    expect(f).toContain("systemctl edit zrb-failure@.service"); // how to point it elsewhere, in the file itself
  });

  test("a prune timer for each enabled task with a retention policy, a weekly rotating verify for each enabled task", () => {
    const { config: c } = parseConfig(
      configText("/var/lib/zrb", [
        { name: "photos", enabled: true, retention: "{keep_daily: 7}" },
        { name: "docs", enabled: true },
        { name: "old", enabled: false, retention: "{keep_daily: 7}" },
      ]),
      "/c.yaml",
    );
    const fs = renderUnits(c, { bin: "/b", configPath: "/c.yaml", full: "weekly", incremental: "daily" });
    const at = (p: string) => fs.find((f) => f.path === p)?.content;
    expect(fs.map((f) => f.path).filter((p) => /^zrb-(prune|verify)@\w+\.timer\.d\//.test(p))).toEqual([
      "zrb-prune@photos.timer.d/zrb-schedule.conf",
      "zrb-verify@photos.timer.d/zrb-schedule.conf",
      "zrb-verify@docs.timer.d/zrb-schedule.conf",
    ]);
    expect(at("zrb-prune@photos.timer.d/zrb-schedule.conf")).toContain("OnCalendar=*-*-* 06:00:00\n");
    expect(at("zrb-verify@docs.timer.d/zrb-schedule.conf")).toContain("OnCalendar=Wed *-*-* 12:00:00\n");
    expect(at("zrb-prune@.service")).toContain("\nExecStart=/b systemd run --step prune --config /c.yaml --instance %i\n");
    expect(at("zrb-verify@.service")).toContain("\nExecStart=/b systemd run --step verify --config /c.yaml --instance %i\n");
    const custom = renderUnits(c, { bin: "/b", configPath: "/c.yaml", full: "weekly", incremental: "daily", prune: "07:15", verify: "monthly" });
    expect(custom.find((f) => f.path === "zrb-prune@photos.timer.d/zrb-schedule.conf")!.content).toContain("OnCalendar=07:15\n");
    expect(custom.find((f) => f.path === "zrb-verify@photos.timer.d/zrb-schedule.conf")!.content).toContain("OnCalendar=monthly\n");
  });

  test("a monthly drill for each enabled task only when drill.private_key is set (a drill decrypts); it may read zvol devices; drill.dir elsewhere is writable", () => {
    expect(files.some((f) => f.path.startsWith("zrb-drill@photos"))).toBe(false);
    expect(get("zrb-backup@.service")).not.toContain("block-zvol");
    const { config: c } = parseConfig(configText("/var/lib/zrb") + "drill:\n  private_key: /root/zrb.key\n  dir: /scratch/drill\n", "/c.yaml");
    const fs = renderUnits(c, { bin: "/b", configPath: "/c.yaml", full: "weekly", incremental: "daily" });
    const at = (p: string) => fs.find((f) => f.path === p)!.content;
    expect(at("zrb-drill@photos.timer.d/zrb-schedule.conf")).toContain("OnCalendar=*-*-01 04:00:00\n");
    const d = at("zrb-drill@.service").split("\n");
    expect(d).toContain("ExecStart=/b systemd run --step drill --config /c.yaml --instance %i");
    expect(d).toContain("DeviceAllow=block-zvol r");
    expect(d).toContain("ReadWritePaths=/scratch/drill");
    const custom = renderUnits(c, { bin: "/b", configPath: "/c.yaml", full: "weekly", incremental: "daily", drill: "quarterly" });
    expect(custom.find((f) => f.path === "zrb-drill@photos.timer.d/zrb-schedule.conf")!.content).toContain("OnCalendar=quarterly\n");
  });

  test("local_store outside base_dir is writable too when S3 is off", () => {
    const { config: c } = parseConfig(configText("/var/lib/zrb").replace("enabled: true, bucket: nas-backups, prefix: zrb/", "enabled: false") + "local_store: /mnt/backup/zrb\n", "/c.yaml");
    const s = renderUnits(c, { bin: "/b", configPath: "/c.yaml", full: "weekly", incremental: "daily" })[0]!.content.split("\n");
    expect(s).toContain("ReadWritePaths=/var/lib/zrb");
    expect(s).toContain("ReadWritePaths=/mnt/backup/zrb");
  });

  test("the metrics file's directory is writable if it exists ('-': zrb never creates node_exporter's directory)", () => {
    const withMetrics = (f: string) => parseConfig(configText("/var/lib/zrb") + `monitoring:\n  metrics_file: ${f}\n`, "/c.yaml").config;
    const lines = (c: ReturnType<typeof withMetrics>) => renderUnits(c, { bin: "/b", configPath: "/c.yaml", full: "weekly", incremental: "daily" })[0]!.content.split("\n");
    const s = lines(withMetrics("/var/lib/node_exporter/textfile_collector/zrb.prom"));
    expect(s).toContain("ReadWritePaths=-/var/lib/node_exporter/textfile_collector");
    expect(s.filter((l) => l.startsWith("ReadWritePaths="))).toEqual(["ReadWritePaths=/var/lib/zrb", "ReadWritePaths=-/var/lib/node_exporter/textfile_collector"]);
    // inside base_dir it is writable already
    expect(lines(withMetrics("/var/lib/zrb/metrics/zrb.prom")).filter((l) => l.startsWith("ReadWritePaths="))).toEqual(["ReadWritePaths=/var/lib/zrb"]);
  });

  test("instance names and quoting", () => {
    expect(parseInstance("photos:1")).toEqual({ task: "photos", level: 1 });
    expect(parseInstance("my.task-2_x:0")).toEqual({ task: "my.task-2_x", level: 0 });
    for (const bad of ["photos", "photos:", ":1", "a/b:1", "photos:1:2", "photos:x", "photos:123"]) expect(parseInstance(bad)).toBeNull();
    expect(quoteWord("/usr/local/bin/zrb")).toBe("/usr/local/bin/zrb");
    expect(quoteWord("/srv/my backups")).toBe('"/srv/my backups"');
    expect(quoteWord("/a%b$c")).toBe("/a%%b$$c");
    expect(quoteWord('/x"y\\z')).toBe('"/x\\"y\\\\z"');
  });
});

describe("zrb systemd install / uninstall", () => {
  test.skipIf(!HAVE_ANALYZE)("the installed units pass systemd-analyze verify (real binary in ExecStart, a path with a space)", async () => {
    const dir = join(tmp, "verify");
    const base = join(dir, "state dir");
    const prom = join(dir, "textfile collector", "zrb.prom"); // does not exist: the '-' must keep the unit valid
    const cfg = writeConfig(dir, configText(base, [{ name: "photos", enabled: true, retention: "{keep_daily: 7}" }]) + `monitoring:\n  metrics_file: "${prom}"\ndrill:\n  private_key: /root/zrb.key\n`);
    const units = join(dir, "units");
    const r = await zrb(["systemd", "install", "--config", cfg, "--bin", ZRB_BIN, "--unit-dir", units, "--no-enable", "--snapshot", "hourly"]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(units, "zrb-backup@.service"), "utf8")).toContain(`ReadWritePaths="${base}"`);
    expect(readFileSync(join(units, "zrb-backup@.service"), "utf8")).toContain(`ReadWritePaths="-${join(dir, "textfile collector")}"`);
    for (const u of [
      "zrb-backup@photos:0.timer",
      "zrb-backup@photos:1.timer",
      "zrb-snapshot@photos:1.timer",
      "zrb-backup@photos:0.service",
      "zrb-backup@photos:1.service",
      "zrb-snapshot@photos:1.service",
      "zrb-prune@photos.timer",
      "zrb-prune@photos.service",
      "zrb-verify@photos.timer",
      "zrb-verify@photos.service",
      "zrb-drill@photos.timer",
      "zrb-drill@photos.service",
    ]) {
      const v = await verify(units, u);
      expect({ unit: u, code: v.code, out: (v.stdout + v.stderr).trim() }).toEqual({ unit: u, code: 0, out: "" });
    }
    // The failure hook's instance is the failed unit's full name (%n: '@' and ':' in it).
    const hook = "zrb-failure@zrb-backup@photos:0.service.service";
    const v = await run(["systemd-analyze", "verify", "--man=no", `${join(units, "zrb-failure@.service")}:${hook}`], { env: { SYSTEMD_UNIT_PATH: `${units}:` }, allowFail: true });
    expect({ unit: hook, code: v.code, out: (v.stdout + v.stderr).trim() }).toEqual({ unit: hook, code: 0, out: "" });
    // The check has teeth: a timer without a schedule, and a bad calendar, are refused.
    expect((await verify(units, "zrb-backup@nosuchtask:0.timer")).code).not.toBe(0);
    writeFileSync(join(units, "zrb-backup@photos:0.timer.d", "zrb-schedule.conf"), "[Timer]\nOnCalendar=Sun 25:99\n");
    expect((await verify(units, "zrb-backup@photos:0.timer")).code).not.toBe(0);
  });

  test("--dry-run prints every file and the systemctl commands, and changes nothing", async () => {
    const dir = join(tmp, "dry");
    const base = join(dir, "base");
    const cfg = writeConfig(dir, configText(base));
    const units = join(dir, "units");
    const r = await zrb(["systemd", "install", "--config", cfg, "--bin", ZRB_BIN, "--unit-dir", units, "--dry-run"]);
    expect(r.code).toBe(0);
    for (const p of [
      "zrb-backup@.service",
      "zrb-backup@.timer",
      "zrb-snapshot@.service",
      "zrb-snapshot@.timer",
      "zrb-failure@.service",
      "zrb-backup@photos:0.timer.d/zrb-schedule.conf",
      "zrb-backup@photos:1.timer.d/zrb-schedule.conf",
    ])
      expect(r.stdout).toContain(`# ${join(units, p)}\n`);
    expect(r.stdout).toContain("ProtectSystem=strict");
    expect(r.stdout).toContain(`# would create directory ${base} (mode 0700)`);
    expect(r.stdout).toContain("systemctl daemon-reload\n");
    expect(r.stdout).toContain("systemctl enable --now zrb-backup@photos:0.timer zrb-backup@photos:1.timer zrb-verify@photos.timer\n");
    expect(existsSync(units)).toBe(false);
    expect(existsSync(base)).toBe(false);
    expect(tree(dir)).toEqual(["config.yaml"]);
  });

  test("--no-enable writes exactly the expected files and base_dir; a re-install drops timers of a disabled task, keeps the user's drop-ins", async () => {
    const dir = join(tmp, "noenable");
    const base = join(dir, "base");
    const cfg = writeConfig(dir, configText(base, [{ name: "photos", enabled: true }, { name: "docs", enabled: true }, { name: "old-stuff", enabled: false }]));
    const units = join(dir, "units");
    const r = await zrb(["systemd", "install", "--config", cfg, "--bin", ZRB_BIN, "--unit-dir", units, "--no-enable", "--full", "Sat 03:00", "--incremental", "daily"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("systemctl enable --now zrb-backup@photos:0.timer zrb-backup@photos:1.timer zrb-backup@docs:0.timer zrb-backup@docs:1.timer");
    expect(tree(units)).toEqual([
      "zrb-backup@.service",
      "zrb-backup@.timer",
      "zrb-backup@docs:0.timer.d/zrb-schedule.conf",
      "zrb-backup@docs:1.timer.d/zrb-schedule.conf",
      "zrb-backup@photos:0.timer.d/zrb-schedule.conf",
      "zrb-backup@photos:1.timer.d/zrb-schedule.conf",
      "zrb-drill@.service",
      "zrb-drill@.timer",
      "zrb-failure@.service",
      "zrb-prune@.service",
      "zrb-prune@.timer",
      "zrb-snapshot@.service",
      "zrb-snapshot@.timer",
      "zrb-verify@.service",
      "zrb-verify@.timer",
      "zrb-verify@docs.timer.d/zrb-schedule.conf",
      "zrb-verify@photos.timer.d/zrb-schedule.conf",
    ]);
    expect(readFileSync(join(units, "zrb-backup@docs:0.timer.d/zrb-schedule.conf"), "utf8")).toContain("OnCalendar=Sat 03:00\n");
    expect(existsSync(join(base, "tmp"))).toBe(true);
    // The user's own override next to ours survives everything.
    writeFileSync(join(units, "zrb-backup@docs:1.timer.d", "override.conf"), "[Timer]\nRandomizedDelaySec=1h\n");

    writeFileSync(cfg, configText(base, [{ name: "photos", enabled: true }, { name: "docs", enabled: false }]));
    const again = await zrb(["systemd", "install", "--config", cfg, "--bin", ZRB_BIN, "--unit-dir", units, "--no-enable"]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("removed zrb-backup@docs:0.timer");
    expect(again.stderr).toContain("removed zrb-verify@docs.timer");
    expect(tree(units)).toEqual([
      "zrb-backup@.service",
      "zrb-backup@.timer",
      "zrb-backup@docs:1.timer.d/override.conf",
      "zrb-backup@photos:0.timer.d/zrb-schedule.conf",
      "zrb-backup@photos:1.timer.d/zrb-schedule.conf",
      "zrb-drill@.service",
      "zrb-drill@.timer",
      "zrb-failure@.service",
      "zrb-prune@.service",
      "zrb-prune@.timer",
      "zrb-snapshot@.service",
      "zrb-snapshot@.timer",
      "zrb-verify@.service",
      "zrb-verify@.timer",
      "zrb-verify@photos.timer.d/zrb-schedule.conf",
    ]);

    const dry = await zrb(["systemd", "uninstall", "--unit-dir", units, "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`# would remove ${join(units, "zrb-backup@photos:0.timer.d/zrb-schedule.conf")}`);
    expect(dry.stdout).toContain("systemctl disable --now zrb-backup@photos:0.timer zrb-backup@photos:1.timer zrb-verify@photos.timer\n");
    expect(tree(units).length).toBe(15);

    const un = await zrb(["systemd", "uninstall", "--unit-dir", units, "--no-systemctl"]);
    expect(un.code).toBe(0);
    expect(tree(units)).toEqual(["zrb-backup@docs:1.timer.d/override.conf"]);
    expect(existsSync(join(base, "tmp"))).toBe(true); // state is not the installer's to delete
  });

  test("a relative base_dir is a config error and nothing is written", async () => {
    const dir = join(tmp, "relative");
    const cfg = writeConfig(dir, configText("var/lib/zrb"));
    const r = await zrb(["systemd", "install", "--config", cfg, "--bin", ZRB_BIN, "--unit-dir", join(dir, "units"), "--no-enable"], { allowFail: true });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("base_dir must be an absolute path");
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(tree(dir)).toEqual(["config.yaml"]);
  });

  test("no enabled task: templates only, and a warning", async () => {
    const dir = join(tmp, "none");
    const cfg = writeConfig(dir, configText(join(dir, "base"), [{ name: "photos", enabled: false }]));
    const r = await zrb(["systemd", "install", "--config", cfg, "--bin", ZRB_BIN, "--unit-dir", join(dir, "units"), "--no-enable"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("no task in");
    expect(tree(join(dir, "units"))).toEqual([
      "zrb-backup@.service",
      "zrb-backup@.timer",
      "zrb-drill@.service",
      "zrb-drill@.timer",
      "zrb-failure@.service",
      "zrb-prune@.service",
      "zrb-prune@.timer",
      "zrb-snapshot@.service",
      "zrb-snapshot@.timer",
      "zrb-verify@.service",
      "zrb-verify@.timer",
    ]);
  });

  test("bad flags are one-line usage errors before anything is written", async () => {
    const dir = join(tmp, "flags");
    const cfg = writeConfig(dir, configText(join(dir, "base")));
    const units = join(dir, "units");
    const cases: [string[], string][] = [
      [["--bin", "zrb"], "--bin must be an absolute path"],
      [["--bin", join(dir, "nope")], "does not exist"],
      [["--unit-dir", "units"], "--unit-dir must be an absolute path"],
      ...(HAVE_ANALYZE ? [[["--full", "Sun 25:99"], "is not a systemd calendar expression"] as [string[], string]] : []),
    ];
    for (const [extra, msg] of cases) {
      const base = ["--bin", ZRB_BIN, "--unit-dir", units].filter((_, i, a) => !extra.includes(a[i - (i % 2)]!));
      const r = await zrb(["systemd", "install", "--config", cfg, ...base, "--no-enable", ...extra], { allowFail: true });
      expect({ extra, code: r.code }).toEqual({ extra, code: 2 });
      expect(r.stderr).toContain(msg);
      expect(r.stderr.trim().split("\n").length).toBe(1);
    }
    expect(tree(dir)).toEqual(["config.yaml"]);
  });

  test.skipIf(SYSTEMD_RUNNING)("without a running systemd, install says so, suggests --no-enable and writes nothing", async () => {
    const dir = join(tmp, "nosystemd");
    const cfg = writeConfig(dir, configText(join(dir, "base")));
    const r = await zrb(["systemd", "install", "--config", cfg, "--bin", ZRB_BIN, "--unit-dir", join(dir, "units")], { allowFail: true });
    expect(r.code).toBe(11);
    expect(r.stderr).toMatch(/^zrb: error: (systemctl not found|systemd is not running).*--no-enable/);
    expect(tree(dir)).toEqual(["config.yaml"]);
  });

  test("`zrb systemd run` splits TASK:LEVEL and runs the ordinary command", async () => {
    const dir = join(tmp, "run");
    const cfg = writeConfig(dir, configText(join(dir, "base")));
    const bad = await zrb(["systemd", "run", "--step", "backup", "--config", cfg, "--instance", "photos"], { allowFail: true });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--instance must be TASK:LEVEL");
    const step = await zrb(["systemd", "run", "--step", "send", "--config", cfg, "--instance", "photos:0"], { allowFail: true });
    expect(step.code).toBe(2);
    // Reaches `zrb backup --task old-stuff --level 1`, which refuses the disabled task.
    const dis = await zrb(["systemd", "run", "--step", "backup", "--config", cfg, "--instance", "old-stuff:1"], { allowFail: true });
    expect(dis.code).toBe(3);
    expect(dis.stderr).toContain("task old-stuff is disabled");
    // prune and verify instances are a task name; prune reaches `zrb prune --task photos`, which wants a policy.
    const lvl = await zrb(["systemd", "run", "--step", "prune", "--config", cfg, "--instance", "photos:1"], { allowFail: true });
    expect(lvl.code).toBe(2);
    expect(lvl.stderr).toContain("--instance must be a task name (as in zrb-prune@photos.service)");
    const pr = await zrb(["systemd", "run", "--step", "prune", "--config", cfg, "--instance", "photos"], { allowFail: true });
    expect(pr.code).toBe(2);
    expect(pr.stderr).toContain("no retention policy for task photos");
  });
});

test("contrib/systemd/*.example match what the code generates (a drift fails with the diff)", async () => {
  const { config } = parseConfig(configText("/var/lib/zrb", [{ name: "photos", enabled: true, retention: "{keep_daily: 7, keep_weekly: 4, keep_monthly: 12}" }]), "/etc/zrb/config.yaml");
  const files = renderUnits(config, {
    bin: "/usr/local/bin/zrb",
    configPath: "/etc/zrb/config.yaml",
    full: "Sun *-*-* 02:00:00",
    incremental: "Mon..Sat *-*-* 02:30:00",
  });
  const dir = join(ROOT, "contrib", "systemd");
  const update = process.env.ZRB_UPDATE_CONTRIB === "1";
  const drift: string[] = [];
  for (const f of files) {
    const p = join(dir, `${f.path}.example`);
    if (existsSync(p) && readFileSync(p, "utf8") === f.content) continue;
    if (update) {
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, f.content);
      continue;
    }
    const generated = join(tmp, `generated-${f.path}`);
    writeFileSync(generated, f.content);
    const d = await run(["diff", "-u", "--label", relative(ROOT, p), "--label", "generated", existsSync(p) ? p : "/dev/null", generated], { allowFail: true });
    drift.push(d.stdout);
  }
  // The tracked files are never rewritten here (a rerun would pass): after a deliberate change
  // to src/systemd/units.ts, regenerate them with ZRB_UPDATE_CONTRIB=1 and commit them.
  if (drift.length) console.error(`contrib/systemd/*.example differ from the generated units:\n${drift.join("\n")}`);
  expect(drift).toEqual([]);
});

describe("several stores", () => {
  const text = (base: string) =>
    [
      `base_dir: ${base}`,
      `age_public_key: ${KEY}`,
      `stores:`,
      `  - {name: hot, s3: {bucket: nas-hot}, retention: {keep_daily: 14}}`,
      `  - {name: cold, s3: {bucket: nas-cold}, retention: {keep_monthly: 24}}`,
      `  - {name: usb, local_store: /mnt/usb/zrb}`,
      `tasks:`,
      `  - {name: photos, pool: tank, dataset: photos, enabled: true}`,
      ``,
    ].join("\n");
  const opts = { bin: "/usr/local/bin/zrb", configPath: "/etc/zrb/config.yaml", full: "Sun 02:00", incremental: "Mon..Sat 02:30", prune: "*-*-* 06:00:00" };
  const timers = (files: { path: string; content: string }[]) =>
    files.filter((f) => f.path.startsWith("zrb-prune@") && f.path.includes(".timer.d/")).map((f) => [f.path.split(".timer.d/")[0], /OnCalendar=(.*)/.exec(f.content)![1]]);

  test("one prune timer per task (every store by its own retention); with --prune-store, one per store that has a retention", () => {
    const { config } = parseConfig(text("/var/lib/zrb"), "/etc/zrb/config.yaml");
    expect(timers(renderUnits(config, opts))).toEqual([["zrb-prune@photos", "*-*-* 06:00:00"]]);
    const files = renderUnits(config, { ...opts, pruneStores: { cold: "monthly" } });
    // usb has no retention of its own and the task none: it is not pruned.
    expect(timers(files)).toEqual([
      ["zrb-prune@photos:hot", "*-*-* 06:00:00"],
      ["zrb-prune@photos:cold", "monthly"],
    ]);
    expect(files.find((f) => f.path.startsWith("zrb-prune@photos:cold"))!.content).toContain("of task photos in store cold");
    // The units may write every local store outside base_dir.
    expect(files.find((f) => f.path === "zrb-backup@.service")!.content).toMatch(/ReadWritePaths=.*\/mnt\/usb\/zrb/);
  });

  test("zrb systemd run --step prune --instance TASK:STORE prunes that store only; a bad --prune-store is refused", async () => {
    const base = join(tmp, "stores-base");
    mkdirSync(base, { recursive: true, mode: 0o700 });
    const cfg = join(tmp, "stores.yaml");
    writeFileSync(cfg, text(base));
    const r = await zrb(["systemd", "run", "--step", "prune", "--config", cfg, "--instance", "photos:usb"], { allowFail: true });
    // usb has no retention: the one store's prune says so, naming the store (and nothing about hot or cold).
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("no retention policy for task photos in store usb");
    const bad = await zrb(["systemd", "install", "--config", cfg, "--unit-dir", join(tmp, "u"), "--no-enable", "--bin", ZRB_BIN, "--prune-store", "warm=monthly"], { allowFail: true });
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining("--prune-store must be STORE=CALENDAR with a store of")]);
  });
});
