/** Several stores per task (issue 25): the `stores` list, `s3` as the store `default`, the views, the hold tags. */
import { describe, expect, test } from "bun:test";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { parseConfig } from "../../../src/config/config.ts";
import { DEFAULT_STORE, storeView, storesOf, taskStores } from "../../../src/config/stores.ts";
import { holdTags } from "../../../src/pipeline/backup/holds.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const KEY = await identityToRecipient(await generateIdentity());
const F = "/etc/zrb.yaml";
const head = `base_dir: /var/lib/zrb\nage_public_key: ${KEY}\n`;
const TASKS = "tasks:\n  - name: home\n    pool: tank\n    dataset: home\n    enabled: true\n    retention: {keep_last: 3}\n";
const TWO = `stores:
  - name: hot
    s3: {bucket: hot-bucket, endpoint: "http://127.0.0.1:7480", storage_class: {backup_data: [STANDARD]}}
    retention: {keep_daily: 14}
  - name: cold
    s3: {bucket: cold-bucket, region: eu-west-1, object_lock: {mode: GOVERNANCE, days: 30}, bandwidth_limit: 5MiB/s}
    credentials: {access_key_id_env: COLD_KEY_ID, secret_access_key_env: COLD_SECRET}
  - name: disk
    local_store: /mnt/usb/zrb
`;

/** The one-line config error (exit 3) that parsing `text` ends with. */
function err(text: string): string {
  const e = (() => {
    try {
      return parseConfig(text, F);
    } catch (x) {
      return x;
    }
  })() as ZrbError;
  expect([e instanceof ZrbError, e.exitCode, e.message.includes("\n")]).toEqual([true, ExitCode.CONFIG, false]);
  return e.message;
}

describe("stores", () => {
  test("a config with one s3 section has the one store default, and its view is the config's own paths and tags", () => {
    const { config } = parseConfig(`${head}s3: {enabled: true, bucket: bk1}\n${TASKS}`, F);
    expect(storesOf(config).map((s) => s.name)).toEqual([DEFAULT_STORE]);
    expect(taskStores(config, config.tasks[0]!)).toEqual([DEFAULT_STORE]);
    const v = storeView(config, DEFAULT_STORE);
    expect(v.baseDir).toBe("/var/lib/zrb");
    expect(v.s3.bucket).toBe("bk1");
    expect(v.localStore).toBe("/var/lib/zrb/store");
    expect(v.tasks[0]!.retention).toEqual(config.tasks[0]!.retention);
    expect(holdTags(v)).toEqual({ send: "zrb-send", base: "zrb" });
  });

  test("a stores list: each store its s3 section (on unless it says otherwise), its base dir, retention, credentials and hold tags", () => {
    const { config } = parseConfig(head + TWO + TASKS, F);
    expect(storesOf(config).map((s) => s.name)).toEqual(["hot", "cold", "disk"]);
    expect(taskStores(config, config.tasks[0]!)).toEqual(["hot", "cold", "disk"]);
    const hot = storeView(config, "hot");
    expect([hot.s3.enabled, hot.s3.bucket, hot.baseDir, hot.tasks[0]!.retention]).toEqual([true, "hot-bucket", "/var/lib/zrb/stores/hot", { keepDaily: 14 }]);
    const cold = storeView(config, "cold");
    expect([cold.s3.bucket, cold.s3.region, cold.s3.objectLock?.days, cold.s3.bandwidthLimit]).toEqual(["cold-bucket", "eu-west-1", 30, 5 * 1024 * 1024]);
    expect((cold.s3 as { credentials?: unknown }).credentials).toEqual({ accessKeyIdEnv: "COLD_KEY_ID", secretAccessKeyEnv: "COLD_SECRET" });
    expect(cold.tasks[0]!.retention).toEqual({ keepLast: 3 }); // the task's, as cold has none
    expect(holdTags(cold)).toEqual({ send: "zrb-send.cold", base: "zrb.cold" });
    const disk = storeView(config, "disk");
    expect([disk.s3.enabled, disk.localStore]).toEqual([false, "/mnt/usb/zrb"]);
    // The config itself is about the first store (check, plan).
    expect(config.s3.bucket).toBe("hot-bucket");
  });

  test("a task picks its stores; config order is kept", () => {
    const tasks = TASKS + "    stores: [disk, hot]\n";
    const { config } = parseConfig(head + TWO + tasks, F);
    expect(taskStores(config, config.tasks[0]!)).toEqual(["hot", "disk"]);
  });

  test("mistakes are one-line config errors naming the keys", () => {
    expect(err(`${head}s3: {enabled: true, bucket: bk1}\n${TWO}${TASKS}`)).toContain("stores and s3 are both set");
    expect(err(head + TWO + TASKS + "    stores: [hto]\n")).toMatch(/tasks\[0\]\.stores\[0\] names no store: "hto"; did you mean "?hot"?.*\(stores: hot, cold, disk\)/);
    expect(err(head + TWO + TASKS + "    stores: []\n")).toContain("tasks[0].stores lists no store");
    expect(err(`${head}stores:\n  - name: a\n    s3: {region: x}\n${TASKS}`)).toContain("stores[0].s3.bucket is required");
    expect(err(`${head}stores:\n  - {name: a, local_store: /a}\n  - {name: a, local_store: /b}\n${TASKS}`)).toContain('stores[1].name "a" is already used by stores[0]');
    expect(err(`${head}stores:\n  - {name: "a/b", local_store: /a}\n${TASKS}`)).toContain("stores[0].name must be");
    expect(err(`${head}stores:\n  - name: a\n    s3: {bucket: bk1}\n    credentials: {access_key_id_env: X}\n${TASKS}`)).toContain("needs both access_key_id_env and secret_access_key_env");
    expect(err(`${head}stores:\n  - name: a\n    local_store: /x\n    credentials: {profile: p}\n${TASKS}`)).toContain("stores[0].credentials is for an S3 store");
  });
});
