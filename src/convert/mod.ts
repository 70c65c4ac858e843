/**
 * GGUF → ONNX conversion for the Llama family: reads a GGUF, writes `onnx/model.onnx` (fp32),
 * `onnx/model_q4.onnx` (4-bit MatMulNBits) and / or `onnx/model_quantized.onnx` (q8: 8-bit
 * MatMulNBits) into a model folder. The folder is built beside
 * the target under a temporary name and renamed at the end, so a failed or interrupted
 * conversion never leaves a folder under the target name.
 *
 * config.json and the tokenizer files are not written here: pass
 * {@linkcode ConvertOptions.writeExtras} to add them to the folder before it is renamed.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { type GgufFile, parseGguf } from "./gguf.ts";
import {
  type AttentionMaskForm,
  buildLlamaGraph,
  type LlamaGraphOptions,
  type Precision,
} from "./llama_onnx.ts";
import { type LlamaSpec, llamaSpec } from "./llama_spec.ts";
import type { Q4_1Mode } from "./nbits.ts";
import { writeModel } from "../onnx/mod.ts";

export {
  type GgufFile,
  type GgufTensorInfo,
  type GgufValue,
  InvalidGgufError,
  UnsupportedGgufError,
} from "./gguf.ts";
export { parseGguf, readGgufFile } from "./gguf.ts";
export {
  buildEagleFolder,
  buildEagleGraphs,
  type EagleBuildResult,
  type EagleConfig,
  type EagleEmbedding,
  type EagleFolderOptions,
  type EagleGraphs,
  parseEagleConfig,
} from "./eagle_onnx.ts";
export {
  parseSafetensors,
  type Safetensors,
  type SafetensorsDtype,
  type SafetensorsInput,
  type SafetensorsTensor,
  writeSafetensors,
} from "./safetensors.ts";
export type { AttentionMaskForm, LlamaGraphOptions, LlamaSpec, Precision, Q4_1Mode };

/** Progress of one conversion: which file, and initializer bytes written so far / in all. */
export interface ConvertProgress {
  /** The graph being written. */
  dtype: Precision;
  /** Relative path, e.g. "onnx/model.onnx". */
  file: string;
  /** Initializer bytes written so far. */
  done: number;
  /** Initializer bytes of this file in all. */
  total: number;
}

/** Options of {@linkcode convertGgufToOnnx}. */
export interface ConvertOptions {
  /** Which graphs to write. @default {["fp32", "q4"]} */
  dtypes?: Precision[];
  /** Called as weights are written. */
  onProgress?: (progress: ConvertProgress) => void;
  /** Replace an existing folder at the target (else the target must not exist). @default {false} */
  overwrite?: boolean;
  /**
   * q4 / q8 LM head: "fp32" (Gemm on the shared embedding) or "nbits" (MatMulNBits over its
   * blocks; in q8 a tied Q8_0 / Q4_0 embedding is then gathered from the same 8-bit codes).
   * @default {"fp32" for q4, "nbits" for q8}
   */
  lmHead?: "fp32" | "nbits";
  /**
   * q8 projections: "nbits" (8-bit MatMulNBits, exact) or "integer" (DynamicQuantizeLinear +
   * per-block MatMulInteger: activations quantized, measured slower). @default {"nbits"}
   */
  q8Form?: "nbits" | "integer";
  /**
   * MatMulNBits' `accuracy_level`: 0 computes in float32; 4 lets onnxruntime's CPU EP quantize
   * the activations per 32-block to int8 (its fast 8-bit path; the wasm build stays float32).
   * @default {4 for q8, 0 for q4}
   */
  accuracyLevel?: 0 | 4;
  /** q4: how Q4_1 block minimums are carried (see {@linkcode Q4_1Mode}). @default {"split"} */
  q4_1?: Q4_1Mode;
  /**
   * The graphs' `attention_mask` input: "2d" (`[batch, total_sequence_length]`, the Optimum
   * interface), "4d" (`[batch, 1, sequence_length, total_sequence_length]` int64, 1 = query s may
   * attend to key t, ANDed with the causal rule: tree attention, `OnnxCausalLM.appendTree`) or
   * "any" (declared without a shape, taking either form). See
   * {@linkcode LlamaGraphOptions.attentionMask}.
   * @default {"2d"}
   */
  attentionMask?: AttentionMaskForm;
  /**
   * Decoder layers whose outputs the graphs also return as `hidden_states.{i}` (the target features
   * of a feature drafter; see {@linkcode LlamaGraphOptions.hiddenStates}).
   * @default {[]}
   */
  hiddenStates?: readonly number[];
  /**
   * Writes further files (config.json, tokenizer files, ...) into the temporary folder before it
   * is renamed to the target; a throw fails the whole conversion.
   */
  writeExtras?: (
    context: { folder: string; file: GgufFile; bytes: Uint8Array; spec: LlamaSpec },
  ) => Promise<void>;
}

