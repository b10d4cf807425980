import { afterAll, describe, expect, test } from "bun:test";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { generateIdentity, identityToRecipient } from "age-encryption";
import {
  type Config,
  DEFAULTS,
  findTask,
  loadConfig,
  parseConfig,
  STORAGE_CLASSES,
  storageClassFor,
} from "../../../src/config/config.ts";
import { defaultWorkers } from "../../../src/config/schema.ts";
import { flagPolicy } from "../../../src/cli/prune.ts";
import { normalizePrefix } from "../../../src/store/keys.ts";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";

const F = "/etc/zrb.yaml";
const SECRET = await generateIdentity();
const KEY = await identityToRecipient(SECRET);
const KEY2 = await identityToRecipient(await generateIdentity());

const TASKS = "tasks:\n  - name: home\n    pool: tank\n    dataset: home\n    enabled: true\n";
/** base_dir on line 1, age_public_key on line 2, `top` from line 3, then the tasks. */
const doc = (top = "", tasks = TASKS) => `base_dir: /var/lib/zrb\nage_public_key: ${KEY}\n${top}${tasks}`;

const CRED_HINT =
  "use the AWS credential chain instead (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment, ~/.aws/credentials, or AWS_PROFILE)";
const BUCKET_RULES = "(3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)";
const CLASSES = STORAGE_CLASSES.join(", ");
const CHUNK_FORM = "chunk_size must be a size such as 3GiB, 512MiB or a whole number of bytes";

function ok(text: string): { config: Config; warnings: string[] } {
  return parseConfig(text, F);
}

/** The message of the ZrbError that parsing `text` throws (and checks it is a one-line config error). */
function err(text: string): string {
  try {
    parseConfig(text, F);
  } catch (e) {
    expect(e).toBeInstanceOf(ZrbError);
    expect((e as ZrbError).exitCode).toBe(ExitCode.CONFIG);
    const msg = (e as Error).message;
    expect(msg).not.toContain("\n");
    return msg;
  }
  throw new Error("expected parseConfig to fail");
}

function replaceAt(s: string, i: number, c: string): string {
  return s.slice(0, i) + c + s.slice(i + 1);
}

describe("valid configs", () => {
  test("the original tool's config loads unchanged", () => {
    const text = `# zrb config
base_dir: /var/lib/zrb
age_public_key: ${KEY}
s3:
  enabled: true
  bucket: my-backups
  prefix: zrb
  region: eu-central-1
  endpoint: https://s3.eu-central-1.wasabisys.com
  storage_class:
    manifest: STANDARD
    backup_data:
      - STANDARD
      - STANDARD_IA
      - DEEP_ARCHIVE
  retry:
    max_attempts: 7
tasks:
  - name: photos
    description: Family photos
    pool: tank
    dataset: home/photos
    enabled: true
  - name: root
    pool: backup
    dataset: ""
`;
    const { config, warnings } = ok(text);
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      path: F,
      baseDir: "/var/lib/zrb",
      recipients: [KEY],
      chunkSize: 3 * 1024 ** 3,
      workers: defaultWorkers(),
      localStore: "/var/lib/zrb/store",
      s3: {
        enabled: true,
        bucket: "my-backups",
        prefix: "zrb/",
        region: "eu-central-1",
        endpoint: "https://s3.eu-central-1.wasabisys.com",
        checksumMode: "WHEN_REQUIRED",
        storageClass: { manifest: "STANDARD", backupData: ["STANDARD", "STANDARD_IA", "DEEP_ARCHIVE"] },
        retry: { maxAttempts: 7 },
        requestTimeout: 60_000,
        concurrency: 8,
      },
      monitoring: {},
      zfs: { stallTimeout: 3_600_000 },
      drill: {},
      plan: {},
      verifyKeys: [],
      prune: { orphanGrace: 172_800_000 },
      tasks: [
        {
          name: "photos",
          description: "Family photos",
          pool: "tank",
          dataset: "home/photos",
          enabled: true,
          recursive: false,
          sendProperties: false,
          fileCatalog: true,
          fullName: "tank/home/photos",
        },
        { name: "root", description: "", pool: "backup", dataset: "", enabled: false, recursive: false, sendProperties: false, fileCatalog: true, fullName: "backup" },
      ],
    });
  });

  test("defaults", () => {
    const { config, warnings } = ok(doc());
    expect(warnings).toEqual([]);
    expect(config.chunkSize).toBe(DEFAULTS.chunkSize);
    // One worker per CPU core, at most 4 (here: 2 cores).
    expect(config.workers).toBe(Math.min(4, availableParallelism()));
    expect(config.workers).toBe(defaultWorkers());
    expect(config.localStore).toBe("/var/lib/zrb/store");
    expect(config.s3).toEqual({
      enabled: false,
      bucket: "",
      prefix: "",
      region: "us-east-1",
      checksumMode: "WHEN_REQUIRED",
      storageClass: { manifest: "STANDARD", backupData: ["STANDARD"] },
      retry: { maxAttempts: 5 },
      requestTimeout: 60_000,
      concurrency: 8,
    });
    expect("endpoint" in config.s3).toBe(false);
    expect("bandwidthLimit" in config.s3).toBe(false);
    expect(config.monitoring).toEqual({});
    expect(config.zfs).toEqual({ stallTimeout: 3_600_000 });
    expect(config.tasks[0]).toEqual({
      name: "home",
      description: "",
      pool: "tank",
      dataset: "home",
      enabled: true,
      recursive: false,
      sendProperties: false,
      fileCatalog: true,
      fullName: "tank/home",
    });
    // enabled defaults to false, as in the original.
    const t = ok(doc("", "tasks:\n  - {name: a, pool: tank, dataset: x}\n")).config.tasks[0]!;
    expect(t.enabled).toBe(false);
  });

  test("empty optional values fall back to the defaults", () => {
    const { config } = ok(doc("workers:\nchunk_size: ~\nlocal_store: ''\ns3:\n  region: ''\n  storage_class:\n  retry:\n"));
    expect(config.workers).toBe(defaultWorkers());
    expect(config.chunkSize).toBe(DEFAULTS.chunkSize);
    expect(config.localStore).toBe("/var/lib/zrb/store");
    expect(config.s3.region).toBe("us-east-1");
    expect(config.s3.storageClass.backupData).toEqual(["STANDARD"]);
  });

  test("extensions: recipients merged and de-duplicated, chunk size, workers, local store, checksum mode", () => {
    const { config } = ok(
      doc(
        `age_recipients: [${KEY2}, ${KEY}, ${KEY2.toUpperCase()}]\nchunk_size: 512MiB\nworkers: 8\nlocal_store: /srv/zrb//objects/\ns3:\n  checksum_mode: WHEN_SUPPORTED\n`,
      ),
    );
    expect(config.recipients).toEqual([KEY, KEY2]);
    expect(config.chunkSize).toBe(512 * 1024 ** 2);
    expect(config.workers).toBe(8);
    expect(config.localStore).toBe("/srv/zrb/objects");
    expect(config.s3.checksumMode).toBe("WHEN_SUPPORTED");
  });

  test("age_recipients alone is enough; an uppercase recipient is normalised", () => {
    const text = `base_dir: /b\nage_recipients:\n  - ${KEY.toUpperCase()}\n${TASKS}`;
    expect(ok(text).config.recipients).toEqual([KEY]);
    expect(ok(`base_dir: /b\nage_public_key: ""\nage_recipients: [${KEY}]\n${TASKS}`).config.recipients).toEqual([KEY]);
  });

  test("a recipient from Debian's age-keygen is accepted", async () => {
    // age-keygen is a test dependency (test/rig/install-deps.sh): missing, this must fail, not pass.
    const gen = Bun.spawnSync(["age-keygen"], { stdout: "pipe", stderr: "pipe" });
    expect(gen.exitCode).toBe(0);
    const pub = /public key: (age1\S+)/i.exec(gen.stderr.toString())?.[1] ?? "";
    expect(pub).toStartWith("age1");
    expect(ok(`base_dir: /b\nage_public_key: ${pub}\n${TASKS}`).config.recipients).toEqual([pub]);
  });

  test("chunk_size as integer bytes and with each unit", () => {
    expect(ok(doc("chunk_size: 1048576\n")).config.chunkSize).toBe(1048576);
    expect(ok(doc("chunk_size: 64KiB\n")).config.chunkSize).toBe(65536);
    expect(ok(doc("chunk_size: 64K\n")).config.chunkSize).toBe(65536);
    expect(ok(doc("chunk_size: 1.5 GiB\n")).config.chunkSize).toBe(1.5 * 1024 ** 3);
    expect(ok(doc("chunk_size: 5TiB\n")).config.chunkSize).toBe(5 * 1024 ** 4);
  });

  test("s3.prefix is normalised", () => {
    const prefix = (p: string) => ok(doc(`s3:\n  prefix: ${JSON.stringify(p)}\n`)).config.s3.prefix;
    expect(prefix("/zrb")).toBe("zrb/");
    expect(prefix("zrb/")).toBe("zrb/");
    expect(prefix("a/b")).toBe("a/b/");
    expect(prefix("/")).toBe("");
    expect(prefix("")).toBe("");
    // The stores' own rule (store/keys.ts): what the config says is the prefix the store uses.
    expect(prefix(" zrb ")).toBe("zrb/");
    expect(prefix("  ")).toBe("");
    for (const p of ["/zrb", " a/b/ ", "x"]) expect(normalizePrefix(prefix(p))).toBe(prefix(p));
  });

  test("s3.endpoint keeps its path, drops trailing slashes; http is allowed", () => {
    expect(ok(doc("s3:\n  endpoint: http://127.0.0.1:7480/\n")).config.s3.endpoint).toBe("http://127.0.0.1:7480");
    expect(ok(doc("s3:\n  endpoint: https://gw.example/s3/\n")).config.s3.endpoint).toBe("https://gw.example/s3");
  });

  test("numbers and booleans in string fields are taken as written (as the original did)", () => {
    const t = ok(doc("", "tasks:\n  - {name: 2024, pool: tank, dataset: 01, description: true, enabled: true}\n")).config
      .tasks[0]!;
    expect(t.name).toBe("2024");
    expect(t.dataset).toBe("01");
    expect(t.description).toBe("true");
  });

  test("anchors and aliases are followed", () => {
    const text = `base_dir: /b\nage_public_key: &k ${KEY}\nage_recipients: [*k]\ns3:\n  storage_class:\n    backup_data: &classes [STANDARD, GLACIER]\ntasks:\n  - &t {name: a, pool: tank, dataset: x, enabled: true}\n  - {name: b, pool: tank, dataset: y}\n`;
    const { config } = ok(text);
    expect(config.recipients).toEqual([KEY]);
    expect(config.s3.storageClass.backupData).toEqual(["STANDARD", "GLACIER"]);
  });

  test("a byte-order mark is ignored", () => {
    expect(ok(`\ufeff${doc()}`).config.baseDir).toBe("/var/lib/zrb");
  });
});

