/**
 * Text that came from outside (a manifest in the bucket, a zfs error, a file name) is shown to
 * a person only through `printable`: control characters, DEL, C1 controls and Unicode
 * direction overrides become visible escapes, so a hostile name can neither clear the screen,
 * move the cursor, start a new line that looks like zrb's own output, nor reorder a line.
 */

// C0 controls, DEL, C1 controls, and the bidi embedding/override/isolate characters.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

export function printable(s: string): string {
  return s.replace(UNSAFE, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}

/** Whether `s` would be changed by printable (for validating names read from the bucket). */
export function hasUnsafeChars(s: string): boolean {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(s);
}
