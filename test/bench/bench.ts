/**
 * `bun run bench`: throughput and peak memory of zrb's data path on this machine — backup
 * (send → BLAKE3 → chunks → sealed on every Worker → spill) and restore (parts → SHA-256 →
 * opened on every Worker → BLAKE3 → a `zfs receive` stand-in) — next to the stock tools doing
 * the same work in the same run on the same bytes, compared with the strongest of them. With
 * `--e2e`, also a real `zrb backup` of a zfs-fuse dataset to the loopback radosgw next to
 * `zfs send | age` + `aws s3 cp`. A benchmark, not a test: it prints figures and exits 0 even
 * when a stage fails (the failure is printed). Options: test/bench/options.ts; docs/bench.md.
 *
 * The source is a file of incompressible bytes in a scratch directory (removed at the end,
 * also on Ctrl-C), warm in the page cache; the `zfs send`-like stream is `cat <file>`'s stdout.
 * Every zrb stage runs in its own child process (this file with `--stage`, stages.ts), so its
 * peak RSS is the child's own VmHWM. The last line is the summary:
 *   bench: pipeline N MB/s, best native M MB/s (LABEL), ratio R, restore K MB/s, peak RSS X MiB
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { E2E_ROWS, e2eRows } from "./e2e.ts";
import { treeRow } from "./tree.ts";
import { partsRows } from "./parts.ts";
import { WAN_ROWS, wanLine, wanRows } from "./wan.ts";
import { parseOpts, type Opts } from "./options.ts";
import { atCleanup, cleanup, failed, firstLine, loadAvg, MB, MiB, q, reportedKiB, run, setRssDir, sh, type Sample } from "./proc.ts";
import { frameAsSendStream, generate } from "./source.ts";
import { stageMain, type StageArgs, type StageResult } from "./stages.ts";
import { aggregate, BEST_NATIVE, bestNative, fmt, printTable, type Agg, type Row } from "./table.ts";
import { HEAP_RAM } from "../../src/heap.ts";

const fmtSize = (n: number) => (n % 1024 ** 3 === 0 ? `${n / 1024 ** 3} GiB` : n % MiB === 0 ? `${n / MiB} MiB` : `${(n / MB).toFixed(1)} MB`);

async function stage(name: string, a: StageArgs): Promise<Sample> {
  // The heap sized as the compiled binary sizes its own (src/heap.ts), so RSS is what users see.
  const env = { ZRB_LOG_LEVEL: "1", BUN_JSC_forceRAMSize: process.env.BUN_JSC_forceRAMSize ?? HEAP_RAM };
  const r = await run([process.execPath, import.meta.path, "--stage", name, JSON.stringify(a)], { stdout: "pipe", env });
  const line = r.out.split("\n").findLast((l) => l.startsWith("RESULT "));
  if (r.code !== 0 || !line) return failed(`exit ${r.code}: ${firstLine(r.err) || "no result"}`);
  const s = JSON.parse(line.slice(7)) as StageResult;
  return { mbs: s.bytes / MB / s.seconds, seconds: s.seconds, cpu: r.cpu, rssMiB: s.hwmKiB / 1024, check: s.check, note: s.note };
}

type Plan = { label: string; kind: Row["kind"]; ref?: string; go: () => Promise<Sample> }[];

/** The rows: reference tools, native pipelines, zrb's stages. */
function plan(o: Opts, a: StageArgs, scratch: string): Plan {
  const { src, recipient } = a;
  const W = o.workers;
  const nativeDir = join(scratch, "native");
  /** The native pipeline (native.sh); checks the stream's BLAKE3 and the number of parts. */
  const native = async (sha: string, mode: "files" | "stream"): Promise<Sample> => {
    rmSync(nativeDir, { recursive: true, force: true });
    const args = [nativeDir, src, o.chunkSize, W, recipient, sha, mode];
    const s = await sh(`bash ${q(join(import.meta.dir, "native.sh"))} ${args.map((x) => q(String(x))).join(" ")}`, o.size);
    if (!s.error) {
      const got = readFileSync(join(nativeDir, "stream.b3"), "utf8").split(/\s/)[0];
      const n = [...new Bun.Glob("part-*.sha256").scanSync(nativeDir)].length;
      const want = Math.ceil(o.size / o.chunkSize);
      s.check = got === a.expectB3 && n === want ? "ok" : `MISMATCH: b3 ${got}, ${n}/${want} parts`;
    }
    rmSync(nativeDir, { recursive: true, force: true });
    return s;
  };
  const pipelineLabel = `zrb (d) pipeline, ${W} worker(s)`;
  return [
    { label: "cat file >/dev/null", kind: "ref", go: () => sh(`cat ${q(src)} >/dev/null`, o.size) },
    { label: "cat file | cat >/dev/null", kind: "ref", go: () => sh(`cat ${q(src)} | cat >/dev/null`, o.size) },
    { label: "b3sum --num-threads 1", kind: "ref", go: () => sh(`b3sum --num-threads 1 ${q(src)} >/dev/null`, o.size) },
    { label: "b3sum (default threads)", kind: "ref", go: () => sh(`b3sum ${q(src)} >/dev/null`, o.size) },
    { label: "sha256sum", kind: "ref", go: () => sh(`sha256sum ${q(src)} >/dev/null`, o.size) },
    { label: "openssl sha256", kind: "ref", go: () => sh(`openssl sha256 ${q(src)} >/dev/null`, o.size) },
    { label: "age -r R -o /dev/null", kind: "ref", go: () => sh(`age -r ${recipient} -o /dev/null ${q(src)}`, o.size) },
    { label: "age -r R | openssl sha256", kind: "ref", go: () => sh(`age -r ${recipient} ${q(src)} | openssl sha256 >/dev/null`, o.size) },
    { label: "age -d (file made by age)", kind: "ref", go: () => sh(`age -d -i ${q(a.keyFile)} ${q(join(scratch, "stream.age"))} >/dev/null`, o.size) },
    { label: `native, ${W}× age|sha256sum`, kind: "native", go: () => native("sha256sum", "files") },
    { label: `native, ${W}× age|openssl`, kind: "native", go: () => native("openssl sha256", "files") },
    { label: "native, split→age|tee|openssl", kind: "native", go: () => native("openssl sha256", "stream") },
    { label: "zrb (a) read cat stdout", kind: "zrb", ref: "cat file | cat >/dev/null", go: () => stage("read", a) },
    { label: "zrb (b) read + BLAKE3", kind: "zrb", ref: "b3sum --num-threads 1", go: () => stage("blake3", a) },
    { label: "zrb (c) age+SHA-256 1 chunk", kind: "zrb", ref: "age -r R | openssl sha256", go: () => stage("age", a) },
    { label: "zrb (c') (c) + spill+fsync", kind: "zrb", ref: "age -r R | openssl sha256", go: () => stage("age-spill", a) },
    { label: pipelineLabel, kind: "zrb", ref: BEST_NATIVE, go: () => stage("pipeline", a) },
    { label: `zrb (e) restore, ${W} worker(s)`, kind: "zrb", ref: pipelineLabel, go: () => stage("restore", a) },
  ];
}

