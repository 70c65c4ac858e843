/**
 * Rebuilds a Hugging Face `tokenizer.json` and `tokenizer_config.json` from the tokenizer a GGUF file
 * carries (`tokenizer.ggml.*`), reproducing what llama.cpp does with it: the byte-level BPE vocabulary and
 * merges, the pre-tokenizer that `tokenizer.ggml.pre` names (as llama.cpp's `llama-vocab.cpp` defines it),
 * control / user-defined tokens as added tokens, and BOS / EOS only where `tokenizer.ggml.add_bos_token` /
 * `add_eos_token` say so.
 *
 * Only `tokenizer.ggml.model = "gpt2"` (byte-level BPE) is handled; sentencepiece (`"llama"`) and others
 * throw {@linkcode UnsupportedGgufError}.
 *
 * @module
 */

import {
  type GgufFile,
  InvalidGgufError,
  metadataArray,
  metadataNumber,
  UnsupportedGgufError,
} from "./gguf.ts";
import { preTokenizerFor, type PreTokenizerSpec } from "./pre_tokenizer.ts";

export { preTokenizerFor, type PreTokenizerSpec, SUPPORTED_PRE_TOKENIZERS } from "./pre_tokenizer.ts";

/** GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`). */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** One `added_tokens` entry of a `tokenizer.json`. */
export interface AddedToken {
  /** Token id. */
  id: number;
  /** The token's text, matched literally in the input. */
  content: string;
  /** Always false: llama.cpp matches the exact text. */
  single_word: boolean;
  /** Always false: llama.cpp does not strip around these tokens for the pre-tokenizers handled here. */
  lstrip: boolean;
  /** Always false. */
  rstrip: boolean;
  /** Always false: the text is matched before any normalizer. */
  normalized: boolean;
  /** True for control / unknown tokens (dropped by `skip_special_tokens`), false for user-defined ones. */
  special: boolean;
}

/** The `tokenizer.json` built by {@linkcode buildTokenizerJson} (a byte-level BPE tokenizer). */
export interface TokenizerJson {
  /** Format version, `"1.0"`. */
  version: string;
  /** Always null. */
  truncation: null;
  /** Always null. */
  padding: null;
  /** Control, unknown and user-defined tokens, in id order. */
  added_tokens: AddedToken[];
  /** Always null: byte-level BPE has no normalizer. */
  normalizer: null;
  /** The pre-tokenizer `tokenizer.ggml.pre` names (see {@linkcode preTokenizerFor}). */
  pre_tokenizer: Record<string, unknown>;
  /** BOS / EOS adding (`TemplateProcessing`) when the GGUF asks for it, else null. */
  post_processor: Record<string, unknown> | null;
  /** Byte-level decoder. */
  decoder: Record<string, unknown>;
  /** The BPE model: vocabulary (token → id) and merges as `[left, right]` pairs in rank order. */
  model: {
    type: "BPE";
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    merges: [string, string][];
  };
}

/** The byte-level BPE tokenizer of a GGUF, read and checked ({@linkcode readGgufVocab}). */
export interface GgufVocab {
  /** Token strings by id (byte-level strings such as `Ġthe`, control tokens as plain text). */
  tokens: string[];
  /** `tokenizer.ggml.token_type` by id (all {@linkcode TokenType.NORMAL} when absent, as in llama.cpp). */
  types: number[];
  /** Merges in rank order. */
  merges: [string, string][];
  /** `tokenizer.ggml.pre`. */
  pre: string;
  /** llama.cpp's handling of {@linkcode GgufVocab.pre}. */
  preSpec: PreTokenizerSpec;
  /** `tokenizer.ggml.bos_token_id`, if present. */
  bosId: number | undefined;
  /** `tokenizer.ggml.eos_token_id` (required). */
  eosId: number;
  /** `tokenizer.ggml.padding_token_id`, if present. */
  padId: number | undefined;
  /** `tokenizer.ggml.unknown_token_id`, if present. */
  unkId: number | undefined;
  /** Whether encoding prepends BOS (`tokenizer.ggml.add_bos_token`, else llama.cpp's default). */
  addBos: boolean;
  /** Whether encoding appends EOS (`tokenizer.ggml.add_eos_token`, default false). */
  addEos: boolean;
}

