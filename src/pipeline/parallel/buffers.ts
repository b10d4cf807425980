/**
 * The run slots: one SharedArrayBuffer of `count` slots of RUN_BYTES, shared by the main
 * thread and every Worker, handed from side to side by slot number (workers/protocol.ts), so
 * memory stays flat whatever the stream or part size and no byte is copied between threads.
 */
import { RUN_BYTES } from "../../crypto/age-stream.ts";

export class RunBuffers {
  readonly arena: SharedArrayBuffer;
  readonly slotSize = RUN_BYTES;
  private free: number[] = [];
  private waiters: ((slot: number) => void)[] = [];

  constructor(private readonly count: number) {
    this.arena = new SharedArrayBuffer(count * RUN_BYTES);
    for (let i = count - 1; i >= 0; i--) this.free.push(i);
  }

  /** The bytes of a slot (`len` of them from its start, all by default). */
  view(slot: number, len = RUN_BYTES): Uint8Array {
    return new Uint8Array(this.arena, slot * RUN_BYTES, len);
  }

  /** A free slot; rejects when `signal` aborts (a dead worker never hands its slots back). */
  async take(signal?: AbortSignal): Promise<number> {
    const b = this.free.pop();
    if (b !== undefined) return b;
    if (signal?.aborted) throw signal.reason;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(give);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal!.reason);
      };
      const give = (slot: number) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(slot);
      };
      this.waiters.push(give);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Every slot is free (no run holds one): the buffers may serve another run. */
  get idle(): boolean {
    return this.free.length === this.count;
  }

  put(slot: number): void {
    const w = this.waiters.shift();
    if (w) w(slot);
    else this.free.push(slot);
  }
}
