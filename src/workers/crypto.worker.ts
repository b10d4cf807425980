/**
 * Crypto worker: seals or opens one run of age STREAM blocks at a time, in place in a slot
 * of the shared arena, and hands the slot back. Stateless between runs (the key comes with
 * each run), so any run can go to any worker and every core seals from the first byte,
 * whatever the part size. Opening reads its run straight from the verified part file.
 * One worker also BLAKE3s plaintext for the main thread (hash/digest messages, processed in
 * the order they come), so the stream's and each part's hash stay in stream order off the
 * main thread.
 *
 * Protocol: workers/protocol.ts.
 */
import { closeSync, constants as C, openSync, readSync } from "node:fs";
import { CHUNK_SIZE, SEALED_CHUNK_SIZE, openRun, sealRun } from "../crypto/age-stream.ts";
import { createBlake3, type Hasher } from "../crypto/blake3.ts";
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

const hashers = new Map<number, Promise<Hasher>>();
/** Hash and digest messages, one after the other in arrival order (creating a hasher may be async). */
let hashing: Promise<void> = Promise.resolve();

function hasher(id: number): Promise<Hasher> {
  let h = hashers.get(id);
  if (!h) hashers.set(id, (h = createBlake3()));
  return h;
}

async function hash(m: Extract<ToCrypto, { type: "hash" | "digest" }>): Promise<void> {
  try {
    if (m.type === "digest") {
      const h = await hasher(m.hasher);
      hashers.delete(m.hasher);
      return post({ type: "digest", seq: m.seq, hex: h.digestHex() });
    }
    const hs = await Promise.all(m.into.map(hasher));
    const base = m.slot * slotSize;
    // In the run layout a block of plaintext sits at every 65552 bytes; flat, it is one piece.
    const step = m.layout === "run" ? SEALED_CHUNK_SIZE : m.len;
    const piece = m.layout === "run" ? CHUNK_SIZE : m.len;
    for (let at = 0, done = 0; done < m.len; at += step) {
      const n = Math.min(piece, m.len - done);
      const bytes = new Uint8Array(arena!, base + at, n);
      for (const h of hs) h.update(bytes);
      done += n;
    }
    post({ type: "done", seq: m.seq, slot: m.slot, len: m.len });
  } catch (err) {
    post({ type: "error", seq: m.seq, slot: m.type === "hash" ? m.slot : -1, message: (err as Error)?.message ?? String(err), integrity: false });
  }
}

function handle(m: ToCrypto): void {
  if (m.type === "init") {
    arena = m.arena;
    slotSize = m.slotSize;
    return;
  }
  if (m.type === "hash" || m.type === "digest") {
    hashing = hashing.then(() => hash(m));
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
