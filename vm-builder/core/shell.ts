/**
 * POSIX shell quoting for the scripts the builder writes into the guest. Pure: no I/O.
 * @module
 */

/** Quotes one word for a POSIX shell: `it's` -> `'it'\''s'`; safe words stay bare. */
export function shellQuote(word: string): string {
  if (word !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Quotes each word and joins them with spaces. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(" ");
}

/** Returns `export NAME=<quoted value>` lines for `NAME=value` entries (OCI `Env` format). */
export function envExports(env: readonly string[]): string {
  const lines: string[] = [];
  for (const entry of env) {
    const eq = entry.indexOf("=");
    const name = eq < 0 ? entry : entry.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) continue;
    lines.push(`export ${name}=${shellQuote(eq < 0 ? "" : entry.slice(eq + 1))}`);
  }
  return lines.map((l) => l + "\n").join("");
}
