/**
 * An OpenAI-compatible HTTP front for a {@linkcode SpeculativeGenerator}: a thin `Request` →
 * `Response` function usable with `Deno.serve`, `deno serve` or any edge platform that speaks the
 * Fetch API.
 *
 * Routes: `POST /v1/completions`, `POST /v1/chat/completions` (models with a chat template),
 * `GET /v1/models`, `GET /healthz` (no auth) and `GET /metrics` (Prometheus text).
 *
 * Every request field is validated (type, range, size); fields the server does not know are
 * ignored, as OpenAI's API does. Known fields the server cannot honour (`n` > 1, `best_of` > 1,
 * `logprobs`, `echo`) are rejected with 400 rather than silently ignored. Errors use OpenAI's shape
 * `{ error: { message, type, param, code } }`; stack traces never leave the process.
 *
 * @module
 */

import { Template } from "@huggingface/jinja";
import { type GenerationMethod, generationMethods, type GenerationResult } from "../generate/generator.ts";
import type { SpeculativeGenerator } from "../generate/generator.ts";
import { ServeMetrics } from "./metrics.ts";

/** What the handler needs of a generator: `stream` and the tokenizer. */
export type ServeGenerator = Pick<SpeculativeGenerator, "stream" | "tokenizer">;

/** Server-side defaults for fields a request leaves out. */
export interface ServeDefaults {
  /**
   * Decoding method.
   * @default {"spectr"}
   */
  method?: GenerationMethod;
  /**
   * Drafts per block.
   * @default {4}
   */
  k?: number;
  /**
   * Draft length.
   * @default {4}
   */
  draftLength?: number;
  /**
   * `max_tokens` when the request has none.
   * @default {16}
   */
  maxTokens?: number;
  /**
   * Largest `max_tokens` a request may ask for.
   * @default {2048}
   */
  maxTokensLimit?: number;
}

/** Options of {@linkcode createHandler}. */
export interface HandlerOptions {
  /** The generator that serves every request (one generation at a time). */
  generator: ServeGenerator;
  /**
   * Model id reported by `/v1/models` and in responses; requests naming another model get 404.
   * @default {"spectr"}
   */
  modelName?: string;
  /**
   * Most generation requests waiting or running at once; more are answered 429 with Retry-After.
   * @default {8}
   */
  maxQueue?: number;
  /**
   * Largest request body, bytes; enforced while reading (413 beyond).
   * @default {65536}
   */
  maxBodyBytes?: number;
  /**
   * Longest prompt in tokens (400 beyond).
   * @default {no limit but the model's context}
   */
  maxPromptTokens?: number;
  /**
   * Bearer token required on every route but `/healthz`; an empty string disables auth.
   * @default {the SPECTR_API_KEY environment variable, when readable; otherwise no auth}
   */
  apiKey?: string;
  /**
   * Deadline of one request, ms, from receipt; past it the generation is aborted (504, or an error
   * event on a stream).
   * @default {no deadline}
   */
  requestTimeoutMs?: number;
  /** Defaults for omitted request fields. */
  defaults?: ServeDefaults;
}

/** Live counters of a handler. */
export interface HandlerStats {
  /** Generation requests waiting or running. */
  queueDepth: number;
  /** Completion tokens generated so far. */
  tokensGenerated: number;
  /** Generations aborted by a disconnect, a cancelled stream or a deadline. */
  generationsAborted: number;
}

/** The function returned by {@linkcode createHandler}, with its stats and a way to stop it. */
export interface ServeHandler {
  /** Answers one request. */
  (request: Request): Promise<Response>;
  /** Live counters. */
  stats(): HandlerStats;
  /** The metrics registry behind `/metrics`. */
  readonly metrics: ServeMetrics;
  /** Aborts every running generation; later generation requests get 503. */
  close(): void;
}

/** A validated generation request. */
interface _Job {
  kind: "completion" | "chat";
  prompt: string | number[];
  stream: boolean;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number | undefined;
  stop: string[];
  method: GenerationMethod;
  k: number;
  draftLength: number;
}

