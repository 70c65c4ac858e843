/**
 * {@linkcode StreamingDetokenizer}: incremental ids → text that never emits a broken character.
 *
 * @module
 */
import type { Tokenizer } from "./tokenizer.ts";

/** Options for {@linkcode StreamingDetokenizer}. */
export interface StreamingDetokenizerOptions {
  /**
   * Drop special tokens (`<eos>`, `<|endoftext|>`, ...) from the text.
   *
   * @default {false}
   */
  skipSpecialTokens?: boolean;
  /**
   * Remove the one leading space of the stream that {@linkcode Tokenizer.prototype.encode} adds for tokenizers
   * with {@linkcode Tokenizer.prototype.addsPrefixSpace}. Off by default because a stream usually continues a
   * prompt, where that space is real; set it when streaming a text from its start.
   *
   * @default {false}
   */
  stripPrefixSpace?: boolean;
}

/**
 * Turns token ids into text as they arrive. Byte-level BPE splits multi-byte UTF-8 characters (emoji, accents,
 * CJK) across tokens; this class maps each token to its bytes ({@linkcode Tokenizer.prototype.tokenBytes}) and
 * feeds them to a streaming `TextDecoder`, which holds back only an incomplete trailing character. So every
 * piece returned is final, contains no U+FFFD from a cut character and no lone surrogate, and the pieces
 * concatenate to `tokenizer.decode(ids, { skipSpecialTokens, stripPrefixSpace })`. Each push costs O(new
 * tokens).
 *
 * @example Stream "café" one byte-level token at a time
 * ```ts
 * import assert from "node:assert/strict";
 * import { StreamingDetokenizer } from "./stream.ts";
 * import { Tokenizer } from "./tokenizer.ts";
 *
 * const tokenizer = Tokenizer.fromJSON({
 *   model: { type: "BPE", vocab: { c: 0, a: 1, f: 2, "Ã": 3, "©": 4, "<eos>": 5 }, merges: [] },
 *   added_tokens: [{ id: 5, content: "<eos>", special: true }],
 *   decoder: { type: "ByteLevel" },
 * });
 * const stream = new StreamingDetokenizer(tokenizer, { skipSpecialTokens: true });
 * const pieces = [[0], [1], [2], [3], [4], [5]].map((ids) => stream.push(ids));
 * assert.deepEqual(pieces, ["c", "a", "f", "", "é", ""]); // "é" = bytes c3 a9, emitted once complete
 * assert.deepEqual(stream.flush(), "");
 * ```
 */
export class StreamingDetokenizer {
  #tokenizer: Tokenizer;
  #skipSpecial: boolean;
  #stripPrefixSpace: boolean;
  #decoder = new TextDecoder("utf-8", { fatal: false });
  #atStart = true;

  /**
   * Starts an empty stream.
   *
   * @param tokenizer The tokenizer whose ids will be pushed.
   * @param options See {@linkcode StreamingDetokenizerOptions}.
   * @throws {TypeError} If the tokenizer's decoder is neither byte-level nor sentencepiece-style.
   */
  constructor(tokenizer: Tokenizer, options: StreamingDetokenizerOptions = {}) {
    this.#tokenizer = tokenizer;
    this.#skipSpecial = options.skipSpecialTokens ?? false;
    this.#stripPrefixSpace = options.stripPrefixSpace ?? false;
    if (tokenizer.vocabSize > 0) tokenizer.tokenBytes(this.#anyId()); // fail early if unsupported
  }

  #anyId(): number {
    for (let id = 0; id < this.#tokenizer.vocabSize; id++) {
      if (this.#tokenizer.idToToken(id) !== undefined) return id;
    }
    return 0;
  }

  /**
   * Adds ids and returns the text that became final. The ids are checked first; on error nothing is consumed.
   *
   * @param ids New token ids, in order.
   * @returns The newly final text (possibly empty).
   * @throws {TypeError} If `ids` is not an array or an id is not an integer.
   * @throws {RangeError} If an id is outside `[0, vocabSize)` or names no token.
   *
   * @example Push two tokens
   * ```ts
   * import assert from "node:assert/strict";
   * import { StreamingDetokenizer } from "./stream.ts";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const tokenizer = Tokenizer.fromJSON({
   *   model: { type: "BPE", vocab: { h: 0, i: 1, "Ġ": 2, hi: 3, "Ġhi": 4 }, merges: ["h i", "Ġ hi"] },
   *   decoder: { type: "ByteLevel" },
   * });
   * const stream = new StreamingDetokenizer(tokenizer);
   * assert.deepEqual(stream.push([3, 4]), "hi hi");
   * ```
   */
  push(ids: readonly number[]): string {
    this.#tokenizer.checkIds(ids, "push ids");
    let text = "";
    for (const id of ids) {
      if (this.#skipSpecial && this.#tokenizer.isSpecial(id)) continue;
      let bytes = this.#tokenizer.tokenBytes(id);
      if (bytes.length === 0) continue;
      if (this.#atStart) {
        this.#atStart = false;
        if (this.#stripPrefixSpace && this.#tokenizer.addsPrefixSpace && bytes[0] === 0x20) {
          bytes = bytes.subarray(1);
        }
      }
      text += this.#decoder.decode(bytes, { stream: true });
    }
    return text;
  }

  /**
   * Ends the stream: returns what is left (an incomplete trailing character becomes U+FFFD, as in
   * {@linkcode Tokenizer.prototype.decode}) and resets, so the detokenizer can start a new stream.
   *
   * @returns The remaining text (usually empty).
   *
   * @example Flush a cut character
   * ```ts
   * import assert from "node:assert/strict";
   * import { StreamingDetokenizer } from "./stream.ts";
   * import { Tokenizer } from "./tokenizer.ts";
   *
   * const tokenizer = Tokenizer.fromJSON({
   *   model: { type: "BPE", vocab: { a: 0, "Ã": 1 }, merges: [] },
   *   decoder: { type: "ByteLevel" },
   * });
   * const stream = new StreamingDetokenizer(tokenizer);
   * assert.deepEqual(stream.push([0, 1]), "a");
   * assert.deepEqual(stream.flush(), "\uFFFD");
   * ```
   */
  flush(): string {
    const rest = this.#decoder.decode();
    this.#atStart = true;
    return rest;
  }
}
