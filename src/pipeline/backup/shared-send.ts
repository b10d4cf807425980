/**
 * One `zfs send` for every store that needs the same stream (issue 25). A backup to several
 * stores runs the stores side by side; each store's backup asks for its stream here instead of
 * starting `zfs send` itself. The stores meet before sending: a store's request waits until
 * every other store of the run has asked for its own stream or ended (at most `waitMs`: a store
 * whose endpoint hangs does not hold the others back for long). Then each distinct stream
 * (snapshot, base, flags) is sent once, and its bytes go to every store that asked for it.
 *
 * The stores read in step: the sender is read only as fast as the slowest store takes the
 * bytes (a small queue per store), so memory stays bounded. A store that fails mid-stream
 * cancels its branch and is dropped; the others go on. The sender is stopped only when no
 * store reads it any more. Each branch reports the sender's exit status, so every store checks
 * it as it checks its own `zfs send` (send.ts).
 *
 * What is not shared: a stream asked for again within one backup (the re-send after the bytes
 * differed, the re-upload of vanished parts) has its own sender, at once.
 */
import type { StreamedSource } from "./send.ts";
import type { SendPlan } from "../../zfs/zfs.ts";
import { interrupted } from "../../util/abort.ts";

/** What one store's backup asks of the run's shared sends. */
export interface SendShare {
  /**
   * The bytes of `plan`: a branch of a sender shared with the other stores that asked for the
   * same stream, or this store's own. Waits for the other stores first (see above); throws the
   * interrupt when `signal` aborts meanwhile, and what starting the sender throws.
   */
  open(plan: SendPlan, signal?: AbortSignal): Promise<StreamedSource>;
}

export interface HubOptions {
  /** Starts one sender (zfs.spawnSend). */
  spawn: (plan: SendPlan) => StreamedSource;
  /** How long a request waits for the other stores before its stream starts without them. */
  waitMs: number;
  /** Bytes queued per branch before the sender is read no further. */
  queueBytes?: number;
}

type Member = { name: string; state: "running" | "left" } | { name: string; state: "waiting"; key: string; plan: SendPlan; resolve: (s: StreamedSource) => void; reject: (e: unknown) => void };

export const sendKey = (p: SendPlan): string => JSON.stringify([p.snapshot, p.from ?? null, p.flags]);

export class SendHub {
  private readonly members = new Map<string, Member>();
  /** Senders started, and how many stores each fed (tests, the summary). */
  readonly started: { key: string; stores: string[] }[] = [];

  constructor(
    names: string[],
    private readonly o: HubOptions,
  ) {
    for (const name of names) this.members.set(name, { name, state: "running" });
  }

  /** The store's handle: its requests, and `leave()` when its backup ended (whatever the outcome). */
  member(name: string): SendShare & { leave(): void } {
    return {
      open: (plan, signal) => this.open(name, plan, signal),
      leave: () => {
        const m = this.members.get(name);
        if (m?.state === "waiting") m.reject(new Error(`store ${name} left while waiting for its stream`));
        this.members.set(name, { name, state: "left" });
        this.meet(false);
      },
    };
  }

  private open(name: string, plan: SendPlan, signal?: AbortSignal): Promise<StreamedSource> {
    if (signal?.aborted) return Promise.reject(interrupted(signal));
    return new Promise<StreamedSource>((resolve, reject) => {
      const timer = setTimeout(() => this.meet(true), this.o.waitMs);
      const onAbort = () => {
        const m = this.members.get(name);
        if (m?.state !== "waiting") return;
        this.members.set(name, { name, state: "running" });
        m.reject(interrupted(signal!));
      };
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.members.set(name, {
        name,
        state: "waiting",
        key: sendKey(plan),
        plan,
        resolve: (s) => (done(), resolve(s)),
        reject: (e) => (done(), reject(e)),
      });
      this.meet(false);
    });
  }