class _HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const JSON_HEADERS = { "content-type": "application/json" };
const ROUTES: Record<string, string[]> = {
  "/v1/completions": ["POST"],
  "/v1/chat/completions": ["POST"],
  "/v1/models": ["GET"],
  "/healthz": ["GET"],
  "/metrics": ["GET"],
};
const FINISH = { length: "length", eos: "stop", stop: "stop", context: "length" } as const;

/**
 * Builds the request handler.
 *
 * @param options Generator, limits, auth and defaults; see {@linkcode HandlerOptions}.
 * @returns The handler, with `stats()`, `metrics` and `close()`.
 * @throws {RangeError} a non-positive `maxQueue`, `maxBodyBytes`, `maxPromptTokens` or `requestTimeoutMs`.
 * @throws {TypeError} a missing generator.
 *
 * @example Serve toy models and ask for a completion
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHandler } from "./handler.ts";
 * import { SpeculativeGenerator } from "../generate/generator.ts";
 * import { MarkovModel, randomMarkovTable } from "../decode/markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import { Tokenizer } from "../tokenizer/tokenizer.ts";
 *
 * const tokenizer = Tokenizer.fromJSON({
 *   model: { type: "BPE", vocab: { a: 0, b: 1, c: 2 }, merges: [] },
 *   decoder: { type: "ByteLevel" },
 * });
 * const table = randomMarkovTable(3, 1, 1);
 * const generator = new SpeculativeGenerator({
 *   target: new MarkovModel({ table, vocabSize: 3 }),
 *   draft: new MarkovModel({ table, vocabSize: 3 }),
 *   tokenizer,
 *   kernel: referenceKernel,
 * });
 * const handler = createHandler({ generator, apiKey: "" });
 * const response = await handler(new Request("http://localhost/v1/completions", {
 *   method: "POST",
 *   headers: { "content-type": "application/json" },
 *   body: JSON.stringify({ prompt: "a", max_tokens: 5, seed: 1 }),
 * }));
 * const body = await response.json();
 * assert.equal(response.status, 200);
 * assert.equal(body.choices[0].text.length, 5);
 * assert.equal(body.usage.completion_tokens, 5);
 * ```
 */