describe("storageClassFor", () => {
  test("indexes backup_data by level; a level past the end uses the last entry", () => {
    const { config } = ok(doc("s3:\n  storage_class:\n    backup_data: [STANDARD, STANDARD_IA, DEEP_ARCHIVE]\n"));
    expect(storageClassFor(config, 0)).toBe("STANDARD");
    expect(storageClassFor(config, 1)).toBe("STANDARD_IA");
    expect(storageClassFor(config, 2)).toBe("DEEP_ARCHIVE");
    expect(storageClassFor(config, 3)).toBe("DEEP_ARCHIVE");
    expect(storageClassFor(config, 42)).toBe("DEEP_ARCHIVE");
    expect(storageClassFor(ok(doc()).config, 5)).toBe("STANDARD");
  });

  test("rejects a level that is not a whole number from 0", () => {
    const { config } = ok(doc());
    expect(() => storageClassFor(config, -1)).toThrow("backup level must be a whole number from 0 upward, got -1");
    expect(() => storageClassFor(config, 1.5)).toThrow("backup level must be a whole number from 0 upward, got 1.5");
  });
});

describe("findTask", () => {
  const { config } = ok(
    doc("", "tasks:\n  - {name: home, pool: tank, dataset: home, enabled: true}\n  - {name: media, pool: tank, dataset: media}\n"),
  );
  test("finds an enabled task", () => {
    expect(findTask(config, "home").fullName).toBe("tank/home");
  });
  test("a disabled task is refused unless allowed", () => {
    expect(() => findTask(config, "media")).toThrow(`task media is disabled in ${F} (set enabled: true)`);
    expect(findTask(config, "media", { allowDisabled: true }).name).toBe("media");
  });
  test("an unknown task lists the names and suggests the closest", () => {
    expect(() => findTask(config, "hom")).toThrow(`no task named "hom" in ${F}; did you mean home? (tasks: home, media)`);
    expect(() => findTask(config, "photos")).toThrow(`no task named "photos" in ${F} (tasks: home, media)`);
  });
});

describe("warnings", () => {
  test("unknown keys warn with a suggestion, and do not fail", () => {
    const { warnings } = ok(
      doc(
        "s3:\n  bucekt: x\n  colour: blue\nbucket: y\npool: z\n",
        "tasks:\n  - name: home\n    pool: tank\n    poool: tank\n    dataset: home\n    enabled: true\n",
      ),
    );
    expect(warnings).toEqual([
      `unknown key bucket in ${F}:6:1 (ignored); did you mean s3.bucket?`,
      `unknown key pool in ${F}:7:1 (ignored); did you mean tasks[].pool?`,
      `unknown key s3.bucekt in ${F}:4:3 (ignored); did you mean s3.bucket?`,
      `unknown key s3.colour in ${F}:5:3 (ignored)`,
      `unknown key tasks[0].poool in ${F}:11:5 (ignored); did you mean tasks[0].pool?`,
    ]);
  });

  test("odd keys are quoted on one line", () => {
    const { warnings } = ok(doc('"a\\nb": 1\n2: x\n'));
    expect(warnings).toEqual([`unknown key "a\\nb" in ${F}:3:1 (ignored)`, `unknown key 2 in ${F}:4:1 (ignored)`]);
  });

  test("no enabled task", () => {
    const { warnings } = ok(doc("", "tasks:\n  - {name: a, pool: tank, dataset: x}\n"));
    expect(warnings).toEqual([
      `no task is enabled in ${F}; tasks default to enabled: false, so set enabled: true on those to back up`,
    ]);
  });

  test("a bucket while s3 is disabled", () => {
    const { warnings } = ok(doc("s3:\n  bucket: my-bucket\n"));
    expect(warnings).toEqual([
      `s3.bucket is set but s3.enabled is not true in ${F}, so backups go to /var/lib/zrb/store; set s3.enabled: true to use the bucket`,
    ]);
  });

  test("YAML warnings are passed on", () => {
    const { warnings } = ok(doc("note: !custom x\n"));
    expect(warnings).toEqual([`${F}:3:7: YAML warning: Unresolved tag: !custom`, `unknown key note in ${F}:3:1 (ignored)`]);
  });
});

