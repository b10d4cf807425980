/**
 * stdout written synchronously. Bun's process.stdout.write to a pipe is asynchronous, does not
 * count what it still holds (writableLength stays 0, no 'drain'), and process.exit — which
 * main.ts must call, or the S3 client's keep-alive sockets keep a finished run alive — drops
 * whatever is queued beyond 64 KiB: `zrb list --json | jq` of a big tree lost its end. Every
 * writer goes through process.stdout.write, so that is where the bytes are made to land: with
 * writeSync, waiting out EAGAIN on a non-blocking pipe. A reader that went away (EPIPE, `| head`)
 * gets nothing more, as with any Unix tool.
 */
import { writeSync } from "node:fs";

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off, data.length - off);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "EPIPE") return;
      if (code !== "EAGAIN") throw err;
      Bun.sleepSync(2);
    }
  }
}

export function syncStdout(): void {
  const write = (chunk: unknown, enc?: unknown, cb?: unknown): boolean => {
    const done = typeof enc === "function" ? enc : cb;
    const bytes = typeof chunk === "string" ? Buffer.from(chunk, typeof enc === "string" ? (enc as BufferEncoding) : "utf8") : (chunk as Uint8Array);
    writeAll(1, bytes);
    if (typeof done === "function") queueMicrotask(() => (done as () => void)());
    return true;
  };
  process.stdout.write = write as typeof process.stdout.write;
}
