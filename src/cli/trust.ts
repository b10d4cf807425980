/**
 * The verification flags of restore, verify and list, and how they become a Trust: the key
 * given with --verify-key (the key itself, or a file holding it, e.g. zrb_private.key), else
 * the "# zrb verification key:" line of the private key file, else none (nothing can be
 * authenticated; said once).
 */
import { readFile } from "node:fs/promises";
import { parseVerifyKey } from "../crypto/signing.ts";
import type { Trust } from "../state/trust.ts";
import { usageError } from "../util/errors.ts";
import { log } from "../util/log.ts";

export const trustArgs = {
  "verify-key": {
    type: "string",
    description: "Verification key (zrbverify1…, or a file holding it) that every backup must be signed with; default: the one recorded in --private-key's file",
    valueHint: "KEY|FILE",
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

export async function resolveTrust(args: { "verify-key"?: string; "allow-unsigned"?: boolean }, fromPrivateKey?: string): Promise<Trust> {
  const allowUnsigned = !!args["allow-unsigned"];
  if (args["verify-key"]) {
    const key = await keyFromArg(args["verify-key"]);
    if (fromPrivateKey && fromPrivateKey !== key) log.warn(`--verify-key differs from the verification key recorded in the private key file; using --verify-key`);
    return { verifyKey: key, allowUnsigned, source: "--verify-key" };
  }
  if (fromPrivateKey) return { verifyKey: fromPrivateKey, allowUnsigned, source: "the private key file" };
  return { allowUnsigned: true, source: "none" };
}
