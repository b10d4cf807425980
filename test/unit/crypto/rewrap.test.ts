/**
 * Rewrap: a new header for the same file key makes the unchanged payload readable by the new
 * recipient and not by the old one — checked with the stock age CLI, not with zrb's own reader.
 */
import { expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { rewrapHeader, unwrapFileKey } from "../../../src/crypto/rewrap.ts";
import { ageKeyPair, run, tmpDir } from "../../helpers/rig.ts";

/** Bytes of the header through its MAC line. */
function headerEnd(file: Uint8Array): number {
  const t = new TextDecoder("latin1").decode(file.subarray(0, 4096));
  const mac = t.indexOf("\n--- ");
  return t.indexOf("\n", mac + 1) + 1;
}

test("a rewrapped header opens with the new identity in stock age, the old one no longer opens it, and the payload is untouched", async () => {
  const dir = tmpDir("zrb-rewrap-");
  const a = await ageKeyPair(join(dir, "a.txt"));
  const b = await ageKeyPair(join(dir, "b.txt"));
  const c = await ageKeyPair(join(dir, "c.txt"));
  const plain = new Uint8Array(200_000).map((_, i) => (i * 31) & 0xff);
  writeFileSync(join(dir, "p"), plain);
  await run(["age", "-r", a.recipient, "-o", join(dir, "old.age"), join(dir, "p")]);
  const old = new Uint8Array(readFileSync(join(dir, "old.age")));
  const h = headerEnd(old);
  const fileKey = await unwrapFileKey(old.subarray(0, h), [readFileSync(a.keyFile, "utf8").match(/AGE-SECRET-KEY-1\S+/)![0]]);
  const header = await rewrapHeader(fileKey, [b.recipient, c.recipient]);
  writeFileSync(join(dir, "new.age"), Buffer.concat([header, old.subarray(h)]));
  for (const who of [b, c]) {
    const out = await run(["age", "-d", "-i", who.keyFile, join(dir, "new.age")], { allowFail: true });
    expect(out.code).toBe(0);
  }
  const dec = Bun.spawnSync(["age", "-d", "-i", b.keyFile, join(dir, "new.age")]);
  expect(new Uint8Array(dec.stdout)).toEqual(plain);
  expect((await run(["age", "-d", "-i", a.keyFile, join(dir, "new.age")], { allowFail: true })).code).not.toBe(0);
  await expect(unwrapFileKey(header, [readFileSync(a.keyFile, "utf8").match(/AGE-SECRET-KEY-1\S+/)![0]])).rejects.toThrow("does not match");
});
