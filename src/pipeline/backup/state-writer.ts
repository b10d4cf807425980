/**
 * The backup state's writes during a run, off the main thread: every sealed part, every
 * multipart progress and every finished upload is recorded in backup_state.yaml, and each
 * write fsyncs twice — on a busy spill disk that can take long, and done synchronously it
 * stopped the reading of the send stream. Writes run one at a time on the thread pool; a
 * persist() asked for while one runs is folded into the next write, which serializes the
 * state as it is when it starts. Each persist() resolves once a write that began after it
 * is on disk.
 */
import type { BackupState, RunDir } from "../../state/rundir.ts";

export class StateWriter {
  /** The last write queued: every write starts after the one before it ended. */
  private chain: Promise<void> = Promise.resolve();
  /** A write queued but not started yet: it will include any change made until it starts. */
  private queued: Promise<void> | null = null;

  constructor(
    private readonly rundir: RunDir,
    private readonly state: BackupState,
  ) {}

  /** Record the state as it is now (or later); resolves when that is on disk. */
  persist(): Promise<void> {
    if (this.queued) return this.queued;
    const w = this.chain
      .catch(() => {})
      .then(() => {
        this.queued = null;
        return this.rundir.writeStateAsync(this.state);
      });
    this.queued = w;
    this.chain = w;
    return w;
  }

  /** Resolves when no write is running or queued (their failures are reported to their callers). */
  async idle(): Promise<void> {
    for (let c = this.chain; ; c = this.chain) {
      await c.catch(() => {});
      if (c === this.chain) return;
    }
  }
}