/** Rows the summary line needs, whatever --only says. */
const SUMMARY_ROW = /^(zrb \((d|e)\)|native, )/;

async function main(): Promise<void> {
  const o = parseOpts(process.argv.slice(2));
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.on(sig, () => {
      console.error(`\nbench: ${sig}, cleaning up`);
      cleanup();
      process.exit(130);
    });
  process.on("exit", cleanup);

  mkdirSync(o.dir, { recursive: true });
  const scratch = mkdtempSync(join(o.dir, "zrb-bench-"));
  atCleanup(() => rmSync(scratch, { recursive: true, force: true }));
  setRssDir(scratch);
  const src = join(scratch, "stream.bin");
  const chunkFile = o.chunkSize < o.size ? join(scratch, "chunk.bin") : src;

  const { blake3Backend } = await import("../../src/crypto/blake3.ts");
  const { aeadDescription } = await import("../../src/crypto/sodium.ts");
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?";
  console.log(
    `zrb bench: ${fmtSize(o.size)} stream, ${fmtSize(o.chunkSize)} chunks, ${o.workers} worker(s), ${o.runs} run(s)${o.warmup ? ` after ${o.warmup} untimed` : ""}${o.e2e ? `, e2e ${fmtSize(o.e2eSize)}` : ""}${o.wan ? `, wan ${fmtSize(o.wanSize)}` : ""}${o.tree ? `, tree ${o.tree} children` : ""}${o.parts ? `, ${o.parts} parts of 64 KiB` : ""}, ` +
      `scratch ${scratch}\n  Bun ${Bun.version}, ${availableParallelism()} CPUs (${cpuModel}), BLAKE3 ${blake3Backend()}, ChaCha20-Poly1305 ${aeadDescription()}`,
  );

  const loadStart = loadAvg();
  const reportedStart = reportedKiB();
  if (reportedStart !== null)
    console.log("  free page reporting: this VM hands memory free for ≈ 2 s back to its host, and taking it again costs the kernel seconds per GiB;\n  a row pays for the memory it needs that nothing used just before it (--warmup 1 evens that out; docs/bench.md)");
  const keyFile = join(scratch, "key.txt");
  const kg = await run(["age-keygen", "-o", keyFile]);
  if (kg.code !== 0) throw new Error(`age-keygen failed: ${kg.err.trim()}`);
  const recipient = /public key: (age1[0-9a-z]+)/.exec(readFileSync(keyFile, "utf8"))?.[1];
  if (!recipient) throw new Error("age-keygen wrote no public key");

  const a: StageArgs = { src, chunkFile, size: o.size, chunkSize: o.chunkSize, workers: o.workers, recipient, keyFile, expectB3: "", scratch };
  let steps = plan(o, a, scratch);
  // --only naming just wan/tree/e2e rows skips the data path (and its summary line).
  const dataPath = !o.only || steps.some((p) => o.only!.test(p.label));
  if (o.only) steps = steps.filter((p) => o.only!.test(p.label) || SUMMARY_ROW.test(p.label));
  const rows: Row[] = dataPath ? await dataPathRows(o, a, steps) : [];
  const wants = (labels: readonly string[], word: string) => !o.only || labels.some((l) => o.only!.test(l)) || o.only.test(word);
  if (o.e2e && wants(E2E_ROWS, "e2e")) rows.push(...(await e2eRows(o, scratch, recipient, keyFile, (p, n) => generate(p, n))));
  if (o.wan && wants(WAN_ROWS, "wan")) rows.push(...(await wanRows(o, scratch, recipient, keyFile, (p, n) => generate(p, n))));
  if (o.tree > 0) rows.push(await treeRow(o, scratch, recipient));
  if (o.parts > 0) rows.push(...(await partsRows(o, scratch, recipient, keyFile)));

  const agg = new Map<string, Agg>(rows.map((row) => [row.label, aggregate(row)]));
  const best = bestNative(rows, agg);
  printTable(rows, agg, best);
  console.log(`\n  load average (1 min): ${loadStart} at start, ${loadAvg()} at end; other work on the machine skews every figure`);
  const reportedEnd = reportedKiB();
  if (reportedStart !== null && reportedEnd !== null) console.log(`  free memory handed back to the host during the bench: ${((reportedEnd - reportedStart) / 1048576).toFixed(1)} GiB`);
  if (o.wan && agg.has(WAN_ROWS[2])) console.log(`\n${wanLine(o, agg)}`);
  if (!dataPath) return;
  const pipe = agg.get(rows.find((r) => r.label.startsWith("zrb (d)"))!.label)!;
  const rest = agg.get(rows.find((r) => r.label.startsWith("zrb (e)"))!.label)!;
  const nat = best ? agg.get(best.label)! : undefined;
  const rss = Math.max(pipe.rss, rest.rss);
  console.log(
    `\nbench: pipeline ${fmt(pipe.mbs)} MB/s, best native ${nat ? fmt(nat.mbs) : "—"} MB/s (${best?.label ?? "none ok"}), ratio ${nat ? fmt(pipe.mbs / nat.mbs, 2) : "—"}, restore ${fmt(rest.mbs)} MB/s, peak RSS ${rss < 0 ? "—" : fmt(rss)} MiB`,
  );
}

