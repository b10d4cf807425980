/**
 * Credentials and private keys are refused wherever they appear in the config, and never
 * echoed: S3 keys under any spelling of the AWS names (zrb reads the AWS credential chain
 * only), and an age private key anywhere, comments included — it has no business on the
 * machine that makes the backups. Runs over the whole document before the schema reads it,
 * so unknown sections are covered too.
 */
import { isMap, isScalar, isSeq, type Node } from "yaml";
import { CREDENTIAL_HINT } from "../store/s3rules.ts";
import { join, keyText, type Reader } from "./read.ts";

const CREDENTIAL_KEYS = new Set([
  "accesskey",
  "accesskeyid",
  "secretkey",
  "secretaccesskey",
  "awsaccesskeyid",
  "awssecretaccesskey",
  "sessiontoken",
  "awssessiontoken",
]);
const PRIVATE_KEY_RE = /AGE-SECRET-KEY-/i;
const SIGNING_KEY_RE = /ZRB-SIGNING-KEY-1/i;

export function refuseSecrets(r: Reader): void {
  const stack: { node: unknown; path: string }[] = [{ node: r.doc.contents, path: "" }];
  while (stack.length > 0) {
    const { node, path } = stack.pop()!;
    // Aliases are not followed: every anchored node is visited where it is defined.
    if (isMap(node)) {
      const next: { node: unknown; path: string }[] = [];
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? keyText(pair.key) : undefined;
        const p = key !== undefined ? join(path, key) : path;
        if (key !== undefined && CREDENTIAL_KEYS.has(key.toLowerCase().replace(/[-_. ]/g, ""))) {
          r.fail(pair.key as Node, `${p}: zrb never reads S3 credentials from the config file; remove this key and ${CREDENTIAL_HINT}`);
        }
        next.push({ node: pair.key, path: p }, { node: pair.value, path: p });
      }
      stack.push(...next.reverse());
    } else if (isSeq(node)) {
      stack.push(...node.items.map((item, i) => ({ node: item, path: `${path}[${i}]` })).reverse());
    } else if (isScalar(node) && typeof node.value === "string" && PRIVATE_KEY_RE.test(node.value)) {
      r.fail(node, privateKeyMessage(path));
    } else if (isScalar(node) && typeof node.value === "string" && SIGNING_KEY_RE.test(node.value)) {
      r.fail(node, `${path === "" ? "this file" : path} contains a zrb signing key; put the key in its own file (mode 0600) and give its path in signing_key`);
    }
  }
  // Comments too: a private key has no business on this machine at all.
  const m = PRIVATE_KEY_RE.exec(r.text);
  if (m) {
    r.fail(
      m.index,
      "this file contains an age private key (AGE-SECRET-KEY-…), perhaps in a comment; delete it and keep the private key off this machine",
    );
  }
}

function privateKeyMessage(path: string): string {
  if (path === "age_public_key" || path.startsWith("age_recipients[")) {
    return `${path} contains a private key; put the public key (age1…) here and keep the private key off this machine`;
  }
  const what = path === "" ? "this file" : path;
  return `${what} contains an age private key; delete it, put the public key (age1…) in age_public_key and keep the private key off this machine`;
}