describe("errors", () => {
  test("YAML syntax errors give file:line:col and the problem", () => {
    expect(err("base_dir: /x\nworkers: [1, 2\ntasks: []\n")).toBe(
      `${F}:3:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]`,
    );
    expect(err("base_dir: /x\nbase_dir: /y\n")).toBe(`${F}:2:1: YAML syntax error: Map keys must be unique`);
    expect(err("a: 1\n---\nb: 2\n")).toBe(
      `${F}:2:1: YAML syntax error: the file holds more than one YAML document (a second '---'); a zrb config is one document`,
    );
    expect(err("base_dir: /x\n  workers: 4\n")).toBe(
      `${F}:1:11: YAML syntax error: Nested mappings are not allowed in compact mappings`,
    );
  });

  test("the file must be a non-empty mapping", () => {
    expect(err("")).toBe(`${F}: the file is empty; it needs at least base_dir, age_public_key and tasks (see docs/config.md)`);
    expect(err("# only a comment\n")).toBe(
      `${F}: the file is empty; it needs at least base_dir, age_public_key and tasks (see docs/config.md)`,
    );
    expect(err("- a\n- b\n")).toBe(
      `${F}:1:1: the file must be a mapping of keys (base_dir, age_public_key, s3, tasks), got a list`,
    );
    expect(err("hello\n")).toBe(`${F}:1:1: the file must be a mapping of keys (base_dir, age_public_key, s3, tasks), got "hello"`);
    expect(err("? [a]\n: b\n")).toBe(`${F}:1:3: the top level has a key that is not a plain string (a list)`);
    expect(err(doc("s3:\n  ? {a: 1}\n  : b\n"))).toBe(`${F}:4:5: s3 has a key that is not a plain string (a mapping)`);
  });

  describe("credentials and private keys are refused, never echoed", () => {
    const cases: [string, string, string][] = [
      ["s3.secret_key", doc("s3:\n  secret_key: SeCrEt/Value\n"), `${F}:4:3: s3.secret_key`],
      ["s3.access_key", doc("s3:\n  access_key: SeCrEt/Value\n"), `${F}:4:3: s3.access_key`],
      ["aws_access_key_id", doc("aws_access_key_id: SeCrEt/Value\n"), `${F}:3:1: aws_access_key_id`],
      ["aws_secret_access_key", doc("aws_secret_access_key: SeCrEt/Value\n"), `${F}:3:1: aws_secret_access_key`],
      [
        "camelCase inside a task",
        doc("", `${TASKS}    secretAccessKey: SeCrEt/Value\n`),
        `${F}:8:5: tasks[0].secretAccessKey`,
      ],
      ["nested in an unknown section", doc("extra:\n  - AWS_SESSION_TOKEN: SeCrEt/Value\n"), `${F}:4:5: extra[0].AWS_SESSION_TOKEN`],
    ];
    for (const [name, text, prefix] of cases) {
      test(name, () => {
        const msg = err(text);
        expect(msg).toBe(
          `${prefix}: zrb never reads S3 credentials from the config file; remove this key and ${CRED_HINT}`,
        );
        expect(msg).not.toContain("SeCrEt");
      });
    }

    test("a private key in age_public_key", () => {
      const msg = err(`base_dir: /b\nage_public_key: ${SECRET}\n${TASKS}`);
      expect(msg).toBe(
        `${F}:2:17: age_public_key contains a private key; put the public key (age1…) here and keep the private key off this machine`,
      );
      expect(msg).not.toContain(SECRET.slice(15));
    });
    test("a private key in age_recipients", () => {
      expect(err(doc(`age_recipients: [${KEY2}, "${SECRET}"]\n`))).toBe(
        `${F}:3:${20 + KEY2.length}: age_recipients[1] contains a private key; put the public key (age1…) here and keep the private key off this machine`,
      );
    });
    test("a private key anywhere else", () => {
      expect(err(doc("", `${TASKS}    description: "key ${SECRET.toLowerCase()}"\n`))).toBe(
        `${F}:8:18: tasks[0].description contains an age private key; delete it, put the public key (age1…) in age_public_key and keep the private key off this machine`,
      );
      expect(err(`${SECRET}\n`)).toBe(
        `${F}:1:1: this file contains an age private key; delete it, put the public key (age1…) in age_public_key and keep the private key off this machine`,
      );
    });
    test("a private key as a key, or AWS keys under the wrong key, are not echoed either", () => {
      expect(err(doc(`s3:\n  ${SECRET}: x\n`))).toBe(
        `${F}:4:3: s3."AGE-SECRET-KEY-…" contains an age private key; delete it, put the public key (age1…) in age_public_key and keep the private key off this machine`,
      );
      const bad = (b: string, why: string) => `${F}:4:11: s3.bucket ${b} is not a valid bucket name: ${why} ${BUCKET_RULES}`;
      expect(err(doc("s3:\n  bucket: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"))).toBe(
        bad('"(a 40-character secret?)"', 'it has an uppercase letter "J"'),
      );
      expect(err(doc("s3:\n  endpoint: AKIAIOSFODNN7EXAMPLE\n"))).toBe(
        `${F}:4:13: s3.endpoint must be an http(s) URL such as https://s3.example.com, got "AKIA…"`,
      );
    });
    test("a private key in a comment", () => {
      expect(err(`# ${SECRET}\n${doc()}`)).toBe(
        `${F}:1:3: this file contains an age private key (AGE-SECRET-KEY-…), perhaps in a comment; delete it and keep the private key off this machine`,
      );
    });
  });

  test("base_dir", () => {
    expect(err(`age_public_key: ${KEY}\n${TASKS}`)).toBe(`${F}: base_dir is required (an absolute path such as /var/lib/zrb)`);
    expect(err(`base_dri: /b\nage_public_key: ${KEY}\n${TASKS}`)).toBe(
      `${F}: base_dir is required (an absolute path such as /var/lib/zrb); is base_dri a misspelling of it?`,
    );
    expect(err(`base_dir: ""\nage_public_key: ${KEY}\n${TASKS}`)).toBe(
      `${F}:1:11: base_dir is required (an absolute path such as /var/lib/zrb)`,
    );
    expect(err(`base_dir: [a]\nage_public_key: ${KEY}\n${TASKS}`)).toBe(`${F}:1:11: base_dir must be a string, got a list`);
    expect(err(`base_dir: var/lib\nage_public_key: ${KEY}\n${TASKS}`)).toBe(
      `${F}:1:11: base_dir must be an absolute path (starting with /), got "var/lib"`,
    );
    expect(err(`base_dir: "/a\\0b"\nage_public_key: ${KEY}\n${TASKS}`)).toBe(`${F}:1:11: base_dir must not contain a NUL character`);
  });

  describe("age recipients", () => {
    const pub = (value: string) => err(`base_dir: /b\nage_public_key: ${value}\n${TASKS}`);
    const at = `${F}:2:17: age_public_key`;
    test("none at all", () => {
      expect(err(`base_dir: /b\n${TASKS}`)).toBe(
        `${F}: no age recipient: set age_public_key (or age_recipients) to the public key (age1…) printed by age-keygen`,
      );
      expect(pub('""')).toBe(
        `${F}:2:17: no age recipient: set age_public_key (or age_recipients) to the public key (age1…) printed by age-keygen`,
      );
      expect(err(`base_dir: /b\nage_recipients: []\n${TASKS}`)).toBe(
        `${F}:2:17: no age recipient: set age_public_key (or age_recipients) to the public key (age1…) printed by age-keygen`,
      );
      expect(err(`base_dir: /b\nage_public_kye: ${KEY}\n${TASKS}`)).toBe(
        `${F}: no age recipient: set age_public_key (or age_recipients) to the public key (age1…) printed by age-keygen; is age_public_kye a misspelling of it?`,
      );
    });
    test("an SSH key", () => {
      expect(pub("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk user@host")).toBe(
        `${at} is an SSH key; zrb needs an age X25519 public key (age1…): generate a key pair with age-keygen on another machine`,
      );
    });
    test("mixed case", () => {
      expect(pub(replaceAt(KEY, 0, "A"))).toBe(`${at} is not a valid age public key: it mixes upper and lower case`);
    });
    test("not an age key", () => {
      expect(pub("hello")).toBe(`${at} must be an age public key (age1… as printed by age-keygen), got "hello"`);
    });
    test("post-quantum and plugin recipients", () => {
      expect(pub(`age1pq1${"q".repeat(60)}`)).toBe(
        `${at} is a post-quantum age recipient (age1pq1…); zrb supports X25519 recipients (age1…, from age-keygen) only`,
      );
      expect(pub("age1yubikey1qwertyqwerty")).toBe(
        `${at} is an age plugin recipient (age1yubikey1…); zrb supports X25519 recipients (age1…, from age-keygen) only`,
      );
    });
    test("a character outside the bech32 alphabet", () => {
      expect(pub(replaceAt(KEY, 9, "b"))).toBe(
        `${at} is not a valid age public key: character "b" at position 10 cannot occur in one (the alphabet has no 1, b, i or o)`,
      );
    });
    test("a truncated key", () => {
      expect(pub(KEY.slice(0, -1))).toBe(
        `${at} is not a valid age public key: it has 61 characters, expected 62; copy it again (age-keygen -y prints it)`,
      );
    });
    test("a typo (checksum)", () => {
      const typo = replaceAt(KEY, 20, KEY[20] === "q" ? "p" : "q");
      expect(pub(typo)).toBe(
        `${at} is not a valid age public key: its checksum does not match (a typo or a damaged copy); copy it again (age-keygen -y prints it)`,
      );
    });
    test("age_recipients must be a list of strings", () => {
      expect(err(doc(`age_recipients: ${KEY2}\n`))).toBe(
        `${F}:3:17: age_recipients must be a list (e.g. [age1…, age1…]), got "${KEY2}"`,
      );
      expect(err(doc('age_recipients: [""]\n'))).toBe(`${F}:3:18: age_recipients[0] is empty; give an age public key (age1…)`);
      expect(err(doc("age_recipients: [{a: 1}]\n"))).toBe(`${F}:3:18: age_recipients[0] must be a string, got a mapping`);
      expect(err(doc("age_recipients: [nope]\n"))).toBe(
        `${F}:3:18: age_recipients[0] must be an age public key (age1… as printed by age-keygen), got "nope"`,
      );
    });
  });

  test("chunk_size", () => {
    expect(err(doc("chunk_size: [1]\n"))).toBe(`${F}:3:13: ${CHUNK_FORM}, got a list`);
    expect(err(doc("chunk_size: true\n"))).toBe(`${F}:3:13: ${CHUNK_FORM}, got true`);
    expect(err(doc("chunk_size: lots\n"))).toBe(`${F}:3:13: ${CHUNK_FORM}, got "lots"`);
    expect(err(doc("chunk_size: 1.5\n"))).toBe(
      `${F}:3:13: chunk_size must be a whole number of bytes or a size such as 3GiB, got 1.5`,
    );
    expect(err(doc("chunk_size: 3GB\n"))).toBe(
      `${F}:3:13: chunk_size uses the ambiguous unit GB in "3GB"; write 3GiB (sizes are 1024-based: B, KiB, MiB, GiB, TiB)`,
    );
    expect(err(doc("chunk_size: 3 Gb\n"))).toBe(
      `${F}:3:13: chunk_size uses the ambiguous unit Gb in "3 Gb"; write 3GiB (sizes are 1024-based: B, KiB, MiB, GiB, TiB)`,
    );
    expect(err(doc("chunk_size: 3 parsecs\n"))).toBe(
      `${F}:3:13: chunk_size has an unknown unit "parsecs" in "3 parsecs"; use B, KiB, MiB, GiB or TiB`,
    );
    expect(err(doc("chunk_size: 0.3KiB\n"))).toBe(
      `${F}:3:13: chunk_size must be a whole number of bytes, got "0.3KiB" (307.2 bytes)`,
    );
    expect(err(doc("chunk_size: 99999999999PiB\n"))).toBe(`${F}:3:13: chunk_size is too large, got "99999999999PiB"`);
    expect(err(doc("chunk_size: 1KiB\n"))).toBe(
      `${F}:3:13: chunk_size must be from 64 KiB to 5 TiB (the S3 object size limit), got 1 KiB`,
    );
    expect(err(doc("chunk_size: 6TiB\n"))).toBe(
      `${F}:3:13: chunk_size must be from 64 KiB to 5 TiB (the S3 object size limit), got 6 TiB`,
    );
  });

  test("workers", () => {
    expect(err(doc("workers: 0\n"))).toBe(`${F}:3:10: workers must be from 1 to 64, got 0`);
    expect(err(doc("workers: 65\n"))).toBe(`${F}:3:10: workers must be from 1 to 64, got 65`);
    expect(err(doc('workers: "4"\n'))).toBe(`${F}:3:10: workers must be a whole number from 1 to 64, got "4"`);
    expect(err(doc("workers: 2.5\n"))).toBe(`${F}:3:10: workers must be a whole number from 1 to 64, got 2.5`);
    expect(err(doc("workers: .inf\n"))).toBe(`${F}:3:10: workers must be a whole number from 1 to 64, got .inf`);
  });

  test("local_store", () => {
    expect(err(doc("local_store: store\n"))).toBe(`${F}:3:14: local_store must be an absolute path (starting with /), got "store"`);
  });

  describe("s3", () => {
    test("shape and enabled", () => {
      expect(err(doc("s3: yes\n"))).toBe(`${F}:3:5: s3 must be a mapping (indented key: value lines), got "yes"`);
      expect(err(doc('s3:\n  enabled: "true"\n'))).toBe(`${F}:4:12: s3.enabled must be true or false, got "true"`);
      expect(err(doc("s3:\n  enabled: on\n"))).toBe(`${F}:4:12: s3.enabled must be true or false, got "on"`);
    });

    test("bucket is required when enabled", () => {
      expect(err(doc("s3:\n  enabled: true\n"))).toBe(
        `${F}:4:3: s3.bucket is required when s3.enabled is true (the name of an existing bucket)`,
      );
      expect(err(doc("s3:\n  enabled: true\n  bucekt: b\n"))).toBe(
        `${F}:4:3: s3.bucket is required when s3.enabled is true (the name of an existing bucket); is s3.bucekt a misspelling of it?`,
      );
      expect(err(doc('s3:\n  enabled: true\n  bucket: ""\n'))).toBe(
        `${F}:5:11: s3.bucket is required when s3.enabled is true (the name of an existing bucket)`,
      );
    });

    test("bucket naming rules", () => {
      const bucket = (b: string) => err(doc(`s3:\n  bucket: ${b}\n`));
      const bad = (b: string, why: string) => `${F}:4:11: s3.bucket "${b}" is not a valid bucket name: ${why} ${BUCKET_RULES}`;
      expect(bucket("ab")).toBe(bad("ab", "it has 2 characters, expected 3 to 63"));
      expect(bucket("a".repeat(64))).toBe(bad("a".repeat(64), "it has 64 characters, expected 3 to 63"));
      expect(bucket("My-Bucket")).toBe(bad("My-Bucket", 'it has an uppercase letter "M"'));
      expect(bucket("my_bucket")).toBe(bad("my_bucket", 'it contains "_"'));
      expect(bucket("bucket-")).toBe(bad("bucket-", "it must start and end with a letter or digit"));
      expect(bucket("a..b")).toBe(bad("a..b", "it has two periods in a row"));
      expect(bucket("192.168.1.1")).toBe(bad("192.168.1.1", "it is formatted like an IP address"));
    });

    test("prefix", () => {
      const prefix = (p: string) => err(doc(`s3:\n  prefix: ${JSON.stringify(p)}\n`));
      expect(prefix("a\tb")).toBe(`${F}:4:11: s3.prefix must not contain control characters`);
      expect(prefix("a//b")).toBe(`${F}:4:11: s3.prefix must not contain empty segments ("//"), got "a//b"`);
      expect(prefix("a/../b")).toBe(`${F}:4:11: s3.prefix must not contain "." or ".." segments, got "a/../b"`);
      expect(prefix("./b")).toBe(`${F}:4:11: s3.prefix must not contain "." or ".." segments, got "./b"`);
      expect(prefix("a".repeat(600))).toBe(`${F}:4:11: s3.prefix is longer than 512 bytes`);
      // The store refuses backslashes; the config says so before a run opens the store.
      expect(prefix("a\\b")).toBe(`${F}:4:11: s3.prefix must not contain backslashes, got "a\\\\b"`);
    });

    test("region", () => {
      expect(err(doc('s3:\n  region: "us east"\n'))).toBe(
        `${F}:4:11: s3.region must be a region name such as us-east-1 (letters, digits, '-', '_', '.'), got "us east"`,
      );
    });

    test("endpoint", () => {
      const endpoint = (e: string) => err(doc(`s3:\n  endpoint: ${JSON.stringify(e)}\n`));
      const form = (e: string) => `${F}:4:13: s3.endpoint must be an http(s) URL such as https://s3.example.com, got "${e}"`;
      expect(endpoint("s3.example.com")).toBe(form("s3.example.com"));
      expect(endpoint("ftp://s3.example.com")).toBe(form("ftp://s3.example.com"));
      expect(endpoint("localhost:9000")).toBe(form("localhost:9000"));
      const withCreds = endpoint("https://AKIAXXXX:SeCrEt@s3.example.com");
      expect(withCreds).toBe(`${F}:4:13: s3.endpoint must not contain a user name or password; ${CRED_HINT}`);
      // The query is never echoed: presigned-style credentials can live there.
      const withQuery = endpoint("https://s3.example.com/?X-Amz-Signature=SeCrEt");
      expect(withQuery).toBe(
        `${F}:4:13: s3.endpoint must not have a query (?…) or fragment (#…), got "https://s3.example.com/" followed by one; remove it`,
      );
      expect(withQuery).not.toContain("SeCrEt");
      expect(endpoint("https://s3.example.com/#SeCrEt")).not.toContain("SeCrEt");
    });

    test("checksum_mode", () => {
      expect(err(doc("s3:\n  checksum_mode: when_required\n"))).toBe(
        `${F}:4:18: s3.checksum_mode must be one of: WHEN_REQUIRED, WHEN_SUPPORTED; got "when_required"; did you mean WHEN_REQUIRED?`,
      );
      expect(err(doc("s3:\n  checksum_mode: ALWAYS\n"))).toBe(
        `${F}:4:18: s3.checksum_mode must be one of: WHEN_REQUIRED, WHEN_SUPPORTED; got "ALWAYS"`,
      );
    });

    test("storage_class", () => {
      expect(err(doc("s3:\n  storage_class: STANDARD\n"))).toBe(
        `${F}:4:18: s3.storage_class must be a mapping (indented key: value lines), got "STANDARD"`,
      );
      expect(err(doc("s3:\n  storage_class:\n    manifest: STANDART\n"))).toBe(
        `${F}:5:15: s3.storage_class.manifest must be a storage class, one of: ${CLASSES}; got "STANDART"; did you mean STANDARD?`,
      );
      expect(err(doc("s3:\n  storage_class:\n    manifest: COLD\n"))).toBe(
        `${F}:5:15: s3.storage_class.manifest must be a storage class, one of: ${CLASSES}; got "COLD"`,
      );
      expect(err(doc("s3:\n  storage_class:\n    backup_data: DEEP_ARCHIVE\n"))).toBe(
        `${F}:5:18: s3.storage_class.backup_data must be a list (storage classes by level, e.g. [STANDARD, DEEP_ARCHIVE]), got "DEEP_ARCHIVE"`,
      );
      expect(err(doc("s3:\n  storage_class:\n    backup_data: []\n"))).toBe(
        `${F}:5:18: s3.storage_class.backup_data must list at least one storage class (e.g. [STANDARD]), got an empty list`,
      );
      expect(err(doc("s3:\n  storage_class:\n    backup_data: [STANDARD, ~]\n"))).toBe(
        `${F}:5:29: s3.storage_class.backup_data[1] is empty; give a storage class such as STANDARD`,
      );
      expect(err(doc("s3:\n  storage_class:\n    backup_data:\n      - STANDARD\n      - deep_archive\n"))).toBe(
        `${F}:7:9: s3.storage_class.backup_data[1] must be a storage class, one of: ${CLASSES}; got "deep_archive"; did you mean DEEP_ARCHIVE?`,
      );
    });

    test("retry", () => {
      expect(err(doc("s3:\n  retry: 5\n"))).toBe(`${F}:4:10: s3.retry must be a mapping (indented key: value lines), got 5`);
      expect(err(doc("s3:\n  retry:\n    max_attempts: 0\n"))).toBe(`${F}:5:19: s3.retry.max_attempts must be from 1 to 100, got 0`);
      expect(err(doc("s3:\n  retry:\n    max_attempts: 101\n"))).toBe(
        `${F}:5:19: s3.retry.max_attempts must be from 1 to 100, got 101`,
      );
      expect(err(doc("s3:\n  retry:\n    max_attempts: many\n"))).toBe(
        `${F}:5:19: s3.retry.max_attempts must be a whole number from 1 to 100, got "many"`,
      );
    });
  });

  describe("tasks", () => {
    const tasks = (t: string) => err(doc("", `tasks:\n${t}`));
    test("the list", () => {
      expect(err(doc("", ""))).toBe(`${F}: tasks is required (a list of tasks, each with name, pool and dataset)`);
      expect(err(doc("", "taks:\n  - {name: a, pool: tank, dataset: x}\n"))).toBe(
        `${F}: tasks is required (a list of tasks, each with name, pool and dataset); is taks a misspelling of it?`,
      );
      expect(err(doc("", "tasks: home\n"))).toBe(
        `${F}:3:8: tasks must be a list (one entry per dataset, each with name, pool and dataset), got "home"`,
      );
      expect(err(doc("", "tasks: []\n"))).toBe(`${F}:3:8: tasks must list at least one task (name, pool, dataset)`);
      expect(tasks("  -\n")).toBe(`${F}:4:4: tasks[0] is empty; give name, pool and dataset`);
      expect(tasks("  - home\n")).toBe(`${F}:4:5: tasks[0] must be a mapping (indented key: value lines), got "home"`);
    });

    test("name", () => {
      expect(tasks("  - pool: tank\n    dataset: a\n")).toBe(
        `${F}:4:5: tasks[0].name is required (letters, digits, '.', '_' and '-')`,
      );
      expect(tasks("  - nmae: home\n    pool: tank\n    dataset: a\n")).toBe(
        `${F}:4:5: tasks[0].name is required (letters, digits, '.', '_' and '-'); is tasks[0].nmae a misspelling of it?`,
      );
      expect(tasks("  - name: my home\n    pool: tank\n    dataset: a\n")).toBe(
        `${F}:4:11: tasks[0].name must be letters, digits, '.', '_' and '-' only, got "my home"`,
      );
      expect(tasks("  - name: ..\n    pool: tank\n    dataset: a\n")).toBe(
        `${F}:4:11: tasks[0].name must be letters, digits, '.', '_' and '-' only, got ".."`,
      );
      expect(tasks("  - name: home\n    pool: tank\n    dataset: a\n  - name: home\n    pool: tank\n    dataset: b\n")).toBe(
        `${F}:7:11: tasks[1].name "home" is already used by tasks[0]; task names must be unique`,
      );
    });

    test("pool", () => {
      const pool = (p: string) => tasks(`  - name: a\n    pool: ${p}\n    dataset: x\n`);
      expect(tasks("  - name: a\n    dataset: x\n")).toBe(`${F}:4:5: tasks[0].pool is required (a ZFS pool name such as tank)`);
      expect(pool("tank/home")).toBe(
        `${F}:5:11: tasks[0].pool must be a pool name without '/', got "tank/home"; write pool: tank and dataset: home`,
      );
      const bad = (p: string, why: string) => `${F}:5:11: tasks[0].pool "${p}" is not a valid ZFS pool name: ${why}`;
      expect(pool("1tank")).toBe(bad("1tank", "it must start with a letter"));
      expect(pool("ta$nk")).toBe(bad("ta$nk", `it contains "$" (allowed: letters, digits, '_', '-', '.', ':' and space)`));
      expect(pool("mirror")).toBe(bad("mirror", "ZFS reserves that name (mirror, raidz, draid, spare, log)"));
      expect(pool("raidz2")).toBe(bad("raidz2", "ZFS reserves that name (mirror, raidz, draid, spare, log)"));
      expect(pool("log")).toBe(bad("log", "ZFS reserves that name (mirror, raidz, draid, spare, log)"));
      const long = "p".repeat(256);
      expect(pool(long)).toBe(
        `${F}:5:11: tasks[0].pool "${"p".repeat(80)}…" is not a valid ZFS pool name: it is longer than 255 characters`,
      );
    });

    test("dataset", () => {
      expect(tasks("  - name: a\n    pool: tank\n")).toBe(
        `${F}:4:5: tasks[0].dataset is required (a dataset path inside the pool such as home/photos, or "" for the pool's root dataset)`,
      );
      expect(tasks("  - name: a\n    pool: tank\n    datset: x\n")).toBe(
        `${F}:4:5: tasks[0].dataset is required (a dataset path inside the pool such as home/photos, or "" for the pool's root dataset); is tasks[0].datset a misspelling of it?`,
      );
      const ds = (d: string) => tasks(`  - name: a\n    pool: tank\n    dataset: ${JSON.stringify(d)}\n`);
      const bad = (d: string, why: string) => `${F}:6:14: tasks[0].dataset "${d}" is not a valid ZFS dataset path: ${why}`;
      expect(ds("/home")).toBe(bad("/home", `it must be relative to the pool (e.g. "home"), not start with '/'`));
      expect(ds("home@snap")).toBe(bad("home@snap", "it must not contain '@' (zrb picks the snapshots itself)"));
      expect(ds("home#mark")).toBe(bad("home#mark", "it must not contain '#' (that names a bookmark)"));
      expect(ds("home%x")).toBe(bad("home%x", "it must not contain '%' (reserved by ZFS)"));
      expect(ds("home/")).toBe(bad("home/", "it has an empty path component (a trailing '/' or '//')"));
      expect(ds("a/./b")).toBe(bad("a/./b", 'it has a "." component'));
      expect(ds("ho$me")).toBe(
        bad("ho$me", `it contains "$" (allowed: letters, digits, '_', '-', '.', ':', space and '/' between components)`),
      );
      expect(ds("d".repeat(252))).toBe(`${F}:6:14: tasks[0].dataset: "tank/${"d".repeat(35)}…" is longer than 255 characters`);
      // null means the pool's root dataset, as "" does
      expect(ok(doc("", "tasks:\n  - {name: a, pool: tank, dataset: ~}\n")).config.tasks[0]!.fullName).toBe("tank");
    });

    test("description and enabled", () => {
      expect(tasks("  - name: a\n    pool: tank\n    dataset: x\n    description: {a: 1}\n")).toBe(
        `${F}:7:18: tasks[0].description must be a string, got a mapping`,
      );
      expect(tasks("  - name: a\n    pool: tank\n    dataset: x\n    enabled: yes\n")).toBe(
        `${F}:7:14: tasks[0].enabled must be true or false, got "yes"`,
      );
      expect(tasks("  - name: a\n    pool: tank\n    dataset: x\n    enabled: 1\n")).toBe(
        `${F}:7:14: tasks[0].enabled must be true or false, got 1`,
      );
      // YAML 1.1 documents resolve `yes` to true; it is still refused.
      expect(err(`%YAML 1.1\n---\n${doc("", "tasks:\n  - {name: a, pool: tank, dataset: x, enabled: yes}\n")}`)).toBe(
        `${F}:6:48: tasks[0].enabled must be true or false, got "yes"`,
      );
      expect(ok(doc("", "tasks:\n  - {name: a, pool: tank, dataset: x, enabled: True}\n")).config.tasks[0]!.enabled).toBe(true);
    });

    test("one task per dataset", () => {
      expect(tasks("  - {name: a, pool: tank, dataset: x}\n  - {name: b, pool: tank, dataset: x}\n")).toBe(
        `${F}:5:5: tasks[1] (b) backs up tank/x, as tasks[0] already does; use one task per dataset`,
      );
    });

    test("recursive, exclude and send_properties", () => {
      const t = ok(doc("", "tasks:\n  - {name: a, pool: tank, dataset: home, recursive: true, exclude: [scratch, \"*/cache\", \"vm/**\"], send_properties: true}\n")).config.tasks[0]!;
      expect(t).toMatchObject({ recursive: true, exclude: ["scratch", "*/cache", "vm/**"], sendProperties: true });
      expect(tasks("  - {name: a, pool: tank, dataset: home, exclude: [scratch]}\n")).toBe(`${F}:4:51: tasks[0].exclude only applies with recursive: true`);
      expect(tasks("  - {name: a, pool: tank, dataset: home, recursive: true, exclude: [/scratch]}\n")).toBe(
        `${F}:4:69: tasks[0].exclude[0] "/scratch" must be relative to the task's dataset (e.g. "scratch"), not start with '/'`,
      );
      expect(tasks("  - {name: a, pool: tank, dataset: home, recursive: true, exclude: [\"a@b\"]}\n")).toContain("must not contain '@'");
      expect(tasks("  - {name: a, pool: tank, dataset: home, recursive: true, exclude: [\"a**\"]}\n")).toContain("'**' only as a whole component");
      expect(tasks("  - {name: a, pool: tank, dataset: home, recursive: yes}\n")).toContain("tasks[0].recursive must be true or false");
    });

    test("a task on a child that a recursive task already backs up", () => {
      expect(tasks("  - {name: a, pool: tank, dataset: home, recursive: true}\n  - {name: b, pool: tank, dataset: home/alice}\n")).toBe(
        `${F}:5:5: tasks[1] (b) backs up tank/home/alice, which the recursive tasks[0] (a) already backs up as a child; add it to that task's exclude or drop one of them`,
      );
      // Excluded there (or a sibling, or the same name outside the tree): fine.
      ok(doc("", "tasks:\n  - {name: a, pool: tank, dataset: home, recursive: true, exclude: [alice]}\n  - {name: b, pool: tank, dataset: home/alice}\n"));
      ok(doc("", "tasks:\n  - {name: a, pool: tank, dataset: home, recursive: true}\n  - {name: b, pool: tank, dataset: home-b}\n  - {name: c, pool: tank2, dataset: home/x}\n"));
      // The pool's root recursive covers every dataset of the pool.
      expect(tasks("  - {name: a, pool: tank, dataset: \"\", recursive: true}\n  - {name: b, pool: tank, dataset: x/y}\n")).toContain("already backs up as a child");
    });

    test("a task whose local state would sit in another task's directory (a dataset named spill, *.lock or *.yaml right below it)", () => {
      expect(tasks("  - {name: a, pool: tank, dataset: home}\n  - {name: b, pool: tank, dataset: home/spill}\n")).toBe(
        `${F}:5:5: tasks[1] (b) backs up tank/home/spill, whose local state would sit in the directory of tasks[0] (a, tank/home): "spill" is a name zrb uses in its parent's run directory (zrb.lock, tree.lock, backup_state.yaml, spill); back it up from a config with another base_dir`,
      );
      expect(tasks("  - {name: a, pool: tank, dataset: \"\"}\n  - {name: b, pool: tank, dataset: zrb.lock/x}\n")).toContain("tasks[1] (b) backs up tank/zrb.lock/x, whose local state would sit in the directory of tasks[0] (a, tank)");
      // Deeper, or beside it: its own directory, fine.
      ok(doc("", "tasks:\n  - {name: a, pool: tank, dataset: home}\n  - {name: b, pool: tank, dataset: home/x/spill}\n  - {name: c, pool: tank, dataset: spill}\n"));
    });
  });
});