/** What a conversion wrote. */
export interface ConvertResult {
  /** The model folder (the target). */
  folder: string;
  /** The model's hyperparameters. */
  spec: LlamaSpec;
  /** One entry per ONNX file: its precision, relative path, size in bytes and seconds taken. */
  files: { dtype: Precision; path: string; bytes: number; seconds: number }[];
}

/** The ONNX file name of a precision, as the model loader names it. */
export function onnxFileName(dtype: Precision): string {
  return dtype === "fp32"
    ? "onnx/model.onnx"
    : dtype === "q8"
    ? "onnx/model_quantized.onnx"
    : `onnx/model_${dtype}.onnx`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Converts a Llama GGUF (a path or its bytes) into the model folder `outFolder`.
 *
 * @throws {InvalidGgufError} a malformed or truncated GGUF.
 * @throws {UnsupportedGgufError} not a dense Llama, or a tensor type that cannot be converted.
 * @throws {Deno.errors.AlreadyExists} `outFolder` exists and `overwrite` is not set.
 * @throws {RangeError} an unknown dtype.
 */
export async function convertGgufToOnnx(
  source: string | Uint8Array,
  outFolder: string,
  options: ConvertOptions = {},
): Promise<ConvertResult> {
  const dtypes = options.dtypes ?? ["fp32", "q4"];
  for (const d of dtypes) {
    if (d !== "fp32" && d !== "q4" && d !== "q8") {
      throw new RangeError(`Cannot convert: dtype must be "fp32", "q4" or "q8", got ${JSON.stringify(d)}`);
    }
  }
  if (dtypes.length === 0) throw new RangeError("Cannot convert: dtypes is empty");
  const bytes = typeof source === "string" ? await Deno.readFile(source) : source;
  const file = parseGguf(bytes);
  const spec = llamaSpec(file);
  // Build every graph first (cheap: weights are lazy) so bad input fails before touching the disk.
  const graphs = dtypes.map((dtype) =>
    [
      dtype,
      buildLlamaGraph(file, bytes, {
        precision: dtype,
        lmHead: options.lmHead,
        q4_1: options.q4_1,
        q8Form: options.q8Form,
        accuracyLevel: options.accuracyLevel,
        attentionMask: options.attentionMask,
        hiddenStates: options.hiddenStates,
      }),
    ] as const
  );
  if (!options.overwrite && await exists(outFolder)) {
    throw new Deno.errors.AlreadyExists(
      `Cannot convert: ${outFolder} already exists (pass overwrite to replace it)`,
    );
  }
  const parent = dirname(outFolder);
  await Deno.mkdir(parent, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: parent, prefix: `.${outFolder.split("/").pop()}.converting-` });
  const files: ConvertResult["files"] = [];
  try {
    await Deno.chmod(tmp, 0o755); // makeTempDir creates 0700
    await Deno.mkdir(join(tmp, "onnx"));
    for (const [dtype, { graph, opsets }] of graphs) {
      const started = performance.now();
      const rel = onnxFileName(dtype);
      const size = await writeModel(join(tmp, rel), graph, {
        opsets,
        onProgress: (done, total) => options.onProgress?.({ dtype, file: rel, done, total }),
      });
      files.push({ dtype, path: rel, bytes: size, seconds: (performance.now() - started) / 1000 });
    }
    await options.writeExtras?.({ folder: tmp, file, bytes, spec });
    if (await exists(outFolder)) {
      const old = `${tmp}.old`;
      await Deno.rename(outFolder, old);
      await Deno.rename(tmp, outFolder);
      await Deno.remove(old, { recursive: true });
    } else {
      await Deno.rename(tmp, outFolder);
    }
  } catch (error) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw error;
  }
  return { folder: outFolder, spec, files };
}
