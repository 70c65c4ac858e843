/**
 * Request bodies of the serve handler: reading the JSON body within a byte limit, and checking a
 * completion or chat request field by field (type, range, size) into a {@linkcode Job}. Fields the
 * server does not know are ignored; known fields it cannot honour are rejected. Every failure is an
 * {@linkcode HttpError} naming the field at fault.
 *
 * @module
 */

import { MAX_SEED } from "../random.ts";

/** Largest `top_k` a request may give (more than any vocabulary served here; the filter caps at the vocabulary). */
const MAX_TOP_K = 1_000_000;
import { type ChatMessage, type ChatTokenizer, renderChat } from "../generate/chat.ts";
import { type GenerationMethod, generationMethods } from "../generate/generator.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { HttpError, paramError } from "./errors.ts";

/** A validated generation request. */
export interface Job {
  /** Which route it came from. */
  kind: "completion" | "chat";
  /** Text, token ids, or the checked chat messages (the generator renders the template). */
  prompt: string | number[] | { messages: ChatMessage[] };
  /** Answer as server-sent events. */
  stream: boolean;
  /** Most completion tokens. */
  maxTokens: number;
  /** Sampling temperature. */
  temperature: number;
  /** Nucleus sampling mass. */
  topP: number;
  /** Top-k filter: the k most likely tokens; 0 disables (a request's -1, vLLM's "off", reads as 0). */
  topK: number;
  /** Seed, if the request gave one. */
  seed: number | undefined;
  /** Stop strings. */
  stop: string[];
  /** Decoding method. */
  method: GenerationMethod;
  /** Drafts per block. */
  k: number;
  /** Draft length. */
  draftLength: number;
}

/** What {@linkcode parseJob} checks a request against. */
export interface JobContext {
  /** The served model's id; a request naming another gets 404. */
  modelName: string;
  /** Counts prompt tokens and renders chats. */
  tokenizer: ChatTokenizer & Pick<Tokenizer, "encode">;
  /** Longest prompt in tokens, if limited. */
  maxPromptTokens: number | undefined;
  /** Values of omitted fields, and the largest `max_tokens`. */
  defaults: {
    method: GenerationMethod;
    k: number;
    draftLength: number;
    maxTokens: number;
    maxTokensLimit: number;
  };
}

/**
 * Reads a JSON object body, at most `maxBytes`, failing as soon as the limit is passed.
 *
 * @throws {HttpError} 415 not `application/json`, 413 too large, 400 not a JSON object.
 */
export async function readJson(request: Request, maxBytes: number): Promise<Record<string, unknown>> {
  const type = request.headers.get("content-type") ?? "";
  if (type.split(";")[0].trim().toLowerCase() !== "application/json") {
    await request.body?.cancel().catch(() => {});
    throw new HttpError(
      415,
      `Content-Type must be application/json, got '${type.slice(0, 100)}'`,
      undefined,
      null,
      "unsupported_media_type",
    );
  }
  const tooLarge = () =>
    new HttpError(413, `The request body exceeds ${maxBytes} bytes`, undefined, null, "request_too_large");
  const length = Number(request.headers.get("content-length"));
  if (Number.isFinite(length) && length > maxBytes) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) bytes.set(c, (at += c.byteLength) - c.byteLength);
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw paramError(
      null,
      `The body is not valid JSON: ${(error as Error).message}`.slice(0, 200),
      "invalid_json",
    );
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw paramError(null, "The body must be a JSON object", "invalid_json");
  }
  return body as Record<string, unknown>;
}

/**
 * Checks a completion or chat request body and fills in defaults.
 *
 * @throws {HttpError} 404 another model, 400 a field out of type or range (its param named).
 */
