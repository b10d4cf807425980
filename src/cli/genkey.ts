import { defineCommand } from "citty";
import { existsSync, mkdirSync, openSync, writeSync, closeSync, fsyncSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { generateKeyPair } from "../crypto/keys.ts";
import { ExitCode, ZrbError, fsError, ioError } from "../util/errors.ts";
import { printJson } from "./common.ts";

export default defineCommand({
  meta: {
    name: "genkey",
    description:
      "Generate an age key pair: zrb_private.key (mode 0600, the stock age-keygen format) and zrb_public.key. " +
      "Run it on a machine other than the NAS and copy only the public key (age1…) into the config; keep the private key offline — it is needed only to restore.",
  },
  args: {
    "out-dir": { type: "string", description: "Directory to write the two files into", default: ".", valueHint: "DIR" },
    json: { type: "boolean", description: "Print {publicKey, privateKeyFile, publicKeyFile} as JSON", default: false },
  },
  async run({ args }) {
    const dir = resolve(String(args["out-dir"]));
    const priv = join(dir, "zrb_private.key");
    const pub = join(dir, "zrb_public.key");
    for (const f of [priv, pub])
      if (existsSync(f)) throw new ZrbError(`${f} already exists; refusing to overwrite a key (move it away or use --out-dir)`, ExitCode.USAGE);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw fsError(err, "creating key directory", dir);
    }
    const { identityFileText, recipient } = await generateKeyPair();
    const write = (path: string, text: string, mode: number) => {
      let fd: number;
      try {
        fd = openSync(path, "wx", mode);
      } catch (err) {
        // ENOENT in a directory that exists: a virtual file system (/proc, /sys) that takes no new files.
        if ((err as { code?: string }).code === "ENOENT" && existsSync(dir))
          throw ioError(`cannot create ${path}: ${dir} does not accept new files (a virtual file system?); choose another --out-dir`, err);
        throw fsError(err, "writing key file", path);
      }
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    };
    write(priv, identityFileText, 0o600);
    try {
      write(pub, recipient + "\n", 0o644);
    } catch (err) {
      rmSync(priv, { force: true });
      throw err;
    }
    if (args.json) printJson({ publicKey: recipient, privateKeyFile: priv, publicKeyFile: pub });
    else {
      process.stdout.write(recipient + "\n");
      process.stderr.write(`wrote ${priv} (0600, keep it offline) and ${pub}; put the public key in age_public_key\n`);
    }
  },
});