/** The source made and cached, the restore rows' parts prepared, then every data-path row --runs times. */
async function dataPathRows(o: Opts, a: StageArgs, steps: Plan): Promise<Row[]> {
  const { src, chunkFile, scratch, recipient } = a;
  const t0 = performance.now();
  generate(src, o.size, chunkFile === src ? null : chunkFile, o.chunkSize);
  frameAsSendStream(src, o.size, chunkFile === src ? null : chunkFile, o.chunkSize);
  // The age CLI's own file of the stream, for its decryption row.
  await run(["age", "-r", recipient, "-o", join(scratch, "stream.age"), src]);
  // Warm the page cache: every reader below gets the bytes from RAM.
  await run(["cat", src, ...(chunkFile === src ? [] : [chunkFile])]);
  const b3 = await run(["b3sum", "--no-names", src], { stdout: "pipe" });
  a.expectB3 = b3.out.trim();
  if (b3.code !== 0 || !/^[0-9a-f]{64}$/.test(a.expectB3)) throw new Error(`b3sum failed: ${b3.err.trim()}`);
  console.log(`  source generated and cached in ${((performance.now() - t0) / 1000).toFixed(1)} s; b3sum ${a.expectB3}\n`);
  // The restore rows read the parts of one backup made now (untimed), kept in a local directory.
  const prep = await stage("prepare-restore", a);
  if (prep.error || prep.check !== "ok") throw new Error(`preparing the restore rows' parts failed: ${prep.error ?? prep.check}`);
  const rows: Row[] = steps.map((p) => ({ label: p.label, kind: p.kind, ref: p.ref, samples: [] }));
  for (let r = 0; r < o.runs; r++) {
    const t1 = performance.now();
    for (const [i, p] of steps.entries()) {
      // Untimed runs of the same row first: each timed run then follows itself, not whichever
      // row came before (on this VM what the row before did to the page cache moves a row 2×).
      for (let w = 0; w < o.warmup; w++) await p.go();
      // Nothing dirty left by the row before (or by the set-up: the parts, stream.age): its
      // writeback would be charged to this row (≈ 8 kernel CPU s per GiB on the bench VM's disk).
      await run(["sync"]);
      rows[i]!.samples.push(await p.go());
    }
    if (o.runs > 1) console.error(`  run ${r + 1}/${o.runs} done in ${((performance.now() - t1) / 1000).toFixed(0)} s (load ${loadAvg()})`);
  }
  rmSync(join(scratch, "store"), { recursive: true, force: true });
  return rows;
}

if (process.argv[2] === "--stage") {
  try {
    await stageMain(process.argv[3]!, JSON.parse(process.argv[4]!) as StageArgs);
    process.exit(0);
  } catch (err) {
    console.error(`stage ${process.argv[3]}: ${(err as Error)?.stack ?? err}`);
    process.exit(1);
  }
} else {
  try {
    await main();
  } catch (err) {
    console.error(`bench: ${(err as Error)?.message ?? err}`);
    cleanup();
    process.exit(1);
  }
  cleanup();
}
