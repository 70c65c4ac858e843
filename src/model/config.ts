/**
 * `config.json` (and the optional `generation_config.json`) of a GPT-2 or Llama-family causal LM,
 * normalised into one record the ONNX model layer uses.
 *
 * @module
 */

import { InvalidModelError } from "./errors.ts";
import type { ModelLoader } from "./loader.ts";

/** Architecture families whose ONNX export this layer understands. */
export type ModelFamily = "gpt2" | "llama";

/** A causal LM's shape, normalised across families. */
export interface ModelConfig {
  /** The family, from `model_type` ("gpt2"; "llama", "mistral", "qwen2", ... → "llama"). */
  family: ModelFamily;
  /** The raw `model_type` string. */
  modelType: string;
  /** Number of token ids V (`vocab_size`). */
  vocabSize: number;
  /** Transformer layers (`n_layer` / `num_hidden_layers`). */
  numLayers: number;
  /** Attention (query) heads (`n_head` / `num_attention_heads`). */
  numHeads: number;
  /** Key/value heads: heads for GPT-2, `num_key_value_heads` (default: heads) for Llama. */
  numKvHeads: number;
  /** Per-head size: n_embd / n_head for GPT-2, `head_dim` (default hidden / heads) for Llama. */
  headDim: number;
  /** Model width (`n_embd` / `hidden_size`). */
  hiddenSize: number;
  /** Context limit in tokens (`n_positions` / `max_position_embeddings`). */
  maxLength: number;
  /** End-of-sequence ids (generation_config.json first, then config.json); may be empty. */
  eosTokenIds: number[];
  /** Beginning-of-sequence id, or null when none is given. */
  bosTokenId: number | null;
}

