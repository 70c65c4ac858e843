/**
 * The kernels' input errors: the ABI status code each WASM export returns for it and the message
 * both kernels throw. This table is the one source of both. `validate.ts` and `reference.ts` build
 * their messages with it, the WASM wrapper (`wasm.ts`) turns a status back into the error with
 * {@linkcode statusError}, and `abi_errors_test.ts` checks the copies that cannot import it:
 * the codes in `wasm/src/error.rs` (`Error::code`), the code table in `wasm/README.md`, and the
 * statuses the committed `spectr_kernel.wasm` actually returns.
 *
 * Why TypeScript is the source and not `error.rs`: the messages exist only on the TypeScript side
 * (the `no_std` crate has no strings), the table has to be inside the edge bundle (it cannot read
 * a Rust file at run time), and deriving the Rust `match` from this table would need a code
 * generator in the build of a committed, byte-for-byte reproducible `.wasm`. So Rust keeps its own
 * `match` and a test holds it to this table.
 *
 * Each key is the name of the matching variant of `Error` in `wasm/src/error.rs`.
 *
 * @module
 */

/**
 * Every ABI status code (negative; 0 is success) and the message of its error, keyed by the Rust
 * variant name. `message` takes what the status alone cannot say (the offending value, the row's
 * name `what`: "logits", "target probs p", "draft probs q" or "probs"): the WASM wrapper fills it
 * from the call's arguments, the reference from its own checks.
 *
 * @example The message of a NaN logit, and its code
 * ```ts
 * import { ABI_ERRORS } from "./abi_errors.ts";
 * import assert from "node:assert/strict";
 * assert.equal(ABI_ERRORS.NanLogit.code, -1);
 * assert.equal(ABI_ERRORS.NanLogit.message("logits", 3), "Cannot warp logits: logit 3 is NaN");
 * ```
 */
export const ABI_ERRORS = {
  /** A logit is NaN (errorIndex: the logit). */
  NanLogit: {
    code: -1,
    message: (what: string, i: number): string => `Cannot warp ${what}: logit ${i} is NaN`,
  },
  /** A logit is +Infinity (errorIndex: the logit). */
  PosInfLogit: {
    code: -2,
    message: (what: string, i: number): string => `Cannot warp ${what}: logit ${i} is +Infinity`,
  },
  /** Every logit of a row is -Infinity. */
  AllMasked: {
    code: -3,
    message: (what: string): string => `Cannot warp ${what}: every logit is -Infinity`,
  },
  /** Temperature negative, NaN or infinite. */
  Temperature: {
    code: -4,
    message: (temperature: unknown): string =>
      `Cannot warp logits: temperature must be a finite number >= 0, got ${temperature}`,
  },
  /** top-k not a non-negative integer (reserved in the kernel: a u32 is always valid). */
  TopK: {
    code: -5,
    message: (topK: unknown): string =>
      `Cannot warp logits: topK must be an integer >= 0 (0 disables), got ${topK}`,
  },
  /** top-p outside (0, 1]. */
  TopP: {
    code: -6,
    message: (topP: unknown): string => `Cannot warp logits: topP must be in (0, 1], got ${topP}`,
  },
  /** A probability is negative, NaN or +Infinity (errorIndex: the entry, errorRow: the row). */
  BadProb: {
    code: -7,
    message: (what: string, i: number, x: unknown): string =>
      `Cannot use ${what}: probability ${i} is ${x}, expected a finite number >= 0`,
    /** WASM only: a finite f64 entry that the copy into the kernel's f32 row made invalid. */
    float32: (what: string, i: number, x: unknown): string =>
      `Cannot use ${what}: probability ${i} is ${x}, outside the float32 range of the WASM kernel`,
  },
  /** Every probability of a row is 0 (errorRow: the row). */
  ZeroMass: {
    code: -8,
    message: (what: string): string => `Cannot use ${what}: every probability is 0`,
  },
  /** k outside [1, 1024]. */
  BadK: {
    code: -9,
    message: (k: unknown): string => `Cannot verify drafts: k must be an integer in [1, 1024], got ${k}`,
  },
  /** A candidate id outside [0, vocab) (errorIndex: the candidate's position). */
  Candidate: {
    code: -10,
    message: (i: number, token: unknown, vocab: unknown): string =>
      `Cannot verify drafts: candidate ${i} is token ${token}, outside the vocabulary [0, ${vocab})`,
  },
  /** A uniform outside [0, 1) (errorIndex: its position); `action` is "verify drafts" or "sample". */
  Uniform: {
    code: -11,
    message: (action: string, i: number, u: unknown): string =>
      `Cannot ${action}: uniform ${i} is ${u}, outside [0, 1)`,
  },
  /** Fewer tokens with mass than distinct draws asked for (errorIndex: draws done). */
  TooFew: {
    code: -12,
    message: (count: unknown, drawn: number): string =>
      `Cannot sample ${count} distinct tokens: only ${drawn} have non-zero probability`,
  },
  /** The row is empty (n = 0); `verb` is "warp" for logits, "use" for probabilities. */
  Empty: {
    code: -13,
    message: (verb: "warp" | "use", what: string): string => `Cannot ${verb} ${what}: the row is empty`,
  },
} as const;

