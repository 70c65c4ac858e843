/**
 * Response bodies of the serve handler in OpenAI's shapes: the whole completion or chat completion,
 * the chunks of a stream as server-sent events, and the final chunk with `usage` and the `spectr`
 * extension (method, block efficiency, acceptance per depth, target calls, throughput).
 *
 * @module
 */

import type { GenerationResult } from "../generate/generator.ts";
import type { Job } from "./request.ts";

/** What every body and chunk of one response repeats. */
export interface ResponseMeta {
  /** `cmpl-…` or `chatcmpl-…`. */
  id: string;
  /** Unix seconds. */
  created: number;
  /** The served model's id. */
  model: string;
  /** Which route the request came from. */
  kind: Job["kind"];
}

const FINISH = { length: "length", eos: "stop", stop: "stop", context: "length" } as const;
const encoder = new TextEncoder();

/** A fresh id and timestamp for one response. */
export function responseMeta(kind: Job["kind"], model: string): ResponseMeta {
  const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${crypto.randomUUID()}`;
  return { id, created: Math.floor(Date.now() / 1000), model, kind };
}

/** The body of a non-streamed completion or chat completion. */
export function completionBody(
  meta: ResponseMeta,
  job: Job,
  result: GenerationResult,
): Record<string, unknown> {
  const finishReason = FINISH[result.finishReason];
  const choice = meta.kind === "chat"
    ? {
      index: 0,
      message: { role: "assistant", content: result.text },
      logprobs: null,
      finish_reason: finishReason,
    }
    : { index: 0, text: result.text, logprobs: null, finish_reason: finishReason };
  return {
    id: meta.id,
    object: meta.kind === "chat" ? "chat.completion" : "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [choice],
    usage: _usage(result),
    spectr: _extension(job, result),
  };
}

/**
 * One chunk of a stream: for a chat a `delta` (with `role` when `roleFirst`, with `content` unless
 * `text` is undefined), for a completion the `text` (empty when undefined).
 */
export function chunk(
  meta: ResponseMeta,
  text: string | undefined,
  finishReason: string | null,
  roleFirst = false,
): Record<string, unknown> {
  const base = {
    id: meta.id,
    object: meta.kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: meta.created,
    model: meta.model,
  };
  if (meta.kind === "chat") {
    const delta: Record<string, string> = {};
    if (roleFirst) delta.role = "assistant";
    if (text !== undefined) delta.content = text;
    return { ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] };
  }
  return { ...base, choices: [{ index: 0, text: text ?? "", logprobs: null, finish_reason: finishReason }] };
}

/** The last chunk of a stream: no text, the finish reason, `usage` and the `spectr` extension. */
export function finalChunk(meta: ResponseMeta, job: Job, result: GenerationResult): Record<string, unknown> {
  const last = chunk(meta, meta.kind === "chat" ? undefined : "", FINISH[result.finishReason]);
  return { ...last, usage: _usage(result), spectr: _extension(job, result) };
}

/** One server-sent event: `data: <JSON, or the string as is>` and a blank line. */
export function sse(data: unknown): Uint8Array {
  return encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
}

function _usage(result: GenerationResult) {
  const prompt = result.stats.promptTokens;
  return {
    prompt_tokens: prompt,
    completion_tokens: result.tokens.length,
    total_tokens: prompt + result.tokens.length,
  };
}

function _extension(job: Job, result: GenerationResult) {
  const s = result.stats;
  // A fixed speculative method reports the k and L it ran with; autoregressive has none, auto's are in plans.
  return {
    method: job.method,
    k: s.k ?? null,
    draft_length: s.draftLength ?? null,
    plans: s.plans.map((p) => ({
      method: p.method,
      k: p.k,
      draft_length: p.draftLength,
      blocks: p.blocks,
      tokens: p.tokens,
      tokens_per_second: Number.isFinite(p.tokensPerSecond) ? p.tokensPerSecond : null,
      predicted_tokens_per_second: Number.isFinite(p.predictedTokensPerSecond)
        ? p.predictedTokensPerSecond
        : null,
    })),
    block_efficiency: s.blockEfficiency,
    acceptance_per_depth: s.acceptancePerDepth.map((x) => (Number.isFinite(x) ? x : null)),
    target_calls: s.targetCalls,
    tokens_per_second: s.tokensPerSecond,
  };
}