describe("loadConfig", () => {
  let dir = "";
  const setup = async () => {
    if (!dir) dir = await mkdtemp(join(tmpdir(), "zrb-config-"));
    return dir;
  };
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const fails = async (path: string): Promise<string> => {
    try {
      await loadConfig(path);
    } catch (e) {
      expect(e).toBeInstanceOf(ZrbError);
      expect((e as ZrbError).exitCode).toBe(ExitCode.CONFIG);
      return (e as Error).message;
    }
    throw new Error("expected loadConfig to fail");
  };

  test("loads a file", async () => {
    const d = await setup();
    const p = join(d, "ok.yaml");
    await writeFile(p, doc());
    const { config, warnings } = await loadConfig(p);
    expect(config.path).toBe(p);
    expect(config.tasks[0]!.name).toBe("home");
    expect(warnings).toEqual([]);
  });

  test("missing, not a file, unreadable", async () => {
    const d = await setup();
    expect(await fails(join(d, "nope.yaml"))).toBe(
      `config file ${join(d, "nope.yaml")} does not exist; create it (see docs/config.md) or pass --config <file>`,
    );
    expect(await fails(d)).toBe(`config file ${d} is a directory; pass the YAML file itself`);
    expect(await fails("/dev/null")).toBe("config file /dev/null is not a regular file");
    const f = join(d, "plain");
    await writeFile(f, "x");
    expect(await fails(join(f, "zrb.yaml"))).toBe(
      `config file ${join(f, "zrb.yaml")} does not exist (a parent is not a directory)`,
    );
    const loop = join(d, "loop");
    await symlink(loop, loop);
    expect(await fails(loop)).toStartWith(`cannot read config file ${loop}: `);
  });

  test("permission denied", async () => {
    const d = await setup();
    const p = join(d, "secret.yaml");
    await writeFile(p, doc());
    await chmod(p, 0o000);
    const expected = `cannot read config file ${p}: permission denied; run as root or make it readable by this user`;
    if (process.getuid?.() !== 0) {
      expect(await fails(p)).toBe(expected);
      return;
    }
    // root reads anything: ask again as nobody.
    const src = join(import.meta.dir, "../../../src/config/config.ts");
    const script = `import { loadConfig } from ${JSON.stringify(src)}; loadConfig(${JSON.stringify(p)}).then(() => console.log("loaded"), (e) => console.log(e.name, e.message));`;
    const run = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", script], {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(run.stdout.toString().trim()).toBe(`ZrbError ${expected}`);
  });

  test("too large, not UTF-8", async () => {
    const d = await setup();
    const big = join(d, "big.yaml");
    await writeFile(big, Buffer.alloc(2 * 1024 * 1024, 0x20));
    expect(await fails(big)).toBe(`config file ${big} is 2 MiB; a zrb config is a small YAML file (at most 1 MiB)`);
    const latin1 = join(d, "latin1.yaml");
    await writeFile(latin1, Buffer.from([0x62, 0x3a, 0x20, 0xe9, 0x0a]));
    expect(await fails(latin1)).toBe(`config file ${latin1} is not UTF-8 text; save it as UTF-8 YAML`);
  });

  test("a pipe larger than 1 MiB", async () => {
    const d = await setup();
    const fifo = join(d, "fifo");
    await mkdir(d, { recursive: true });
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const writer = Bun.spawn(["sh", "-c", `head -c 2000000 /dev/zero > '${fifo}'`]);
    expect(await fails(fifo)).toBe(`config file ${fifo} is larger than 1 MiB; a zrb config is a small YAML file`);
    await writer.exited;
  });

  test("a config error names the loaded file", async () => {
    const d = await setup();
    const p = join(d, "bad.yaml");
    await writeFile(p, doc("workers: 0\n"));
    expect(await fails(p)).toBe(`${p}:3:10: workers must be from 1 to 64, got 0`);
  });
});

