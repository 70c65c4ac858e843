/**
 * HTTP errors of the serve handler in OpenAI's shape `{ error: { message, type, param, code } }`,
 * and the mapping of a generator failure to one. Stack traces and unexpected messages never leave
 * the process: they are logged and answered with a bare 500.
 *
 * @module
 */

import { ContextLimitError } from "../decode/errors.ts";

const JSON_HEADERS = { "content-type": "application/json" };

/** An error answered with its own status, OpenAI error fields and extra headers. */
export class HttpError extends Error {
  /**
   * Builds the error.
   *
   * @param status HTTP status.
   * @param message Message sent to the client.
   * @param type OpenAI error type.
   * @param param The request field at fault, if one is.
   * @param code A machine-readable code.
   * @param headers Extra response headers (e.g. `retry-after`, `allow`).
   */
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

/** A 400 `invalid_request_error` naming the request field at fault (`null`: the request as a whole). */
export function paramError(param: string | null, message: string, code: string | null = null): HttpError {
  return new HttpError(400, message, "invalid_request_error", param, code);
}

/** The OpenAI error body of an {@linkcode HttpError}; also sent as an SSE event when a stream fails. */
export function errorBody(
  error: HttpError,
): { error: { message: string; type: string; param: string | null; code: string | null } } {
  return { error: { message: error.message, type: error.type, param: error.param, code: error.code } };
}

/** The JSON response of an error: an {@linkcode HttpError} as it is, anything else a logged 500. */
export function errorResponse(error: unknown): Response {
  if (!(error instanceof HttpError)) {
    console.error("spectr serve: unexpected error:", error);
    error = new HttpError(500, "Internal server error", "server_error", null, null);
  }
  const e = error as HttpError;
  return new Response(JSON.stringify(errorBody(e)), {
    status: e.status,
    headers: { ...JSON_HEADERS, ...e.headers },
  });
}

/**
 * Maps a generator failure to an HTTP error: a deadline 504, another abort 499, a prompt over the
 * context limit ({@linkcode ContextLimitError}, told by type) 400 naming `prompt` (`messages` for a
 * chat) with code `context_length_exceeded`, other bad options 400, anything else a logged 500.
 *
 * @param error What the generator threw.
 * @param signal The generation's signal: when aborted, its reason decides the status.
 * @param kind The request's kind, which names the prompt's field.
 * @returns The error to answer with.
 */
export function generationError(
  error: unknown,
  signal: AbortSignal,
  kind: "completion" | "chat",
): HttpError {
  if (error instanceof HttpError) return error;
  if (signal.aborted) {
    const reason = signal.reason as { name?: string } | undefined;
    if (reason?.name === "TimeoutError") {
      return new HttpError(
        504,
        "The request passed its deadline and was aborted",
        "timeout",
        null,
        "timeout",
      );
    }
    return new HttpError(499, "The request was aborted", "invalid_request_error", null, "aborted");
  }
  if (error instanceof ContextLimitError) {
    return paramError(
      kind === "chat" ? "messages" : "prompt",
      error.message.slice(0, 300),
      "context_length_exceeded",
    );
  }
  if (error instanceof RangeError || error instanceof TypeError) {
    return paramError(null, error.message.slice(0, 300));
  }
  console.error("spectr serve: generation failed:", error);
  return new HttpError(500, "Internal server error", "server_error", null, null);
}
