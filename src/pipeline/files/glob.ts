/**
 * `zrb find`'s patterns, on paths relative to the dataset's root, as restic's find reads them:
 * a pattern without '/' matches a name at any depth (`*.jpg`, `report-2024?.pdf`); one with '/'
 * matches the whole path from the root (`photos/2019/*`, `**\/cache/*`; a leading '/' is the
 * root). `*` is any run of characters within one name, `?` one character, `[abc]`/`[a-z]` one of
 * a set, `**` any number of whole names (also none).
 */

function componentRegex(part: string): string {
  let re = "";
  for (let i = 0; i < part.length; i++) {
    const c = part[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = part.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        const body = part.slice(i + 1, end).replace(/\\/g, "\\\\").replace(/^!/, "^");
        re += `(?!/)[${body}]`; // one character of a name: a negated set or a range must not match the '/' between names
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\]\\]/g, (x) => `\\${x}`);
  }
  return re;
}

/** A matcher for `pattern` over relative paths ("a/b/c.txt"). */
export function compileGlob(pattern: string): (path: string) => boolean {
  const anchored = pattern.includes("/");
  const parts = pattern.replace(/^\/+/, "").replace(/\/+$/, "").split("/").filter((p) => p !== "");
  if (!anchored) {
    const re = new RegExp(`^${componentRegex(parts[0] ?? "")}$`, "s");
    return (path) => re.test(path.slice(path.lastIndexOf("/") + 1));
  }
  const body = parts.map((p) => (p === "**" ? "(?:/[^/]+)*" : `/${componentRegex(p)}`)).join("");
  const re = new RegExp(`^${body}$`, "s");
  return (path) => re.test(`/${path}`);
}

/** Why a pattern cannot be searched for, or undefined. */
export function globProblem(pattern: string): string | undefined {
  if (pattern.trim() === "") return "is empty; give a name (cat.jpg), a glob (*.jpg) or a path (photos/2019/*)";
  if (pattern.split("/").some((p) => p === "..")) return "has a '..' component: paths are relative to the dataset's root";
  try {
    compileGlob(pattern);
  } catch {
    return "is not a valid glob (an unbalanced '[' or ']'?)";
  }
  return undefined;
}
