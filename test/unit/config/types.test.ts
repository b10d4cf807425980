/**
 * The schema combinators, on a throwaway schema shaped like the keys the next issues add
 * (retention per task with a nested `local`, monitoring, s3.request_timeout, s3.bandwidth_limit,
 * s3.object_lock, signing_key, tasks[].recursive/exclude/send_properties): the inferred type,
 * values and defaults, one-line errors at file:line:col, suggestions for misplaced keys, the
 * derived defaults and the generated docs. Nothing here is zrb's real schema.
 */
import { describe, expect, test } from "bun:test";
import { renderReference } from "../../../src/config/doc.ts";
import { Reader } from "../../../src/config/read.ts";
import { absolutePath, bool, duration, enumOf, int, rate, str } from "../../../src/config/scalars.ts";
import { type Infer, list, object } from "../../../src/config/types.ts";
import { defaultsOf, homesOf, keysOf } from "../../../src/config/walk.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const MiB = 1024 ** 2;

const keep = () => int(1, 100_000).optional().doc("How many to keep.");
const KEEP = {
  keep_last: keep(),
  keep_hourly: keep(),
  keep_daily: keep(),
  keep_weekly: keep(),
  keep_monthly: keep(),
  keep_yearly: keep(),
  keep_within: duration({ min: MIN, max: 100 * 365 * DAY }).optional().doc("Keep everything this young."),
};
const RETENTION = object({ ...KEEP, local: object(KEEP).optional().doc("The same rules for local snapshots.") });

const TASK = object({
  name: str().required("a name").doc("Name."),
  recursive: bool().default(false).doc("Child datasets too."),
  exclude: list(str().named("glob"), { example: "e.g. [tmp, cache/*]", itemHint: "a glob such as tmp/*" }).default([]).doc("Globs left out."),
  send_properties: bool().default(false).doc("zfs send -p."),
  retention: RETENTION.optional().doc("Which backups to keep."),
});

