/** Ed25519 signatures over a domain and canonical JSON (crypto/signing.ts): what a check accepts, and the keys it takes. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bech32 } from "@scure/base";
import { canonicalJson, generateSigningKey, parseVerifyKey, readSigningKey, sign, signatureProblem, verifyKeyInIdentityText, verifyKeyOf, type SigningKey } from "../../../src/crypto/signing.ts";

function freshKey(): SigningKey {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  return { seed, verifyKey: verifyKeyOf(seed) };
}

describe("a signature proves its key signed this body under this domain", () => {
  const key = freshKey();
  const body = { pool: "tank", dataset: "home", n: 1 };
  const sig = sign(key, "zrb-test/1", body);

  test("the same domain, key and body: good", () => {
    expect(signatureProblem(sig, key.verifyKey, "zrb-test/1", body)).toBeUndefined();
  });

  test("another domain (a signature of another record kind): refused", () => {
    expect(signatureProblem(sig, key.verifyKey, "zrb-other/1", body)).toBe("its signature does not match its content");
  });

  test("missing, of another algorithm, without a value, or too short: refused", () => {
    expect(signatureProblem(undefined, key.verifyKey, "zrb-test/1", body)).toBe("it is not signed");
    expect(signatureProblem({ ...sig, alg: "rsa" }, key.verifyKey, "zrb-test/1", body)).toBe("its signature is malformed");
    expect(signatureProblem({ ...sig, value: 5 }, key.verifyKey, "zrb-test/1", body)).toBe("its signature is malformed");
    expect(signatureProblem({ ...sig, value: "AAAA" }, key.verifyKey, "zrb-test/1", body)).toBe("its signature does not match its content");
  });

  test("a good signature that names another key than the one checked: refused", () => {
    expect(signatureProblem({ ...sig, key: freshKey().verifyKey }, key.verifyKey, "zrb-test/1", body)).toContain("signed by another key");
  });
});

test("canonical JSON: keys sorted at every level, undefined fields left out, keys quoted", () => {
  expect(canonicalJson({ b: [1, undefined], a: { d: "x", c: null }, e: undefined })).toBe('{"a":{"c":null,"d":"x"},"b":[1,null]}');
});

describe("verification keys", () => {
  const key = freshKey();
  test("a verification key parses; a signing key, a 33-byte key or a damaged checksum does not", () => {
    expect(parseVerifyKey(` ${key.verifyKey.toUpperCase()} `)).toBe(key.verifyKey);
    expect(parseVerifyKey(bech32.encode("zrb-signing-key-", bech32.toWords(key.seed), 200))).toBeNull();
    expect(parseVerifyKey(bech32.encode("zrbverify", bech32.toWords(new Uint8Array(33)), 200))).toBeNull();
    const last = key.verifyKey.at(-1) === "q" ? "p" : "q";
    expect(parseVerifyKey(key.verifyKey.slice(0, -1) + last)).toBeNull();
  });

  test("the verification key line of an identity file: only a valid key counts", () => {
    expect(verifyKeyInIdentityText(`# zrb verification key: ${key.verifyKey}\nAGE-SECRET-KEY-1X\n`)).toBe(key.verifyKey);
    // Another last character (whatever the random key's is): the checksum no longer matches.
    const other = key.verifyKey.at(-1) === "x" ? "y" : "x";
    expect(verifyKeyInIdentityText(`# zrb verification key: ${key.verifyKey.slice(0, -1)}${other}\n`)).toBeUndefined();
  });

  test("a signing key file holds exactly one key line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zrb-signing-"));
    const one = generateSigningKey("now");
    writeFileSync(join(dir, "one"), one.fileText, { mode: 0o600 });
    expect((await readSigningKey(join(dir, "one"))).verifyKey).toBe(one.verifyKey);
    const two = one.fileText + generateSigningKey("now").fileText.split("\n").at(-2)! + "\n";
    writeFileSync(join(dir, "two"), two, { mode: 0o600 });
    await expect(readSigningKey(join(dir, "two"))).rejects.toThrow(/is not a zrb signing key/);
  });
});