/**
 * A boolean metadata value, or `fallback` when the key is absent. (gguf.ts has no boolean helper.)
 *
 * @param file The parsed GGUF.
 * @param key The metadata key.
 * @param fallback The value when the key is absent.
 * @returns The value.
 * @throws {InvalidGgufError} when the value is not a boolean.
 */
export function metadataBool(file: GgufFile, key: string, fallback: boolean): boolean {
  const value = file.metadata.get(key);
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new InvalidGgufError(
      `GGUF metadata "${key}" should be a boolean, got ${typeof value} ${String(value)}`,
    );
  }
  return value;
}

function tokenId(file: GgufFile, key: string, count: number, required: boolean): number | undefined {
  if (!required && !file.metadata.has(key)) return undefined;
  const id = metadataNumber(file, key);
  if (!Number.isInteger(id) || id < 0 || id >= count) {
    throw new InvalidGgufError(`GGUF metadata "${key}" must be a token id in [0, ${count}), got ${id}`);
  }
  return id;
}

/**
 * Reads and checks the `tokenizer.ggml.*` metadata of a byte-level BPE GGUF.
 *
 * @param file The parsed GGUF.
 * @returns The vocabulary, merges, special ids and flags.
 * @throws {InvalidGgufError} a missing `tokenizer.ggml.model`, `tokens`, `merges` or `eos_token_id` (the
 * message names the key), values of the wrong type, a `token_type` array of another length, a malformed
 * merge or a token id out of range.
 * @throws {UnsupportedGgufError} a tokenizer model other than `"gpt2"` or an unknown `tokenizer.ggml.pre`.
 */
export function readGgufVocab(file: GgufFile): GgufVocab {
  const model = file.metadata.get("tokenizer.ggml.model");
  if (model === undefined) throw new InvalidGgufError(`GGUF metadata "tokenizer.ggml.model" is missing`);
  if (model !== "gpt2") {
    throw new UnsupportedGgufError(
      `GGUF metadata "tokenizer.ggml.model" = ${
        JSON.stringify(model)
      } is not supported: only "gpt2" (byte-level BPE) is`,
    );
  }
  const tokens = metadataArray(file, "tokenizer.ggml.tokens").map((t, i) => {
    if (typeof t !== "string") {
      throw new InvalidGgufError(
        `GGUF metadata "tokenizer.ggml.tokens"[${i}] should be a string, got ${typeof t}`,
      );
    }
    return t;
  });
  if (tokens.length === 0) throw new InvalidGgufError(`GGUF metadata "tokenizer.ggml.tokens" is empty`);
  let types: number[] = new Array(tokens.length).fill(TokenType.NORMAL);
  if (file.metadata.has("tokenizer.ggml.token_type")) {
    const raw = metadataArray(file, "tokenizer.ggml.token_type");
    if (raw.length !== tokens.length) {
      throw new InvalidGgufError(
        `GGUF metadata "tokenizer.ggml.token_type" has ${raw.length} entries, "tokenizer.ggml.tokens" ${tokens.length}`,
      );
    }
    types = raw.map((t, i) => {
      if (typeof t !== "number" || !Number.isInteger(t)) {
        throw new InvalidGgufError(
          `GGUF metadata "tokenizer.ggml.token_type"[${i}] should be an integer, got ${t}`,
        );
      }
      return t;
    });
  }
  const merges = metadataArray(file, "tokenizer.ggml.merges").map((m, i): [string, string] => {
    // llama.cpp splits at the first space after the first character.
    const at = typeof m === "string" ? m.indexOf(" ", 1) : -1;
    if (typeof m !== "string" || at < 0) {
      throw new InvalidGgufError(
        `GGUF metadata "tokenizer.ggml.merges"[${i}] should be "left right", got ${JSON.stringify(m)}`,
      );
    }
    return [m.slice(0, at), m.slice(at + 1)];
  });
  const preValue = file.metadata.get("tokenizer.ggml.pre");
  if (preValue !== undefined && typeof preValue !== "string") {
    throw new InvalidGgufError(
      `GGUF metadata "tokenizer.ggml.pre" should be a string, got ${typeof preValue}`,
    );
  }
  const pre = preValue ?? "default";
  const preSpec = preTokenizerFor(pre);
  const n = tokens.length;
  const bosId = tokenId(file, "tokenizer.ggml.bos_token_id", n, false);
  const eosId = tokenId(file, "tokenizer.ggml.eos_token_id", n, true)!;
  const padId = tokenId(file, "tokenizer.ggml.padding_token_id", n, false);
  const unkId = tokenId(file, "tokenizer.ggml.unknown_token_id", n, false);
  const addBos = metadataBool(file, "tokenizer.ggml.add_bos_token", preSpec.addBosByDefault);
  const addEos = metadataBool(file, "tokenizer.ggml.add_eos_token", false);
  if (addBos && bosId === undefined) {
    throw new InvalidGgufError(
      `GGUF metadata "tokenizer.ggml.bos_token_id" is missing but BOS is added (tokenizer.ggml.add_bos_token)`,
    );
  }
  return { tokens, types, merges, pre, preSpec, bosId, eosId, padId, unkId, addBos, addEos };
}

