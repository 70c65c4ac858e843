/**
 * Builds a Hugging Face `config.json` (`model_type: "llama"`) and `generation_config.json` from the metadata
 * and tensor directory of a Llama-architecture GGUF file.
 *
 * @module
 */

import { findTensor, type GgufFile, InvalidGgufError, metadataNumber, UnsupportedGgufError } from "./gguf.ts";
import { readGgufVocab } from "./tokenizer_json.ts";

/**
 * Token texts llama.cpp treats as end of generation wherever they are in the vocabulary (its EOG list in
 * `llama-vocab.cpp`), besides the EOS / EOT / EOM ids the metadata names.
 */
export const END_OF_GENERATION_TOKENS: readonly string[] = [
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<|return|>",
  "<|call|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "<|eom_id|>",
  "<EOT>",
  "_<EOT>",
  "<|end_of_text|>",
  "<end_of_utterance>",
];

/**
 * The shortest decimal that reads back as the same float32, when `x` is a float32 (GGUF stores `1e-5` as
 * 0.000009999999747378752); other numbers unchanged.
 *
 * @param x A number.
 * @returns The number a human would have written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shortestFloat32 } from "./hf_config.ts";
 * assert.equal(shortestFloat32(Math.fround(1e-5)), 1e-5);
 * assert.equal(shortestFloat32(100000), 100000);
 * ```
 */
