/**
 * Shell quoting for the scripts the runner writes onto the runtime disk (command.sh, args.sh,
 * env.sh, mounts.sh). Every word is single-quoted, so no input can break out of its word.
 * Pure: no I/O.
 * @module
 */

/** Quotes one word for a POSIX shell: `it's` → `'it'"'"'s'`. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'"'"'`)}'`;
}

/** Quotes every word and joins them with spaces. */
export function shellQuoteCommand(words: readonly string[]): string {
  return words.map(shellQuote).join(" ");
}

/** True when `name` is a valid shell variable name. */
export function isShellName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}