  /** Start the streams asked for once no store is still on its way (or a request waited long enough). */
  private meet(timedOut: boolean): void {
    const all = [...this.members.values()];
    const waiting = all.filter((m) => m.state === "waiting");
    if (waiting.length === 0) return;
    if (!timedOut && all.some((m) => m.state === "running")) return;
    const groups = new Map<string, typeof waiting>();
    for (const m of waiting) groups.set(m.key, [...(groups.get(m.key) ?? []), m]);
    for (const [key, ms] of groups) {
      for (const m of ms) this.members.set(m.name, { name: m.name, state: "running" });
      let source: StreamedSource;
      try {
        source = this.o.spawn(ms[0]!.plan);
      } catch (err) {
        for (const m of ms) m.reject(err);
        continue;
      }
      this.started.push({ key, stores: ms.map((m) => m.name) });
      const branches = tee(source, ms.length, this.o.queueBytes ?? 4 << 20);
      ms.forEach((m, i) => m.resolve(branches[i]!));
    }
  }
}

/**
 * `n` readers of one sender. Each gets every byte in order; the sender is read only while every
 * live branch has room. A branch's `kill` or cancel drops that branch; the last one to go
 * stops the sender. `exited` is the sender's exit status for every branch.
 */
export function tee(src: StreamedSource, n: number, queueBytes: number): StreamedSource[] {
  if (n === 1) return [src];
  const stderrText = new Response(src.stderr).text();
  const branches = Array.from({ length: n }, () => new Branch());
  let live = n;
  let room: (() => void) | undefined;
  const drop = (b: Branch) => {
    if (b.dropped) return;
    b.dropped = true;
    b.markGone();
    b.queue = [];
    b.queued = 0;
    b.wake();
    room?.();
    if (--live === 0) src.kill("SIGTERM");
  };
  for (const b of branches) b.onDrop = () => drop(b);
  (async () => {
    const reader = src.stdout.getReader();
    try {
      for (;;) {
        while (live > 0 && branches.some((b) => !b.dropped && b.queued >= queueBytes)) await new Promise<void>((r) => (room = r));
        if (live === 0) break;
        const { value, done } = await reader.read();
        if (done) break;
        for (const b of branches) if (!b.dropped) b.put(value);
      }
      for (const b of branches) b.end();
    } catch (err) {
      for (const b of branches) b.end(err);
    } finally {
      if (live === 0) reader.cancel().catch(() => {});
    }
  })();
  for (const b of branches) b.onTake = () => room?.();
  return branches.map((b) => ({
    stdout: b.stream,
    stderr: textStream(stderrText),
    // A dropped branch's store stops waiting for the sender the others still read.
    exited: Promise.race([src.exited, b.gone.then(() => DROPPED)]),
    kill: () => drop(b),
  }));
}

/** What a dropped branch's `exited` says: 128 + SIGTERM, as a sender stopped for it would. */
const DROPPED = 143;

const textStream = (text: Promise<string>) =>
  new ReadableStream<Uint8Array>({
    async start(ctrl) {
      const t = await text;
      if (t) ctrl.enqueue(new TextEncoder().encode(t));
      ctrl.close();
    },
  });

class Branch {
  markGone = () => {};
  /** Resolves when the branch is dropped. */
  readonly gone = new Promise<void>((r) => (this.markGone = r));
  queue: Uint8Array[] = [];
  queued = 0;
  dropped = false;
  onDrop = () => {};
  onTake = () => {};
  private ended = false;
  private error: unknown;
  private waiter: (() => void) | undefined;
  readonly stream = new ReadableStream<Uint8Array>(
    {
      pull: async (ctrl) => {
        while (this.queue.length === 0 && !this.ended && !this.dropped) await new Promise<void>((r) => (this.waiter = r));
        const v = this.queue.shift();
        if (v) {
          this.queued -= v.length;
          this.onTake();
          ctrl.enqueue(v);
        } else if (this.error !== undefined && !this.dropped) ctrl.error(this.error);
        else ctrl.close();
      },
      cancel: () => this.onDrop(),
    },
    { highWaterMark: 0 },
  );

  put(v: Uint8Array): void {
    this.queue.push(v);
    this.queued += v.length;
    this.wake();
  }

  end(err?: unknown): void {
    this.ended = true;
    this.error = err;
    this.wake();
  }

  wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
