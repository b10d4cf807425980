/**
 * Build zrb into self-contained executables with `bun build --compile`.
 *
 *   bun run build.ts                      # all targets: dist/zrb-linux-x64, -x64-baseline, -arm64
 *   bun run build.ts --host-only          # only the host binary (= --target linux-x64)
 *   bun run build.ts --target linux-arm64 # only the named target(s) (repeatable)
 *   bun run build.ts --if-stale           # only the selected targets that are missing or older than
 *                                         # their sources (scripts/stale.ts); silent when none is
 *   bun run build.ts --ship               # then boot the test VM, copy the x64 binary in, run `zrb --version` there
 *
 * Targets: linux-x64, linux-x64-baseline, linux-arm64. The Workers (crypto, file) are extra
 * entry points of the compile so they are embedded; native addons (BLAKE3, libsodium) are
 * embedded because src/crypto requires them by static paths. A cross target needs the
 * other architecture's Bun runtime and native prebuilds: they are fetched from the npm
 * registry with `npm pack` into a cache outside the checkout. If a target cannot be
 * built here the reason is printed and the build exits non-zero for that target.
 */
import { $ } from "bun";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "./package.json" with { type: "json" };
import { binaryStale } from "./scripts/stale.ts";

const root = import.meta.dir;
const dist = join(root, "dist");

async function gitCommit(): Promise<string> {
  try {
    const r = await $`git -C ${root} rev-parse --short=9 HEAD`.quiet().nothrow();
    const dirty = (await $`git -C ${root} status --porcelain --untracked-files=no`.quiet().nothrow()).stdout.toString().trim();
    return r.exitCode === 0 ? r.stdout.toString().trim() + (dirty ? "-dirty" : "") : "nogit";
  } catch {
    return "nogit";
  }
}

interface Target {
  name: string;
  bunTarget: string;
  arch: "x64" | "arm64";
  /** npm packages whose contents must be present in node_modules for this arch (cross builds). */
  extraPackages: string[];
}

const TARGETS: Target[] = [
  { name: "linux-x64", bunTarget: "bun-linux-x64", arch: "x64", extraPackages: [] },
  { name: "linux-x64-baseline", bunTarget: "bun-linux-x64-baseline", arch: "x64", extraPackages: [] },
  {
    name: "linux-arm64",
    bunTarget: "bun-linux-arm64",
    arch: "arm64",
    extraPackages: [`@napi-rs/blake-hash-linux-arm64-gnu@${pkg.dependencies["@napi-rs/blake-hash"]}`],
  },
];

interface Options {
  targets: Target[];
  ifStale: boolean;
  ship: boolean;
}

function parseArgs(argv: string[]): Options {
  const names: string[] = [];
  let ifStale = false, ship = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--host-only") names.push("linux-x64");
    else if (a === "--target" && argv[i + 1]) names.push(argv[++i]!);
    else if (a === "--if-stale") ifStale = true;
    else if (a === "--ship") ship = true;
    else usage(`unknown argument ${JSON.stringify(a)}`);
  }
  for (const n of names) if (!TARGETS.some((t) => t.name === n)) usage(`unknown target ${JSON.stringify(n)}`);
  const targets = names.length ? TARGETS.filter((t) => names.includes(t.name)) : TARGETS;
  return { targets, ifStale, ship };
}

function usage(why: string): never {
  console.error(`build.ts: ${why} (usage: bun run build.ts [--host-only | --target ${TARGETS.map((t) => t.name).join("|")} ...] [--if-stale] [--ship])`);
  process.exit(2);
}

const outPath = (t: Target) => join(dist, `zrb-${t.name}`);

