/**
 * Why this runs first: JavaScriptCore sizes its garbage collector, and how soon its allocator
 * gives freed memory back to the system, by the machine's RAM. On a box with GiBs of RAM a
 * restore's downloaded ranges (garbage once written out) stayed resident: peak RSS over the
 * same 256 MiB restore varied from 230 to 300 MiB between runs (issue 22 asks ≤ 256 MiB).
 * Told the machine has 128 MiB (`BUN_JSC_forceRAMSize`), it collects and hands memory back
 * sooner: 190–197 MiB in the same runs, no slower (docs/bench.md).
 *
 * The option is read once, when the runtime starts, so a compiled zrb started without it
 * runs itself again with it: execve(2) keeps the process id, the open files and the parent
 * (systemd, a shell's job control) — it costs ≈ 5 ms. A value already in the environment is
 * kept (set it to the machine's real RAM to turn this off). Nothing is done when running from
 * source (the tests' `bun src/main.ts`), nor when the binary could not be started again as it
 * was (its dynamic loader is missing: run under qemu-user with a sysroot); if execve fails,
 * zrb goes on as it is.
 */
import { existsSync } from "node:fs";

export const HEAP_RAM = "134217728";

const LOADER: Record<string, string> = { x64: "/lib64/ld-linux-x86-64.so.2", arm64: "/lib/ld-linux-aarch64.so.1" };

/** Running as the compiled binary: every module is bundled into it at /$bunfs/root/ (not `bun src/main.ts`). */
export function isCompiledBinary(): boolean {
  return import.meta.url.includes("$bunfs");
}

function restartWithSmallHeap(): void {
  if (process.env.BUN_JSC_forceRAMSize !== undefined) return;
  if (!isCompiledBinary()) return;
  const loader = LOADER[process.arch];
  if (!loader || !existsSync(loader) || typeof process.execve !== "function") return;
  try {
    process.execve(process.execPath, [process.execPath, ...process.argv.slice(2)], { ...process.env, BUN_JSC_forceRAMSize: HEAP_RAM });
  } catch {
    // Not restarted: zrb runs with the runtime's default heap sizing.
  }
}

/** The line `zrb --version --verbose` prints about it. */
export function heapLine(): string {
  const ram = process.env.BUN_JSC_forceRAMSize;
  if (ram === undefined) return "heap: the runtime's default (sized by the machine's RAM)";
  const mib = Number(ram) / 1048576;
  return `heap: sized for ${Number.isFinite(mib) ? `${+mib.toFixed(1)} MiB` : JSON.stringify(ram)} of RAM (BUN_JSC_forceRAMSize${ram === HEAP_RAM ? "" : ", from the environment"})`;
}

restartWithSmallHeap();
