/**
 * {@linkcode Tokenizer}: a Hugging Face `tokenizer.json` tokenizer for prompts, decoding and vocabulary checks.
 *
 * @module
 */
import { HfTokenizer } from "./_hf.ts";
import { type ByteMode, byteModeOf, pieceBytes } from "./_bytes.ts";

/** Options for {@linkcode Tokenizer.prototype.encode}. */
export interface EncodeOptions {
  /**
   * Run the tokenizer's post-processor, which may add special tokens (the TinyStories 8k tokenizer appends
   * `<eos>`; GPT-2's adds nothing). Off by default because a generation prompt must not end in EOS.
   *
   * @default {false}
   */
  addSpecialTokens?: boolean;
}

/** Options for {@linkcode Tokenizer.prototype.decode}. */
export interface DecodeOptions {
  /**
   * Drop special tokens (`<eos>`, `<pad>`, `<|endoftext|>`, ...) from the text.
   *
   * @default {false}
   */
  skipSpecialTokens?: boolean;
  /**
   * Remove the one leading space that {@linkcode Tokenizer.prototype.encode} adds for tokenizers with
   * {@linkcode Tokenizer.prototype.addsPrefixSpace} (byte-level `add_prefix_space`, sentencepiece `▁`), so that
   * `decode(encode(s)) === s`. Pass `false` when the ids continue earlier text (generated tokens after a
   * prompt): there the leading space is real. No effect on tokenizers that add no prefix space.
   *
   * @default {true}
   */
  stripPrefixSpace?: boolean;
}

const _EOS = ["<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"];
const _BOS = ["<bos>", "<s>", "<|begin_of_text|>", "<|startoftext|>", "<|im_start|>"];
const _PAD = ["<pad>", "[PAD]", "<|pad|>", "<|padding|>"];

function _preview(value: unknown): string {
  let s: string;
  try {
    s = typeof value === "string" ? JSON.stringify(value) : String(value);
  } catch {
    s = Object.prototype.toString.call(value);
  }
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function _parse(value: object | string, what: string): any {
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch (e) {
      throw new TypeError(
        `Cannot load ${what}: invalid JSON (${(e as Error).message}), got ${_preview(value)}`,
      );
    }
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`Cannot load ${what}: expected a JSON object, got ${_preview(value)}`);
  }
  return value;
}

/** Token content of a tokenizer_config.json special-token entry (a string or an AddedToken object). */
function _configToken(entry: unknown): string | undefined {
  if (typeof entry === "string") return entry;
  if (entry && typeof entry === "object" && typeof (entry as any).content === "string") {
    return (entry as any).content;
  }
  return undefined;
}

/**
 * A tokenizer loaded from a Hugging Face `tokenizer.json` (plus, optionally, its `tokenizer_config.json`),
 * wrapping `@huggingface/tokenizers`. Decoding goes through the token → bytes mapping
 * ({@linkcode Tokenizer.prototype.tokenBytes}) so that whole-sequence decoding and
 * {@linkcode StreamingDetokenizer} agree byte for byte.
 *
 * @example Encode a prompt and decode it again
 * ```ts
 * import assert from "node:assert/strict";
 * import { Tokenizer } from "./tokenizer.ts";
 *
 * const tokenizer = Tokenizer.fromJSON({
 *   model: { type: "BPE", vocab: { h: 0, i: 1, "Ġ": 2, hi: 3, "Ġhi": 4, "<eos>": 5 }, merges: ["h i", "Ġ hi"] },
 *   added_tokens: [{ id: 5, content: "<eos>", special: true }],
 *   normalizer: null,
 *   pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, use_regex: true },
 *   post_processor: null,
 *   decoder: { type: "ByteLevel" },
 * });
 * const ids = tokenizer.encode("hi hi");
 * assert.deepEqual(ids, [3, 4]);
 * assert.deepEqual(tokenizer.decode([...ids, 5]), "hi hi<eos>");
 * assert.deepEqual(tokenizer.decode([...ids, 5], { skipSpecialTokens: true }), "hi hi");
 * assert.deepEqual(tokenizer.eosTokenId, 5);
 * assert.deepEqual(tokenizer.vocabSize, 6);
 * ```
 */
export class Tokenizer {
  #hf: HfTokenizer;
  #vocabSize: number;
  #idToToken: (string | undefined)[];
  #tokenToId: Map<string, number>;
  #added = new Map<number, string>();
  #special = new Set<number>();
  #mode: ByteMode;
  #prefixSpace: boolean;
  #byteFallback: boolean;
  #bytes: (Uint8Array | undefined)[];
  #eos: number | undefined;
  #bos: number | undefined;
  #pad: number | undefined;
  #chatTemplate: string | undefined;

