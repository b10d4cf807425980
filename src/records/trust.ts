/**
 * Which records zrb believes its NAS wrote. A manifest (and heads.yaml, tree.yaml, the in-flight
 * marker of a running backup) carries an Ed25519 signature made with the NAS's signing key;
 * whoever holds a verification key checks it. Where the keys come from is one rule for every
 * command that reads the catalog (cli/trust.ts): --verify-key flags, the config's verify_keys,
 * the NAS's own signing_key, and the key recorded in a --private-key file.
 * With verification keys, a record whose signature is missing, wrong, or by a key that is not
 * among them is not trusted; a missing one is accepted only with --allow-unsigned (backups made
 * before signing was set up). Without any key, nothing can be authenticated: that is said once
 * per run, and the commands that delete refuse to (cli/trust.ts). Every signature covers the
 * record's pool and dataset, so a signed record moved under another dataset's prefix fails too.
 *
 * Signing is generic: a record kind is a domain string and a canonical body (the record
 * without its signature, plus where it lives); this module knows no record type.
 */
import { signatureProblem, sign, type Signature, type SigningKey } from "../crypto/signing.ts";
import { log } from "../util/log.ts";

export const MANIFEST_DOMAIN = "zrb-manifest-signature/1";
export const HEADS_DOMAIN = "zrb-heads-signature/1";
export const TREE_DOMAIN = "zrb-tree-signature/1";
export const MARKER_DOMAIN = "zrb-inflight-signature/1";

export interface Trust {
  /** zrbverify1… keys: when any is given, records must carry a signature by one of them. */
  verifyKeys: string[];
  /** Accept records without any signature (made before signing was set up). */
  allowUnsigned: boolean;
  /** Where the keys came from, for messages ("the private key file", "--verify-key", "signing_key"). */
  source: string;
}

export const NO_TRUST: Trust = { verifyKeys: [], allowUnsigned: true, source: "none" };

/**
 * What the NAS itself trusts when it builds on the bucket: its own signing key plus the
 * config's verify_keys, so after a signing-key rotation (zrb genkey --signing-only) the chain
 * signed by the old key, listed in verify_keys, stays a base for new incrementals. Without a
 * signing key the NAS writes unsigned records and cannot demand signatures of its own chain.
 */
export function nasTrust(signer: { verifyKey: string } | undefined, verifyKeys: readonly string[] = []): Trust {
  if (!signer) return NO_TRUST;
  const keys = [signer.verifyKey, ...verifyKeys.filter((k) => k !== signer.verifyKey)];
  return { verifyKeys: keys, allowUnsigned: false, source: keys.length > 1 ? "signing_key, verify_keys" : "signing_key" };
}

/** Whether `trust` can authenticate anything at all. */
export const canVerify = (trust: Trust) => trust.verifyKeys.length > 0;

/** A signed record: any object with an optional `signature` field. */
export type Signed = { signature?: Signature };

/** The bytes a record's signature covers: the record without its signature, placed. */
export function recordBody<T extends Signed>(r: T, place?: Record<string, string>): unknown {
  const { signature: _s, ...body } = r;
  return place ? { ...place, record: body } : body;
}

export function signRecord<T extends Signed>(r: T, domain: string, key: SigningKey, place?: Record<string, string>): T {
  return { ...r, signature: sign(key, domain, recordBody(r, place)) };
}

/**
 * Why a record is not trusted under `trust`, or undefined: without keys everything passes
 * (nothing can be checked); an unsigned record passes only with allowUnsigned.
 */
export function recordTrustProblem<T extends Signed>(r: T, domain: string, trust: Trust, place?: Record<string, string>): string | undefined {
  if (!canVerify(trust)) return undefined;
  if (r.signature === undefined)
    return trust.allowUnsigned ? undefined : "it is not signed (made before signing_key was set up, or forged); only with --allow-unsigned";
  const body = recordBody(r, place);
  const by = trust.verifyKeys.find((k) => k === (r.signature as { key?: unknown }).key) ?? trust.verifyKeys[0]!;
  const why = signatureProblem(r.signature, by, domain, body);
  if (why && trust.verifyKeys.length > 1 && /another key/.test(why)) return `it is signed by a key that is not among the ${trust.verifyKeys.length} verification keys (${trust.source})`;
  return why;
}

// The records' own placements: kept here so that every signer and checker agrees.

/** A manifest names its pool and dataset itself: its body is the record. */
export const signManifest = <T extends Signed>(m: T, key: SigningKey): T => ({ ...m, signature: sign(key, MANIFEST_DOMAIN, recordBody(m)) });
export const manifestTrustProblem = <T extends Signed>(m: T, trust: Trust) => recordTrustProblem(m, MANIFEST_DOMAIN, trust);

/** heads.yaml and tree.yaml do not name their dataset: the signature covers it. */
const placedBody = (field: string) => <T extends Signed>(r: T, pool: string, dataset: string) => {
  const { signature: _s, ...body } = r;
  return { pool, dataset, [field]: body };
};
const headsBody = placedBody("heads");
const treeBody = placedBody("tree");

export const signHeads = <T extends Signed>(h: T, pool: string, dataset: string, key: SigningKey): T => ({ ...h, signature: sign(key, HEADS_DOMAIN, headsBody(h, pool, dataset)) });
/** Whether heads.yaml carries a good signature under `trust` (always true without a key; unsigned heads are never trusted). */
export function headsTrusted<T extends Signed>(h: T, pool: string, dataset: string, trust: Trust): boolean {
  return !canVerify(trust) || placedProblem(h, HEADS_DOMAIN, headsBody(h, pool, dataset), trust) === undefined;
}

export const signTree = <T extends Signed>(t: T, pool: string, dataset: string, key: SigningKey): T => ({ ...t, signature: sign(key, TREE_DOMAIN, treeBody(t, pool, dataset)) });
/** Whether a recursive task's tree.yaml carries a good signature under `trust` (always true without a key). */
export function treeTrusted<T extends Signed>(t: T, pool: string, dataset: string, trust: Trust): boolean {
  return !canVerify(trust) || placedProblem(t, TREE_DOMAIN, treeBody(t, pool, dataset), trust) === undefined;
}

/** A placed record's problem: unsigned is never good enough for heads and tree (they are caches, rebuilt from manifests). */
function placedProblem(r: Signed, domain: string, body: unknown, trust: Trust): string | undefined {
  const key = trust.verifyKeys.find((k) => k === (r.signature as { key?: unknown } | undefined)?.key) ?? trust.verifyKeys[0]!;
  return signatureProblem(r.signature, key, domain, body);
}

let warned = false;
/** Without a verification key, say once that what is read is not authenticated. */
export function warnUnauthenticated(trust: Trust, what: string): void {
  if (canVerify(trust) || warned) return;
  warned = true;
  log.warn(
    `${what}: backups are not authenticated (no verification key: no --verify-key, no verify_keys or signing_key in the config, and the private key file has no "# zrb verification key:" line); anyone who can write to the bucket could have forged them`,
  );
}
