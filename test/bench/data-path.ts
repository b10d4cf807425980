/**
 * The bench's two real data-path stages, network excluded:
 * - pipeline: streamBackup() (src/pipeline/backup/send.ts) over a `cat <file>` source, with
 *   `workers` Workers and a store whose putFile() uploads nothing (the uploader then deletes the
 *   part, or keeps it for a part waiting for its slot to overwrite, as after a real upload).
 *   Run once more before
 *   the timed rows with `keep` (stage "prepare-restore"): the parts are moved into a local
 *   directory with a manifest of them, for the restore stage.
 * - restore: receiveParts() (src/pipeline/restore/receive.ts, the data half of a restore
 *   step) from a local-directory store holding those parts: download to scratch (SHA-256),
 *   open on every Worker, BLAKE3 per part and of the stream, the stream's BEGIN and END
 *   records against the manifest, the withheld tail, into a `cat` process standing in for
 *   `zfs receive`.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DEFAULTS } from "../../src/config/config.ts";
import { partKey } from "../../src/store/layout.ts";
import { BENCH_GUID } from "./source.ts";
import type { StageArgs } from "./stages.ts";
import { ThreadCpu } from "./threads.ts";
import { spawnPiped } from "../../src/pipeline/backup/pipe-source.ts";
import type { StreamSource } from "../../src/pipeline/backup/send.ts";

/** `cat file` as the pipeline reads `zfs send`: through zrb's own pipe where it can make one (pipe-source.ts). */
export function catSource(src: string): StreamSource {
  return spawnPiped((fd) => Bun.spawn(["cat", src], { stdin: "ignore", stdout: fd, stderr: "pipe" })) ?? Bun.spawn(["cat", src], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

type Config = import("../../src/config/config.ts").Config;
type ObjectStore = import("../../src/store/store.ts").ObjectStore;
type BackupState = import("../../src/state/rundir.ts").BackupState;
type Manifest = import("../../src/records/manifest.ts").Manifest;

const storeDir = (a: StageArgs) => join(a.scratch, "store");
const manifestPath = (a: StageArgs) => join(a.scratch, "bench-manifest.json");

function benchConfig(a: StageArgs, dir: string): Config {
  return {
    path: "(bench)",
    baseDir: dir,
    recipients: [a.recipient],
    chunkSize: a.chunkSize,
    workers: a.workers,
    localStore: join(dir, "store"),
    s3: { ...structuredClone(DEFAULTS.s3), retry: { maxAttempts: 1 } },
    monitoring: structuredClone(DEFAULTS.monitoring),
    zfs: structuredClone(DEFAULTS.zfs),
    drill: {},
    plan: {},
    verifyKeys: [],
    prune: structuredClone(DEFAULTS.prune),
    tasks: [],
  };
}

/** A store whose putFile() leaves the part to the uploader (no upload), or with `root` moves it there (a rename: no copy); nothing else is used. */
function benchStore(root: string | null, parts: { key: string; size: number }[]): ObjectStore {
  const unused = (what: string) => () => Promise.reject(new Error(`bench store: ${what} is not used by the data path`));
  return {
    location: "(bench: no upload)",
    urlOf: (key) => `(bench)/${key}`,
    async putFile(key, path, o) {
      parts.push({ key, size: o.size });
      // No upload: the file stays for the uploader, which deletes or recycles it as after a real upload.
      if (!root) return;
      mkdirSync(dirname(join(root, key)), { recursive: true });
      renameSync(path, join(root, key));
    },
    put: unused("put"),
    rewriteHead: unused("rewriteHead"),
    get: unused("get"),
    getStream: unused("getStream"),
    head: unused("head"),
    list: unused("list"),
    delete: unused("delete"),
    listUploads: unused("listUploads"),
    abortUpload: unused("abortUpload"),
    thaw: unused("thaw"),
    retain: unused("retain"),
    checkAccess: unused("checkAccess"),
  };
}

export async function runPipeline(a: StageArgs, keep: boolean): Promise<{ bytes: number; check: string; note: string }> {
  const { streamBackup } = await import("../../src/pipeline/backup/send.ts");
  const { RunDir } = await import("../../src/state/rundir.ts");
  const dir = join(a.scratch, "pipeline");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const parts: { key: string; size: number }[] = [];
  const store = benchStore(keep ? storeDir(a) : null, parts);
  const state: BackupState = {
    format: "zrb-state/1",
    backupId: "bench-L0",
    level: 0,
    pool: "bench",
    dataset: "",
    snapshot: { name: "bench@zrb_level0_bench", guid: BENCH_GUID, createtxg: "1" },
    parent: null,
    sendFlags: [],
    chunkSize: a.chunkSize,
    recipients: [a.recipient],
    startedAt: new Date().toISOString(),
    chunks: [],
  };
  const threads = new ThreadCpu(a.workers);
  const timer = setInterval(() => threads.sample(), 50);
  const source = catSource(a.src);
  const r = await streamBackup({ cfg: benchConfig(a, dir), store, state, rundir: new RunDir(dir, "bench", ""), source });
  if (r.kind !== "done") throw new Error("bench: the stream cannot differ from itself");
  clearInterval(timer);
  threads.sample();
  const want = Math.ceil(a.size / a.chunkSize);
  const problems: string[] = [];
  if (r.blake3 !== a.expectB3) problems.push(`BLAKE3 ${r.blake3} ≠ b3sum ${a.expectB3}`);
  if (r.streamSize !== a.size) problems.push(`stream ${r.streamSize} B ≠ ${a.size} B`);
  if (parts.length !== want) problems.push(`${parts.length} parts ≠ ${want}`);
  // What the restore stage reads: the parts as a manifest lists them.
  if (keep) writeFileSync(manifestPath(a), JSON.stringify(manifestOf(state, r)));
  const cipher = parts.reduce((s, p) => s + p.size, 0);
  return {
    bytes: r.streamSize,
    check: problems.length ? `MISMATCH: ${problems.join("; ")}` : "ok",
    note: `${parts.length} parts, ${cipher} B encrypted; ${threads.summary()}`,
  };
}

/** The manifest fields the restore data path reads, for the parts the pipeline kept. */
function manifestOf(state: BackupState, r: { streamSize: number; blake3: string }) {
  return {
    backupId: state.backupId,
    recipients: state.recipients,
    // The stream's BEGIN and END records are checked against these (source.ts makes them).
    snapshot: state.snapshot,
    parent: state.parent,
    stream: { size: r.streamSize, blake3: r.blake3 },
    parts: state.chunks.map((c) => ({
      index: c.index,
      key: partKey(state.pool, state.dataset, 0, state.backupId, c.index),
      plainSize: c.plainSize,
      cipherSize: c.cipherSize!,
      sha256: c.sha256!,
      blake3: c.blake3,
    })),
  };
}

export async function runRestore(a: StageArgs): Promise<{ bytes: number; check: string; note: string }> {
  const { pipeWriter, receiveParts } = await import("../../src/pipeline/restore/receive.ts");
  const { startThreads } = await import("../../src/pipeline/parallel/index.ts");
  const { LocalStore } = await import("../../src/store/local.ts");
  const { parseIdentityFile } = await import("../../src/crypto/keys.ts");
  const m = JSON.parse(readFileSync(manifestPath(a), "utf8")) as Manifest;
  const scratch = join(a.scratch, "restore");
  mkdirSync(scratch, { recursive: true, mode: 0o700 });
  const cpu = new ThreadCpu(a.workers);
  const timer = setInterval(() => cpu.sample(), 50);
  let fatal: Error | null = null;
  const threads = await startThreads(a.workers, (e) => (fatal ??= e));
  // Stands in for `zfs receive`: a process reading the stream from a pipe.
  const sink = Bun.spawn(["cat"], { stdin: "pipe", stdout: "ignore", stderr: "inherit" });
  const write = pipeWriter(sink.stdin, async () => new Error("the sink process died"));
  try {
    const opts = { identities: await parseIdentityFile(a.keyFile), scratch, ahead: 2, threads, target: "(bench: cat >/dev/null)" };
    await receiveParts(new LocalStore(storeDir(a)), m, opts, write);
    await sink.stdin.end();
    if ((await sink.exited) !== 0) throw new Error("the sink process failed");
  } finally {
    threads.terminate();
    sink.kill();
  }
  if (fatal) throw fatal;
  clearInterval(timer);
  cpu.sample();
  // receiveParts() itself checked every part's SHA-256 and BLAKE3 and the stream's BLAKE3.
  return {
    bytes: m.stream.size,
    check: m.stream.blake3 === a.expectB3 ? "ok" : `MISMATCH: stream BLAKE3 ${m.stream.blake3} ≠ b3sum ${a.expectB3}`,
    note: `${m.parts.length} parts from a local store, into cat; ${cpu.summary()}`,
  };
}
