/**
 * Bytes of a stream copied into run slots, flat (contiguous), and each full slot handed on
 * (to the file worker to be written, to the hashing worker to be BLAKE3'd): the main thread's
 * only work on them is that one copy.
 */
import type { Threads } from "./index.ts";

export class SlotFiller {
  private slot: number | null = null;
  private len = 0;

  constructor(
    private readonly t: Threads,
    /** Takes over a filled slot (it must hand it back to t.buffers when done). */
    private readonly onFull: (slot: number, len: number) => void,
    private readonly signal?: AbortSignal,
  ) {}

  async push(b: Uint8Array): Promise<void> {
    for (let off = 0; off < b.length; ) {
      if (this.slot === null) {
        this.slot = await this.t.buffers.take(this.signal);
        this.len = 0;
      }
      const n = Math.min(b.length - off, this.t.buffers.slotSize - this.len);
      this.t.buffers.view(this.slot).set(b.subarray(off, off + n), this.len);
      this.len += n;
      off += n;
      if (this.len === this.t.buffers.slotSize) this.flush();
    }
  }

  /** Hand over the slot being filled, if any (at the end of the stream). */
  flush(): void {
    const slot = this.slot;
    this.slot = null;
    if (slot !== null) this.onFull(slot, this.len);
  }

  /** Give the slot being filled back unused (on failure). */
  release(): void {
    if (this.slot !== null) this.t.buffers.put(this.slot);
    this.slot = null;
  }
}