/** The name of an ABI error: a key of {@linkcode ABI_ERRORS} and a variant of the Rust `Error`. */
export type AbiErrorName = keyof typeof ABI_ERRORS;

/** What the wrapper knows about a failed call, to fill in the message of its status. */
export interface StatusContext {
  /** Names of rows 0 and 1 in messages, e.g. `["target probs p", "draft probs q"]`. */
  rows: [string, string];
  /** The caller's rows (for the offending value in messages). */
  values?: [ArrayLike<number>, ArrayLike<number>?];
  /** The action in uniform errors: "verify drafts", "sample" or "warp logits". */
  action: string;
  /** The caller's uniforms. */
  uniforms?: ArrayLike<number>;
  /** The caller's candidate ids. */
  candidates?: ArrayLike<number>;
  /** The number of draws asked for (sample). */
  count?: number;
  /** The vocabulary size. */
  vocab?: number;
  /** The resolved warp options. */
  options?: { temperature: number; topK: number; topP: number };
}

/**
 * The error for a kernel status: the reference's class (`RangeError`) and message, filled in from
 * the `out` slots (`index`, `row`) and the call's arguments.
 *
 * @param status The (non-zero) status an export returned.
 * @param index `out[5]`: the offending element / candidate / uniform, or the draws done.
 * @param row `out[6]`: 0 for the target / only row, 1 for the draft row.
 * @param ctx The call's arguments.
 * @returns A `RangeError`, or a plain `Error` for a status not in {@linkcode ABI_ERRORS}.
 * @example
 * ```ts
 * import { ABI_ERRORS, statusError } from "./abi_errors.ts";
 * import assert from "node:assert/strict";
 * const e = statusError(ABI_ERRORS.ZeroMass.code, 0, 1, {
 *   rows: ["target probs p", "draft probs q"],
 *   action: "verify drafts",
 * });
 * assert.equal(e.message, "Cannot use draft probs q: every probability is 0");
 * ```
 */
export function statusError(status: number, index: number, row: number, ctx: StatusContext): Error {
  const r = row === 1 ? 1 : 0;
  const what = ctx.rows[r];
  const i = index;
  const E = ABI_ERRORS;
  switch (status) {
    case E.NanLogit.code:
      return new RangeError(E.NanLogit.message("logits", i));
    case E.PosInfLogit.code:
      return new RangeError(E.PosInfLogit.message("logits", i));
    case E.AllMasked.code:
      return new RangeError(E.AllMasked.message("logits"));
    case E.Temperature.code:
      return new RangeError(E.Temperature.message(ctx.options?.temperature));
    case E.TopK.code:
      return new RangeError(E.TopK.message(ctx.options?.topK));
    case E.TopP.code:
      return new RangeError(E.TopP.message(ctx.options?.topP));
    case E.BadProb.code: {
      const x = ctx.values?.[r]?.[i];
      // A value the caller passed as a valid f64 went bad on the f32 copy in.
      if (typeof x === "number" && x >= 0 && x !== Infinity) {
        return new RangeError(E.BadProb.float32(what, i, x));
      }
      return new RangeError(E.BadProb.message(what, i, x));
    }
    case E.ZeroMass.code:
      return new RangeError(E.ZeroMass.message(what));
    case E.BadK.code:
      return new RangeError(E.BadK.message(ctx.candidates?.length));
    case E.Candidate.code:
      return new RangeError(E.Candidate.message(i, ctx.candidates?.[i], ctx.vocab));
    case E.Uniform.code:
      return new RangeError(E.Uniform.message(ctx.action, i, ctx.uniforms?.[i]));
    case E.TooFew.code:
      return new RangeError(E.TooFew.message(ctx.count, i));
    case E.Empty.code:
      return new RangeError(E.Empty.message("use", what));
    default:
      return new Error(`Cannot run the WASM kernel: unknown status ${status}`);
  }
}