  private constructor(json: any, config: any) {
    if (!json.model || typeof json.model !== "object") {
      throw new TypeError(
        `Cannot load tokenizer.json: no "model" object, got keys ${_preview(Object.keys(json))}`,
      );
    }
    // The library insists on these keys being present; null means "none" in tokenizer.json.
    const full = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      added_tokens: [],
      ...json,
    };
    try {
      this.#hf = new HfTokenizer(full, config);
    } catch (e) {
      throw new TypeError(
        `Cannot load tokenizer.json: ${(e as Error).message}, got model type ${_preview(json.model.type)}`,
      );
    }
    this.#tokenToId = this.#hf.get_vocab(true);
    let max = -1;
    for (const id of this.#tokenToId.values()) if (id > max) max = id;
    this.#vocabSize = max + 1;
    this.#idToToken = new Array(this.#vocabSize);
    for (const [token, id] of this.#tokenToId) this.#idToToken[id] = token;
    for (const t of json.added_tokens ?? []) {
      if (Number.isInteger(t?.id) && typeof t.content === "string") {
        this.#added.set(t.id, t.content);
        if (t.special) this.#special.add(t.id);
      }
    }
    for (const entry of config.additional_special_tokens ?? []) {
      const id = this.#tokenToId.get(_configToken(entry) ?? "");
      if (id !== undefined) this.#special.add(id);
    }
    const { mode, prefixSpace } = byteModeOf(json);
    this.#mode = mode;
    this.#prefixSpace = prefixSpace;
    this.#byteFallback = Boolean(json.model.byte_fallback);
    this.#bytes = new Array(this.#vocabSize);
    this.#eos = this.#specialId(config.eos_token, _EOS);
    this.#bos = this.#specialId(config.bos_token, _BOS);
    this.#pad = this.#specialId(config.pad_token, _PAD);
    this.#chatTemplate = typeof config.chat_template === "string" ? config.chat_template : undefined;
  }

  #specialId(configEntry: unknown, candidates: string[]): number | undefined {
    const fromConfig = _configToken(configEntry);
    if (fromConfig !== undefined) return this.#tokenToId.get(fromConfig);
    for (const c of candidates) {
      const id = this.#tokenToId.get(c);
      if (id !== undefined) return id;
    }
    return undefined;
  }

  /**
   * Builds a tokenizer from already-loaded JSON; does no I/O.
   *
   * @param tokenizerJson The contents of `tokenizer.json`, parsed or as text.
   * @param tokenizerConfig The contents of `tokenizer_config.json`, parsed or as text: supplies
   * `eos_token`/`bos_token`/`pad_token`, `additional_special_tokens` and `chat_template`.
   * @returns The tokenizer.
   * @throws {TypeError} If either argument is not valid JSON or not a tokenizer the library understands.
   *
   * @example Read special tokens from tokenizer_config.json
   * ```ts
   * import assert from "node:assert/strict";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const json = JSON.stringify({
   *   model: { type: "BPE", vocab: { a: 0, "<s>": 1, "<end>": 2 }, merges: [] },
   *   added_tokens: [{ id: 1, content: "<s>", special: true }, { id: 2, content: "<end>", special: true }],
   *   decoder: { type: "ByteLevel" },
   * });
   * const tokenizer = Tokenizer.fromJSON(json, { eos_token: "<end>", chat_template: "{{ messages }}" });
   * assert.deepEqual(tokenizer.eosTokenId, 2);
   * assert.deepEqual(tokenizer.bosTokenId, 1);
   * assert.deepEqual(tokenizer.chatTemplate, "{{ messages }}");
   * ```
   */
  static fromJSON(tokenizerJson: object | string, tokenizerConfig: object | string = {}): Tokenizer {
    return new Tokenizer(
      _parse(tokenizerJson, "tokenizer.json"),
      _parse(tokenizerConfig, "tokenizer_config.json"),
    );
  }