export function createHandler(options: HandlerOptions): ServeHandler {
  const { generator, modelName = "spectr", maxQueue = 8, maxBodyBytes = 64 * 1024, maxPromptTokens } =
    options;
  if (!generator || typeof generator.stream !== "function") {
    throw new TypeError("Cannot create a handler: options.generator must be a SpeculativeGenerator");
  }
  _positive("maxQueue", maxQueue, true);
  _positive("maxBodyBytes", maxBodyBytes, true);
  if (maxPromptTokens !== undefined) _positive("maxPromptTokens", maxPromptTokens, true);
  if (options.requestTimeoutMs !== undefined) _positive("requestTimeoutMs", options.requestTimeoutMs, false);
  const apiKey = options.apiKey ?? _envApiKey();
  const keyDigest = apiKey ? _digest(apiKey) : undefined;
  const defaults = {
    method: "spectr" as GenerationMethod,
    k: 4,
    draftLength: 4,
    maxTokens: 16,
    maxTokensLimit: 2048,
    ...options.defaults,
  };
  const metrics = new ServeMetrics();
  const running = new Set<AbortController>();
  let queueDepth = 0;
  let closed = false;
  let template: Template | undefined;
  const created = Math.floor(Date.now() / 1000);

  async function handle(request: Request): Promise<Response> {
    const start = performance.now();
    const url = new URL(request.url);
    const route = url.pathname in ROUTES ? url.pathname : "other";
    const done = (status: number) => metrics.recordRequest(route, status, (performance.now() - start) / 1000);
    let response: Response;
    try {
      response = await route_(request, url.pathname, done);
    } catch (error) {
      response = _errorResponse(error);
    }
    // Streaming responses record themselves when their body ends.
    if (!response.headers.get("content-type")?.startsWith("text/event-stream")) done(response.status);
    return response;
  }

  async function route_(request: Request, path: string, done: (status: number) => void): Promise<Response> {
    const methods = ROUTES[path];
    if (!methods) {
      throw new _HttpError(404, `Unknown route: ${request.method} ${path}`, undefined, null, "not_found");
    }
    if (path === "/healthz" && request.method === "GET") {
      return Response.json({ status: closed ? "closing" : "ok", queue_depth: queueDepth });
    }
    if (keyDigest) await _authorize(request, keyDigest);
    if (!methods.includes(request.method)) {
      throw new _HttpError(
        405,
        `Method ${request.method} is not allowed on ${path}; use ${methods.join(", ")}`,
        undefined,
        null,
        "method_not_allowed",
        { allow: methods.join(", ") },
      );
    }
    if (path === "/metrics") {
      return new Response(metrics.render(queueDepth), {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    }
    if (path === "/v1/models") {
      return Response.json({
        object: "list",
        data: [{ id: modelName, object: "model", created, owned_by: "spectr" }],
      });
    }
    const body = await _readJson(request, maxBodyBytes);
    const kind = path === "/v1/chat/completions" ? "chat" : "completion";
    const job = parseJob(body, kind);
    return await run(job, request, done);
  }

  function parseJob(body: Record<string, unknown>, kind: _Job["kind"]): _Job {
    if (body.model !== undefined && body.model !== null) {
      if (typeof body.model !== "string") throw _param("model", `'model' must be a string`);
      if (body.model !== modelName) {
        throw new _HttpError(
          404,
          `The model '${body.model.slice(0, 100)}' does not exist; this server has '${modelName}'`,
          undefined,
          "model",
          "model_not_found",
        );
      }
    }
    const prompt = kind === "chat" ? renderChat(body.messages) : _prompt(body.prompt);
    if (maxPromptTokens !== undefined) {
      const count = typeof prompt === "string" ? generator.tokenizer.encode(prompt).length : prompt.length;
      if (count > maxPromptTokens) {
        throw _param(
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
    if (topP === 0) throw _param("top_p", `'top_p' must be greater than 0 and at most 1, got 0`);
    const seed = body.seed == null
      ? undefined
      : _number(body.seed, "seed", 0, -(2 ** 53) + 1, 2 ** 53 - 1, true);
    const stream = body.stream == null ? false : body.stream;
    if (typeof stream !== "boolean") throw _param("stream", `'stream' must be a boolean`);
    for (const [field, max] of [["n", 1], ["best_of", 1]] as const) {
      if (body[field] != null && _number(body[field], field, 1, 1, 128, true) > max) {
        throw _param(field, `'${field}' greater than 1 is not supported`);
      }
    }
    if (body.logprobs != null && body.logprobs !== false && body.logprobs !== 0) {
      throw _param("logprobs", `'logprobs' is not supported`);
    }
    if (body.echo != null && body.echo !== false) throw _param("echo", `'echo' is not supported`);
    const stop = _stop(body.stop);
    const ext = body.spectr ?? {};
    if (typeof ext !== "object" || ext === null || Array.isArray(ext)) {
      throw _param(
        "spectr",
        `'spectr' must be an object like { "method": "spectr", "k": 4, "draft_length": 4 }`,
      );
    }
    const { method = defaults.method, k, draft_length } = ext as Record<string, unknown>;
    if (typeof method !== "string" || !generationMethods.includes(method as GenerationMethod)) {
      throw _param(
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
      seed,
      stop,
      method: method as GenerationMethod,
      k: _number(k, "spectr.k", defaults.k, 1, 16, true),
      draftLength: _number(draft_length, "spectr.draft_length", defaults.draftLength, 1, 16, true),
    };
  }

  function renderChat(messages: unknown): string {
    const chatTemplate = generator.tokenizer.chatTemplate;
    if (chatTemplate === undefined) {
      throw _param(null, `The model '${modelName}' has no chat template; use /v1/completions instead`);
    }
    if (!Array.isArray(messages) || messages.length === 0) {
      throw _param("messages", `'messages' must be a non-empty array of { role, content }`);
    }
    if (messages.length > 256) {
      throw _param("messages", `'messages' has ${messages.length} entries, at most 256 allowed`);
    }
    const plain = messages.map((m, i) => {
      if (typeof m !== "object" || m === null) {
        throw _param(`messages[${i}]`, `'messages[${i}]' must be an object`);
      }
      const { role, content } = m as Record<string, unknown>;
      if (!["system", "user", "assistant", "developer"].includes(role as string)) {
        throw _param(
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
        throw _param(`messages[${i}].content`, `'messages[${i}].content' must be a string or text parts`);
      }
      return { role: role === "developer" ? "system" : role as string, content: text };
    });
    const tokenizer = generator.tokenizer;
    const token = (id: number | undefined) => id === undefined ? "" : tokenizer.idToToken(id) ?? "";
    try {
      template ??= new Template(chatTemplate);
      return template.render({
        messages: plain,
        add_generation_prompt: true,
        bos_token: token(tokenizer.bosTokenId),
        eos_token: token(tokenizer.eosTokenId),
      });
    } catch (error) {
      throw _param("messages", `Cannot render the chat template: ${(error as Error).message}`.slice(0, 300));
    }
  }

  async function run(job: _Job, request: Request, done: (status: number) => void): Promise<Response> {
    if (closed) throw new _HttpError(503, "The server is shutting down", "server_error", null, "closing");
    if (queueDepth >= maxQueue) {
      throw new _HttpError(
        429,
        `The server is busy: ${queueDepth} requests are waiting or running (limit ${maxQueue}); retry later`,
        "rate_limit_error",
        null,
        "queue_full",
        { "retry-after": "1" },
      );
    }
    // Take a slot; give it back exactly once, when the generation ends or is aborted.
    queueDepth++;
    const controller = new AbortController();
    running.add(controller);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      queueDepth--;
      running.delete(controller);
    };
    const signals = [controller.signal, request.signal];
    if (options.requestTimeoutMs !== undefined) signals.push(AbortSignal.timeout(options.requestTimeoutMs));
    const signal = AbortSignal.any(signals);
    const onAbort = () => {
      metrics.generationsAborted++;
      release();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const finish = () => {
      signal.removeEventListener("abort", onAbort);
      release();
    };
    let tokensSeen = 0;
    const countTokens = (text: string) => {
      // Pieces arrive per block; the exact count comes with the result. Count pieces' tokens
      // approximately for aborted generations: one per piece at least.
      tokensSeen++;
      metrics.tokensGenerated++;
      return text;
    };
    const iterator = generator.stream(job.prompt, {
      maxNewTokens: job.maxTokens,
      temperature: job.temperature,
      topP: job.topP,
      seed: job.seed,
      stop: job.stop,
      method: job.method,
      k: job.k,
      draftLength: job.draftLength,
      signal,
    });
    const record = (result: GenerationResult) => {
      metrics.tokensGenerated += result.tokens.length - tokensSeen;
      const s = result.stats;
      if (s.method !== "autoregressive") {
        const accepted = (s.acceptedPerDepth ?? []).reduce((a, b) => a + b, 0);
        const reached = (s.reachedPerDepth ?? []).reduce((a, b) => a + b, 0);
        metrics.recordGeneration(reached > 0 ? accepted / reached : NaN, s.blockEfficiency);
      }
    };
    const id = `${job.kind === "chat" ? "chatcmpl" : "cmpl"}-${crypto.randomUUID()}`;
    const now = Math.floor(Date.now() / 1000);
    // Run up to the first piece before answering, so that option and context errors get a status.
    let first: IteratorResult<string, GenerationResult>;
    try {
      first = await iterator.next();
    } catch (error) {
      finish();
      throw _generationError(error, signal, job);
    }
    if (!job.stream) {
      const pieces: string[] = [];
      let step = first;
      try {
        while (!step.done) {
          pieces.push(countTokens(step.value));
          step = await iterator.next();
        }
      } catch (error) {
        throw _generationError(error, signal, job);
      } finally {
        finish();
      }
      const result = step.value;
      record(result);
      const finishReason = FINISH[result.finishReason];
      const choice = job.kind === "chat"
        ? {
          index: 0,
          message: { role: "assistant", content: result.text },
          logprobs: null,
          finish_reason: finishReason,
        }
        : { index: 0, text: result.text, logprobs: null, finish_reason: finishReason };
      return Response.json({
        id,
        object: job.kind === "chat" ? "chat.completion" : "text_completion",
        created: now,
        model: modelName,
        choices: [choice],
        usage: _usage(result),
        spectr: _extension(job, result),
      });
    }
    const encoder = new TextEncoder();
    const sse = (data: unknown) =>
      encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
    const chunk = (text: string | undefined, finishReason: string | null, roleFirst = false) => {
      const base = {
        id,
        object: job.kind === "chat" ? "chat.completion.chunk" : "text_completion",
        created: now,
        model: modelName,
      };
      if (job.kind === "chat") {
        const delta: Record<string, string> = {};
        if (roleFirst) delta.role = "assistant";
        if (text !== undefined) delta.content = text;
        return { ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] };
      }
      return {
        ...base,
        choices: [{ index: 0, text: text ?? "", logprobs: null, finish_reason: finishReason }],
      };
    };
    let pending: IteratorResult<string, GenerationResult> | undefined = first;
    let status = 200;
    let recorded = false;
    const end = (s: number) => {
      if (!recorded) done(s);
      recorded = true;
    };
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        if (job.kind === "chat") c.enqueue(sse(chunk("", null, true)));
      },
      async pull(c) {
        try {
          const step = pending ?? await iterator.next();
          pending = undefined;
          if (!step.done) {
            c.enqueue(sse(chunk(countTokens(step.value), null)));
            return;
          }
          finish();
          record(step.value);
          const last = chunk(job.kind === "chat" ? undefined : "", FINISH[step.value.finishReason]);
          c.enqueue(sse({ ...last, usage: _usage(step.value), spectr: _extension(job, step.value) }));
          c.enqueue(sse("[DONE]"));
          c.close();
          end(status);
        } catch (error) {
          finish();
          const httpError = _generationError(error, signal, job);
          status = httpError.status;
          if (!request.signal.aborted && !controller.signal.aborted) {
            c.enqueue(sse(_errorBody(httpError)));
            c.close();
          } else {
            c.error(error);
          }
          end(status === 200 ? 499 : status);
        }
      },
      cancel() {
        // The client went away: stop the generation now and give the slot back.
        if (!controller.signal.aborted) {
          controller.abort(new DOMException("The client disconnected", "AbortError"));
        }
        status = 499;
        finish();
        iterator.return(undefined as never).catch(() => {});
        end(499);
      },
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  }

  const handler = handle as ServeHandler;
  handler.stats = () => ({
    queueDepth,
    tokensGenerated: metrics.tokensGenerated,
    generationsAborted: metrics.generationsAborted,
  });
  (handler as { metrics: ServeMetrics }).metrics = metrics;
  handler.close = () => {
    closed = true;
    for (const c of running) c.abort(new DOMException("The server is shutting down", "AbortError"));
  };
  return handler;
}

function _positive(name: string, value: number, integer: boolean): void {
  if (typeof value !== "number" || !(value > 0) || (integer && !Number.isInteger(value))) {
    throw new RangeError(
      `Cannot create a handler: ${name} must be a positive ${integer ? "integer" : "number"}, got ${value}`,
    );
  }
}

function _envApiKey(): string | undefined {
  try {
    const state = Deno.permissions.querySync?.({ name: "env", variable: "SPECTR_API_KEY" }).state;
    return state === "granted" ? Deno.env.get("SPECTR_API_KEY") : undefined;
  } catch {
    return undefined;
  }
}

function _digest(text: string): Promise<Uint8Array> {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)).then((b) => new Uint8Array(b));
}

/** Constant-time check of the bearer token: compares SHA-256 digests byte by byte, no early exit. */
async function _authorize(request: Request, keyDigest: Promise<Uint8Array>): Promise<void> {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(.+)$/i.exec(header);
  const [expected, given] = await Promise.all([keyDigest, _digest(match?.[1] ?? "")]);
  let diff = match ? 0 : 1;
  for (let i = 0; i < expected.length; i++) diff |= expected[i] ^ given[i];
  if (diff !== 0) {
    throw new _HttpError(
      401,
      match ? "Incorrect API key provided" : "Missing bearer token: send 'Authorization: Bearer <key>'",
      "authentication_error",
      null,
      "invalid_api_key",
      { "www-authenticate": "Bearer" },
    );
  }
}

/** Reads a JSON object body, at most `maxBytes`, failing as soon as the limit is passed. */
async function _readJson(request: Request, maxBytes: number): Promise<Record<string, unknown>> {
  const type = request.headers.get("content-type") ?? "";
  if (type.split(";")[0].trim().toLowerCase() !== "application/json") {
    await request.body?.cancel().catch(() => {});
    throw new _HttpError(
      415,
      `Content-Type must be application/json, got '${type.slice(0, 100)}'`,
      undefined,
      null,
      "unsupported_media_type",
    );
  }
  const tooLarge = () =>
    new _HttpError(413, `The request body exceeds ${maxBytes} bytes`, undefined, null, "request_too_large");
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
    throw _param(
      null,
      `The body is not valid JSON: ${(error as Error).message}`.slice(0, 200),
      "invalid_json",
    );
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw _param(null, "The body must be a JSON object", "invalid_json");
  }
  return body as Record<string, unknown>;
}

function _param(param: string | null, message: string, code: string | null = null): _HttpError {
  return new _HttpError(400, message, "invalid_request_error", param, code);
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
    throw _param(
      name,
      `'${name}' must be ${integer ? "an integer" : "a number"}, got ${JSON.stringify(value)?.slice(0, 50)}`,
    );
  }
  if (value < min || value > max) {
    throw _param(name, `'${name}' must be between ${min} and ${max}, got ${value}`);
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
      throw _param("prompt", `'prompt' may hold one prompt, got ${value.length}`);
    }
  }
  throw _param("prompt", `'prompt' must be a string, an array of one string, or token ids`);
}

