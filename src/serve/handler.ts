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

import type { GenerationMethod, GenerationResult, SpeculativeGenerator } from "../generate/generator.ts";
import { errorBody, errorResponse, generationError, HttpError } from "./errors.ts";
import { ServeMetrics } from "./metrics.ts";
import { type Job, type JobContext, parseJob, readJson } from "./request.ts";
import { chunk, completionBody, finalChunk, responseMeta, sse } from "./responses.ts";

/** What the handler needs of a generator: `stream` and the tokenizer. */
export type ServeGenerator = Pick<SpeculativeGenerator, "stream" | "tokenizer">;

/** Server-side defaults for fields a request leaves out. */
export interface ServeDefaults {
  /**
   * Decoding method.
   * @default {"auto"}
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

const ROUTES: Record<string, string[]> = {
  "/v1/completions": ["POST"],
  "/v1/chat/completions": ["POST"],
  "/v1/models": ["GET"],
  "/healthz": ["GET"],
  "/metrics": ["GET"],
};

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
  const context: JobContext = {
    modelName,
    tokenizer: generator.tokenizer,
    maxPromptTokens,
    defaults: {
      method: "auto" as GenerationMethod,
      k: 4,
      draftLength: 4,
      maxTokens: 16,
      maxTokensLimit: 2048,
      ...options.defaults,
    },
  };
  const metrics = new ServeMetrics();
  const running = new Set<AbortController>();
  let queueDepth = 0;
  let closed = false;
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
      response = errorResponse(error);
    }
    // Streaming responses record themselves when their body ends.
    if (!response.headers.get("content-type")?.startsWith("text/event-stream")) done(response.status);
    return response;
  }

  async function route_(request: Request, path: string, done: (status: number) => void): Promise<Response> {
    const methods = ROUTES[path];
    if (!methods) {
      throw new HttpError(404, `Unknown route: ${request.method} ${path}`, undefined, null, "not_found");
    }
    if (path === "/healthz" && request.method === "GET") {
      return Response.json({ status: closed ? "closing" : "ok", queue_depth: queueDepth });
    }
    if (keyDigest) await _authorize(request, keyDigest);
    if (!methods.includes(request.method)) {
      throw new HttpError(
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
    const body = await readJson(request, maxBodyBytes);
    const job = parseJob(body, path === "/v1/chat/completions" ? "chat" : "completion", context);
    return await run(job, request, done);
  }

  async function run(job: Job, request: Request, done: (status: number) => void): Promise<Response> {
    if (closed) throw new HttpError(503, "The server is shutting down", "server_error", null, "closing");
    if (queueDepth >= maxQueue) {
      throw new HttpError(
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
      topK: job.topK,
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
    const meta = responseMeta(job.kind, modelName);
    // Run up to the first piece before answering, so that option and context errors get a status.
    let first: IteratorResult<string, GenerationResult>;
    try {
      first = await iterator.next();
    } catch (error) {
      finish();
      throw generationError(error, signal, job.kind);
    }
    if (!job.stream) {
      let step = first;
      try {
        while (!step.done) {
          countTokens(step.value);
          step = await iterator.next();
        }
      } catch (error) {
        throw generationError(error, signal, job.kind);
      } finally {
        finish();
      }
      record(step.value);
      return Response.json(completionBody(meta, job, step.value));
    }
    let pending: IteratorResult<string, GenerationResult> | undefined = first;
    let status = 200;
    let recorded = false;
    const end = (s: number) => {
      if (!recorded) done(s);
      recorded = true;
    };
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        if (job.kind === "chat") c.enqueue(sse(chunk(meta, "", null, true)));
      },
      async pull(c) {
        try {
          const step = pending ?? await iterator.next();
          pending = undefined;
          if (!step.done) {
            c.enqueue(sse(chunk(meta, countTokens(step.value), null)));
            return;
          }
          finish();
          record(step.value);
          c.enqueue(sse(finalChunk(meta, job, step.value)));
          c.enqueue(sse("[DONE]"));
          c.close();
          end(status);
        } catch (error) {
          finish();
          const httpError = generationError(error, signal, job.kind);
          status = httpError.status;
          if (!request.signal.aborted && !controller.signal.aborted) {
            c.enqueue(sse(errorBody(httpError)));
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
    throw new HttpError(
      401,
      match ? "Incorrect API key provided" : "Missing bearer token: send 'Authorization: Bearer <key>'",
      "authentication_error",
      null,
      "invalid_api_key",
      { "www-authenticate": "Bearer" },
    );
  }
}
