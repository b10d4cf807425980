/** `zrb verify`: flag parsing around pipeline/verify.ts. */
import { defineCommand } from "citty";
import { applyOutput, configArg, parseSample, optionalValue, taskArg } from "./common.ts";
import { runJob, transferArgs } from "./job.ts";
import { parseSelector, selectArgs } from "./restore.ts";
import { childTask } from "../pipeline/tree/children.ts";
import { childArg, parseChild } from "./tree.ts";
import { verifyTree } from "./verify-tree.ts";
import { verifyDataset, type VerifyAsk } from "./verify-dataset.ts";
import { loadIdentityFile } from "../crypto/keys.ts";
import { resolveTrust, trustArgs } from "./trust.ts";
import { warnUnauthenticated } from "../records/trust.ts";
import { assertSafeBaseDir } from "../state/basedir.ts";
import { usageError } from "../util/errors.ts";

export const DEFAULT_ROTATE_DAYS = 90;

/** --rotate DAYS: a whole number of days; it covers every backup, so no selector, sample or --only-backup. */
function parseRotate(v: string, args: Record<string, unknown>): number {
  if (!/^\d{1,4}$/.test(v) || Number(v) < 1 || Number(v) > 3650) throw usageError(`--rotate must be a whole number of days from 1 to 3650, got ${JSON.stringify(v)}`);
  const clash = ["backup-id", "snapshot", "level", "sample", "only-backup"].find((k) => args[k] !== undefined && args[k] !== false);
  if (clash) throw usageError(`--rotate reads every backup of the task in turn and cannot be combined with --${clash}; run them separately`);
  return Number(v);
}

export default defineCommand({
  meta: {
    name: "verify",
    description:
      "Check what is stored without zfs: download every part of a backup's chain (or --sample N random parts), " +
      "check its size and SHA-256; with --private-key also decrypt it and check its BLAKE3 and the whole-stream BLAKE3. " +
      "Without a key only the ciphertext is checked (the NAS itself never holds the private key). " +
      "Without a selector it checks the newest backup's chain, and a broken link in it fails the verification. " +
      "--rotate DAYS instead reads, on each run, the slice of every backup's parts whose turn has come, so that every stored part is read at least once per DAYS (the weekly systemd timer uses it). " +
      "A recursive task is verified child by child: each child's backup of the same run (as restore takes it), or with --rotate every child's rotation; --child verifies one.",
  },
  args: {
    ...configArg,
    ...taskArg,
    ...selectArgs,
    "private-key": { type: "string", alias: "i", description: "age identity file: also decrypt and check the plaintext hashes", valueHint: "FILE" },
    ...trustArgs,
    sample: { type: "string", description: "Check only N randomly chosen parts of the chain", valueHint: "N" },
    rotate: optionalValue(
      {
        type: "string",
        description: `Rotating verification of every backup of the task: read the slice of parts whose turn has come, so that each part is read at least once per DAYS (default ${DEFAULT_ROTATE_DAYS}); progress is kept in the bucket`,
        valueHint: "DAYS",
      },
      String(DEFAULT_ROTATE_DAYS),
    ),
    "only-backup": { type: "boolean", description: "Check only the selected backup, not the rest of its chain", default: false },
    ...childArg,
    ...transferArgs,
  },
  async run({ args }) {
    applyOutput(args);
    const selector = parseSelector(args);
    const sample = parseSample(args.sample);
    const rotate = args.rotate !== undefined ? parseRotate(String(args.rotate), args) : undefined;
    await runJob(args, { command: "verify", level: selector.level }, async (job) => {
      assertSafeBaseDir(job.config.baseDir, { create: true });
      const key = args["private-key"] ? await loadIdentityFile(args["private-key"]) : undefined;
      const trust = await resolveTrust(args, key?.verifyKey, job.config);
      warnUnauthenticated(trust, "verify");
      const o: VerifyAsk = { selector, sample, rotate, onlyBackup: !!args["only-backup"], identities: key?.identities, trust, json: !!args.json };
      const only = parseChild(args.child, job.task);
      if (job.task.recursive && only === undefined) return verifyTree(job, o);
      return verifyDataset(job, only === undefined ? job.task : childTask(job.task, only), o);
    });
  },
});