function _stop(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) {
    throw _param("stop", `'stop' must be a string or an array of strings`);
  }
  if (list.length > 4) throw _param("stop", `'stop' may hold at most 4 strings, got ${list.length}`);
  for (const s of list) {
    if (s.length === 0 || s.length > 256) {
      throw _param("stop", `each 'stop' string must have 1 to 256 characters`);
    }
  }
  return list;
}

function _usage(result: GenerationResult) {
  const prompt = result.stats.promptTokens;
  return {
    prompt_tokens: prompt,
    completion_tokens: result.tokens.length,
    total_tokens: prompt + result.tokens.length,
  };
}

function _extension(job: _Job, result: GenerationResult) {
  const s = result.stats;
  return {
    method: job.method,
    k: job.method === "autoregressive" ? null : job.method === "sd" ? 1 : job.k,
    draft_length: job.method === "autoregressive" ? null : job.draftLength,
    block_efficiency: s.blockEfficiency,
    acceptance_per_depth: s.acceptancePerDepth.map((x) => (Number.isFinite(x) ? x : null)),
    target_calls: s.targetCalls,
    tokens_per_second: s.tokensPerSecond,
  };
}

/** Maps a generator failure to an HTTP error: bad options 400, deadline 504, anything else 500. */
function _generationError(error: unknown, signal: AbortSignal, job: _Job): _HttpError {
  if (error instanceof _HttpError) return error;
  if (signal.aborted) {
    const reason = signal.reason as { name?: string } | undefined;
    if (reason?.name === "TimeoutError") {
      return new _HttpError(
        504,
        "The request passed its deadline and was aborted",
        "timeout",
        null,
        "timeout",
      );
    }
    return new _HttpError(499, "The request was aborted", "invalid_request_error", null, "aborted");
  }
  if (error instanceof RangeError || error instanceof TypeError) {
    const param = /context limit/.test(error.message) ? (job.kind === "chat" ? "messages" : "prompt") : null;
    return _param(param, error.message.slice(0, 300));
  }
  console.error("spectr serve: generation failed:", error);
  return new _HttpError(500, "Internal server error", "server_error", null, null);
}

function _errorBody(error: _HttpError) {
  return { error: { message: error.message, type: error.type, param: error.param, code: error.code } };
}

function _errorResponse(error: unknown): Response {
  if (!(error instanceof _HttpError)) {
    console.error("spectr serve: unexpected error:", error);
    error = new _HttpError(500, "Internal server error", "server_error", null, null);
  }
  const e = error as _HttpError;
  return new Response(JSON.stringify(_errorBody(e)), {
    status: e.status,
    headers: { ...JSON_HEADERS, ...e.headers },
  });
}
