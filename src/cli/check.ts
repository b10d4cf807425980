import { defineCommand } from "citty";
import { storesOf, storeView } from "../config/stores.ts";
import { storeLabel } from "./stores.ts";
import { applyOutput, configArg, loadConfigLogged, outputArgs, printJson, storeFor } from "./common.ts";
import * as zfs from "../zfs/zfs.ts";
import { ExitCode, ZrbError } from "../util/errors.ts";
import { assertSafeBaseDir } from "../state/basedir.ts";
import { assertSafeMetricsFile } from "../report/metrics.ts";
import { log } from "../util/log.ts";
import { poolTree } from "../pipeline/tree/children.ts";

export default defineCommand({
  meta: {
    name: "check",
    description:
      "Validate the config (every error names the key), check that each enabled task's dataset exists, " +
      "that base_dir is a directory only this user can write, and that the bucket (or local store; with several stores, each of them) is reachable and writable with the current credentials. " +
      "For a recursive task also that its dataset is not a volume and that zrb can name every child. " +
      "Changes nothing. Exits with the first problem's code: 3 config (a tree zrb cannot back up), 5 zfs, 6 object store, 9 base_dir (or a metrics directory others can write).",
  },
  args: { ...configArg, ...outputArgs },
  async run({ args }) {
    applyOutput(args);
    const config = await loadConfigLogged(String(args.config));
    // Each problem with its own exit code; the run exits with the first one's (5 zfs, 6 store, 9 base_dir).
    const found: { code: ExitCode; message: string }[] = [];
    const problems = { push: (message: string, code: ExitCode) => found.push({ code, message }) };
    let baseDirOk = true;
    try {
      assertSafeBaseDir(config.baseDir, { create: false });
    } catch (err) {
      if (!(err instanceof ZrbError)) throw err;
      baseDirOk = false;
      problems.push(err.message, err.exitCode);
    }
    try {
      assertSafeMetricsFile(config.monitoring.metricsFile);
    } catch (err) {
      if (!(err instanceof ZrbError)) throw err;
      problems.push(err.message, err.exitCode);
    }
    const tasks: { name: string; dataset: string; enabled: boolean; exists: boolean | null; children?: number }[] = [];
    let caps: zfs.ZfsCaps | null = null;
    try {
      caps = await zfs.detectCaps();
    } catch (err) {
      problems.push((err as Error).message, ExitCode.ZFS);
    }
    for (const t of config.tasks) {
      let exists: boolean | null = null;
      if (t.enabled && caps) {
        exists = await zfs.datasetExists(t.fullName);
        if (!exists) problems.push(`task ${t.name}: dataset ${t.fullName} does not exist`, ExitCode.ZFS);
      }
      // A tree: a volume as its root, children zrb cannot name, excludes that match nothing.
      let children: number | undefined;
      if (exists && t.recursive) {
        try {
          const tree = await poolTree(t);
          children = tree.children.length;
          for (const p of tree.unmatched) log.warn(`task ${t.name}: exclude pattern ${JSON.stringify(p)} matches no child of ${t.fullName}`);
          for (const r of tree.refused) problems.push(`task ${t.name}: child ${r.fs} cannot be backed up: ${r.why}`, ExitCode.CONFIG);
        } catch (err) {
          if (!(err instanceof ZrbError)) throw err;
          problems.push(err.message, err.exitCode);
        }
      }
      tasks.push({ name: t.name, dataset: t.fullName, enabled: t.enabled, exists, ...(children !== undefined ? { children } : {}) });
    }
    // Every store (config `stores`), each reachable and writable with its own credentials.
    const stores: { name: string; location: string; ok: boolean }[] = [];
    for (const s of storesOf(config)) {
      const store = storeFor(storeView(config, s.name));
      let ok = true;
      try {
        await store.checkAccess();
      } catch (err) {
        ok = false;
        const label = storeLabel(s.name);
        problems.push(`${label ? `store ${label}: ` : ""}${(err as Error).message}`, err instanceof ZrbError ? err.exitCode : ExitCode.STORE);
      }
      stores.push({ name: s.name, location: store.location, ok });
    }
    const { location, ok: storeOk } = stores[0]!;
    const store = { location };
    const messages = found.map((p) => p.message);
    if (args.json)
      printJson({ config: config.path, baseDir: config.baseDir, baseDirOk, zfs: caps?.version ?? null, store: store.location, storeOk, ...(stores.length > 1 ? { stores } : {}), tasks, problems: messages });
    else {
      log.info(`config ${config.path}: valid`);
      if (!config.signingKeyFile)
        log.warn(
          `no signing_key in ${config.path}: backups will not be signed, so restore cannot tell them from forged ones, and a private key from zrb genkey refuses them unless --allow-unsigned (docs/security.md)`,
        );
      log.info(`base_dir ${config.baseDir}: ${baseDirOk ? "ok" : "NOT usable"}`);
      if (caps) log.info(`zfs: ${caps.version}`);
      for (const t of tasks)
        log.info(`task ${t.name}: ${t.dataset} ${t.enabled ? (t.exists ? "ok" : "MISSING") : "(disabled)"}${t.children !== undefined ? `, a tree of ${t.children} dataset(s) to back up` : ""}`);
      for (const s of stores) log.info(`store ${storeLabel(s.name) ? `${s.name} (${s.location})` : s.location}: ${s.ok ? "reachable and writable" : "NOT usable"}`);
    }
    if (found.length) throw new ZrbError(messages.join("; "), found[0]!.code);
  },
});
