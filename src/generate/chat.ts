/**
 * Model-agnostic chat rendering: turns a list of {@linkcode ChatMessage}s into a prompt with the
 * tokenizer's Jinja chat template (Hugging Face's `chat_template`), the way `transformers`'
 * `apply_chat_template(..., add_generation_prompt=True)` does. Knows nothing of HTTP; callers map
 * its `TypeError`s and `RangeError`s to their own errors.
 *
 * @module
 */

import { Template } from "npm:@huggingface/jinja@0.5.11";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** One turn of a chat. */
export interface ChatMessage {
  /** Who speaks. */
  role: "system" | "user" | "assistant";
  /** What they say. */
  content: string;
}

/** What {@linkcode renderChat} needs of a tokenizer: its chat template and its BOS/EOS tokens. */
export type ChatTokenizer = Pick<Tokenizer, "chatTemplate" | "bosTokenId" | "eosTokenId" | "idToToken">;

const ROLES: readonly string[] = ["system", "user", "assistant"];
/** Most compiled templates kept; past it the oldest is dropped. */
const CACHE_LIMIT = 16;
const cache = new Map<string, Template>();

/**
 * Compiles a chat template, or returns the one compiled before from the same string (a few
 * templates are kept, the most recently compiled ones).
 *
 * @param source The Jinja source of the template.
 * @returns The compiled template.
 * @throws {TypeError} a source that is not a string or not valid Jinja.
 *
 * @example The same string gives the same compiled template
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileChatTemplate } from "./chat.ts";
 *
 * const source = "{% for m in messages %}{{ m.content }}{% endfor %}";
 * assert.equal(compileChatTemplate(source), compileChatTemplate(source));
 * ```
 */
export function compileChatTemplate(source: string): Template {
  if (typeof source !== "string") {
    throw new TypeError(`Cannot compile the chat template: it must be a string, got ${typeof source}`);
  }
  let template = cache.get(source);
  if (template === undefined) {
    try {
      template = new Template(source);
    } catch (error) {
      throw new TypeError(`Cannot render the chat template: ${(error as Error)?.message ?? error}`, {
        cause: error,
      });
    }
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(source, template);
  }
  return template;
}

/**
 * Renders a chat with the tokenizer's chat template, ready for the assistant's answer: the
 * template gets `messages`, `add_generation_prompt: true` and the tokenizer's `bos_token` and
 * `eos_token` (empty strings when it has none). The compiled template is cached per template
 * string.
 *
 * @param tokenizer A tokenizer with a chat template.
 * @param messages The chat so far, at least one message.
 * @returns The prompt text.
 * @throws {TypeError} a tokenizer without a chat template, a message that is not
 *   `{ role, content }` with a known role and string content, or a template that fails to compile or
 *   render (its message starts with "Cannot render the chat template:").
 * @throws {RangeError} an empty `messages`.
 *
 * @example Render a chat with a tiny template
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderChat } from "./chat.ts";
 * import { Tokenizer } from "../tokenizer/tokenizer.ts";
 *
 * const tokenizer = Tokenizer.fromJSON(
 *   { model: { type: "BPE", vocab: { a: 0, b: 1 }, merges: [] }, decoder: { type: "ByteLevel" } },
 *   { chat_template: "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>" },
 * );
 * const prompt = renderChat(tokenizer, [{ role: "user", content: "ab" }]);
 * assert.equal(prompt, "<user>ab<assistant>");
 * ```
 */
export function renderChat(tokenizer: ChatTokenizer, messages: readonly ChatMessage[]): string {
  const source = tokenizer?.chatTemplate;
  if (source === undefined || source === null) {
    throw new TypeError("Cannot render the chat: the tokenizer has no chat template");
  }
  if (!Array.isArray(messages)) {
    throw new TypeError("Cannot render the chat: messages must be an array of { role, content }");
  }
  if (messages.length === 0) {
    throw new RangeError("Cannot render the chat: messages must hold at least 1 message, got 0");
  }
  // Plain copies: the template sees exactly { role, content }, whatever else the caller's objects hold.
  const plain = messages.map((m, i) => {
    if (typeof m !== "object" || m === null) {
      throw new TypeError(`Cannot render the chat: messages[${i}] must be an object`);
    }
    if (!ROLES.includes(m.role)) {
      throw new TypeError(
        `Cannot render the chat: messages[${i}].role must be system, user or assistant, got ${
          JSON.stringify(m.role)?.slice(0, 50)
        }`,
      );
    }
    if (typeof m.content !== "string") {
      throw new TypeError(`Cannot render the chat: messages[${i}].content must be a string`);
    }
    return { role: m.role, content: m.content };
  });
  const template = compileChatTemplate(source);
  const token = (id: number | undefined) => id === undefined ? "" : tokenizer.idToToken(id) ?? "";
  try {
    return template.render({
      messages: plain,
      add_generation_prompt: true,
      bos_token: token(tokenizer.bosTokenId),
      eos_token: token(tokenizer.eosTokenId),
    });
  } catch (error) {
    throw new TypeError(`Cannot render the chat template: ${(error as Error)?.message ?? error}`, {
      cause: error,
    });
  }
}
