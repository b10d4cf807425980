/**
 * The HTTP layer under the S3 client. Every request body and every response body of a run
 * passes through here, so this is the one place where bytes are counted for the request's stall
 * watchdog (watchdog.ts) and metered by the bandwidth limit (one token bucket for all of them).
 *
 * s3.ts opens a RequestWatch per SDK call: a watchdog and the signal the call runs under, which
 * aborts the request with the stall's error when the watchdog fires. The handler finds the
 * watch by that signal (the SDK hands the caller's abortSignal through to the handler).
 */
import { Readable, Transform } from "node:stream";
import { NodeHttpHandler, type NodeHttpHandlerOptions } from "@smithy/node-http-handler";
import type { HttpHandlerOptions } from "@smithy/types";
import type { Limiter } from "../util/bandwidth-schedule.ts";
import { abortReason } from "../util/abort.ts";
import { Watchdog, type Stall } from "./watchdog.ts";

const watches = new WeakMap<AbortSignal, Watchdog>();

/** One SDK call under watch: its signal aborts on a stall (reason: the error `onStall` made) or with the outer signal. */
export class RequestWatch {
  readonly signal: AbortSignal;
  readonly watchdog: Watchdog;
  private readonly ac = new AbortController();

  constructor(timeoutMs: number, outer: AbortSignal | undefined, onStall: (s: Stall) => Error) {
    this.watchdog = new Watchdog({ timeoutMs, onStall: (s) => this.ac.abort(onStall(s)) });
    this.signal = outer ? AbortSignal.any([this.ac.signal, outer]) : this.ac.signal;
    watches.set(this.signal, this.watchdog);
  }

  /** The stall's error, once the watchdog fired. */
  get stalled(): Error | undefined {
    return this.ac.signal.aborted ? (this.ac.signal.reason as Error) : undefined;
  }

  end(): void {
    this.watchdog.stop();
  }
}

/**
 * A pass-through that reports every piece to the watchdog and, with a bandwidth limit, holds
 * it until the bucket lets it go (the watchdog paused meanwhile: that wait is ours, not the
 * network's). `countFirst`: a download counts a piece when it arrives, an upload when it leaves.
 */
function meter(wd: Watchdog | undefined, bucket: Limiter | undefined, signal: AbortSignal | undefined, countFirst: boolean, onEnd?: () => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (countFirst) wd?.moved(chunk.length);
      const pass = () => {
        if (!countFirst) wd?.moved(chunk.length);
        cb(null, chunk);
      };
      if (!bucket) return pass();
      wd?.pause();
      bucket.take(chunk.length, signal).then(
        () => {
          wd?.resume();
          pass();
        },
        (e) => {
          wd?.resume();
          cb(e as Error);
        },
      );
    },
    flush(cb) {
      onEnd?.();
      cb();
    },
  });
}

/**
 * Pipe `src` into `t`, passing an error of `src` on and stopping both when `signal` aborts. The
 * error reaches whoever reads `t`; an error nobody listens for yet must not crash the process.
 */
function through(src: Readable, t: Transform, signal: AbortSignal | undefined): Transform {
  src.on("error", (e) => t.destroy(e));
  t.on("error", () => {});
  if (signal) {
    const onAbort = () => {
      src.destroy();
      t.destroy(abortReason(signal) as Error);
    };
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener("abort", onAbort, { once: true });
      t.once("close", () => signal.removeEventListener("abort", onAbort));
    }
  }
  return src.pipe(t);
}

export class MeteredHttpHandler extends NodeHttpHandler {
  constructor(
    options: NodeHttpHandlerOptions,
    private readonly bucket?: Limiter,
  ) {
    super(options);
  }

  override async handle(request: Parameters<NodeHttpHandler["handle"]>[0], options: HttpHandlerOptions = {}) {
    const signal = options.abortSignal as AbortSignal | undefined;
    const wd = signal ? watches.get(signal) : undefined;
    if (request.body instanceof Readable) request.body = through(request.body, meter(wd, this.bucket, signal, false, () => wd?.bodySent()), signal);
    else wd?.bodySent();
    const r = await super.handle(request, options);
    wd?.headersArrived();
    const body = r.response.body;
    if (body instanceof Readable) r.response.body = through(body, meter(wd, this.bucket, signal, true), signal);
    return r;
  }
}
