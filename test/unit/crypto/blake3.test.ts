import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blake3Backend, createBlake3, createBlake3Wasm, type Hasher } from "../../../src/crypto/blake3.ts";

const SIZES = [0, 1, 1023, 1024, 1025, 64 * 1024, 1024 * 1024 + 1, 5 * 1024 * 1024];
const PIECES = [1, 7, 1023, 4097, 65537, 1048577, 3];

let dir: string;
const data = new Map<number, Uint8Array>();
const expected = new Map<number, string>();

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "zrb-blake3-"));
  for (const n of SIZES) {
    const buf = random(n);
    const path = join(dir, `in-${n}`);
    await writeFile(path, buf);
    const p = Bun.spawnSync(["b3sum", "--no-names", path]);
    expect(p.exitCode).toBe(0);
    data.set(n, buf);
    expected.set(n, p.stdout.toString().trim());
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function oneShot(h: Hasher, buf: Uint8Array): string {
  h.update(buf);
  return h.digestHex();
}
function inPieces(h: Hasher, buf: Uint8Array): string {
  let off = 0;
  for (let i = 0; off < buf.length; i++) {
    const n = PIECES[i % PIECES.length]!;
    h.update(buf.subarray(off, off + n)); // subarray views at odd byte offsets
    off += n;
  }
  return h.digestHex();
}

const backends: [string, () => Promise<Hasher>][] = [
  ["default", createBlake3],
  ["wasm", createBlake3Wasm],
];

test("the native addon loads here", () => {
  expect(blake3Backend()).toBe("native");
});

for (const [name, make] of backends) {
  describe(`BLAKE3 ${name} backend matches b3sum`, () => {
    for (const n of SIZES) {
      test(`${n} bytes, one update`, async () => {
        expect(oneShot(await make(), data.get(n)!)).toBe(expected.get(n)!);
      });
      test(`${n} bytes, odd-sized pieces`, async () => {
        expect(inPieces(await make(), data.get(n)!)).toBe(expected.get(n)!);
      });
    }
  });
}

test("hashers are independent when interleaved (wasm and native)", async () => {
  const a = data.get(1024 * 1024 + 1)!;
  const b = data.get(1025)!;
  for (const make of [createBlake3, createBlake3Wasm]) {
    const ha = await make();
    const hb = await make();
    ha.update(a.subarray(0, 1000));
    hb.update(b.subarray(0, 10));
    ha.update(a.subarray(1000));
    hb.update(b.subarray(10));
    expect(ha.digestHex()).toBe(expected.get(a.length)!);
    expect(hb.digestHex()).toBe(expected.get(b.length)!);
  }
});

test("ZRB_NO_NATIVE=1 selects the wasm backend and it still matches b3sum", () => {
  const script = `
    import { blake3Backend, createBlake3 } from ${JSON.stringify(join(import.meta.dir, "../../../src/crypto/blake3.ts"))};
    const h = await createBlake3();
    h.update(new TextEncoder().encode("abc"));
    console.log(blake3Backend(), h.digestHex());`;
  const p = Bun.spawnSync([process.execPath, "-e", script], { env: { ...process.env, ZRB_NO_NATIVE: "1" } });
  expect(p.stderr.toString()).toBe("");
  const ref = Bun.spawnSync(["b3sum", "--no-names"], { stdin: new TextEncoder().encode("abc") }).stdout.toString().trim();
  expect(p.stdout.toString().trim()).toBe(`wasm ${ref}`);
});
