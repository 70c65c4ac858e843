/**
 * The docs name real things: every repository path and every `deno task` that README.md and
 * docs/*.md mention exists in this checkout and in deno.json.
 *
 * What it proves: no README.md or docs/*.md names a repository path that is missing here (a file or
 * folder renamed or deleted without updating the docs) or a `deno task NAME` that deno.json does not
 * define. It does not prove that the prose about those paths is true, that anchors (`#…`) resolve,
 * or anything about paths outside the rule below. The power checks show that a missing path and an
 * undefined task are reported (so the test can fail), and that each skip rule skips only what it says.
 *
 * The rule, applied by the pure function `checkDocs`:
 * - Links `[text](dest)` (and images): `dest` is resolved relative to the markdown file's folder,
 *   as GitHub renders it, and must exist. Skipped: anchors alone (`#x`), URLs (`scheme:` or `//`);
 *   a `#anchor` or `?query` suffix is dropped before the check.
 * - Code (inline `code` spans and fenced blocks) is split on whitespace; surrounding brackets,
 *   quotes and trailing punctuation are trimmed. A token is a repository path, relative to the
 *   repository root, when it starts with a known top folder (`src/ tests/ bench/ tools/ docs/
 *   models/ examples/ wasm/ .ci/`) or is a top-level file (`mod.ts decode.ts model.ts deno.json
 *   deno.lock README.md LICENSE`); other tokens (`onnx/model.onnx`, `main.ts`, `dist/`) are relative
 *   to something the prose names, or not in the repository, and are not checked.
 * - Skipped everywhere: globs (`*`), placeholders (`<`, `>`, `{`, `$`, `…`, `...`), and build
 *   outputs: anything inside a model folder (`models/NAME/FILE…`, except `models/NAME/README.md`),
 *   since `deno task model:smollm2` builds those files and git ignores most of them, and
 *   `wasm/target/` (cargo's). The model folders themselves (`models/NAME/`) are checked.
 * - Tasks: every `deno task NAME` (also `deno@VERSION task NAME`, as in `npx -y deno@2.9.6 task
 *   test`), anywhere in the text, code included; NAME must be a key of deno.json's `tasks`.
 *
 * @module
 */

import assert from "node:assert/strict";

/** What a markdown text names that does not exist. */
export interface DocsProblems {
  /** Repository paths (relative to the root) that `exists` says are missing. */
  missingPaths: string[];
  /** Task names after `deno task` that are not in `tasks`. */
  undefinedTasks: string[];
}

const TOP_FOLDERS = ["src/", "tests/", "bench/", "tools/", "docs/", "models/", "examples/", "wasm/", ".ci/"];
const TOP_FILES = new Set([
  "mod.ts",
  "decode.ts",
  "model.ts",
  "deno.json",
  "deno.lock",
  "README.md",
  "LICENSE",
]);
const PLACEHOLDER = /[*<>{}$…]|\.\.\./;
const URL_LIKE = /^([a-z][a-z0-9+.-]*:|\/\/)/i;

/** Drops `.` and `..` segments; undefined when the path leaves the repository. */
function normalize(path: string): string | undefined {
  const out: string[] = [];
  const parts = path.split("/");
  for (const [i, part] of parts.entries()) {
    if (part === "..") {
      if (out.length === 0) return undefined;
      out.pop();
    } else if (part !== "." && !(part === "" && i < parts.length - 1)) {
      out.push(part);
    }
  }
  return out.join("/");
}

/** Build outputs: files inside a model folder (its README.md excepted), cargo's wasm/target/. */
function isBuildOutput(path: string): boolean {
  const m = /^models\/[^/]+\/(.+)$/.exec(path);
  if (m && m[1] !== "" && m[1] !== "README.md") return true;
  return path === "wasm/target" || path.startsWith("wasm/target/");
}

