/**
 * Error kinds (src/util/errors.ts): code branches on a kind, and the kind alone decides the exit
 * code, in one table. An error made the old way (with an exit code) gets the kind that code
 * names; the age layer's "no identity matches" is its own kind, still exit 8.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgeDecryptStream } from "../../../src/crypto/age.ts";
import { ExitCode, ZrbError, isInterruptError, isKind, noIdentityError, storeError } from "../../../src/util/errors.ts";
import { StoreError } from "../../../src/store/store.ts";
import { ageKeyPair } from "../../helpers/rig.ts";

describe("error kinds", () => {
  test("every exit code names one kind, and the kind gives the code back", () => {
    for (const code of Object.values(ExitCode)) {
      if (code === ExitCode.OK) continue;
      const e = new ZrbError("x", code);
      expect(e.exitCode).toBe(code);
      expect(new ZrbError("y", e.errorKind).exitCode).toBe(code);
    }
    expect(new ZrbError("z").errorKind).toBe("internal");
    expect(new ZrbError("z").exitCode).toBe(ExitCode.FAILURE);
  });

  test("no-identity is a crypto failure of its own kind; interrupts are told apart from findings; a store error is of kind store", () => {
    const e = noIdentityError("wrong key");
    expect(e.exitCode).toBe(ExitCode.CRYPTO);
    expect(isKind(e, "no-identity")).toBe(true);
    expect(isKind(e, "crypto")).toBe(false);
    expect(isInterruptError(new ZrbError("stop", ExitCode.SIGTERM))).toBe(true);
    expect(isInterruptError(new ZrbError("stop", ExitCode.SIGINT))).toBe(true);
    expect(isInterruptError(new ZrbError("bad", ExitCode.INTEGRITY))).toBe(false);
    expect(isInterruptError(new Error("stop"))).toBe(false);
    expect(isKind(storeError("gone"), "store")).toBe(true);
    expect(isKind(new StoreError("transient", "slow"), "store")).toBe(true);
  });
});

test("age: a file encrypted to another key fails with kind no-identity (restore's message hangs on the kind, not on the text)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "zrb-kinds-"));
  try {
    const a = await ageKeyPair(join(dir, "a.txt"));
    const b = await ageKeyPair(join(dir, "b.txt"));
    writeFileSync(join(dir, "plain"), "hello");
    const enc = Bun.spawnSync(["age", "-r", a.recipient, join(dir, "plain")]);
    expect(enc.exitCode).toBe(0);
    const identity = readFileSync(b.keyFile, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
    const dec = await AgeDecryptStream.create([identity]);
    const err = await dec.push(new Uint8Array(enc.stdout)).then(
      () => null,
      (e) => e,
    );
    expect(isKind(err, "no-identity")).toBe(true);
    expect(err.exitCode).toBe(ExitCode.CRYPTO);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
