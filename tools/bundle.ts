/**
 * Builds the edge-function bundle: `dist/spectr.js`, one ESM file with the public API of `mod.ts` and
 * its npm dependencies (onnxruntime-web, @huggingface/tokenizers) inlined, plus the `.wasm` files it
 * loads at run time copied beside it:
 *
 * - `spectr_kernel.wasm` — the K-SEQ kernel; `loadKernel()` finds it through
 *   `new URL("./spectr_kernel.wasm", import.meta.url)`, which after bundling is the bundle's URL;
 * - `ort-wasm-simd-threaded.wasm` and `.mjs` — onnxruntime-web's WebAssembly runtime and its
 *   Emscripten glue (in the copy, bare Node built-ins such as `require("worker_threads")` become
 *   `node:` specifiers, see {@linkcode prefixNodeBuiltins}); the bundle sets `ort.env.wasm.wasmPaths` to its own folder at load time (unless
 *   already set), so they are located explicitly rather than through onnxruntime's own guess.
 *
 * It runs `deno bundle` (Deno ≥ 2.4; esbuild inside, with Deno's own resolver) so the import map of
 * deno.json, the npm cache and the `deno`/`node` export conditions are exactly those the source runs
 * with: the bundle uses the same onnxruntime-web build (`dist/ort.node.min.mjs`) as `deno run mod.ts`.
 * Left out (external): `onnxruntime-node` (a native addon, imported lazily only for backend
 * "cpu"/"auto"; on an edge runtime that import fails and "auto" falls back to wasm) and
 * `onnxruntime-web/webgpu` (edge runtimes have no WebGPU; backend "webgpu" then reports
 * BackendUnavailableError).
 *
 * Usage: `deno run -A tools/bundle.ts [--outdir DIR] [--no-minify]` (default DIR: dist/).
 * Needs: --allow-run (spawns `deno bundle`, `deno info`), --allow-read, --allow-write (DIR),
 * --allow-env.
 *
 * @module
 */

import { type Backend, backends } from "../src/backend/mod.ts";

/** What {@linkcode buildBundle} wrote. */
export interface BundleResult {
  /** The output folder (absolute path). */
  outdir: string;
  /** The bundle (absolute path). */
  bundle: string;
  /** File name → size in bytes, for every file written. */
  sizes: Record<string, number>;
}

/** Options of {@linkcode buildBundle}. */
export interface BundleOptions {
  /** Output folder (created). @default {"<repo>/dist"} */
  outdir?: string;
  /** Minify (names kept: error classes and `constructor.name` stay readable). @default {true} */
  minify?: boolean;
  /** Print the sizes. @default {true} */
  log?: boolean;
}

const ROOT = new URL("../", import.meta.url);
/** onnxruntime-web files the wasm backend loads at run time (the plain SIMD build; no JSEP/JSPI). */
const ORT_FILES = ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"];
const KERNEL = "spectr_kernel.wasm";
/**
 * Left out: the runtime modules of the backends that do not run on an edge runtime (`edge: false` in
 * the registry, src/backend/mod.ts: onnxruntime-node, onnxruntime-web's WebGPU build); an edge
 * runtime's import of them fails, and "auto" then uses wasm.
 */
export const EXTERNAL: readonly string[] = Object.values<Backend>(backends)
  .filter((b) => !b.edge && b.runtimeModule !== undefined)
  .map((b) => `npm:${b.runtimeModule}`);

function path(url: URL): string {
  return decodeURIComponent(url.pathname);
}

async function exec(args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `Cannot build the bundle: \`deno ${args.join(" ")}\` exited with ${out.code}\n${
        dec.decode(out.stderr)
      }${dec.decode(out.stdout)}`,
    );
  }
  return dec.decode(out.stdout);
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The `dist/` folder of the onnxruntime-web version pinned in deno.json (local node_modules, else Deno's npm cache). */
export async function ortDistDir(): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(path(new URL("deno.json", ROOT))));
  const spec: string | undefined = config.imports?.["onnxruntime-web"];
  const m = spec?.match(/^npm:onnxruntime-web@(\d+\.\d+\.\d+[^/]*)$/);
  if (!m) {
    throw new Error(
      `Cannot locate onnxruntime-web: deno.json must pin npm:onnxruntime-web@x.y.z, got ${spec}`,
    );
  }
  const version = m[1];
  const candidates = [path(new URL("node_modules/onnxruntime-web/dist", ROOT))];
  const info = JSON.parse(await exec(["info", "--json"], path(ROOT)));
  const cache: string = info.npmCache;
  for await (const e of Deno.readDir(cache)) {
    if (e.isDirectory) candidates.push(`${cache}/${e.name}/onnxruntime-web/${version}/dist`);
  }
  for (const dir of candidates) {
    if (await exists(`${dir}/${ORT_FILES[0]}`)) {
      const pkg = JSON.parse(await Deno.readTextFile(`${dir}/../package.json`));
      if (pkg.version === version) return dir;
    }
  }
  throw new Error(
    `Cannot locate onnxruntime-web ${version}: none of ${candidates.join(", ")} has ${ORT_FILES[0]}`,
  );
}

/** Node built-ins onnxruntime's Emscripten glue loads by bare name (`import("module")`, `require("fs")`). */
const NODE_BUILTINS = [
  "module",
  "worker_threads",
  "fs",
  "os",
  "path",
  "url",
  "util",
  "crypto",
  "child_process",
];

