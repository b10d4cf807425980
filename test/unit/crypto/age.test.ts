/**
 * The hybrid age implementation against the stock `age` / `age-keygen` CLI: both directions,
 * several recipients, and rejection of modified, truncated and extended files.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Decrypter } from "age-encryption";
import { hkdfSync } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgeDecryptStream, AgeEncryptStream, CHUNK_SIZE, ciphertextSize } from "../../../src/crypto/age.ts";
import { decryptFile, encryptFile } from "../../../src/crypto/age-file.ts";
import { generateKeyPair, parseIdentityFile, parseRecipients } from "../../../src/crypto/keys.ts";
import { sealChunk } from "../../../src/crypto/sodium.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const SIZES = [0, 1, 65535, 65536, 65537, 131072, 5 * 1024 * 1024 + 4321];

let dir: string;
const keys: { path: string; recipient: string; identity: string }[] = [];
const plain = new Map<number, string>(); // size -> path

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

function run(cmd: string[], stdin?: Uint8Array) {
  const p = Bun.spawnSync(cmd, { stdin: stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, stdout: p.stdout, stderr: p.stderr.toString() };
}

function ageDecrypt(file: string, keyPath: string) {
  return run(["age", "-d", "-i", keyPath, file]);
}

async function same(a: string, b: string): Promise<boolean> {
  return Buffer.from(await readFile(a)).equals(await readFile(b));
}

/** Runs fn and returns the ZrbError it must throw. */
async function zrbError(fn: () => Promise<unknown>): Promise<ZrbError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ZrbError);
    return e as ZrbError;
  }
  throw new Error("expected a ZrbError");
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "zrb-age-"));
  for (const name of ["k1", "k2", "k3"]) {
    const path = join(dir, name);
    expect(run(["age-keygen", "-o", path]).code).toBe(0);
    const recipient = run(["age-keygen", "-y", path]).stdout.toString().trim();
    const identity = (await readFile(path, "utf8")).split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
    keys.push({ path, recipient, identity });
  }
  for (const n of SIZES) {
    const path = join(dir, `plain-${n}`);
    await writeFile(path, random(n));
    plain.set(n, path);
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const k = (i: number) => keys[i]!;

describe("keys", () => {
  test("age-keygen identity files parse", async () => {
    expect(await parseIdentityFile(k(0).path)).toEqual([k(0).identity]);
    // Several keys, comments, blank lines, CRLF.
    const multi = join(dir, "multi");
    await writeFile(multi, `# two keys\r\n\r\n${k(0).identity}\r\n# another\n\n${k(1).identity}\n`);
    expect(await parseIdentityFile(multi)).toEqual([k(0).identity, k(1).identity]);
  });

  test("generateKeyPair writes an age-keygen compatible file", async () => {
    const { identityFileText, recipient } = await generateKeyPair();
    const lines = identityFileText.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(lines[1]).toBe(`# public key: ${recipient}`);
    expect(lines[2]).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]+$/);
    const path = join(dir, "generated");
    await writeFile(path, identityFileText);
    expect(run(["age-keygen", "-y", path]).stdout.toString().trim()).toBe(recipient);
    expect(await parseIdentityFile(path)).toEqual([lines[2]!]);
  });

  test("identity file errors are one line, name the file and never show key material", async () => {
    const secret = k(0).identity;
    const bad = join(dir, "bad");
    const cases: [string, string | null, RegExp][] = [
      [join(dir, "missing"), null, /does not exist/],
      [join(dir, "nokey"), "# only a comment\n\n", /contains no AGE-SECRET-KEY-1/],
      [bad, `# x\n${secret.slice(0, -2)}QQ\n`, /line 2 of identity file .* is not an age X25519 secret key/],
      [join(dir, "pub"), `${k(0).recipient}\n`, /line 1 .* is not an age X25519 secret key/],
      [join(dir, "enc"), "age-encryption.org/v1\n-> X25519 abc\n", /is itself age-encrypted/],
    ];
    for (const [path, content, re] of cases) {
      if (content !== null) await writeFile(path, content);
      const e = await zrbError(() => parseIdentityFile(path));
      expect(e.exitCode).toBe(ExitCode.CRYPTO);
      expect(e.message).toMatch(re);
      expect(e.message).toContain(path);
      expect(e.message).not.toContain("\n");
      expect(e.message).not.toContain(secret.slice(16, 40));
    }
    if (process.getuid?.() !== 0) {
      await writeFile(bad, secret);
      await chmod(bad, 0);
      expect((await zrbError(() => parseIdentityFile(bad))).message).toMatch(/not readable/);
    }
  });

  test("parseRecipients accepts X25519 recipients and names the bad one", () => {
    expect(parseRecipients([` ${k(0).recipient} `, k(1).recipient])).toEqual([k(0).recipient, k(1).recipient]);
    const broken = k(1).recipient.slice(0, -1) + (k(1).recipient.endsWith("q") ? "p" : "q");
    for (const [list, re] of [
      [[k(0).recipient, broken], /#2 .* not a valid age X25519 public key/],
      [["ssh-ed25519 AAAA"], /#1 .* not an age public key/],
      [[k(0).identity], /#1 .* not an age public key/],
      [["age1pq1qqqq"], /#1 is a post-quantum/],
      [[], /no age recipient/],
    ] as [string[], RegExp][]) {
      let err: unknown;
      try {
        parseRecipients(list);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ZrbError);
      expect((err as ZrbError).exitCode).toBe(ExitCode.CRYPTO);
      expect((err as ZrbError).message).toMatch(re);
      expect((err as ZrbError).message).not.toContain(k(0).identity.slice(16));
    }
  });
});

describe("interoperability with the age CLI", () => {
  for (const n of SIZES) {
    test(`${n} bytes: zrb encrypt -> age -d`, async () => {
      const out = join(dir, `zrb-${n}.age`);
      const r = await encryptFile(plain.get(n)!, out, [k(0).recipient]);
      const bytes = await readFile(out);
      expect(r.plainSize).toBe(n);
      expect(r.cipherSize).toBe(bytes.length);
      expect(r.sha256Hex).toBe(new Bun.CryptoHasher("sha256").update(bytes).digest("hex"));
      const d = ageDecrypt(out, k(0).path);
      expect(d.stderr).toBe("");
      expect(d.code).toBe(0);
      expect(Buffer.from(d.stdout).equals(await readFile(plain.get(n)!))).toBe(true);
      // And back through zrb.
      const back = join(dir, `zrb-${n}.out`);
      expect((await decryptFile(out, back, [k(0).identity])).plainSize).toBe(n);
      expect(await same(back, plain.get(n)!)).toBe(true);
    });

    test(`${n} bytes: age -r -> zrb decrypt`, async () => {
      const out = join(dir, `cli-${n}.age`);
      expect(run(["age", "-r", k(0).recipient, "-o", out, plain.get(n)!]).code).toBe(0);
      const back = join(dir, `cli-${n}.out`);
      expect((await decryptFile(out, back, await parseIdentityFile(k(0).path))).plainSize).toBe(n);
      expect(await same(back, plain.get(n)!)).toBe(true);
    });
  }

  test("two recipients: one stanza each, either identity decrypts (age and zrb)", async () => {
    const n = 65537;
    const out = join(dir, "two.age");
    await encryptFile(plain.get(n)!, out, [k(0).recipient, k(1).recipient]);
    const head = (await readFile(out)).subarray(0, 400).toString("latin1");
    expect(head.match(/^-> X25519 /gm)?.length).toBe(2);
    for (const i of [0, 1]) {
      const d = ageDecrypt(out, k(i).path);
      expect(d.code).toBe(0);
      expect(Buffer.from(d.stdout).equals(await readFile(plain.get(n)!))).toBe(true);
      const back = join(dir, `two-${i}.out`);
      await decryptFile(out, back, [k(i).identity]);
      expect(await same(back, plain.get(n)!)).toBe(true);
    }
    // An identity file holding an unrelated key first, then the right one.
    await decryptFile(out, join(dir, "two-x.out"), [k(2).identity, k(1).identity]);
  });

  test("ciphertextSize() predicts the file size", async () => {
    for (const n of SIZES) {
      const enc = await AgeEncryptStream.create([k(0).recipient, k(1).recipient]);
      const data = await readFile(plain.get(n)!);
      const total = enc.push(data).length + enc.finish().length;
      expect(total).toBe(ciphertextSize(n, enc.headerSize));
    }
  });
});

describe("rejections", () => {
  const N = 131072 + 100; // three chunks: full, full, 100 bytes
  let good: Uint8Array;
  let goodPath: string;
  let headerSize: number;

  beforeAll(async () => {
    goodPath = join(dir, "good.age");
    await encryptFile(plain.get(131072)!, goodPath, [k(0).recipient]);
    // Append 100 bytes of plaintext for a short last chunk.
    const p = Buffer.concat([await readFile(plain.get(131072)!), random(100)]);
    await writeFile(join(dir, "plain-N"), p);
    await encryptFile(join(dir, "plain-N"), goodPath, [k(0).recipient]);
    good = new Uint8Array(await readFile(goodPath));
    headerSize = good.length - 16 - (N + 3 * 16);
  });

  async function bothReject(name: string, bytes: Uint8Array, zrbMessage: RegExp, exit: ExitCode = ExitCode.INTEGRITY) {
    const path = join(dir, `${name}.age`);
    await writeFile(path, bytes);
    const cli = ageDecrypt(path, k(0).path);
    expect(cli.code).not.toBe(0);
    const out = join(dir, `${name}.out`);
    const e = await zrbError(() => decryptFile(path, out, [k(0).identity]));
    expect(e.exitCode).toBe(exit);
    expect(e.message).toMatch(zrbMessage);
    expect(e.message).not.toContain("\n");
    expect(await Bun.file(out).exists()).toBe(false); // no unverified plaintext left behind
  }

  test("a flipped byte anywhere is rejected", async () => {
    const cases: [string, number, RegExp][] = [
      ["flip-mac", headerSize - 5, /header/],
      ["flip-nonce", headerSize + 3, /chunk 0 failed authentication/],
      ["flip-chunk0", headerSize + 16 + 1000, /chunk 0 failed authentication/],
      ["flip-chunk1-tag", headerSize + 16 + 2 * 65552 - 1, /chunk 1 failed authentication/],
      ["flip-last", good.length - 1, /chunk 2 failed authentication/],
    ];
    // A modified stanza cannot be told from a stanza for another key (same as the age CLI).
    const stanza = good.slice();
    stanza[30]! ^= 0x01;
    await bothReject("flip-stanza", stanza, /^this identity does not match any recipient of the file$/, ExitCode.CRYPTO);
    for (const [name, pos, re] of cases) {
      const bad = good.slice();
      bad[pos]! ^= 0x01;
      await bothReject(name, bad, re);
    }
  });

  test("truncated files are rejected", async () => {
    const body = headerSize + 16;
    const cases: [string, number, RegExp][] = [
      ["trunc-empty", 0, /empty/],
      ["trunc-header", 40, /truncated inside its header/],
      ["trunc-nonce", headerSize + 5, /no payload chunk/],
      ["trunc-no-chunks", body, /no payload chunk/],
      ["trunc-chunk-boundary", body + 65552, /truncated: it ends after chunk 0/],
      ["trunc-two-chunks", body + 2 * 65552, /truncated: it ends after chunk 1/],
      ["trunc-mid-chunk", body + 65552 + 5000, /chunk 1 failed authentication/],
      ["trunc-last-byte", good.length - 1, /chunk 2 failed authentication/],
      ["trunc-tag", body + 2 * 65552 + 10, /shorter than a tag/],
    ];
    for (const [name, len, re] of cases) await bothReject(name, good.subarray(0, len), re);
  });

  test("trailing data after the final chunk is rejected", async () => {
    // A full final chunk followed by more bytes (65536-byte plaintext).
    const path = join(dir, "full.age");
    await encryptFile(plain.get(65536)!, path, [k(0).recipient]);
    const full = new Uint8Array(await readFile(path));
    await bothReject("trail-full", Buffer.concat([full, random(1000)]), /trailing data after its final chunk/);
    await bothReject("trail-full-big", Buffer.concat([full, random(70000)]), /trailing data after its final chunk/);
    // A short final chunk followed by bytes: the frame no longer authenticates.
    await bothReject("trail-short", Buffer.concat([good, random(7)]), /chunk 2 failed authentication/);
  });

  test("an empty final chunk after data is rejected (both zrb and age)", async () => {
    // Re-seal a valid file's payload as one full chunk plus an empty final chunk.
    const path = join(dir, "full.age");
    await encryptFile(plain.get(65536)!, path, [k(0).recipient]);
    const file = new Uint8Array(await readFile(path));
    const hs = file.length - 16 - 65552;
    const d = new Decrypter();
    d.addIdentity(k(0).identity);
    const fileKey = await d.decryptHeader(file.subarray(0, hs));
    const key = new Uint8Array(hkdfSync("sha256", fileKey, file.subarray(hs, hs + 16), "payload", 32));
    const data = await readFile(plain.get(65536)!);
    const c0 = new Uint8Array(65552);
    const c1 = new Uint8Array(16);
    const nonce = new Uint8Array(12);
    sealChunk(c0, data, nonce, key);
    nonce[10] = 1;
    nonce[11] = 1;
    sealChunk(c1, new Uint8Array(0), nonce, key);
    await bothReject("empty-last", Buffer.concat([file.subarray(0, hs + 16), c0, c1]), /empty final chunk after data/);
  });

  test("a non-age file is rejected early", async () => {
    await bothReject("plain", await readFile(plain.get(65537)!), /not an age v1 file/);
  });

  test("the wrong identity: CRYPTO error with the agreed wording", async () => {
    const cli = ageDecrypt(goodPath, k(1).path);
    expect(cli.code).not.toBe(0);
    const e = await zrbError(() => decryptFile(goodPath, join(dir, "wrong.out"), [k(1).identity, k(2).identity]));
    expect(e.exitCode).toBe(ExitCode.CRYPTO);
    expect(e.message).toBe("this identity does not match any recipient of the file");
  });

  test("invalid identities and recipients are refused at create()", async () => {
    expect((await zrbError(() => AgeDecryptStream.create(["AGE-SECRET-KEY-1XYZ"]))).exitCode).toBe(ExitCode.CRYPTO);
    expect((await zrbError(() => AgeDecryptStream.create([]))).exitCode).toBe(ExitCode.CRYPTO);
    expect((await zrbError(() => AgeEncryptStream.create(["age1nope"]))).exitCode).toBe(ExitCode.CRYPTO);
  });

  test("use after finish() is a programming error", async () => {
    const enc = await AgeEncryptStream.create([k(0).recipient]);
    enc.finish();
    expect(() => enc.push(new Uint8Array(1))).toThrow(/after finish/);
    expect(() => enc.finish()).toThrow(/twice/);
  });
});

describe("chunking", () => {
  /** Deterministic randomness so that two encryptions can be compared byte for byte. */
  async function withSeededRandom<T>(seed: number, fn: () => Promise<T>): Promise<T> {
    const orig = crypto.getRandomValues.bind(crypto);
    let s = seed >>> 0;
    (crypto as { getRandomValues: unknown }).getRandomValues = <A extends ArrayBufferView | null>(a: A): A => {
      if (a) {
        const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
        for (let i = 0; i < u.length; i++) {
          s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
          u[i] = s >>> 24;
        }
      }
      return a;
    };
    try {
      return await fn();
    } finally {
      (crypto as { getRandomValues: unknown }).getRandomValues = orig;
    }
  }

  const PIECES = [1, 7, CHUNK_SIZE - 1, CHUNK_SIZE + 1, 1024 * 1024, 3, CHUNK_SIZE, 16];

  function feed(push: (b: Uint8Array) => Uint8Array, data: Uint8Array, pieces: number[] | null): Buffer[] {
    const out: Buffer[] = [];
    if (!pieces) {
      out.push(Buffer.from(push(data)));
      return out;
    }
    let off = 0;
    for (let i = 0; off < data.length; i++) {
      const n = pieces[i % pieces.length]!;
      out.push(Buffer.from(push(data.subarray(off, off + n)))); // copy: outputs are reused views
      off += n;
    }
    return out;
  }

  for (const n of SIZES) {
    test(`${n} bytes: random-sized pushes give the same bytes as one push`, async () => {
      const data = new Uint8Array(await readFile(plain.get(n)!));
      const encryptWith = (pieces: number[] | null) =>
        withSeededRandom(42, async () => {
          const enc = await AgeEncryptStream.create([k(0).recipient]);
          const parts = feed((b) => enc.push(b), data, pieces);
          parts.push(Buffer.from(enc.finish()));
          return Buffer.concat(parts);
        });
      const whole = await encryptWith(null);
      const pieced = await encryptWith(PIECES);
      expect(pieced.equals(whole)).toBe(true);
      const headerSize = whole.indexOf("\n", whole.indexOf("\n--- ") + 1) + 1;
      expect(whole.length).toBe(ciphertextSize(n, headerSize));

      // The deterministic file is still a valid age file for the CLI.
      const path = join(dir, `seeded-${n}.age`);
      await writeFile(path, whole);
      const cli = ageDecrypt(path, k(0).path);
      expect(cli.code).toBe(0);
      expect(Buffer.from(cli.stdout).equals(data)).toBe(true);

      // Decryption in pieces, including 1-byte pushes through the header.
      for (const pieces of [null, PIECES, [1, 1, 5, 300, 65552, 65551, 65553]]) {
        const dec = await AgeDecryptStream.create([k(0).identity]);
        const parts: Buffer[] = [];
        let off = 0;
        for (let i = 0; off < whole.length; i++) {
          const m = pieces ? pieces[i % pieces.length]! : whole.length;
          parts.push(Buffer.from(await dec.push(whole.subarray(off, off + m))));
          off += m;
        }
        parts.push(Buffer.from(dec.finish()));
        expect(Buffer.concat(parts).equals(data)).toBe(true);
      }
    });
  }
});
