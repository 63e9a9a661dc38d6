/**
 * Resolves an image `USER` (name, uid, `user:group`) against the image's /etc/passwd and
 * /etc/group text, as the guest's vmstart needs numeric ids. Pure: no I/O.
 * @module
 */
import { ParseError } from "../../src/lib/errors.ts";

/** A resolved user. `known` is false for a numeric uid with no passwd entry. */
export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly known: boolean;
}

function table(text: string): string[][] {
  return text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#")).map((l) =>
    l.split(":")
  );
}

/** Resolves `user` (empty = root). Throws ParseError when a name is not in the image. */
export function resolveUser(user: string, passwd: string, group: string): ResolvedUser {
  if (user === "" || user === "root" || user === "0") {
    return { uid: 0, gid: 0, home: "/root", known: true };
  }
  const [u, g] = user.split(":", 2) as [string, string | undefined];
  const users = table(passwd);
  const byName = users.find((f) => f[0] === u);
  const byId = /^\d+$/.test(u) ? users.find((f) => f[2] === u) : undefined;
  const entry = byName ?? byId;
  if (entry === undefined && !/^\d+$/.test(u)) {
    throw new ParseError(`Image USER "${user}": user "${u}" is not in the image's /etc/passwd`);
  }
  const uid = entry ? Number(entry[2]) : Number(u);
  let gid = entry ? Number(entry[3]) : uid;
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const ge = table(group).find((f) => f[0] === g);
      if (ge === undefined) {
        throw new ParseError(`Image USER "${user}": group "${g}" is not in the image's /etc/group`);
      }
      gid = Number(ge[2]);
    }
  }
  return { uid, gid, home: entry?.[5] || "/", known: entry !== undefined };
}
