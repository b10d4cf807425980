/**
 * Which verification keys a command that reads the catalog trusts — one rule for prune,
 * cleanup, status, list, verify and restore: the --verify-key flags when given (repeatable; the
 * key itself or a file holding it, e.g. zrb_private.key) and only those — what the user names
 * for this run; otherwise every key the host knows: the config's verify_keys, the verification
 * key of the config's own signing_key (the NAS), and the "# zrb verification key:" line of a
 * --private-key file. Several keys all count (a signing-key rotation leaves backups signed by
 * the old key and by the new one). No key at all: nothing can be authenticated — readers say
 * so once, and the commands that delete refuse (requireKeyToDelete) unless --allow-unsigned.
 */
import { readFile } from "node:fs/promises";
import { repeatedFlag } from "./common.ts";
import type { Config } from "../config/config.ts";
import { parseVerifyKey, readSigningKey } from "../crypto/signing.ts";
import type { Trust } from "../records/trust.ts";
import { ExitCode, ZrbError, usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";

export const trustArgs = {
  "verify-key": {
    type: "string",
    description:
      "Verification key (zrbverify1…, or a file holding it) that backups must be signed with; repeatable. When given, only these count; otherwise verify_keys, signing_key and the key recorded in --private-key's file",
    valueHint: "KEY|FILE",
    repeatable: true,
  },
  "allow-unsigned": { type: "boolean", description: "Accept backups without a signature (made before signing_key was set up)", default: false },
} as const;


async function keyFromArg(v: string): Promise<string> {
  const direct = parseVerifyKey(v);
  if (direct) return direct;
  let text: string;
  try {
    text = await readFile(v, "utf8");
  } catch {
    throw usageError(`--verify-key ${JSON.stringify(v.slice(0, 60))} is neither a verification key (zrbverify1…) nor a readable file holding one`);
  }
  const m = /zrbverify1[0-9a-z]+/i.exec(text);
  const k = m ? parseVerifyKey(m[0]) : null;
  if (!k) throw usageError(`--verify-key file ${v} holds no verification key (zrbverify1…)`);
  return k;
}

export interface TrustFlags {
  "verify-key"?: string;
  "allow-unsigned"?: boolean;
}

/**
 * The Trust of one run. `config` may be absent (restore from a key file alone); `fromPrivateKey`
 * is the key recorded in the --private-key file, if one was given.
 */
export async function resolveTrust(args: TrustFlags, fromPrivateKey?: string, config?: Pick<Config, "verifyKeys" | "signingKeyFile">): Promise<Trust> {
  const allowUnsigned = !!args["allow-unsigned"];
  const keys: string[] = [];
  const sources: string[] = [];
  const add = (ks: string[], source: string) => {
    const fresh = ks.filter((k) => !keys.includes(k));
    if (fresh.length === 0) return;
    keys.push(...fresh);
    sources.push(source);
  };
  const flags = await Promise.all(repeatedFlag("verify-key", args["verify-key"]).map(keyFromArg));
  if (flags.length > 0) {
    if (fromPrivateKey && !flags.includes(fromPrivateKey)) log.warn(`--verify-key differs from the verification key recorded in the private key file; using --verify-key`);
    return { verifyKeys: [...new Set(flags)], allowUnsigned, source: "--verify-key" };
  }
  add(config?.verifyKeys ?? [], "verify_keys");
  if (config?.signingKeyFile) {
    // On the worst day the config may come back without its signing key: the other keys still count.
    try {
      add([(await readSigningKey(config.signingKeyFile)).verifyKey], "signing_key");
    } catch (err) {
      if (!(err instanceof ZrbError)) throw err;
      log.warn(`${err.message}; its key is not used to check backups in this run`);
    }
  }
  if (fromPrivateKey) add([fromPrivateKey], "the private key file");
  if (keys.length === 0) return { verifyKeys: [], allowUnsigned: true, source: "none" };
  return { verifyKeys: keys, allowUnsigned, source: sources.join(", ") };
}

/**
 * Anything that deletes acts only on records it can authenticate: without a verification key
 * it refuses (exit 3) unless the user said --allow-unsigned.
 */
export function requireKeyToDelete(trust: Trust, args: TrustFlags, what: string, configPath: string): void {
  if (trust.verifyKeys.length > 0 || args["allow-unsigned"]) return;
  throw new ZrbError(
    `${what} refuses to delete without a verification key: it could not tell the NAS's backups from forged ones; ` +
      `set verify_keys in ${configPath} to the zrbverify1… key printed by zrb genkey (or signing_key on the NAS, or give --verify-key), ` +
      `or pass --allow-unsigned if these backups were made without signing_key`,
    ExitCode.CONFIG,
  );
}

let unsignedWarned = false;
/**
 * A config without signing_key makes unsigned backups, and that stays silent until the worst day:
 * a private key from zrb genkey records the verification key, so restore refuses every unsigned
 * backup. backup, status and list say so once per run (check says it too).
 */
export function warnNoSigningKey(config: Pick<Config, "signingKeyFile" | "path"> & Partial<Pick<Config, "verifyKeys">>, what: string): void {
  // A prune or monitoring host has verify_keys instead: it signs nothing, and that is right.
  if (config.signingKeyFile || (config.verifyKeys?.length ?? 0) > 0 || unsignedWarned) return;
  unsignedWarned = true;
  log.warn(
    `${what}: no signing_key in ${config.path}: backups are not signed, so zrb restore with a private key from zrb genkey refuses them ` +
      `(only with --allow-unsigned) and cannot tell them from forged ones; copy zrb_signing.key from where you ran zrb genkey to this host and set signing_key (docs/security.md)`,
  );
}
