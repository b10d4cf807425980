/**
 * One Worker seen from the main thread: started from its file (also inside a compiled binary),
 * given the shared arena as soon as it says it is ready (Bun drops what is posted before the
 * worker's handler exists, so nothing may be sent before), a crash reported once.
 */
import { isCompiledBinary } from "../../heap.ts";
import { ZrbError } from "../../util/errors.ts";
import type { Init } from "../../workers/protocol.ts";

export type WorkerName = "crypto" | "file";

function workerUrl(name: WorkerName): string {
  // In a compiled binary every module is bundled into the main entry at /$bunfs/root/, and
  // the workers (extra entry points of the compile) sit at workers/ beside it.
  if (isCompiledBinary()) return new URL(`./workers/${name}.worker.ts`, import.meta.url).href;
  return new URL(`../../workers/${name}.worker.ts`, import.meta.url).href;
}

/**
 * One line of a Worker's uncaught error: Bun's message may hold a code frame and a stack; the
 * "TypeError: …" line says what happened.
 */
export function crashLine(message: string | undefined): string {
  const lines = String(message ?? "").split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^[A-Za-z]*(Error|Exception)\b.*:/.test(l)) ?? lines[0] ?? "no message";
}

export class HostWorker<To, From extends { type: string }> {
  private readonly worker: Worker;
  /** Resolves when the worker can take messages; rejects if it dies first. */
  readonly ready: Promise<void>;
  private isReady = false;
  /** Why the worker is gone (a crash), or null while it runs. */
  crashed: Error | null = null;
  private dead = false;

  constructor(
    name: WorkerName,
    init: Init,
    onMessage: (m: From) => void,
    onCrash: (e: Error) => void,
  ) {
    let up!: () => void;
    let down!: (e: Error) => void;
    this.ready = new Promise<void>((a, b) => ((up = a), (down = b)));
    this.ready.catch(() => {});
    this.worker = new Worker(workerUrl(name));
    this.worker.onmessage = (ev: MessageEvent<From>) => {
      if (ev.data.type !== "ready") return onMessage(ev.data);
      this.worker.postMessage(init);
      this.isReady = true;
      up();
    };
    this.worker.onerror = (ev) => {
      if (this.dead) return;
      this.dead = true;
      const e = new ZrbError(`${name} worker crashed: ${crashLine((ev as ErrorEvent).message)}`);
      this.crashed = e;
      down(e);
      onCrash(e);
    };
  }

  /** Post a message (a structured clone: later changes to `m` do not reach the worker). Only after `ready`; throws once the worker crashed. */
  send(m: To): void {
    if (this.crashed) throw this.crashed;
    if (!this.isReady) throw new Error("message posted to a worker before it was ready");
    this.worker.postMessage(m);
  }

  terminate(): void {
    this.dead = true;
    this.worker.terminate();
  }
}