  /**
   * Reads a `tokenizer.json` (and optionally a `tokenizer_config.json`) and builds a tokenizer. `file:` URLs and
   * plain paths are read with `Deno.readTextFile` (needs `--allow-read`; gives a clear `NotFound`); other URLs
   * (`http:`, `https:`, `data:`) are fetched.
   *
   * @param pathOrUrl Where `tokenizer.json` is.
   * @param configPathOrUrl Where `tokenizer_config.json` is, if anywhere.
   * @returns The tokenizer.
   * @throws {Deno.errors.NotFound} If a file does not exist (or an HTTP server answers 404).
   * @throws {TypeError} If a file is not valid tokenizer JSON, or an HTTP request fails.
   *
   * @example Load a tokenizer from a URL
   * ```ts
   * import assert from "node:assert/strict";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const json = { model: { type: "BPE", vocab: { a: 0, b: 1, ab: 2 }, merges: ["a b"] } };
   * const url = "data:application/json," + encodeURIComponent(JSON.stringify(json));
   * const tokenizer = await Tokenizer.fromFile(url);
   * assert.deepEqual(tokenizer.encode("ab"), [2]);
   * ```
   */
  static async fromFile(pathOrUrl: string | URL, configPathOrUrl?: string | URL): Promise<Tokenizer> {
    const json = await _readText(pathOrUrl);
    const config = configPathOrUrl === undefined ? "{}" : await _readText(configPathOrUrl);
    return Tokenizer.fromJSON(json, config);
  }

  /** Number of token ids (largest id + 1, added tokens included): the model's vocabulary dimension. */
  get vocabSize(): number {
    return this.#vocabSize;
  }

  /** End-of-sequence id: `eos_token` of tokenizer_config.json, else `<eos>`, `</s>`, `<|endoftext|>`, ... */
  get eosTokenId(): number | undefined {
    return this.#eos;
  }

  /** Beginning-of-sequence id: `bos_token` of tokenizer_config.json, else `<bos>`, `<s>`, ... */
  get bosTokenId(): number | undefined {
    return this.#bos;
  }

  /** Padding id: `pad_token` of tokenizer_config.json, else `<pad>`, `[PAD]`, ... */
  get padTokenId(): number | undefined {
    return this.#pad;
  }

  /** The Jinja `chat_template` of tokenizer_config.json, if one was given (not rendered here). */
  get chatTemplate(): string | undefined {
    return this.#chatTemplate;
  }

  /** Whether {@linkcode Tokenizer.prototype.encode} prepends a space to text (e.g. `add_prefix_space`). */
  get addsPrefixSpace(): boolean {
    return this.#prefixSpace;
  }