/** A code token that names a repository path (relative to the root), or undefined. */
function codePath(token: string): string | undefined {
  const t = token.replace(/^[(["'`]+/, "").replace(/[)\]"'`,;:.]+$/, "");
  if (t === "" || URL_LIKE.test(t) || PLACEHOLDER.test(t)) return undefined;
  if (TOP_FILES.has(t) || TOP_FOLDERS.some((f) => t.startsWith(f))) return normalize(t);
  return undefined;
}

/**
 * Checks one markdown text: the repository paths it names (links resolved from `file`'s folder,
 * code tokens from the root; see the module comment for the rule) and the tasks after `deno task`.
 *
 * @param text The markdown.
 * @param exists Whether a repository path (relative to the root, no leading `./`) exists.
 * @param tasks The task names deno.json defines.
 * @param file The markdown file's path relative to the root (links resolve from its folder).
 * @returns The missing paths and undefined tasks, each sorted and without repeats.
 */
export function checkDocs(
  text: string,
  exists: (path: string) => boolean,
  tasks: Iterable<string>,
  file = "README.md",
): DocsProblems {
  const paths = new Set<string>();
  const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "";
  for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const dest = m[1];
    if (dest.startsWith("#") || URL_LIKE.test(dest) || PLACEHOLDER.test(dest)) continue;
    const path = normalize(dir + dest.replace(/[#?].*$/, ""));
    paths.add(path === undefined ? dest : path);
  }
  // fenced blocks first (whole content), then inline spans in what is left
  const fence = /^ *(`{3,}|~{3,})[^\n]*\n([\s\S]*?)^ *\1[ \t]*$/gm;
  const code: string[] = [];
  const rest = text.replace(fence, (_all, _f, body: string) => {
    code.push(body);
    return "";
  });
  for (const m of rest.matchAll(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g)) code.push(m[2]);
  for (const block of code) {
    for (const token of block.split(/\s+/)) {
      const path = codePath(token);
      if (path !== undefined) paths.add(path);
    }
  }
  const missingPaths = [...paths].filter((p) => !isBuildOutput(p) && !exists(p)).sort();
  const defined = new Set(tasks);
  const named = new Set<string>();
  for (const m of text.matchAll(/\bdeno(?:@[\w.-]+)?\s+task\s+([A-Za-z0-9][\w:.-]*)/g)) {
    named.add(m[1].replace(/[.:-]+$/, ""));
  }
  const undefinedTasks = [...named].filter((t) => !defined.has(t)).sort();
  return { missingPaths, undefinedTasks };
}

const ROOT = new URL("../", import.meta.url);

function existsInRepo(path: string): boolean {
  try {
    Deno.statSync(new URL(path, ROOT));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

Deno.test("README.md and every docs/*.md name only paths that exist and tasks deno.json defines", () => {
  const tasks = Object.keys(JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT))).tasks);
  const files = ["README.md"];
  for (const e of Deno.readDirSync(new URL("docs/", ROOT))) {
    if (e.isFile && e.name.endsWith(".md")) files.push(`docs/${e.name}`);
  }
  assert.ok(files.length > 1, "docs/ has markdown files");
  const problems: Record<string, DocsProblems> = {};
  for (const file of files.sort()) {
    const found = checkDocs(Deno.readTextFileSync(new URL(file, ROOT)), existsInRepo, tasks, file);
    if (found.missingPaths.length > 0 || found.undefinedTasks.length > 0) problems[file] = found;
  }
  assert.deepEqual(problems, {}, "missing paths / undefined tasks, by file");
});

Deno.test("power: a missing path and an undefined task are reported", () => {
  const exists = (p: string) => ["src", "src/decode", "src/decode/proposers.ts", "README.md"].includes(p);
  const text = [
    "The registry is `src/decode/proposers.ts`; the new one goes in `src/does_not_exist.ts`.",
    "Run `deno task no-such-task`, then `npx -y deno@2.9.6 task test`.",
  ].join("\n");
  assert.deepEqual(checkDocs(text, exists, ["test"]), {
    missingPaths: ["src/does_not_exist.ts"],
    undefinedTasks: ["no-such-task"],
  });
});

Deno.test("power: links resolve from the file's folder; fenced code and command lines are read", () => {
  const exists = (p: string) => ["README.md", "docs/speed.md", "tools/bundle.ts"].includes(p);
  const text = [
    "[home](../README.md) [speed](speed.md#kernel) [gone](../docs/gone.md) [up](../../outside.md)",
    "`bash tools/missing.sh --check`",
    "```sh",
    "deno run -A tools/bundle.ts --outdir dist/",
    'import { x } from "tests/missing_test.ts";',
    "deno task bundel",
    "```",
  ].join("\n");
  assert.deepEqual(checkDocs(text, exists, ["bundle"], "docs/deploy.md"), {
    missingPaths: ["../../outside.md", "docs/gone.md", "tests/missing_test.ts", "tools/missing.sh"],
    undefinedTasks: ["bundel"],
  });
});

Deno.test("the skip rules skip URLs, globs, placeholders, build outputs and non-repository names only", () => {
  const none = () => false;
  const skipped = [
    "[site](https://example.com/src/x.ts) [here](#layout) `https://x.dev/src/a.ts` `jsr:@spectr/spectr`",
    "`src/convert/*_test.ts` `models/<folder>/` `src/…/x.ts` `src/${name}.ts` `<file.gguf>`",
    "`models/smollm2-135m-instruct/onnx/model.onnx` `models/smollm2-eagle/build.json` `wasm/target/x.wasm`",
    "`onnx/model.onnx` `main.ts` `dist/spectr.js` `model_fp16.onnx` `deno task` alone",
  ].join("\n");
  assert.deepEqual(checkDocs(skipped, none, []), { missingPaths: [], undefinedTasks: [] });
  // …and what they do not skip: a model folder, its README.md, models/README.md, a top-level file
  const checked =
    "`models/smollm2-eagle/` `models/smollm2-135m-instruct/README.md` `models/README.md` `mod.ts`";
  assert.deepEqual(checkDocs(checked, none, []).missingPaths, [
    "mod.ts",
    "models/README.md",
    "models/smollm2-135m-instruct/README.md",
    "models/smollm2-eagle/",
  ]);
});