export function shortestFloat32(x: number): number {
  if (!Number.isFinite(x) || Math.fround(x) !== x) return x;
  for (let digits = 1; digits <= 17; digits++) {
    const y = Number(x.toPrecision(digits));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

function positive(file: GgufFile, key: string, fallback?: number): number {
  const value = file.metadata.get(key);
  if (Array.isArray(value)) {
    // Per-layer arrays (e.g. head counts): fine when every layer agrees.
    const distinct = new Set(value.map(String));
    if (distinct.size !== 1) {
      throw new UnsupportedGgufError(
        `GGUF metadata "${key}" differs between layers (${[...distinct].join(", ")}): not a Llama config`,
      );
    }
    return positive({ ...file, metadata: new Map([[key, value[0]]]) }, key);
  }
  const n = metadataNumber(file, key, fallback);
  if (!(n > 0) || !Number.isFinite(n)) {
    throw new InvalidGgufError(`GGUF metadata "${key}" must be a positive number, got ${n}`);
  }
  return n;
}

function integer(file: GgufFile, key: string, fallback?: number): number {
  const n = positive(file, key, fallback);
  if (!Number.isInteger(n)) throw new InvalidGgufError(`GGUF metadata "${key}" must be an integer, got ${n}`);
  return n;
}

/** Reads `general.architecture` and checks it is `"llama"`. */
function architecture(file: GgufFile): string {
  const arch = file.metadata.get("general.architecture");
  if (arch === undefined) throw new InvalidGgufError(`GGUF metadata "general.architecture" is missing`);
  if (arch !== "llama") {
    throw new UnsupportedGgufError(
      `GGUF metadata "general.architecture" = ${JSON.stringify(arch)} is not supported: only "llama" is`,
    );
  }
  return arch;
}

function ropeScaling(file: GgufFile, a: string): Record<string, unknown> | null {
  if (findTensor(file, "rope_freqs.weight")) {
    throw new UnsupportedGgufError(
      `GGUF tensor "rope_freqs.weight" (Llama 3 style RoPE scaling) cannot be expressed in config.json`,
    );
  }
  const type = file.metadata.get(`${a}.rope.scaling.type`);
  const legacy = file.metadata.get(`${a}.rope.scale_linear`);
  if ((type === undefined || type === "none") && legacy === undefined) return null;
  if (type !== undefined && type !== "linear") {
    throw new UnsupportedGgufError(
      `GGUF metadata "${a}.rope.scaling.type" = ${JSON.stringify(type)} is not supported`,
    );
  }
  const factor = legacy === undefined
    ? positive(file, `${a}.rope.scaling.factor`)
    : positive(file, `${a}.rope.scale_linear`);
  return factor === 1 ? null : { rope_type: "linear", factor: shortestFloat32(factor) };
}

/**
 * The end-of-generation ids for `generation_config.json`: `tokenizer.ggml.eos_token_id` first, then
 * `eot_token_id` / `eom_token_id` when given, then every token whose text is in
 * {@linkcode END_OF_GENERATION_TOKENS}, as llama.cpp stops at (for SmolLM2: `<|im_end|>` = 2, the EOS, and
 * `<|endoftext|>` = 0). llama.cpp's fill-in-the-middle tokens (which it also stops at) are left out.
 *
 * @param file The parsed GGUF.
 * @returns The ids, EOS first, no repeats.
 * @throws {InvalidGgufError | UnsupportedGgufError} as {@linkcode readGgufVocab}.
 */
export function endOfGenerationIds(file: GgufFile): number[] {
  const vocab = readGgufVocab(file);
  const ids = [vocab.eosId];
  for (const key of ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]) {
    if (!file.metadata.has(key)) continue;
    const id = metadataNumber(file, key);
    if (Number.isInteger(id) && id >= 0 && id < vocab.tokens.length) ids.push(id);
  }
  vocab.tokens.forEach((token, id) => {
    if (END_OF_GENERATION_TOKENS.includes(token)) ids.push(id);
  });
  return [...new Set(ids)];
}

/**
 * Builds `config.json` for a Llama-architecture GGUF: sizes from `llama.*` metadata (`embedding_length`,
 * `feed_forward_length`, `block_count`, `attention.head_count`, `attention.head_count_kv`,
 * `attention.key_length` or hidden / heads, `attention.layer_norm_rms_epsilon`, `rope.freq_base`,
 * `context_length`, `vocab_size` or the token count), `tie_word_embeddings` when there is no `output.weight`
 * tensor, biases when `blk.0.attn_q.bias` / `blk.0.ffn_up.bias` exist, the BOS / EOS / PAD ids, and
 * `torch_dtype: "float32"`. float32 metadata is written as its shortest decimal (`1e-5`, not
 * 0.000009999999747378752).
 *
 * @param file The parsed GGUF.
 * @returns The config.json object; {@linkcode parseModelConfig} of src/model/config.ts accepts it.
 * @throws {InvalidGgufError} a missing key (named in the message), a non-positive size, heads that do not
 * divide the width, or a vocabulary size that disagrees with `token_embd.weight`.
 * @throws {UnsupportedGgufError} an architecture other than `"llama"`, mixture of experts, partial rotary
 * embeddings, per-layer sizes that differ, or RoPE scaling other than none / linear.
 */
export function buildConfigJson(file: GgufFile): Record<string, unknown> {
  const a = architecture(file);
  const vocab = readGgufVocab(file);
  const hidden = integer(file, `${a}.embedding_length`);
  const heads = integer(file, `${a}.attention.head_count`);
  const kvHeads = integer(file, `${a}.attention.head_count_kv`, heads);
  if (heads % kvHeads !== 0) {
    throw new InvalidGgufError(
      `GGUF metadata "${a}.attention.head_count" (${heads}) must be a multiple of "${a}.attention.head_count_kv" (${kvHeads})`,
    );
  }
  if (!file.metadata.has(`${a}.attention.key_length`) && hidden % heads !== 0) {
    throw new InvalidGgufError(
      `GGUF metadata "${a}.embedding_length" (${hidden}) is not divisible by "${a}.attention.head_count" (${heads}) and "${a}.attention.key_length" is missing`,
    );
  }
  const headDim = integer(file, `${a}.attention.key_length`, hidden / heads);
  const valueDim = integer(file, `${a}.attention.value_length`, headDim);
  if (valueDim !== headDim) {
    throw new UnsupportedGgufError(
      `GGUF key_length ${headDim} and value_length ${valueDim} differ: not a Llama config`,
    );
  }
  const ropeDim = integer(file, `${a}.rope.dimension_count`, headDim);
  if (ropeDim !== headDim) {
    throw new UnsupportedGgufError(
      `GGUF metadata "${a}.rope.dimension_count" = ${ropeDim} is not the head size ${headDim} (partial rotary embeddings)`,
    );
  }
  if (file.metadata.has(`${a}.expert_count`) && metadataNumber(file, `${a}.expert_count`) > 0) {
    throw new UnsupportedGgufError(
      `GGUF metadata "${a}.expert_count" > 0: mixture of experts is not supported`,
    );
  }
  const vocabSize = integer(file, `${a}.vocab_size`, vocab.tokens.length);
  if (vocabSize < vocab.tokens.length) {
    throw new InvalidGgufError(
      `GGUF metadata "${a}.vocab_size" (${vocabSize}) is smaller than the ${vocab.tokens.length} tokens`,
    );
  }
  const embedding = findTensor(file, "token_embd.weight");
  if (embedding && (embedding.dims[0] !== hidden || embedding.dims[1] !== vocabSize)) {
    throw new InvalidGgufError(
      `GGUF tensor "token_embd.weight" has dims [${embedding.dims}], expected [${hidden}, ${vocabSize}]`,
    );
  }
  const config: Record<string, unknown> = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: hidden,
    intermediate_size: integer(file, `${a}.feed_forward_length`),
    num_hidden_layers: integer(file, `${a}.block_count`),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: "silu",
    rms_norm_eps: shortestFloat32(positive(file, `${a}.attention.layer_norm_rms_epsilon`)),
    rope_theta: shortestFloat32(positive(file, `${a}.rope.freq_base`, 10000)),
    rope_scaling: ropeScaling(file, a),
    max_position_embeddings: integer(file, `${a}.context_length`),
    vocab_size: vocabSize,
    tie_word_embeddings: findTensor(file, "output.weight") === undefined,
    attention_bias: findTensor(file, "blk.0.attn_q.bias") !== undefined,
    mlp_bias: findTensor(file, "blk.0.ffn_up.bias") !== undefined,
    bos_token_id: vocab.bosId,
    eos_token_id: vocab.eosId,
    pad_token_id: vocab.padId,
    torch_dtype: "float32",
    use_cache: true,
  };
  for (const key of Object.keys(config)) if (config[key] === undefined) delete config[key];
  return config;
}

/**
 * Builds `generation_config.json`: `bos_token_id`, `pad_token_id` and `eos_token_id` =
 * {@linkcode endOfGenerationIds} (a list, EOS first: `[2, 0]` — `<|im_end|>`, `<|endoftext|>` — for
 * SmolLM2-Instruct, whose template ends every turn with `<|im_end|>`).
 *
 * @param file The parsed GGUF.
 * @returns The generation_config.json object.
 * @throws {InvalidGgufError | UnsupportedGgufError} as {@linkcode readGgufVocab}.
 */
export function buildGenerationConfig(file: GgufFile): Record<string, unknown> {
  const vocab = readGgufVocab(file);
  const config: Record<string, unknown> = {
    bos_token_id: vocab.bosId,
    eos_token_id: endOfGenerationIds(file),
    pad_token_id: vocab.padId,
  };
  for (const key of Object.keys(config)) if (config[key] === undefined) delete config[key];
  return config;
}