function postProcessor(vocab: GgufVocab): Record<string, unknown> | null {
  if (!vocab.addBos && !vocab.addEos) return null;
  const specials: Record<string, unknown> = {};
  const piece = (id: number) => {
    const token = vocab.tokens[id];
    specials[token] = { id: token, ids: [id], tokens: [token] };
    return { SpecialToken: { id: token, type_id: 0 } };
  };
  const around = (seq: Record<string, unknown>[]) => [
    ...(vocab.addBos ? [piece(vocab.bosId!)] : []),
    ...seq,
    ...(vocab.addEos ? [piece(vocab.eosId)] : []),
  ];
  return {
    type: "TemplateProcessing",
    single: around([{ Sequence: { id: "A", type_id: 0 } }]),
    pair: around([{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }]),
    special_tokens: specials,
  };
}

/**
 * The added tokens of a GGUF vocabulary: every control, unknown and user-defined token, control and unknown
 * ones marked `special`. llama.cpp matches their exact text in the input (control ones only when special
 * tokens are parsed), so none is normalized or stripped.
 *
 * @param vocab The vocabulary ({@linkcode readGgufVocab}).
 * @returns The entries, in id order.
 */
export function addedTokens(vocab: GgufVocab): AddedToken[] {
  const out: AddedToken[] = [];
  vocab.types.forEach((type, id) => {
    if (type !== TokenType.CONTROL && type !== TokenType.UNKNOWN && type !== TokenType.USER_DEFINED) return;
    out.push({
      id,
      content: vocab.tokens[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: type !== TokenType.USER_DEFINED,
    });
  });
  return out;
}

/**
 * Builds the `tokenizer.json` of a GGUF's byte-level BPE tokenizer: `model` from `tokenizer.ggml.tokens`
 * and `merges`, `added_tokens` from `token_type`, the pre-tokenizer `tokenizer.ggml.pre` names, a byte-level
 * decoder, and a post-processor only when `add_bos_token` / `add_eos_token` ask for one (none for SmolLM2).
 * When a token string occurs twice, the later id wins in `vocab`, as in llama.cpp's `token_to_id`.
 *
 * @param file The parsed GGUF.
 * @returns The tokenizer.json object (serialise with `JSON.stringify`).
 * @throws {InvalidGgufError | UnsupportedGgufError} as {@linkcode readGgufVocab}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildTokenizerJson } from "./tokenizer_json.ts";
 * import type { GgufFile } from "./gguf.ts";
 *
 * const file: GgufFile = {
 *   version: 3, tensors: [], dataOffset: 0, alignment: 32, byteLength: 0,
 *   metadata: new Map<string, any>([
 *     ["tokenizer.ggml.model", "gpt2"], ["tokenizer.ggml.pre", "smollm"],
 *     ["tokenizer.ggml.tokens", ["<eos>", "a", "b", "ab"]], ["tokenizer.ggml.token_type", [3, 1, 1, 1]],
 *     ["tokenizer.ggml.merges", ["a b"]], ["tokenizer.ggml.eos_token_id", 0],
 *   ]),
 * };
 * const json = buildTokenizerJson(file);
 * assert.deepEqual(json.model.merges, [["a", "b"]]);
 * assert.equal(json.added_tokens[0].special, true);
 * assert.equal(json.post_processor, null);
 * ```
 */
export function buildTokenizerJson(file: GgufFile): TokenizerJson {
  const vocab = readGgufVocab(file);
  const map: Record<string, number> = {};
  vocab.tokens.forEach((token, id) => map[token] = id);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens(vocab),
    normalizer: null,
    pre_tokenizer: vocab.preSpec.preTokenizer,
    post_processor: postProcessor(vocab),
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: vocab.preSpec.ignoreMerges,
      vocab: map,
      merges: vocab.merges,
    },
  };
}

