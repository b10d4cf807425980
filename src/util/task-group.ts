/**
 * A group of concurrent jobs whose first failure stops the rest (restic's errgroup.WithContext):
 * `go` starts a job, `fail` records a failure from anywhere (a Worker that died, an interrupt),
 * `signal` aborts at the first failure so that every job and the producer feeding them stop,
 * and `wait` waits for every job and rethrows the first failure. One place holds the run's
 * error state instead of flags shared between callbacks.
 */
export class TaskGroup {
  private readonly ac = new AbortController();
  private readonly jobs: Promise<void>[] = [];
  private first: { err: unknown } | null = null;

  /** Aborted (with the first failure as its reason) once anything failed. */
  get signal(): AbortSignal {
    return this.ac.signal;
  }

  /** The first failure, or undefined while there is none. */
  get failure(): unknown {
    return this.first?.err;
  }

  get failed(): boolean {
    return this.first !== null;
  }

  /** Record a failure; only the first one counts. Never throws. */
  fail(err: unknown): void {
    if (this.first) return;
    this.first = { err };
    this.ac.abort(err);
  }

  /** Start `job`; if it throws, the group fails with that error. */
  go(job: () => Promise<void>): void {
    this.jobs.push(job().catch((err) => this.fail(err)));
  }

  /** Fail with `reason()` when `outer` aborts (the run's interrupt); returns the unlink. */
  follow(outer: AbortSignal | undefined, reason: () => unknown): () => void {
    if (!outer) return () => {};
    const on = () => this.fail(reason());
    if (outer.aborted) on();
    outer.addEventListener("abort", on);
    return () => outer.removeEventListener("abort", on);
  }

  /** Wait for every job started so far, whatever happened; never throws. */
  async settle(): Promise<void> {
    // A job may start others (an upload after a seal): wait until no new one came meanwhile.
    for (let seen = -1; seen !== this.jobs.length; ) {
      seen = this.jobs.length;
      await Promise.allSettled(this.jobs.slice());
    }
  }

  /** Wait for every job started so far; throws the first failure (of a job or from fail()). */
  async wait(): Promise<void> {
    await this.settle();
    if (this.first) throw this.first.err;
  }
}
