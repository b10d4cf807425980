import { describe, expect, test } from "bun:test";
import { ExitCode, ZrbError } from "../../../src/util/errors.ts";
import { formatSize, parseSize } from "../../../src/util/size.ts";

const KiB = 1024;
const MiB = KiB ** 2;
const GiB = KiB ** 3;
const TiB = KiB ** 4;

function fails(v: string | number): string {
  try {
    parseSize(v, "chunk_size");
  } catch (e) {
    expect(e).toBeInstanceOf(ZrbError);
    expect((e as ZrbError).exitCode).toBe(ExitCode.CONFIG);
    return (e as Error).message;
  }
  throw new Error(`expected parseSize(${JSON.stringify(v)}) to fail`);
}

describe("parseSize", () => {
  test("numbers are bytes", () => {
    expect(parseSize(0, "k")).toBe(0);
    expect(parseSize(3 * GiB, "k")).toBe(3 * GiB);
  });

  test("units are binary; K/M/G/T are short for KiB/MiB/GiB/TiB; case and spaces do not matter", () => {
    const cases: [string, number][] = [
      ["512", 512],
      ["512B", 512],
      ["512 b", 512],
      ["64KiB", 64 * KiB],
      ["64K", 64 * KiB],
      ["64k", 64 * KiB],
      ["8MiB", 8 * MiB],
      ["8 M", 8 * MiB],
      ["3GiB", 3 * GiB],
      ["3gib", 3 * GiB],
      ["3G", 3 * GiB],
      ["1.5GiB", 1.5 * GiB],
      [".5 MiB", 0.5 * MiB],
      ["5TiB", 5 * TiB],
      ["5T", 5 * TiB],
      ["1PiB", KiB ** 5],
      ["  3GiB  ", 3 * GiB],
    ];
    for (const [text, bytes] of cases) expect(parseSize(text, "k")).toBe(bytes);
  });

  test("every error, with the key and what was given", () => {
    expect(fails(-1)).toBe("chunk_size must be a whole number of bytes or a size such as 3GiB, got -1");
    expect(fails(1.5)).toBe("chunk_size must be a whole number of bytes or a size such as 3GiB, got 1.5");
    expect(fails(Number.NaN)).toBe("chunk_size must be a whole number of bytes or a size such as 3GiB, got NaN");
    expect(fails(2 ** 60)).toBe(`chunk_size must be a whole number of bytes or a size such as 3GiB, got ${2 ** 60}`);
    expect(fails(true as unknown as number)).toBe("chunk_size must be a size such as 3GiB or a whole number of bytes, got boolean");
    expect(fails("")).toBe('chunk_size must be a size such as 3GiB, 512MiB or a whole number of bytes, got ""');
    expect(fails("-3GiB")).toBe('chunk_size must be a size such as 3GiB, 512MiB or a whole number of bytes, got "-3GiB"');
    expect(fails("3 G i B")).toBe('chunk_size must be a size such as 3GiB, 512MiB or a whole number of bytes, got "3 G i B"');
    expect(fails("x-".repeat(25))).toBe(
      `chunk_size must be a size such as 3GiB, 512MiB or a whole number of bytes, got "${"x-".repeat(20)}…"`,
    );
    expect(fails("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")).toBe(
      "chunk_size must be a size such as 3GiB, 512MiB or a whole number of bytes, got (a long value, not shown)",
    );
    expect(fails("3GB")).toBe('chunk_size uses the ambiguous unit GB in "3GB"; write 3GiB (sizes are 1024-based: B, KiB, MiB, GiB, TiB)');
    expect(fails("64kb")).toBe('chunk_size uses the ambiguous unit kb in "64kb"; write 64KiB (sizes are 1024-based: B, KiB, MiB, GiB, TiB)');
    expect(fails("1.5 MB")).toBe('chunk_size uses the ambiguous unit MB in "1.5 MB"; write 1.5MiB (sizes are 1024-based: B, KiB, MiB, GiB, TiB)');
    expect(fails("2TB")).toBe('chunk_size uses the ambiguous unit TB in "2TB"; write 2TiB (sizes are 1024-based: B, KiB, MiB, GiB, TiB)');
    expect(fails("3 gigs")).toBe('chunk_size has an unknown unit "gigs" in "3 gigs"; use B, KiB, MiB, GiB or TiB');
    expect(fails("1.5")).toBe('chunk_size must be a whole number of bytes, got "1.5" (1.5 bytes)');
    expect(fails("0.3KiB")).toBe('chunk_size must be a whole number of bytes, got "0.3KiB" (307.2 bytes)');
    expect(fails("9999999PiB")).toBe('chunk_size is too large, got "9999999PiB"');
    expect(fails(`1${"0".repeat(400)}`)).toBe(`chunk_size is too large, got "1${"0".repeat(39)}…"`);
  });
});

describe("formatSize", () => {
  test("examples", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(512)).toBe("512 B");
    expect(formatSize(1023)).toBe("1023 B");
    expect(formatSize(KiB)).toBe("1 KiB");
    expect(formatSize(64 * KiB)).toBe("64 KiB");
    expect(formatSize(8.5 * MiB)).toBe("8.5 MiB");
    expect(formatSize(3 * GiB)).toBe("3 GiB");
    expect(formatSize(1.234 * GiB)).toBe("1.23 GiB");
    expect(formatSize(5 * TiB)).toBe("5 TiB");
    expect(formatSize(2 * KiB ** 5)).toBe("2 PiB");
    expect(formatSize(MiB - 1)).toBe("1 MiB");
    expect(formatSize(-2 * KiB)).toBe("-2 KiB");
  });

  test("round-trips through parseSize for whole units", () => {
    for (const n of [1, 7, 512, 1000]) {
      for (const u of ["B", "KiB", "MiB", "GiB", "TiB"]) {
        const bytes = parseSize(`${n}${u}`, "k");
        expect(parseSize(formatSize(bytes).replace(" ", ""), "k")).toBe(bytes);
      }
    }
  });
});
