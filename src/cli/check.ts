import { defineCommand } from "citty";
import { applyOutput, configArg, loadConfigLogged, outputArgs, printJson, storeFor } from "./common.ts";
import * as zfs from "../zfs/zfs.ts";
import { ExitCode, ZrbError } from "../util/errors.ts";
import { log } from "../util/log.ts";

export default defineCommand({
  meta: {
    name: "check",
    description:
      "Validate the config (every error names the key), check that each enabled task's dataset exists, " +
      "and that the bucket (or local store) is reachable and writable with the current credentials. Changes nothing.",
  },
  args: { ...configArg, ...outputArgs },
  async run({ args }) {
    applyOutput(args);
    const config = await loadConfigLogged(String(args.config));
    const problems: string[] = [];
    const tasks: { name: string; dataset: string; enabled: boolean; exists: boolean | null }[] = [];
    let caps: zfs.ZfsCaps | null = null;
    try {
      caps = await zfs.detectCaps();
    } catch (err) {
      problems.push((err as Error).message);
    }
    for (const t of config.tasks) {
      let exists: boolean | null = null;
      if (t.enabled && caps) {
        exists = await zfs.datasetExists(t.fullName);
        if (!exists) problems.push(`task ${t.name}: dataset ${t.fullName} does not exist`);
      }
      tasks.push({ name: t.name, dataset: t.fullName, enabled: t.enabled, exists });
    }
    const store = storeFor(config);
    let storeOk = true;
    try {
      await store.checkAccess();
    } catch (err) {
      storeOk = false;
      problems.push((err as Error).message);
    }
    if (args.json) printJson({ config: config.path, zfs: caps?.version ?? null, store: store.location, storeOk, tasks, problems });
    else {
      log.info(`config ${config.path}: valid`);
      if (caps) log.info(`zfs: ${caps.version}`);
      for (const t of tasks) log.info(`task ${t.name}: ${t.dataset} ${t.enabled ? (t.exists ? "ok" : "MISSING") : "(disabled)"}`);
      log.info(`store ${store.location}: ${storeOk ? "reachable and writable" : "NOT usable"}`);
    }
    if (problems.length) throw new ZrbError(problems.join("; "), ExitCode.CONFIG);
  },
});