export function parseJob(body: Record<string, unknown>, kind: Job["kind"], context: JobContext): Job {
  const { modelName, tokenizer, maxPromptTokens, defaults } = context;
  if (body.model !== undefined && body.model !== null) {
    if (typeof body.model !== "string") throw paramError("model", `'model' must be a string`);
    if (body.model !== modelName) {
      throw new HttpError(
        404,
        `The model '${body.model.slice(0, 100)}' does not exist; this server has '${modelName}'`,
        undefined,
        "model",
        "model_not_found",
      );
    }
  }
  let prompt: Job["prompt"];
  let text: string | number[];
  if (kind === "chat") {
    const messages = _chatMessages(body.messages, tokenizer, modelName);
    prompt = { messages };
    text = _render(tokenizer, messages);
  } else {
    prompt = text = _prompt(body.prompt);
  }
  if (maxPromptTokens !== undefined) {
    const count = typeof text === "string" ? tokenizer.encode(text).length : text.length;
    if (count > maxPromptTokens) {
      throw paramError(
        kind === "chat" ? "messages" : "prompt",
        `The prompt has ${count} tokens, more than this server's limit of ${maxPromptTokens}`,
        "context_length_exceeded",
      );
    }
  }
  const maxTokensField = kind === "chat" && body.max_completion_tokens != null
    ? "max_completion_tokens"
    : "max_tokens";
  const maxTokens = _number(
    body[maxTokensField],
    maxTokensField,
    defaults.maxTokens,
    1,
    defaults.maxTokensLimit,
    true,
  );
  const temperature = _number(body.temperature, "temperature", 1, 0, 2, false);
  const topP = _number(body.top_p, "top_p", 1, 0, 1, false);
  if (topP === 0) throw paramError("top_p", `'top_p' must be greater than 0 and at most 1, got 0`);
  const topK = Math.max(0, _number(body.top_k, "top_k", 0, -1, MAX_TOP_K, true));
  const seed = body.seed == null ? undefined : _number(body.seed, "seed", 0, 0, MAX_SEED, true);
  const stream = body.stream == null ? false : body.stream;
  if (typeof stream !== "boolean") throw paramError("stream", `'stream' must be a boolean`);
  for (const [field, max] of [["n", 1], ["best_of", 1]] as const) {
    if (body[field] != null && _number(body[field], field, 1, 1, 128, true) > max) {
      throw paramError(field, `'${field}' greater than 1 is not supported`);
    }
  }
  if (body.logprobs != null && body.logprobs !== false && body.logprobs !== 0) {
    throw paramError("logprobs", `'logprobs' is not supported`);
  }
  if (body.echo != null && body.echo !== false) throw paramError("echo", `'echo' is not supported`);
  const stop = _stop(body.stop);
  const ext = body.spectr ?? {};
  if (typeof ext !== "object" || ext === null || Array.isArray(ext)) {
    throw paramError(
      "spectr",
      `'spectr' must be an object like { "method": "spectr", "k": 4, "draft_length": 4 }`,
    );
  }
  const { method = defaults.method, k, draft_length } = ext as Record<string, unknown>;
  if (typeof method !== "string" || !generationMethods.includes(method as GenerationMethod)) {
    throw paramError(
      "spectr.method",
      `'spectr.method' must be one of ${generationMethods.join(", ")}, got ${
        JSON.stringify(method)?.slice(0, 50)
      }`,
    );
  }
  return {
    kind,
    prompt,
    stream,
    maxTokens,
    temperature,
    topP,
    topK,
    seed,
    stop,
    method: method as GenerationMethod,
    k: _number(k, "spectr.k", defaults.k, 1, 16, true),
    draftLength: _number(draft_length, "spectr.draft_length", defaults.draftLength, 1, 16, true),
  };
}

/** Checks `messages` (OpenAI's shapes, `developer` read as `system`); the template must render them. */
function _chatMessages(messages: unknown, tokenizer: ChatTokenizer, modelName: string): ChatMessage[] {
  if (tokenizer.chatTemplate === undefined) {
    throw paramError(null, `The model '${modelName}' has no chat template; use /v1/completions instead`);
  }
  if (!Array.isArray(messages) || messages.length === 0) {
    throw paramError("messages", `'messages' must be a non-empty array of { role, content }`);
  }
  if (messages.length > 256) {
    throw paramError("messages", `'messages' has ${messages.length} entries, at most 256 allowed`);
  }
  const plain = messages.map((m, i): ChatMessage => {
    if (typeof m !== "object" || m === null) {
      throw paramError(`messages[${i}]`, `'messages[${i}]' must be an object`);
    }
    const { role, content } = m as Record<string, unknown>;
    if (!["system", "user", "assistant", "developer"].includes(role as string)) {
      throw paramError(
        `messages[${i}].role`,
        `'messages[${i}].role' must be system, user, assistant or developer`,
      );
    }
    let text: string;
    if (typeof content === "string") text = content;
    else if (
      Array.isArray(content) && content.every((p) => p?.type === "text" && typeof p.text === "string")
    ) {
      text = content.map((p) => p.text).join("");
    } else {
      throw paramError(`messages[${i}].content`, `'messages[${i}].content' must be a string or text parts`);
    }
    return { role: role === "developer" ? "system" : role as ChatMessage["role"], content: text };
  });
  _render(tokenizer, plain);
  return plain;
}

/** The rendered chat (the same rendering the generator does), or a 400 naming `messages`. */
function _render(tokenizer: ChatTokenizer, messages: ChatMessage[]): string {
  try {
    return renderChat(tokenizer, messages);
  } catch (error) {
    throw paramError("messages", (error as Error).message.slice(0, 300));
  }
}

function _number(
  value: unknown,
  name: string,
  fallback: number,
  min: number,
  max: number,
  integer: boolean,
): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw paramError(
      name,
      `'${name}' must be ${integer ? "an integer" : "a number"}, got ${JSON.stringify(value)?.slice(0, 50)}`,
    );
  }
  if (value < min || value > max) {
    throw paramError(name, `'${name}' must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

function _prompt(value: unknown): string | number[] {
  const ids = (v: unknown[]) => v.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0);
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    if (value.length === 1 && typeof value[0] === "string") return value[0];
    if (value.length > 0 && ids(value)) return value as number[];
    if (value.length === 1 && Array.isArray(value[0]) && value[0].length > 0 && ids(value[0])) {
      return value[0];
    }
    if (value.length > 1 && value.every((v) => typeof v === "string" || Array.isArray(v))) {
      throw paramError("prompt", `'prompt' may hold one prompt, got ${value.length}`);
    }
  }
  throw paramError("prompt", `'prompt' must be a string, an array of one string, or token ids`);
}

function _stop(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) {
    throw paramError("stop", `'stop' must be a string or an array of strings`);
  }
  if (list.length > 4) throw paramError("stop", `'stop' may hold at most 4 strings, got ${list.length}`);
  for (const s of list) {
    if (s.length === 0 || s.length > 256) {
      throw paramError("stop", `each 'stop' string must have 1 to 256 characters`);
    }
  }
  return list;
}
