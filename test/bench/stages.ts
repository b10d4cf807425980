/**
 * The zrb rows' child processes: `bun bench.ts --stage <name> <json args>` runs one stage and
 * prints `RESULT {json}` as its last line. Modules load before the clock starts (the figures are
 * the data path's, not Bun's start-up); per-run costs (age header, Workers) are timed. The
 * peak RSS is the child's own VmHWM (main thread and Workers together).
 */
import { closeSync, fsyncSync, openSync, readFileSync, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { catSource, runPipeline, runRestore } from "./data-path.ts";
import { readerOf } from "../../src/pipeline/backup/pipe-source.ts";

const BUF = 1 << 20;

export interface StageArgs {
  src: string;
  chunkFile: string;
  size: number;
  chunkSize: number;
  workers: number;
  recipient: string;
  keyFile: string;
  expectB3: string;
  scratch: string;
}

export interface StageResult {
  bytes: number;
  seconds: number;
  hwmKiB: number;
  check?: string;
  note?: string;
}

function vmHWMKiB(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : 0;
}

/** Read the `cat` source's stdout the way the pipeline does (catSource: zrb's own pipe, or the runtime's stream). */
async function readSource(src: string, each: (b: Uint8Array) => void): Promise<number> {
  const p = catSource(src);
  let n = 0;
  const reader = readerOf(p.stdout);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    each(value);
    n += value.length;
  }
  if ((await p.exited) !== 0) throw new Error(`cat ${src} failed`);
  return n;
}

/** age-encrypt a file on this thread, SHA-256 the ciphertext; optionally write it to a spill file and fsync, as the file worker does. */
async function encryptOne(a: StageArgs, spill: string | null): Promise<{ bytes: number; note: string }> {
  const { AgeEncryptStream } = await import("../../src/crypto/age.ts");
  const enc = await AgeEncryptStream.create([a.recipient]);
  const sha = new Bun.CryptoHasher("sha256");
  const inFd = openSync(a.chunkFile, "r");
  const outFd = spill ? openSync(spill, "w", 0o600) : -1;
  const buf = new Uint8Array(BUF);
  let plain = 0;
  let cipher = 0;
  const out = (b: Uint8Array) => {
    if (b.length === 0) return;
    sha.update(b);
    cipher += b.length;
    if (outFd >= 0) for (let off = 0; off < b.length; ) off += writeSync(outFd, b, off, b.length - off);
  };
  try {
    for (;;) {
      const n = readSync(inFd, buf, 0, BUF, null);
      if (n === 0) break;
      plain += n;
      out(enc.push(buf.subarray(0, n)));
    }
    out(enc.finish());
    if (outFd >= 0) fsyncSync(outFd);
  } finally {
    closeSync(inFd);
    if (outFd >= 0) closeSync(outFd);
    if (spill) rmSync(spill, { force: true });
  }
  return { bytes: plain, note: `${cipher} B out, sha256 ${sha.digest("hex").slice(0, 12)}…` };
}

const STAGE_MODULES: Record<string, string[]> = {
  read: [],
  blake3: ["../../src/crypto/blake3.ts"],
  age: ["../../src/crypto/age.ts"],
  "age-spill": ["../../src/crypto/age.ts"],
  pipeline: ["../../src/pipeline/backup/send.ts"],
  "prepare-restore": ["../../src/pipeline/backup/send.ts"],
  restore: ["../../src/pipeline/restore/receive.ts", "../../src/store/local.ts", "../../src/crypto/keys.ts"],
};

export async function stageMain(name: string, a: StageArgs): Promise<void> {
  for (const m of STAGE_MODULES[name] ?? []) await import(m);
  const t0 = performance.now();
  let r: Omit<StageResult, "seconds" | "hwmKiB">;
  switch (name) {
    case "read":
      r = { bytes: await readSource(a.src, () => {}) };
      break;
    case "blake3": {
      const { createBlake3, blake3Backend } = await import("../../src/crypto/blake3.ts");
      const h = await createBlake3();
      const bytes = await readSource(a.src, (b) => h.update(b));
      const d = h.digestHex();
      r = { bytes, check: d === a.expectB3 ? "ok" : `MISMATCH: ${d}`, note: `${blake3Backend()} BLAKE3` };
      break;
    }
    case "age":
      r = await encryptOne(a, null);
      break;
    case "age-spill":
      r = await encryptOne(a, join(a.scratch, "spill-test.age"));
      break;
    case "pipeline":
    case "prepare-restore":
      r = await runPipeline(a, name === "prepare-restore");
      break;
    case "restore":
      r = await runRestore(a);
      break;
    default:
      throw new Error(`unknown stage ${name}`);
  }
  const res: StageResult = { ...r, seconds: (performance.now() - t0) / 1000, hwmKiB: vmHWMKiB() };
  process.stdout.write(`\nRESULT ${JSON.stringify(res)}\n`);
}
