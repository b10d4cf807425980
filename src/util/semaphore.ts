/** A counting semaphore: bounds how many chunks/parts are in flight at once. */
export class Semaphore {
  private waiters: { rank: number; go: () => void }[] = [];
  constructor(private free: number) {}
  /** Waiters are served by `rank`, lowest first, in arrival order within a rank (default: plain FIFO). */
  async acquire(rank = Infinity): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((go) => {
      const at = this.waiters.findIndex((w) => w.rank > rank);
      this.waiters.splice(at < 0 ? this.waiters.length : at, 0, { rank, go });
    });
  }
  /** How many acquire() calls are waiting. */
  get waiting(): number {
    return this.waiters.length;
  }
  release(): void {
    const w = this.waiters.shift();
    if (w) w.go();
    else this.free++;
  }
}
