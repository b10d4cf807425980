/** Helpers for the store tests: request recording (SDK middleware, not a mock), a "fail the first N" fault proxy, and the S3 test files' shared set-up (s3Kit). */
import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { emptyAndDeleteBucket, makeBucket, s3Rig, type S3Rig } from "../../helpers/rig.ts";
import { forward, s3Error, startFaultProxy } from "../../helpers/faultproxy.ts";
import { S3Store } from "../../../src/store/s3.ts";
import { RetryStore, type RetryOptions } from "../../../src/store/retry.ts";
import type { MultipartProgress } from "../../../src/store/store.ts";

export interface RecordedCall {
  command: string;
  input: Record<string, unknown>;
}

/** Record every command the client sends (before retries/serialisation). Real requests still go out. */
export function recordCalls(client: S3Client): RecordedCall[] {
  const calls: RecordedCall[] = [];
  client.middlewareStack.add(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    ((next: any, context: any) => async (args: any) => {
      calls.push({ command: String(context.commandName), input: args.input });
      return next(args);
    }) as never,
    { step: "initialize", name: `zrbTestRecorder${Math.random()}` },
  );
  return calls;
}

/**
 * Make the client ask for ListParts pages of `n` parts (the server's default is 1000): a real
 * paginated listing with a few parts. The request still goes to the server.
 */
export function pageListParts(client: S3Client, n: number): void {
  client.middlewareStack.add(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    ((next: any, context: any) => async (args: any) => {
      if (context.commandName === "ListPartsCommand") args.input.MaxParts = n;
      return next(args);
    }) as never,
    { step: "initialize", name: `zrbTestListPartsPage${Math.random()}` },
  );
}

/** Deterministic pseudo-random bytes (xorshift), fast enough for tens of MiB. */
export function pseudoRandom(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, Math.floor(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = (i * 31 + seed) & 255;
  return out;
}

export function sha256Hex(b: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(b).digest("hex");
}

export async function readAll(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** The e2e fault proxy (test/helpers/faultproxy.ts), driven by a simple "fail the first N" rule. */
export interface FaultProxy {
  endpoint: string;
  /** Requests answered with the canned reply so far. */
  replied: number;
  /** Requests forwarded to the upstream so far. */
  forwarded: number;
  stop(): void;
}

/**
 * The first `failFirst` requests whose "METHOD path" matches `match` (default: any) get
 * `reply`; the others are forwarded to radosgw.
 */
export function faultProxy(opts: { upstreamPort: number; failFirst: number; reply: string; match?: RegExp }): FaultProxy {
  let replied = 0;
  let forwarded = 0;
  const proxy = startFaultProxy({
    upstreamPort: opts.upstreamPort,
    decide: (r) => {
      if (replied < opts.failFirst && (!opts.match || opts.match.test(`${r.method} ${r.path}`))) {
        replied++;
        return { kind: "reply", response: opts.reply };
      }
      forwarded++;
      return forward;
    },
  });
  return {
    endpoint: proxy.endpoint,
    get replied() {
      return replied;
    },
    get forwarded() {
      return forwarded;
    },
    stop: () => proxy.stop(),
  };
}

/** s3ErrorReply("503 Slow Down", "SlowDown", "…") — see s3Error. */
export function s3ErrorReply(status: string, code: string, message: string): string {
  const [num, ...reason] = status.split(" ");
  return s3Error(Number(num), reason.join(" "), code, message);
}

/** The environment variables of the SDK's credential chain that the store tests set or clear. */
export const ENV = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] as const;

/**
 * The rig's radosgw for one test file: its credentials reach the store only through the
 * standard chain (the environment, restored after), a fresh bucket and a scratch directory,
 * both removed after. Read the fields inside the tests (they are set in beforeAll).
 */
export function useS3Rig(dirPrefix: string): { rig: S3Rig; bucket: string; dir: string } {
  const ctx = {} as { rig: S3Rig; bucket: string; dir: string };
  const saved: Record<string, string | undefined> = {};
  beforeAll(async () => {
    ctx.rig = await s3Rig();
    for (const k of ENV) saved[k] = process.env[k];
    process.env.AWS_ACCESS_KEY_ID = ctx.rig.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = ctx.rig.secretAccessKey;
    delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_PROFILE;
    ctx.bucket = await makeBucket(ctx.rig);
    ctx.dir = mkdtempSync(join(tmpdir(), dirPrefix));
  });
  afterAll(async () => {
    await emptyAndDeleteBucket(ctx.rig, ctx.bucket);
    rmSync(ctx.dir, { recursive: true, force: true });
    for (const k of ENV) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  return ctx;
}

/**
 * What the S3Store test files share: the rig's bucket for the file (useS3Rig) and the stores,
 * files and interrupted uploads the tests make in it. The functions read the rig inside the
 * tests, after beforeAll.
 */
export function s3Kit(dirPrefix: string) {
  const ctx = useS3Rig(dirPrefix);
  const store = (extra: Partial<ConstructorParameters<typeof S3Store>[0]> = {}): S3Store =>
    new S3Store({ bucket: ctx.bucket, prefix: "zrb/test", region: ctx.rig.region, endpoint: ctx.rig.endpoint, ...extra });
  return {
    ctx,
    store,
    /** The store as zrb uses it: S3Store (one attempt per call) behind the retry wrapper. */
    retrying: (s: S3Store, maxAttempts: number, onRetry?: RetryOptions["onRetry"]): RetryStore => new RetryStore(s, { maxAttempts, baseDelayMs: 5, onRetry }),
    /** The zrb-sha256 metadata stored with an object. */
    async storedSha(s: S3Store, key: string): Promise<string | undefined> {
      const r = await s.client.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: s.prefix + key }));
      return r.Metadata?.["zrb-sha256"];
    },
    async writeFile(name: string, bytes: Uint8Array): Promise<string> {
      const p = join(ctx.dir, name);
      await Bun.write(p, bytes);
      return p;
    },
    /**
     * Run 1 of a multipart upload, one part at a time, "killed" (aborted) once `parts` parts are
     * recorded: the progress it persisted, for run 2 to resume.
     */
    async interrupted(key: string, path: string, data: Uint8Array, parts: number): Promise<MultipartProgress> {
      const s = store({ partConcurrency: 1 });
      const ac = new AbortController();
      let persisted: MultipartProgress | undefined;
      const run = s.putFile(key, path, {
        size: data.length,
        sha256Hex: sha256Hex(data),
        signal: ac.signal,
        onProgress: (pr) => {
          persisted = structuredClone(pr);
          if (pr.parts.length >= parts) ac.abort();
        },
      });
      await expect(run).rejects.toMatchObject({ name: "AbortError" });
      expect(persisted!.parts).toHaveLength(parts);
      return persisted!;
    },
    uploadedParts: (calls: { command: string; input: Record<string, unknown> }[]) =>
      calls.filter((c) => c.command === "UploadPartCommand").map((c) => c.input.PartNumber as number).sort((a, b) => a - b),
  };
}
