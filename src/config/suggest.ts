/**
 * "Did you mean": the one edit-distance rule behind every suggestion zrb makes — a misspelt
 * config key or enum value, an unknown task, command or option. One rule, so a typo is
 * caught (or not) the same way everywhere: case and '-' versus '_' do not count, a swap of
 * two neighbours is one edit, and a suggestion needs fewer edits than the word has letters.
 */

/** Optimal-string-alignment distance: edits, with a swap of two neighbours counting as one. */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  if (Math.abs(m - n) > 3) return Math.abs(m - n);
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) => {
    const row = new Array<number>(n + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= n; j++) d[0]![j] = j;
  for (let i = 1; i <= m; i++) {
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[m]![n]!;
}

/** The form words are compared in: lower case, '-' read as '_'. */
export const fold = (s: string): string => s.toLowerCase().replace(/-/g, "_");

/** Whether `a` and `b` are at most `maxDistance` edits apart (folded). */
export function near(a: string, b: string, maxDistance: number): boolean {
  return editDistance(fold(a), fold(b)) <= maxDistance;
}

/** The candidate closest to `word` within `maxDistance` edits (the first one on a tie), or undefined. */
export function closest(word: string, candidates: readonly string[], maxDistance: number): string | undefined {
  let best: string | undefined;
  let bestD = maxDistance + 1;
  for (const c of candidates) {
    const dist = editDistance(fold(word), fold(c));
    // "2" is two edits from "s3", but that is no suggestion: fewer edits than the word has letters.
    if (dist < bestD && dist < word.length) {
      best = c;
      bestD = dist;
    }
  }
  return best;
}

/** "; did you mean X?" for the closest candidate, or "" when none is close. */
export function didYouMean(word: string, candidates: readonly string[], maxDistance = 2, show = (s: string) => s): string {
  const best = closest(word, candidates, maxDistance);
  return best !== undefined ? `; did you mean ${show(best)}?` : "";
}