  /** Ids of the special tokens (added tokens marked special, plus config `additional_special_tokens`), sorted. */
  get specialTokenIds(): number[] {
    return [...this.#special].sort((a, b) => a - b);
  }

  /**
   * Whether an id is a special token, i.e. one that `skipSpecialTokens` drops.
   *
   * @param id A token id.
   * @returns `true` for special tokens.
   *
   * @example Special and ordinary ids
   * ```ts
   * import assert from "node:assert/strict";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const tokenizer = Tokenizer.fromJSON({
   *   model: { type: "BPE", vocab: { a: 0, "<eos>": 1 }, merges: [] },
   *   added_tokens: [{ id: 1, content: "<eos>", special: true }],
   *   decoder: { type: "ByteLevel" },
   * });
   * assert.deepEqual([tokenizer.isSpecial(0), tokenizer.isSpecial(1)], [false, true]);
   * ```
   */
  isSpecial(id: number): boolean {
    return this.#special.has(id);
  }

  /**
   * Splits text into token ids.
   *
   * By default no special tokens are added: the TinyStories 8k tokenizer's post-processor would append `<eos>`,
   * and a prompt for generation must not end in EOS. Tokenizers with {@linkcode Tokenizer.prototype.addsPrefixSpace}
   * prepend a space to text that does not start with one.
   *
   * @param text The text.
   * @param options See {@linkcode EncodeOptions}.
   * @returns The ids.
   * @throws {TypeError} If `text` is not a string.
   *
   * @example Encode without and with the post-processor
   * ```ts
   * import assert from "node:assert/strict";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const tokenizer = Tokenizer.fromJSON({
   *   model: { type: "BPE", vocab: { a: 0, "<eos>": 1 }, merges: [] },
   *   added_tokens: [{ id: 1, content: "<eos>", special: true }],
   *   decoder: { type: "ByteLevel" },
   *   post_processor: {
   *     type: "TemplateProcessing",
   *     single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<eos>", type_id: 0 } }],
   *     pair: [],
   *     special_tokens: { "<eos>": { id: "<eos>", ids: [1], tokens: ["<eos>"] } },
   *   },
   * });
   * assert.deepEqual(tokenizer.encode("aa"), [0, 0]);
   * assert.deepEqual(tokenizer.encode("aa", { addSpecialTokens: true }), [0, 0, 1]);
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== "string") {
      throw new TypeError(`Cannot encode: text must be a string, got ${_preview(text)}`);
    }
    const { addSpecialTokens = false } = options;
    return this.#hf.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  /**
   * Turns ids back into text: the UTF-8 decoding of the concatenated {@linkcode Tokenizer.prototype.tokenBytes}
   * (invalid or cut UTF-8 becomes U+FFFD), with no `clean_up_tokenization_spaces` rewriting. For tokenizers whose
   * decoder is neither byte-level nor sentencepiece-style, the library's decoder is used instead.
   *
   * @param ids Token ids.
   * @param options See {@linkcode DecodeOptions}.
   * @returns The text.
   * @throws {TypeError} If `ids` is not an array or an id is not an integer.
   * @throws {RangeError} If an id is outside `[0, vocabSize)` or names no token.
   *
   * @example Decode a whole text and a continuation
   * ```ts
   * import assert from "node:assert/strict";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const tokenizer = Tokenizer.fromJSON({
   *   model: { type: "BPE", vocab: { h: 0, i: 1, "Ġ": 2, hi: 3, "Ġhi": 4 }, merges: ["h i", "Ġ hi"] },
   *   pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, use_regex: true },
   *   decoder: { type: "ByteLevel" },
   * });
   * assert.deepEqual(tokenizer.encode("hi"), [4]); // " hi": a prefix space was added
   * assert.deepEqual(tokenizer.decode([4, 4]), "hi hi");
   * assert.deepEqual(tokenizer.decode([4], { stripPrefixSpace: false }), " hi");
   * ```
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    this.checkIds(ids, "decode");
    const { skipSpecialTokens = false, stripPrefixSpace = true } = options;
    let text: string;
    if (this.#mode === "unsupported") {
      const kept = skipSpecialTokens ? ids.filter((id) => !this.#special.has(id)) : ids;
      text = kept.length === 0
        ? ""
        : this.#hf.decode([...kept], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
      return text;
    }
    const parts: Uint8Array[] = [];
    let length = 0;
    for (const id of ids) {
      if (skipSpecialTokens && this.#special.has(id)) continue;
      const b = this.tokenBytes(id);
      parts.push(b);
      length += b.length;
    }
    const all = new Uint8Array(length);
    let at = 0;
    for (const b of parts) {
      all.set(b, at);
      at += b.length;
    }
    const start = stripPrefixSpace && this.#prefixSpace && all[0] === 0x20 ? 1 : 0;
    return new TextDecoder("utf-8", { fatal: false }).decode(all.subarray(start));
  }

  /**
   * The bytes a token stands for: the UTF-8 of an added token's content; a byte-level BPE token's characters
   * mapped back through GPT-2's `bytes_to_unicode` table; a sentencepiece `<0xNN>` byte-fallback token's byte;
   * otherwise the piece with `▁` as a space. One token may hold part of a UTF-8 character. The returned array is
   * shared: do not modify it.
   *
   * @param id A token id.
   * @returns The bytes.
   * @throws {TypeError} If the tokenizer's decoder is neither byte-level nor sentencepiece-style.
   * @throws {RangeError} If the id is outside `[0, vocabSize)` or names no token.
   *
   * @example A byte-level token holding half of "é"
   * ```ts
   * import assert from "node:assert/strict";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const tokenizer = Tokenizer.fromJSON({
   *   model: { type: "BPE", vocab: { "Ã": 0, "©": 1 }, merges: [] },
   *   decoder: { type: "ByteLevel" },
   * });
   * assert.deepEqual([...tokenizer.tokenBytes(0)], [0xc3]);
   * assert.deepEqual([...tokenizer.tokenBytes(1)], [0xa9]);
   * ```
   */
  tokenBytes(id: number): Uint8Array {
    const cached = this.#bytes[id];
    if (cached) return cached;
    if (this.#mode === "unsupported") {
      throw new TypeError(
        `Cannot map tokens to bytes: unsupported decoder, got ${_preview(this.#hf.decoder)}`,
      );
    }
    const token = this.idToToken(id);
    if (token === undefined) {
      throw new RangeError(`Cannot map token to bytes: id names no token, got ${id}`);
    }
    const added = this.#added.get(id);
    const bytes = added !== undefined
      ? new TextEncoder().encode(added)
      : pieceBytes(token, this.#mode, this.#byteFallback);
    this.#bytes[id] = bytes;
    return bytes;
  }

  /**
   * The vocabulary string of an id (byte-level strings look like `Ġthe`).
   *
   * @param id A token id.
   * @returns The token string, or `undefined` for an id in range that names no token.
   * @throws {TypeError} If `id` is not an integer.
   * @throws {RangeError} If `id` is outside `[0, vocabSize)`.
   *
   * @example Look up a token
   * ```ts
   * import assert from "node:assert/strict";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const tokenizer = Tokenizer.fromJSON({ model: { type: "BPE", vocab: { a: 0, "Ġb": 1 }, merges: [] } });
   * assert.deepEqual(tokenizer.idToToken(1), "Ġb");
   * assert.deepEqual(tokenizer.tokenToId("Ġb"), 1);
   * assert.deepEqual(tokenizer.tokenToId("zzz"), undefined);
   * ```
   */
  idToToken(id: number): string | undefined {
    this.#checkId(id, "look up token", "");
    return this.#idToToken[id];
  }

  /**
   * The id of a vocabulary string.
   *
   * @param token A token string as in the vocabulary (e.g. `Ġthe`, `<eos>`).
   * @returns The id, or `undefined` if the vocabulary has no such token.
   *
   * @example Look up an id
   * ```ts
   * import assert from "node:assert/strict";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const tokenizer = Tokenizer.fromJSON({ model: { type: "BPE", vocab: { a: 0, "<eos>": 1 }, merges: [] } });
   * assert.deepEqual(tokenizer.tokenToId("<eos>"), 1);
   * ```
   */
  tokenToId(token: string): number | undefined {
    return this.#tokenToId.get(token);
  }

  /**
   * Checks that every entry of `ids` is a token id of this tokenizer.
   *
   * @param ids Candidate ids.
   * @param action What the caller was doing, for the message (`"decode"` gives "Cannot decode: ...").
   * @throws {TypeError} If `ids` is not an array or an entry is not an integer.
   * @throws {RangeError} If an entry is outside `[0, vocabSize)` or names no token.
   *
   * @example Reject an out-of-range id
   * ```ts
   * import assert from "node:assert/strict";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const tokenizer = Tokenizer.fromJSON({ model: { type: "BPE", vocab: { a: 0 }, merges: [] } });
   * assert.throws(() => tokenizer.checkIds([0, 7], "decode"), RangeError);
   * ```
   */
  checkIds(ids: readonly number[], action: string): void {
    if (!Array.isArray(ids)) {
      throw new TypeError(`Cannot ${action}: ids must be an array, got ${_preview(ids)}`);
    }
    for (let i = 0; i < ids.length; i++) this.#checkId(ids[i], action, ` at index ${i}`);
  }

  #checkId(id: unknown, action: string, where: string): void {
    if (typeof id !== "number" || !Number.isInteger(id)) {
      throw new TypeError(`Cannot ${action}: id${where} is not an integer, got ${_preview(id)}`);
    }
    if (id < 0 || id >= this.#vocabSize) {
      throw new RangeError(`Cannot ${action}: id${where} is outside [0, ${this.#vocabSize}), got ${id}`);
    }
    if (action !== "look up token" && this.#idToToken[id] === undefined) {
      throw new RangeError(`Cannot ${action}: id${where} names no token, got ${id}`);
    }
  }
}

async function _readText(pathOrUrl: string | URL): Promise<string> {
  const url = pathOrUrl instanceof URL
    ? pathOrUrl
    : /^(https?|file|data|blob):/i.test(pathOrUrl)
    ? new URL(pathOrUrl)
    : undefined;
  if (url && url.protocol !== "file:") {
    let response: Response;
    try {
      response = await fetch(url);
    } catch (e) {
      throw new TypeError(`Cannot load tokenizer: fetch failed (${(e as Error).message}), got ${url.href}`);
    }
    if (response.status === 404) {
      await response.body?.cancel();
      throw new Deno.errors.NotFound(`Cannot load tokenizer: HTTP 404, got ${url.href}`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new TypeError(`Cannot load tokenizer: HTTP ${response.status}, got ${url.href}`);
    }
    return await response.text();
  }
  const where = url ?? pathOrUrl;
  try {
    return await Deno.readTextFile(where);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot load tokenizer: file not found, got ${String(where)}`);
    }
    throw e;
  }
}