const LLAMA_LIKE = new Set(["llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "smollm3", "olmo"]);

function positiveInt(config: Record<string, unknown>, keys: string[], fallback?: number): number {
  for (const key of keys) {
    const value = config[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new InvalidModelError(
        `Cannot read the model config: ${key} must be an integer >= 1, got ${JSON.stringify(value)}`,
      );
    }
    return value;
  }
  if (fallback !== undefined) return fallback;
  throw new InvalidModelError(`Cannot read the model config: ${keys.join(" / ")} is missing`);
}

function tokenIds(value: unknown): number[] | undefined {
  if (value === undefined || value === null) return undefined;
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((x) => Number.isInteger(x) && x >= 0)) {
    throw new InvalidModelError(
      `Cannot read the model config: eos_token_id must be an id or a list of ids, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return [...new Set(list as number[])];
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Normalises a parsed `config.json` (plus an optional parsed `generation_config.json`), with the
 * defaults of Hugging Face transformers.
 *
 * @param config The parsed `config.json`.
 * @param generationConfig The parsed `generation_config.json`, if any: its `eos_token_id` /
 *   `bos_token_id` take precedence.
 * @returns The normalised config.
 * @throws {InvalidModelError} not an object, an unsupported `model_type`, a missing or non-integer
 *   size, or hidden size not divisible by the heads where the head size is derived.
 * @example GPT-2 sizes
 * ```ts
 * import { parseModelConfig } from "./config.ts";
 * import assert from "node:assert/strict";
 * const c = parseModelConfig({ model_type: "gpt2", vocab_size: 50, n_layer: 2, n_head: 4, n_embd: 64, n_positions: 128, eos_token_id: 0 });
 * assert.equal(c.headDim, 16);
 * assert.equal(c.numKvHeads, 4);
 * assert.deepEqual(c.eosTokenIds, [0]);
 * ```
 * @example Llama with grouped-query attention
 * ```ts
 * import { parseModelConfig } from "./config.ts";
 * import assert from "node:assert/strict";
 * const c = parseModelConfig({
 *   model_type: "llama", vocab_size: 50, num_hidden_layers: 2, num_attention_heads: 4,
 *   num_key_value_heads: 2, hidden_size: 64, max_position_embeddings: 256,
 * }, { eos_token_id: [1, 2] });
 * assert.equal(c.family, "llama");
 * assert.equal(c.headDim, 16);
 * assert.deepEqual(c.eosTokenIds, [1, 2]);
 * ```
 */
export function parseModelConfig(config: unknown, generationConfig?: unknown): ModelConfig {
  if (!isRecord(config)) {
    throw new InvalidModelError(
      `Cannot read the model config: expected a JSON object, got ${JSON.stringify(config)}`,
    );
  }
  const modelType = config.model_type;
  let family: ModelFamily;
  if (modelType === "gpt2") family = "gpt2";
  else if (typeof modelType === "string" && LLAMA_LIKE.has(modelType)) family = "llama";
  else {
    throw new InvalidModelError(
      `Cannot read the model config: unsupported model_type (supported: gpt2, ${
        [...LLAMA_LIKE].join(", ")
      }), got ${JSON.stringify(modelType)}`,
    );
  }
  const vocabSize = positiveInt(config, ["vocab_size"]);
  let numLayers: number, numHeads: number, numKvHeads: number, hiddenSize: number, headDim: number;
  let maxLength: number;
  if (family === "gpt2") {
    numLayers = positiveInt(config, ["n_layer", "num_hidden_layers"]);
    numHeads = positiveInt(config, ["n_head", "num_attention_heads"]);
    hiddenSize = positiveInt(config, ["n_embd", "hidden_size"]);
    numKvHeads = numHeads;
    if (hiddenSize % numHeads !== 0) {
      throw new InvalidModelError(
        `Cannot read the model config: n_embd must be divisible by n_head (${numHeads}), got ${hiddenSize}`,
      );
    }
    headDim = hiddenSize / numHeads;
    maxLength = positiveInt(config, ["n_positions", "n_ctx", "max_position_embeddings"]);
  } else {
    numLayers = positiveInt(config, ["num_hidden_layers"]);
    numHeads = positiveInt(config, ["num_attention_heads"]);
    hiddenSize = positiveInt(config, ["hidden_size"]);
    numKvHeads = positiveInt(config, ["num_key_value_heads"], numHeads);
    if (config.head_dim === undefined || config.head_dim === null) {
      if (hiddenSize % numHeads !== 0) {
        throw new InvalidModelError(
          `Cannot read the model config: hidden_size must be divisible by num_attention_heads (${numHeads}) when head_dim is absent, got ${hiddenSize}`,
        );
      }
      headDim = hiddenSize / numHeads;
    } else {
      headDim = positiveInt(config, ["head_dim"]);
    }
    maxLength = positiveInt(config, ["max_position_embeddings"]);
  }
  const generation = isRecord(generationConfig) ? generationConfig : {};
  const eosTokenIds = tokenIds(generation.eos_token_id) ?? tokenIds(config.eos_token_id) ?? [];
  const bos = generation.bos_token_id ?? config.bos_token_id;
  const bosTokenId = Number.isInteger(bos) && (bos as number) >= 0 ? bos as number : null;
  return {
    family,
    modelType: modelType as string,
    vocabSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    hiddenSize,
    maxLength,
    eosTokenIds,
    bosTokenId,
  };
}

/**
 * Reads and normalises `config.json` and, when present, `generation_config.json` of a folder.
 *
 * @param folder The model folder.
 * @returns The normalised config.
 * @throws {ModelNotFoundError} no `config.json`.
 * @throws {InvalidModelError} invalid JSON or an unusable config (see {@linkcode parseModelConfig}).
 * @example Reading an in-memory folder
 * ```ts
 * import { openModelFolder } from "./loader.ts";
 * import { readModelConfig } from "./config.ts";
 * import assert from "node:assert/strict";
 * const folder = await openModelFolder({
 *   "config.json": JSON.stringify({ model_type: "gpt2", vocab_size: 9, n_layer: 1, n_head: 2, n_embd: 8, n_positions: 32 }),
 *   "generation_config.json": '{"eos_token_id": 3}',
 * });
 * const config = await readModelConfig(folder);
 * assert.equal(config.maxLength, 32);
 * assert.deepEqual(config.eosTokenIds, [3]);
 * ```
 */
export async function readModelConfig(folder: ModelLoader): Promise<ModelConfig> {
  const config = await folder.readJson("config.json");
  const generation = (await folder.has("generation_config.json"))
    ? await folder.readJson("generation_config.json")
    : undefined;
  return parseModelConfig(config, generation);
}