/** Make sure a package for another architecture is unpacked into node_modules (npm skips it on this host). */
async function ensurePackage(spec: string): Promise<void> {
  const at = spec.lastIndexOf("@");
  const name = spec.slice(0, at);
  const dir = join(root, "node_modules", name);
  if (existsSync(join(dir, "package.json"))) return;
  const cache = join(process.env.ZRB_BUILD_CACHE ?? "/var/cache/zrb-build", "npm");
  mkdirSync(cache, { recursive: true });
  const r = await $`npm pack ${spec} --pack-destination ${cache} --silent`.cwd(cache).quiet().nothrow();
  if (r.exitCode !== 0) throw new Error(`npm pack ${spec} failed: ${r.stderr.toString().trim().split("\n").pop()}`);
  const tgz = join(cache, r.stdout.toString().trim().split("\n").pop()!);
  mkdirSync(dir, { recursive: true });
  await $`tar -xzf ${tgz} -C ${dir} --strip-components=1`.quiet();
}

async function buildTarget(t: Target, version: string): Promise<string> {
  for (const p of t.extraPackages) await ensurePackage(p);
  // Written under a temporary name and renamed when complete: an interrupted build never
  // leaves a truncated binary that looks newer than its sources.
  const outfile = outPath(t);
  const tmp = `${outfile}.tmp`;
  rmSync(tmp, { force: true });
  const result = await Bun.build({
    entrypoints: [join(root, "src/main.ts"), join(root, "src/workers/crypto.worker.ts"), join(root, "src/workers/file.worker.ts")],
    // A compiled Bun binary would read `.env` and `bunfig.toml` from the directory it is run in:
    // a stray `.env` could set AWS_* or ZRB_* for a backup. zrb reads only its config file.
    compile: { target: t.bunTarget as any, outfile: tmp, autoloadDotenv: false, autoloadBunfig: false },
    minify: true,
    bytecode: true,
    format: "esm",
    sourcemap: "none",
    define: { ZRB_BUILD_VERSION: JSON.stringify(version), "process.env.ZRB_TARGET_ARCH": JSON.stringify(t.arch) },
  } as any);
  if (!result.success) throw new Error(result.logs.map((l) => String(l)).join("\n"));
  renameSync(tmp, outfile);
  return outfile;
}

const opts = parseArgs(process.argv.slice(2));
const todo = opts.ifStale ? opts.targets.filter((t) => binaryStale(outPath(t))) : opts.targets;
if (opts.ifStale) {
  if (!todo.length && !opts.ship) process.exit(0);
  if (todo.length) console.log(`building ${todo.map((t) => `dist/zrb-${t.name}`).join(", ")} (missing or older than the sources)`);
}
const version = `${pkg.version}+${await gitCommit()}`;
mkdirSync(dist, { recursive: true });
const built: string[] = [];
const failed: string[] = [];
for (const t of todo) {
  const t0 = performance.now();
  try {
    const out = await buildTarget(t, version);
    built.push(out);
    console.log(`built ${out} (${t.bunTarget}) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  } catch (err) {
    failed.push(t.name);
    console.error(`cannot build ${t.name}: ${(err as Error).message}`);
  }
}

if (built.length) {
  // SHA256SUMS covers every target binary in dist/, whichever run built it.
  const present = TARGETS.map(outPath).filter(existsSync);
  const sums = present.map((f) => `${createHash("sha256").update(readFileSync(f)).digest("hex")}  ${f.slice(dist.length + 1)}`);
  writeFileSync(join(dist, "SHA256SUMS"), sums.join("\n") + "\n");
  console.log(`wrote ${join(dist, "SHA256SUMS")} (${present.length} binaries), version ${version}`);
}

if (built.includes(outPath(TARGETS[0]!))) {
  const host = outPath(TARGETS[0]!);
  const v = await $`${host} --version`.quiet().nothrow();
  if (v.exitCode !== 0) {
    console.error(`the host binary does not run: ${v.stderr.toString().trim()}`);
    process.exit(1);
  }
  console.log(`dist/zrb-linux-x64 --version: ${v.stdout.toString().trim()}`);
}

if (opts.ship) {
  const r = await $`bash ${join(root, "vm/ship.sh")} ${outPath(TARGETS[0]!)}`.nothrow();
  if (r.exitCode !== 0) {
    console.error("shipping to the test VM failed");
    process.exit(1);
  }
}

if (failed.length) process.exit(1);
