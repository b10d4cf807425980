/**
 * `zrb restore --path REL [--path REL2 …] --to DIR [--force]`: the flags of a single-path
 * restore and its one library call (pipeline/drill/extract.ts), through runJob like any restore.
 */
import { resolve } from "node:path";
import { repeatedFlag } from "./common.ts";
import { runJob } from "./job.ts";
import { pickRestoreStore } from "./restore-store.ts";
import { resolveTrust, type TrustFlags } from "./trust.ts";
import { parseChild } from "./tree.ts";
import { loadIdentityFile } from "../crypto/keys.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { parseRelPath } from "../pipeline/drill/paths.ts";
import { restorePaths } from "../pipeline/drill/extract.ts";
import type { Selector } from "../pipeline/restore/select.ts";
import { usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";
import type { JobArgs } from "./job.ts";

export const pathArgs = {
  path: {
    type: "string",
    description: "Restore only this file or directory (relative to the dataset's root; repeat for more) into --to, through a throwaway pool",
    valueHint: "REL",
    repeatable: true,
  },
  to: { type: "string", description: "With --path: the directory the paths are copied into (as DIR/REL)", valueHint: "DIR" },
} as const;

type Args = JobArgs &
  TrustFlags & { path?: string; to?: string; target?: string; force?: boolean; plan?: boolean; "dry-run"?: boolean; thaw?: boolean; child?: string; "private-key"?: string; parallel?: string };

export async function runPathRestore(args: Args, selector: Selector, ahead: number | undefined): Promise<void> {
  const paths = repeatedFlag("path", args.path).map(parseRelPath);
  if (paths.length === 0) throw usageError("--to needs --path REL: the files or directories to restore into it");
  if (!args.to) throw usageError("--path needs --to DIR: the directory the paths are copied into");
  if (args.target) throw usageError("--path copies files into --to DIR; --target (a dataset to receive into) does not go with it");
  if (args.plan || args["dry-run"] || args.thaw) throw usageError("--path does not take --plan or --thaw; thaw with a full restore first");
  if (!args["private-key"]) throw usageError("--private-key FILE is required to restore (the age identity file made by zrb genkey or age-keygen)");
  const key = await loadIdentityFile(args["private-key"]);
  // Several stores: the paths come from one of them, picked as a full restore picks it.
  const pickStore = pickRestoreStore(async (config) => resolveTrust(args, key.verifyKey, config));
  await runJob(args, { command: "restore", level: selector.level, pickStore }, async ({ config, task: t, store, reporter, signal }) => {
    const trust = await resolveTrust(args, key.verifyKey, config);
    const only = parseChild(args.child, t);
    if (t.recursive && only === undefined) throw usageError(`task ${t.name} is recursive: name the child the paths are in with --child (. for ${t.fullName} itself)`);
    const task = only === undefined ? t : childTask(t, only);
    const r = await restorePaths(config, task, store, { paths, to: resolve(args.to!), force: !!args.force, selector, identities: key.identities, trust, ahead, signal, progress: reporter });
    if (!args.json)
      log.success(`restored ${paths.join(", ")} of ${r.snapshot} into ${r.to}: ${r.files} file(s), ${r.dirs} dir(s), ${r.links} link(s), ${r.fileBytes} bytes (restore ${r.restoreSeconds} s)`);
    return { result: r, bytes: r.bytes };
  });
}
