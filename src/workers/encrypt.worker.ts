/**
 * Encryption worker: receives one chunk of the send stream at a time as transferred
 * 1 MiB buffers, age-encrypts it straight into the chunk's spill file, SHA-256s the
 * ciphertext, and hands each buffer back for reuse (bounded memory, no chunk in RAM).
 *
 * Protocol: workers/protocol.ts.
 */
import { closeSync, constants as C, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { AgeEncryptStream } from "../crypto/age.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

declare const self: Worker;

interface Current {
  index: number;
  path: string;
  fd: number;
  enc: AgeEncryptStream;
  sha: Bun.CryptoHasher;
  size: number;
  failed: boolean;
}

let cur: Current | null = null;
let chain: Promise<void> = Promise.resolve();

function write(c: Current, bytes: Uint8Array): void {
  if (bytes.length === 0) return;
  c.sha.update(bytes);
  let off = 0;
  while (off < bytes.length) off += writeSync(c.fd, bytes, off, bytes.length - off);
  c.size += bytes.length;
}

function fail(index: number, err: unknown): void {
  const e = err as { message?: string; code?: string };
  if (cur) {
    cur.failed = true;
    try {
      closeSync(cur.fd);
    } catch {}
    rmSync(cur.path + ".tmp", { force: true });
  }
  post({ type: "error", index, message: e?.message ?? String(err), code: e?.code });
}

function post(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  self.postMessage(m, transfer);
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case "begin": {
      const enc = await AgeEncryptStream.create(msg.recipients);
      let fd: number;
      try {
        // Exclusive create, never through a symlink: a leftover is removed first (the spill
        // directory is zrb's own, 0700, under a base_dir checked at start).
        rmSync(msg.path + ".tmp", { force: true });
        fd = openSync(msg.path + ".tmp", C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      } catch (err) {
        cur = null;
        fail(msg.index, err);
        return;
      }
      cur = { index: msg.index, path: msg.path, fd, enc, sha: new Bun.CryptoHasher("sha256"), size: 0, failed: false };
      return;
    }
    case "data": {
      const c = cur;
      const buf: ArrayBuffer = msg.buf;
      try {
        if (c && !c.failed) write(c, c.enc.push(new Uint8Array(buf, 0, msg.len)));
      } catch (err) {
        if (c) fail(c.index, err);
      } finally {
        post({ type: "ack", buf }, [buf]);
      }
      return;
    }
    case "end": {
      const c = cur;
      cur = null;
      if (!c || c.failed) return;
      try {
        write(c, c.enc.finish());
        fsyncSync(c.fd);
        closeSync(c.fd);
        renameSync(c.path + ".tmp", c.path);
        post({ type: "done", index: c.index, cipherSize: c.size, sha256: c.sha.digest("hex") });
      } catch (err) {
        cur = c;
        fail(c.index, err);
        cur = null;
      }
      return;
    }
  }
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  chain = chain.then(() => handle(msg)).catch((err) => fail(msg.type === "begin" ? msg.index : (cur?.index ?? -1), err));
};
