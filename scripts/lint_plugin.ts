/**
 * House rules enforced by `deno lint`: the one-way import direction between layers
 * (api -> lib -> <component>/core -> <component>/io -> main.ts), components never importing each
 * other, `@kubernetes/client-node` only behind `src/lib/k8s/`, and no I/O, clocks or randomness in
 * any `core/` folder. Test files are exempt from the purity rule only.
 * @module
 */

const COMPONENTS = ["controller", "runner", "scheduler", "agent", "monitor", "daemon", "vxlan"];

interface Where {
  /** Path relative to the repo root, with forward slashes. */
  rel: string;
  /** Component name when under src/<component>/. */
  component?: string;
  /** True when under src/<component>/core/. */
  core: boolean;
  isTest: boolean;
}

function locate(filename: string): Where | undefined {
  const norm = filename.replaceAll("\\", "/");
  const idx = norm.lastIndexOf("/src/");
  const top = ["/scripts/", "/vm-builder/", "/tests/", "/bench/"].map((p) => norm.lastIndexOf(p));
  let rel: string;
  if (idx >= 0) rel = norm.slice(idx + 1);
  else {
    const best = Math.max(...top);
    if (best < 0) return undefined;
    rel = norm.slice(best + 1);
  }
  const parts = rel.split("/");
  const component = parts[0] === "src" && COMPONENTS.includes(parts[1] ?? "")
    ? parts[1]
    : undefined;
  const base: Where = {
    rel,
    core: component !== undefined && parts[2] === "core",
    isTest: /_test\.ts$|_bench\.ts$/.test(rel),
  };
  return component === undefined ? base : { ...base, component };
}

function resolveRel(fromRel: string, spec: string): string {
  const parts = fromRel.split("/");
  parts.pop();
  for (const seg of spec.split("/")) {
    if (seg === "." || seg === "") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return parts.join("/");
}

function importProblem(from: Where, spec: string): string | undefined {
  if (spec === "@kubernetes/client-node" || spec.startsWith("npm:@kubernetes/client-node")) {
    return from.rel.startsWith("src/lib/k8s/") || !from.rel.startsWith("src/")
      ? undefined
      : "only src/lib/k8s/ may import @kubernetes/client-node";
  }
  if (!spec.startsWith(".")) {
    if (from.core && !from.isTest && spec !== "zod") {
      return `core/ may not import "${spec}": cores are pure (api, lib/errors.ts, lib/clock.ts only)`;
    }
    return undefined;
  }
  const target = resolveRel(from.rel, spec);
  if (
    from.rel.startsWith("src/") && (target.startsWith("scripts/") || target.startsWith("tests/"))
  ) {
    return "src/ never imports scripts/ or tests/";
  }
  if (from.rel.startsWith("src/api/") && !from.isTest) {
    if (!(target.startsWith("src/api/") || target === "src/lib/errors.ts")) {
      return "src/api/ holds contracts only: it may import src/api/ and src/lib/errors.ts";
    }
  }
  if (from.rel.startsWith("src/lib/") && !from.isTest) {
    if (!(target.startsWith("src/lib/") || target.startsWith("src/api/"))) {
      return "src/lib/ may import only src/lib/ and src/api/";
    }
  }
  const tparts = target.split("/");
  const tcomp = tparts[0] === "src" && COMPONENTS.includes(tparts[1] ?? "") ? tparts[1] : undefined;
  if (from.component !== undefined && tcomp !== undefined && tcomp !== from.component) {
    return `components never import each other (${from.component} -> ${tcomp}); share via src/api or src/lib`;
  }
  if (from.core && !from.isTest) {
    const ok = target.startsWith("src/api/") || target === "src/lib/errors.ts" ||
      target === "src/lib/clock.ts" || target.startsWith(`src/${from.component}/core/`);
    if (!ok) {
      return `core/ may import only src/api/, src/lib/errors.ts, src/lib/clock.ts and its own core/ (got ${target})`;
    }
  }
  if (from.component !== undefined && tcomp === from.component && !from.isTest) {
    // Within a component, core never reaches into io or main.
    if (from.core && (tparts[2] === "io" || tparts[2] === "main.ts")) {
      return "core/ may not import io/ or main.ts";
    }
  }
  return undefined;
}

const FORBIDDEN_GLOBALS = new Set(["Deno", "fetch", "setTimeout", "setInterval", "performance"]);

const plugin: Deno.lint.Plugin = {
  name: "neonvm",
  rules: {
    "layer-imports": {
      create(context) {
        const from = locate(context.filename);
        if (!from) return {};
        const check = (node: Deno.lint.Node, spec: string) => {
          const problem = importProblem(from, spec);
          if (problem) context.report({ node, message: problem });
        };
        return {
          ImportDeclaration(node) {
            check(node, node.source.value);
          },
          ExportNamedDeclaration(node) {
            if (node.source) check(node, node.source.value);
          },
          ExportAllDeclaration(node) {
            check(node, node.source.value);
          },
        };
      },
    },
    "pure-core": {
      create(context) {
        const from = locate(context.filename);
        if (!from?.core || from.isTest) return {};
        return {
          Identifier(node) {
            if (!FORBIDDEN_GLOBALS.has(node.name)) return;
            const parent = node.parent;
            // Property keys such as `{ fetch: ... }` or `x.fetch` are not the global.
            if (parent?.type === "MemberExpression" && parent.property === node) return;
            if (parent?.type === "Property" && parent.key === node) return;
            context.report({
              node,
              message: `core/ is pure: no ${node.name} (pass it in from io/)`,
            });
          },
          MemberExpression(node) {
            const obj = node.object;
            const prop = node.property;
            if (obj.type !== "Identifier" || prop.type !== "Identifier") return;
            if (obj.name === "Math" && prop.name === "random") {
              context.report({
                node,
                message: "core/ is pure: randomness comes in as a seeded function",
              });
            }
            if (obj.name === "Date" && prop.name === "now") {
              context.report({ node, message: "core/ is pure: `now` is a parameter" });
            }
            if (obj.name === "crypto") {
              context.report({ node, message: "core/ is pure: no crypto randomness" });
            }
          },
          NewExpression(node) {
            if (
              node.callee.type === "Identifier" && node.callee.name === "Date" &&
              node.arguments.length === 0
            ) {
              context.report({
                node,
                message: "core/ is pure: `new Date()` reads the clock; use `now`",
              });
            }
          },
        };
      },
    },
  },
};

export default plugin;
