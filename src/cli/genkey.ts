import { defineCommand } from "citty";
import { existsSync, mkdirSync, openSync, writeSync, closeSync, fsyncSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { generateKeyPair } from "../crypto/keys.ts";
import { generateSigningKey } from "../crypto/signing.ts";
import { ExitCode, ZrbError, fsError, ioError } from "../util/errors.ts";
import { printJson } from "./common.ts";

export default defineCommand({
  meta: {
    name: "genkey",
    description:
      "Generate the keys: zrb_private.key (mode 0600, the stock age-keygen format, plus a comment line with the verification key), zrb_public.key, " +
      "and zrb_signing.key (mode 0600). Run it on a machine other than the NAS: copy the public key (age1…) into the config and zrb_signing.key to the NAS " +
      "(config signing_key); keep the private key offline — it is needed only to restore, and it checks that each backup was signed on your NAS. " +
      "--signing-only writes just a new zrb_signing.key (a signing-key rotation: docs/security.md).",
  },
  args: {
    "out-dir": { type: "string", description: "Directory to write the three files into", default: ".", valueHint: "DIR" },
    "signing-only": {
      type: "boolean",
      description: "Write only a new zrb_signing.key (0600) and print its verification key: rotate the NAS's signing key, keeping the old verification key in verify_keys",
      default: false,
    },
    json: { type: "boolean", description: "Print {publicKey, verificationKey, privateKeyFile, publicKeyFile, signingKeyFile} as JSON (with --signing-only: {verificationKey, signingKeyFile})", default: false },
  },
  async run({ args }) {
    const dir = resolve(String(args["out-dir"]));
    const priv = join(dir, "zrb_private.key");
    const pub = join(dir, "zrb_public.key");
    const signing = join(dir, "zrb_signing.key");
    const signingOnly = !!args["signing-only"];
    for (const f of signingOnly ? [signing] : [priv, pub, signing])
      if (existsSync(f)) throw new ZrbError(`${f} already exists; refusing to overwrite a key (move it away or use --out-dir)`, ExitCode.USAGE);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw fsError(err, "creating key directory", dir);
    }
    const created = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const sk = generateSigningKey(created);
    if (signingOnly) {
      writeKeyFile(dir, signing, sk.fileText, 0o600);
      if (args.json) printJson({ verificationKey: sk.verifyKey, signingKeyFile: signing });
      else {
        process.stdout.write(sk.verifyKey + "\n");
        process.stderr.write(
          `wrote ${signing} (0600: copy it to the NAS, set signing_key); add the OLD verification key to verify_keys on the NAS ` +
            `and everywhere backups are checked, and this new one (above) where the NAS's key is not read (restore hosts: verify_keys or --verify-key)\n`,
        );
      }
      return;
    }
    const { identityFileText, recipient } = await generateKeyPair();
    // A comment line: the stock age CLI ignores it; zrb restore/verify/list read it.
    const privateText = identityFileText.replace(/^(# public key: .*\n)/m, `$1# zrb verification key: ${sk.verifyKey}\n`);
    const written: string[] = [];
    try {
      for (const [path, text, mode] of [
        [priv, privateText, 0o600],
        [pub, recipient + "\n", 0o644],
        [signing, sk.fileText, 0o600],
      ] as const) {
        writeKeyFile(dir, path, text, mode);
        written.push(path);
      }
    } catch (err) {
      for (const f of written) rmSync(f, { force: true });
      throw err;
    }
    if (args.json) printJson({ publicKey: recipient, verificationKey: sk.verifyKey, privateKeyFile: priv, publicKeyFile: pub, signingKeyFile: signing });
    else {
      process.stdout.write(recipient + "\n");
      process.stderr.write(
        `wrote ${priv} (0600, keep it offline), ${pub} (put it in age_public_key) and ${signing} (0600: copy it to the NAS, set signing_key)\n` +
          `verification key: ${sk.verifyKey} (recorded in ${priv}; restore checks every backup's signature with it)\n`,
      );
    }
  },
});

/** Create a key file that must not exist yet, with its mode from the start, and fsync it. */
function writeKeyFile(dir: string, path: string, text: string, mode: number): void {
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
}