describe("docs/config.md", () => {
  test("the complete example loads without warnings and matches the documented defaults", async () => {
    const md = await Bun.file(join(import.meta.dir, "../../../docs/config.md")).text();
    const example = /### A complete example\s+```yaml\n([\s\S]*?)```/.exec(md)?.[1];
    expect(example).toBeDefined();
    const { config, warnings } = parseConfig(example!, "docs/config.md");
    expect(warnings).toEqual([]);
    expect(config.recipients).toHaveLength(2);
    expect(config.s3.endpoint).toBe("https://s3.eu-central-1.wasabisys.com");
    expect(storageClassFor(config, 5)).toBe("DEEP_ARCHIVE");
    expect(config.tasks.map((t) => t.fullName)).toEqual(["tank/home/photos", "backup"]);
    for (const [key, value] of [
      ["chunk_size", "`3GiB`"],
      ["workers", "the number of CPU cores, at most 4"],
      ["s3.region", "`us-east-1`"],
      ["s3.retry.max_attempts", "`5`"],
      ["s3.enabled", "`false`"],
    ]) {
      expect(md).toContain(`| \`${key}\``);
      expect(md.split("\n").find((l) => l.startsWith(`| \`${key}\``))).toContain(value);
    }
  });
});

describe("tasks[].retention", () => {
  const withRetention = (r: string) => doc("", `${TASKS}    retention: ${r}\n`);
  const DAY = 86_400_000;
  test("bucket and local rules are read; keep_within is a duration; 0 turns a rule off", () => {
    const t = ok(withRetention("{keep_last: 3, keep_daily: 7, keep_weekly: 0, keep_within: 30d, local: {keep_hourly: 24, keep_within: 2w}}")).config.tasks[0]!;
    expect(t.retention).toEqual({ keepLast: 3, keepDaily: 7, keepWeekly: 0, keepWithin: 30 * DAY, local: { keepHourly: 24, keepWithin: 14 * DAY } });
    expect(ok(doc()).config.tasks[0]!.retention).toBeUndefined();
    // Local rules alone: the bucket keeps everything, the pool's snapshots are pruned.
    expect(ok(withRetention("{local: {keep_daily: 3}}")).config.tasks[0]!.retention).toEqual({ local: { keepDaily: 3 } });
  });
  test("a policy that keeps nothing, negative counts and units without a fixed length are one-line errors", () => {
    const nothing = "keeps nothing; set at least one of keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly to 1 or more, or keep_within";
    expect(err(withRetention("{}"))).toContain(`tasks[0].retention ${nothing}`);
    expect(err(withRetention("{keep_daily: 0, keep_last: 0}"))).toContain(`tasks[0].retention ${nothing}`);
    expect(err(withRetention("{keep_daily: 0, local: {keep_daily: 2}}"))).toContain(`tasks[0].retention ${nothing}`);
    expect(err(withRetention("{keep_daily: 7, local: {}}"))).toContain(`tasks[0].retention.local ${nothing}`);
    expect(err(withRetention("{keep_daily: -1}"))).toBe(`${F}:8:29: tasks[0].retention.keep_daily must be from 0 to 1000000, got -1`);
    expect(err(withRetention("{keep_daily: 1.5}"))).toContain("tasks[0].retention.keep_daily must be a whole number from 0 to 1000000, got 1.5");
    expect(err(withRetention("{keep_within: 1y}"))).toContain("tasks[0].retention.keep_within must be a duration like 30m, 24h or 7d, got \"1y\"; months and years vary in length");
    expect(err(withRetention("{keep_within: 3 days}"))).toContain("tasks[0].retention.keep_within must be a duration like 30m, 24h or 7d");
  });
  test("counts follow the --keep-* flags' rules: 1e3, 0x10, 0o17 and +5 are refused by both (issue 20)", () => {
    for (const v of ["1e3", "0x10", "0o17", "+5", "1.0e2"]) {
      expect(err(withRetention(`{keep_daily: ${v}}`))).toContain(`tasks[0].retention.keep_daily must be a whole number from 0 to 1000000 written in decimal digits`);
      expect(() => flagPolicy({ "keep-daily": v })).toThrow("--keep-daily must be a whole number ≥ 0");
    }
    expect(err(withRetention("{keep_daily: 7, local: {keep_last: 0x10}}"))).toContain("tasks[0].retention.local.keep_last must be a whole number from 0 to 1000000 written in decimal digits (like 16), got 0x10");
    // the same range on both sides
    expect(err(withRetention("{keep_daily: 1000001}"))).toContain("must be from 0 to 1000000, got 1000001");
    expect(() => flagPolicy({ "keep-daily": "1000001" })).toThrow("--keep-daily must be from 0 to 1000000, got 1000001");
    // what both accept
    for (const v of ["7", "007", "1000000"]) {
      expect(ok(withRetention(`{keep_daily: ${v}}`)).config.tasks[0]!.retention!.keepDaily).toBe(Number(v));
      expect(flagPolicy({ "keep-daily": v })!.daily).toBe(Number(v));
    }
    // other whole-number keys follow the same rule
    expect(err(doc("workers: 0x4\n"))).toContain("workers must be a whole number from 1 to 64 written in decimal digits (like 4), got 0x4");
  });
  test("a misspelled rule is warned about with a suggestion", () => {
    const w = ok(withRetention("{keep_dayly: 7, keep_last: 1}")).warnings.join("\n");
    expect(w).toContain("did you mean tasks[0].retention.keep_daily?");
  });
});