/**
 * Builds the `tokenizer_config.json`: `chat_template` (`tokenizer.chat_template`), the BOS / EOS / PAD / UNK
 * token strings, `add_bos_token` / `add_eos_token`, `model_max_length` (`<arch>.context_length`),
 * `added_tokens_decoder`, `clean_up_tokenization_spaces` (llama.cpp's `clean_spaces`) and
 * `tokenizer_class: "PreTrainedTokenizerFast"`, the class that takes tokenizer.json as it is (LlamaTokenizerFast
 * would rebuild the post-processor from `add_bos_token`).
 *
 * @param file The parsed GGUF.
 * @returns The tokenizer_config.json object.
 * @throws {InvalidGgufError | UnsupportedGgufError} as {@linkcode readGgufVocab}, or a
 * `tokenizer.chat_template` that is not a string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildTokenizerConfig } from "./tokenizer_json.ts";
 * import type { GgufFile } from "./gguf.ts";
 *
 * const file: GgufFile = {
 *   version: 3, tensors: [], dataOffset: 0, alignment: 32, byteLength: 0,
 *   metadata: new Map<string, any>([
 *     ["tokenizer.ggml.model", "gpt2"], ["tokenizer.ggml.pre", "gpt-2"],
 *     ["tokenizer.ggml.tokens", ["<end>", "a"]], ["tokenizer.ggml.merges", []],
 *     ["tokenizer.ggml.eos_token_id", 0], ["tokenizer.chat_template", "{{ messages }}"],
 *   ]),
 * };
 * const config = buildTokenizerConfig(file);
 * assert.equal(config.eos_token, "<end>");
 * assert.equal(config.chat_template, "{{ messages }}");
 * assert.equal(config.add_bos_token, false);
 * ```
 */
export function buildTokenizerConfig(file: GgufFile): Record<string, unknown> {
  const vocab = readGgufVocab(file);
  const name = (id: number | undefined) => id === undefined ? undefined : vocab.tokens[id];
  const added = addedTokens(vocab);
  const named = new Set([vocab.bosId, vocab.eosId, vocab.padId, vocab.unkId]);
  const decoder: Record<string, Omit<AddedToken, "id">> = {};
  for (const { id, ...rest } of added) decoder[String(id)] = rest;
  const config: Record<string, unknown> = {
    add_bos_token: vocab.addBos,
    add_eos_token: vocab.addEos,
    added_tokens_decoder: decoder,
    additional_special_tokens: added.filter((t) => t.special && !named.has(t.id)).map((t) => t.content),
    bos_token: name(vocab.bosId),
    eos_token: name(vocab.eosId),
    pad_token: name(vocab.padId),
    unk_token: name(vocab.unkId),
    clean_up_tokenization_spaces: vocab.preSpec.cleanSpaces,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  const arch = file.metadata.get("general.architecture");
  if (typeof arch === "string" && file.metadata.has(`${arch}.context_length`)) {
    config.model_max_length = metadataNumber(file, `${arch}.context_length`);
  }
  const template = file.metadata.get("tokenizer.chat_template");
  if (template !== undefined) {
    if (typeof template !== "string") {
      throw new InvalidGgufError(
        `GGUF metadata "tokenizer.chat_template" should be a string, got ${typeof template}`,
      );
    }
    config.chat_template = template;
  }
  for (const key of Object.keys(config)) if (config[key] === undefined) delete config[key];
  return config;
}