const SCHEMA = object({
  signing_key: absolutePath().optional().field("signingKeyFile").doc("The signing key file."),
  monitoring: object({
    metrics_file: absolutePath().optional().doc("Prometheus textfile."),
    ping_url: str()
      .check((u) => (/^https?:\/\//.test(u) ? undefined : "must be an http(s) URL"))
      .optional()
      .doc("Pinged after each run."),
  })
    .default()
    .doc("Monitoring.", { default: "see below" }),
  s3: object({
    request_timeout: duration({ min: 1000, max: 3600_000 }).default(MIN).doc("Per request."),
    bandwidth_limit: rate({ min: 1024, max: 1024 ** 4 }).optional().doc("Upload rate limit."),
    object_lock: object({
      mode: enumOf(["GOVERNANCE", "COMPLIANCE"]).required("GOVERNANCE or COMPLIANCE").doc("Lock mode."),
      days: int(1, 36_500).required("how many days each object stays locked").doc("Days."),
    })
      .optional()
      .doc("Object lock."),
  })
    .default()
    .doc("The store.", { default: "see below" }),
  tasks: list(TASK, { example: "one per dataset", itemHint: "a name", min: 1, minMessage: "must list at least one task" })
    .required("a list of tasks")
    .doc("Tasks."),
});
type Throwaway = Infer<typeof SCHEMA>;

/** The type the combinators must infer, written out by hand. */
interface Keep {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  keepWithin?: number;
}
interface Expected {
  signingKeyFile?: string;
  monitoring: { metricsFile?: string; pingUrl?: string };
  s3: { requestTimeout: number; bandwidthLimit?: number; objectLock?: { mode: "GOVERNANCE" | "COMPLIANCE"; days: number } };
  tasks: { name: string; recursive: boolean; exclude: string[]; sendProperties: boolean; retention?: Keep & { local?: Keep } }[];
}
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameType: Same<Throwaway, Expected> = true;

const F = "/t.yaml";
function read(text: string): { config: Throwaway; warnings: string[] } {
  const r = new Reader(text, F, homesOf(SCHEMA));
  return { config: SCHEMA.read(r.root())!, warnings: r.warnings };
}
function fails(text: string): string {
  try {
    read(text);
  } catch (e) {
    expect(e).toBeInstanceOf(ZrbError);
    expect((e as ZrbError).exitCode).toBe(ExitCode.CONFIG);
    return (e as Error).message;
  }
  throw new Error("expected the document to fail");
}

describe("combinators, on a throwaway schema", () => {
  test("the Config type is inferred (camelCase names or .field's, optional keys optional)", () => {
    expect(sameType).toBe(true);
  });

  test("values: durations in ms, rates in bytes/s, nested optional objects inside list items", () => {
    const { config, warnings } = read(`signing_key: /etc/zrb//sign.key
monitoring:
  ping_url: https://hc.example/abc
s3:
  request_timeout: 90s
  bandwidth_limit: 20MiB/s
  object_lock: {mode: COMPLIANCE, days: 30}
tasks:
  - name: photos
    recursive: true
    exclude: [tmp, "cache/*"]
    retention:
      keep_daily: 7
      keep_within: 2w
      local:
        keep_last: 24
`);
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      signingKeyFile: "/etc/zrb/sign.key",
      monitoring: { pingUrl: "https://hc.example/abc" },
      s3: { requestTimeout: 90_000, bandwidthLimit: 20 * MiB, objectLock: { mode: "COMPLIANCE", days: 30 } },
      tasks: [
        {
          name: "photos",
          recursive: true,
          exclude: ["tmp", "cache/*"],
          sendProperties: false,
          retention: { keepDaily: 7, keepWithin: 14 * DAY, local: { keepLast: 24 } },
        },
      ],
    });
  });

  test("defaults: absent sections take their fields' defaults; absent optional keys are left out", () => {
    const { config } = read("tasks: [{name: a}]\n");
    expect(config).toEqual({ monitoring: {}, s3: { requestTimeout: MIN }, tasks: [{ name: "a", recursive: false, exclude: [], sendProperties: false }] });
    expect("retention" in config.tasks[0]!).toBe(false);
    expect("objectLock" in config.s3).toBe(false);
    expect(defaultsOf(SCHEMA)).toEqual({ monitoring: {}, s3: { requestTimeout: MIN } });
  });

  test("errors: one line at file:line:col naming the key path and the expected form", () => {
    expect(fails("s3:\n  request_timeout: 90\ntasks: [{name: a}]\n")).toBe(`${F}:2:20: s3.request_timeout must be a duration like 30m, 24h or 7d, got "90"`);
    expect(fails("s3:\n  request_timeout: 2h\ntasks: [{name: a}]\n")).toBe(`${F}:2:20: s3.request_timeout must be from 1s to 1h, got "2h"`);
    expect(fails("s3:\n  bandwidth_limit: 20MiB\ntasks: [{name: a}]\n")).toBe(`${F}:2:20: s3.bandwidth_limit must be a rate such as 20MiB/s, got "20MiB"`);
    expect(fails("s3:\n  bandwidth_limit: 20MB/s\ntasks: [{name: a}]\n")).toBe(
      `${F}:2:20: s3.bandwidth_limit uses the ambiguous unit MB in "20MB"; write 20MiB (sizes are 1024-based: B, KiB, MiB, GiB, TiB)`,
    );
    expect(fails("s3:\n  object_lock: {mode: governance, days: 1}\ntasks: [{name: a}]\n")).toBe(
      `${F}:2:23: s3.object_lock.mode must be one of: GOVERNANCE, COMPLIANCE; got "governance"; did you mean GOVERNANCE?`,
    );
    expect(fails("s3:\n  object_lock: {mode: GOVERNANCE}\ntasks: [{name: a}]\n")).toBe(
      `${F}:2:16: s3.object_lock.days is required (how many days each object stays locked)`,
    );
    expect(fails("tasks:\n  - name: a\n    retention:\n      local: {keep_within: 1y}\n")).toBe(
      `${F}:4:28: tasks[0].retention.local.keep_within must be a duration like 30m, 24h or 7d, got "1y"; months and years vary in length, so write days or weeks (30d, 365d, 52w)`,
    );
    expect(fails("tasks:\n  - name: a\n    exclude: [tmp, ~]\n")).toBe(`${F}:3:20: tasks[0].exclude[1] is empty; give a glob such as tmp/*`);
    expect(fails("monitoring:\n  ping_url: ftp://x\ntasks: [{name: a}]\n")).toBe(`${F}:2:13: monitoring.ping_url must be an http(s) URL`);
    expect(fails("tasks: []\n")).toBe(`${F}:1:8: tasks must list at least one task`);
  });

  test("unknown keys warn with a suggestion, also for a key at the wrong level", () => {
    const { warnings } = read("ping_url: https://x.example\ntasks:\n  - name: a\n    keep_daily: 3\n    retention:\n      local: {keep_lst: 2}\n");
    expect(warnings).toEqual([
      `unknown key ping_url in ${F}:1:1 (ignored); did you mean monitoring.ping_url?`,
      `unknown key tasks[0].keep_daily in ${F}:4:5 (ignored); did you mean tasks[0].retention.keep_daily?`,
      `unknown key tasks[0].retention.local.keep_lst in ${F}:6:15 (ignored); did you mean tasks[0].retention.local.keep_last?`,
    ]);
    expect(keysOf(SCHEMA).map((k) => k.path)).toContain("tasks[].retention.local.keep_within");
  });

  test("docs: every key gets a row with its type and default", () => {
    const md = renderReference(SCHEMA);
    expect(md).toContain("| `s3.request_timeout` | duration | `1m` | Per request. |");
    expect(md).toContain("| `s3.bandwidth_limit` | rate | — | Upload rate limit. |");
    expect(md).toContain("| `s3.object_lock.mode` | `GOVERNANCE` \\| `COMPLIANCE` | **required** | Lock mode. |");
    expect(md).toContain("| `tasks[].exclude` | list of globs | `[]` | Globs left out. |");
    expect(md).toContain("| `tasks[].retention.local.keep_within` | duration | — | Keep everything this young. |");
    expect(md).toContain("### `monitoring`");
  });
});