/**
 * Rewrites bare Node built-in specifiers in `import("x")` / `require("x")` to `node:x`. Inside an npm
 * package Deno resolves bare built-ins; once copied out of it (beside the bundle) it does not
 * (`Import "worker_threads" not a dependency` under `--no-npm`, as on a runtime without npm
 * resolution), so the copy uses the `node:` form, which every Deno runtime resolves.
 */
export function prefixNodeBuiltins(code: string): string {
  const names = NODE_BUILTINS.join("|");
  return code.replace(new RegExp(`\\b(import|require)\\((["'])(${names})\\2\\)`, "g"), "$1($2node:$3$2)");
}

/**
 * Builds the bundle and copies the `.wasm`/`.mjs` files beside it.
 *
 * @throws {Error} `deno bundle` failed, a runtime file is missing, or the output fails a sanity check.
 */
export async function buildBundle(options: BundleOptions = {}): Promise<BundleResult> {
  const outdir = options.outdir ?? path(new URL("dist", ROOT));
  const minify = options.minify ?? true;
  await Deno.mkdir(outdir, { recursive: true });
  const bundle = `${outdir}/spectr.js`;

  // The entry: mod.ts plus one statement pointing onnxruntime-web at the files beside the bundle.
  const entry = `${outdir}/_entry.ts`;
  const modUrl = new URL("mod.ts", ROOT).href;
  await Deno.writeTextFile(
    entry,
    `import { env as __ortEnv } from "onnxruntime-web";
// spectr edge bundle: onnxruntime-web's wasm runtime lies beside this file (copied by tools/bundle.ts).
if (!__ortEnv.wasm.wasmPaths) __ortEnv.wasm.wasmPaths = new URL("./", import.meta.url).href;
export * from ${JSON.stringify(modUrl)};
`,
  );
  try {
    await exec([
      "bundle",
      "--quiet",
      "--config",
      path(new URL("deno.json", ROOT)),
      "--platform",
      "deno",
      "--format",
      "esm",
      ...EXTERNAL.flatMap((e) => ["--external", e]),
      ...(minify ? ["--minify", "--keep-names"] : []),
      "--output",
      bundle,
      entry,
    ], path(ROOT));
  } finally {
    await Deno.remove(entry).catch(() => {});
  }

  // Sanity checks on the output: fail loudly rather than ship a bundle that breaks at run time.
  const text = await Deno.readTextFile(bundle);
  const problems: string[] = [];
  if (!text.includes(KERNEL)) problems.push(`no reference to ${KERNEL}`);
  if (!text.includes("wasmPaths")) problems.push("onnxruntime-web is not inlined (no wasmPaths)");
  const inlined = EXTERNAL.reduce((t, e) => t.replaceAll(JSON.stringify(e), '""'), text);
  if (/["']npm:/.test(inlined)) problems.push("an npm: specifier other than the external ones is left");
  if (/onnxruntime_binding|\.node["']\)/.test(text)) problems.push("onnxruntime-node code is inlined");
  const cacheDir = (Deno.env.get("HOME") ?? "/nonexistent") + "/.cache/deno";
  // (esbuild names inlined modules by their relative cache path; only a loadable file URL is wrong.)
  if (text.includes(`file://${cacheDir}`)) problems.push(`a file URL into ${cacheDir} is left`);
  if (prefixNodeBuiltins(text) !== text) problems.push("a bare Node built-in specifier is left");
  if (problems.length) throw new Error(`Cannot build the bundle: ${bundle} is wrong: ${problems.join("; ")}`);

  await Deno.copyFile(path(new URL(`src/kernel/${KERNEL}`, ROOT)), `${outdir}/${KERNEL}`);
  const ortDir = await ortDistDir();
  for (const f of ORT_FILES) {
    if (f.endsWith(".mjs")) {
      await Deno.writeTextFile(
        `${outdir}/${f}`,
        prefixNodeBuiltins(await Deno.readTextFile(`${ortDir}/${f}`)),
      );
    } else {
      await Deno.copyFile(`${ortDir}/${f}`, `${outdir}/${f}`);
    }
  }

  const sizes: Record<string, number> = {};
  for (const f of ["spectr.js", KERNEL, ...ORT_FILES]) sizes[f] = (await Deno.stat(`${outdir}/${f}`)).size;
  if (options.log ?? true) {
    const total = Object.values(sizes).reduce((a, b) => a + b, 0);
    console.log(`spectr edge bundle in ${outdir}${minify ? " (minified)" : ""}:`);
    for (const [f, n] of Object.entries(sizes)) {
      console.log(`  ${f.padEnd(30)} ${(n / 1024).toFixed(1).padStart(9)} KiB`);
    }
    console.log(`  ${"total".padEnd(30)} ${(total / 1024).toFixed(1).padStart(9)} KiB`);
  }
  return { outdir, bundle, sizes };
}

if (import.meta.main) {
  const args = [...Deno.args];
  let outdir: string | undefined;
  let minify = true;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--outdir" && args[i + 1] !== undefined) outdir = args[++i];
    else if (args[i].startsWith("--outdir=")) outdir = args[i].slice("--outdir=".length);
    else if (args[i] === "--no-minify") minify = false;
    else {
      console.error(`usage: deno run -A tools/bundle.ts [--outdir DIR] [--no-minify]; got ${args[i]}`);
      Deno.exit(2);
    }
  }
  try {
    await buildBundle({
      outdir: outdir === undefined || outdir.startsWith("/") ? outdir : `${Deno.cwd()}/${outdir}`,
      minify,
    });
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    Deno.exit(1);
  }
}
