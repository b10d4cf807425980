/**
 * Crypto worker: seals or opens one run of age STREAM blocks at a time, in place in a slot
 * of the shared arena, and hands the slot back. Stateless between messages (the key comes
 * with each run), so any run can go to any worker and every core seals from the first byte,
 * whatever the part size. Opening reads its run straight from the verified part file.
 *
 * Protocol: workers/protocol.ts.
 */
import { closeSync, constants as C, openSync, readSync } from "node:fs";
import { openRun, sealRun } from "../crypto/age-stream.ts";
import { ZrbError } from "../util/errors.ts";
import type { FromCrypto, ToCrypto } from "./protocol.ts";

declare const self: Worker;

let arena: SharedArrayBuffer | null = null;
let slotSize = 0;

function post(m: FromCrypto): void {
  self.postMessage(m);
}

/** Read exactly `len` bytes of `path` at `offset` into `buf`. */
function readRun(path: string, offset: number, buf: Uint8Array, len: number): void {
  const fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, offset + got);
      if (n === 0) throw new Error(`${path} ended at ${offset + got}, expected ${offset + len} bytes`);
      got += n;
    }
  } finally {
    closeSync(fd);
  }
}

function handle(m: ToCrypto): void {
  if (m.type === "init") {
    arena = m.arena;
    slotSize = m.slotSize;
    return;
  }
  const bytes = new Uint8Array(arena!, m.slot * slotSize, slotSize);
  try {
    let len: number;
    if (m.type === "seal") len = sealRun(bytes, m.len, m.counter, m.final, m.key);
    else {
      readRun(m.path, m.offset, bytes, m.len);
      len = openRun(bytes, m.len, m.counter, m.final, m.key);
    }
    post({ type: "done", seq: m.seq, slot: m.slot, len });
  } catch (err) {
    const e = err as { message?: string; code?: string };
    // Nothing of a failed run leaves this worker: a block that did not open is wiped.
    bytes.fill(0);
    post({ type: "error", seq: m.seq, slot: m.slot, message: e?.message ?? String(err), integrity: err instanceof ZrbError, code: e?.code });
  } finally {
    m.key.fill(0);
  }
}

self.onmessage = (ev: MessageEvent<ToCrypto>) => handle(ev.data);
post({ type: "ready" });
