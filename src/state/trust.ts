/**
 * Which backups zrb believes its NAS wrote. A manifest (and heads.yaml) carries an Ed25519
 * signature made with the NAS's signing key; whoever holds the verification key checks it:
 *   - restore/verify/list: the key recorded in the private key file, or --verify-key;
 *   - the NAS itself, planning the next incremental: the key of its own signing key.
 * With a verification key, a backup whose signature is missing, wrong, or by another key is
 * not trusted (refused, exit 7); a missing one is accepted only with --allow-unsigned (backups
 * made before signing was set up). Without one, nothing can be authenticated: that is said
 * once per run. The signature covers pool and dataset, so a signed manifest moved under another
 * dataset's prefix fails too.
 */
import { signatureProblem, sign, type SigningKey } from "../crypto/signing.ts";
import { log } from "../util/log.ts";
import type { Manifest } from "./manifest.ts";
import type { Heads } from "./heads.ts";
import type { TreeRecord } from "./tree.ts";

export const MANIFEST_DOMAIN = "zrb-manifest-signature/1";
export const HEADS_DOMAIN = "zrb-heads-signature/1";
export const TREE_DOMAIN = "zrb-tree-signature/1";

export interface Trust {
  /** zrbverify1…: when set, backups must carry its signature. */
  verifyKey?: string;
  /** Accept backups without any signature (made before signing was set up). */
  allowUnsigned: boolean;
  /** Where the key came from, for messages ("the private key file", "--verify-key", "signing_key"). */
  source: string;
}

export const NO_TRUST: Trust = { allowUnsigned: true, source: "none" };

function manifestBody(m: Manifest): unknown {
  const { signature: _s, ...body } = m;
  return body;
}

function headsBody(h: Heads, pool: string, dataset: string): unknown {
  const { signature: _s, ...body } = h;
  return { pool, dataset, heads: body };
}

export function signManifest(m: Manifest, key: SigningKey): Manifest {
  return { ...m, signature: sign(key, MANIFEST_DOMAIN, manifestBody(m)) };
}

export function signHeads(h: Heads, pool: string, dataset: string, key: SigningKey): Heads {
  return { ...h, signature: sign(key, HEADS_DOMAIN, headsBody(h, pool, dataset)) };
}

/** Why this manifest is not trusted under `trust`, or undefined. */
export function manifestTrustProblem(m: Manifest, trust: Trust): string | undefined {
  if (!trust.verifyKey) return undefined;
  if (m.signature === undefined && trust.allowUnsigned) return undefined;
  const why = signatureProblem(m.signature, trust.verifyKey, MANIFEST_DOMAIN, manifestBody(m));
  if (!why) return undefined;
  return m.signature === undefined
    ? `it is not signed (made before signing_key was set up, or forged); only with --allow-unsigned`
    : why;
}

/** Whether heads.yaml carries a good signature under `trust` (always true without a key). */
export function headsTrusted(h: Heads, pool: string, dataset: string, trust: Trust): boolean {
  if (!trust.verifyKey) return true;
  return signatureProblem(h.signature, trust.verifyKey, HEADS_DOMAIN, headsBody(h, pool, dataset)) === undefined;
}

function treeBody(t: TreeRecord, pool: string, dataset: string): unknown {
  const { signature: _s, ...body } = t;
  return { pool, dataset, tree: body };
}

export function signTree(t: TreeRecord, pool: string, dataset: string, key: SigningKey): TreeRecord {
  return { ...t, signature: sign(key, TREE_DOMAIN, treeBody(t, pool, dataset)) };
}

/** Whether a recursive task's tree.yaml carries a good signature under `trust` (always true without a key). */
export function treeTrusted(t: TreeRecord, pool: string, dataset: string, trust: Trust): boolean {
  if (!trust.verifyKey) return true;
  return signatureProblem(t.signature, trust.verifyKey, TREE_DOMAIN, treeBody(t, pool, dataset)) === undefined;
}

let warned = false;
/** Without a verification key, say once that what is restored or verified is not authenticated. */
export function warnUnauthenticated(trust: Trust, what: string): void {
  if (trust.verifyKey || warned) return;
  warned = true;
  log.warn(
    `${what}: backups are not authenticated (no verification key: the private key file has no "# zrb verification key:" line and no --verify-key was given); anyone who can write to the bucket could have forged them`,
  );
}
