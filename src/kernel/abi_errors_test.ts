/**
 * Holds every copy of the kernel's ABI to the TypeScript mirror: `abi_errors.ts` (status codes,
 * the source of truth) and `wasm_abi.ts` (export signatures, `out` slots).
 *
 * - `wasm/src/error.rs`: the variants of `Error` and the codes `Error::code` returns, parsed from
 *   the source, must be exactly the keys and codes of {@linkcode ABI_ERRORS}.
 * - `wasm/src/lib.rs`: the `extern "C"` exports and their parameter counts, and the `OUT_*`
 *   constants, must be {@linkcode EXPORT_ARITY} and {@linkcode OUT}.
 * - `wasm/README.md`: its status table must list exactly the codes of {@linkcode ABI_ERRORS}.
 * - The committed `spectr_kernel.wasm`: called on bad input, it must return each code the table
 *   says (and point `out` at the offending element and row), and export every function with its
 *   arity.
 *
 * Power: a drifted code, say `Error::BadK => -14` in error.rs (or `BadK: { code: -14 }` here),
 * fails "error.rs and ABI_ERRORS agree" with `BadK: error.rs -14, abi_errors.ts -9`; a Rust
 * variant without a row here (or a row without a variant) fails it as missing; a Rust change
 * whose `.wasm` was not rebuilt fails "the committed module returns…" (the old binary still
 * returns the old code). Without these tests such a drift would only show as a wrong message or
 * an "unknown status" error on the path that hits it. The parsers are themselves checked to find
 * every arm (a parser that matched nothing would make the comparison vacuous), and a mutated
 * error.rs is checked to be caught.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ABI_ERRORS, type AbiErrorName, statusError } from "./abi_errors.ts";
import { bindExports, EXPORT_ARITY, OUT } from "./wasm_abi.ts";
import { KernelMemory } from "./wasm_memory.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));

const TS_CODES = new Map(Object.entries(ABI_ERRORS).map(([name, e]) => [name, e.code as number]));

/** The variants of `pub enum Error` in error.rs, in order. */
function rustVariants(errorRs: string): string[] {
  const body = errorRs.match(/pub enum Error \{\n([\s\S]*?)\n\}/)?.[1];
  assert.ok(body, "error.rs: no `pub enum Error { … }`");
  return [...body.matchAll(/^ {4}([A-Z]\w*)\b/gm)].map((m) => m[1]);
}

/** Variant → code from the `match` of `fn code` in error.rs. */
function rustCodes(errorRs: string): Map<string, number> {
  const body = errorRs.match(/pub fn code\(&self\) -> i32 \{([\s\S]*?)\n {4}\}/)?.[1];
  assert.ok(body, "error.rs: no `pub fn code(&self) -> i32 { … }`");
  const codes = new Map<string, number>();
  for (const m of body.matchAll(/Error::(\w+)(?: \{ \.\. \})? => (-?\d+),/g)) {
    assert.ok(!codes.has(m[1]), `error.rs: ${m[1]} matched twice in code()`);
    codes.set(m[1], Number(m[2]));
  }
  return codes;
}

/** Every disagreement between error.rs and {@linkcode ABI_ERRORS} (empty when they agree). */
function mismatches(errorRs: string): string[] {
  const problems: string[] = [];
  const variants = rustVariants(errorRs), codes = rustCodes(errorRs);
  for (const v of variants) if (!codes.has(v)) problems.push(`${v}: a variant with no arm in code()`);
  for (const [name, code] of codes) {
    if (!variants.includes(name)) problems.push(`${name}: an arm in code() but no variant`);
    const ts = TS_CODES.get(name);
    if (ts === undefined) problems.push(`${name}: in error.rs (${code}), missing in abi_errors.ts`);
    else if (ts !== code) problems.push(`${name}: error.rs ${code}, abi_errors.ts ${ts}`);
  }
  for (const [name, code] of TS_CODES) {
    if (!codes.has(name)) problems.push(`${name}: in abi_errors.ts (${code}), missing in error.rs`);
  }
  return problems;
}

Deno.test("ABI_ERRORS: codes are distinct negative integers", () => {
  const codes = [...TS_CODES.values()];
  assert.ok(codes.every((c) => Number.isInteger(c) && c < 0), `${codes}`);
  assert.equal(new Set(codes).size, codes.length, `duplicate codes: ${codes}`);
});

Deno.test("error.rs and ABI_ERRORS agree on every variant and code", async () => {
  const errorRs = await read("wasm/src/error.rs");
  // The parsers find every variant and arm (so an empty comparison cannot pass by accident).
  assert.equal(rustVariants(errorRs).length, TS_CODES.size);
  assert.equal(rustCodes(errorRs).size, TS_CODES.size);
  assert.deepEqual(mismatches(errorRs), []);
  // And they catch drift: a changed code, and a variant added on the Rust side only.
  const drifted = errorRs.replace("Error::BadK => -9,", "Error::BadK => -14,");
  assert.notEqual(drifted, errorRs, "error.rs no longer has `Error::BadK => -9,`: update this test");
  assert.deepEqual(mismatches(drifted), ["BadK: error.rs -14, abi_errors.ts -9"]);
  const added = errorRs.replace("    Empty,\n}", "    Empty,\n    Extra,\n}")
    .replace("Error::Empty => -13,", "Error::Empty => -13,\n            Error::Extra => -14,");
  assert.deepEqual(mismatches(added), ["Extra: in error.rs (-14), missing in abi_errors.ts"]);
});

Deno.test("lib.rs exports and out slots are those of wasm_abi.ts", async () => {
  const libRs = await read("wasm/src/lib.rs");
  const exports: Record<string, number> = {};
  for (const m of libRs.matchAll(/pub (?:unsafe )?extern "C" fn (spectr_\w+)\(([^)]*)\)/g)) {
    exports[m[1]] = m[2].split(",").filter((a) => a.trim() !== "").length;
  }
  assert.deepEqual(exports, { ...EXPORT_ARITY });
  const slots: Record<string, number> = {};
  for (const m of libRs.matchAll(/pub const OUT_(\w+): usize = (\d+);/g)) {
    slots[m[1].toLowerCase().replace(/_(\w)/g, (_, c: string) => c.toUpperCase())] = Number(m[2]);
  }
  assert.deepEqual(slots, { ...OUT });
});

Deno.test("wasm/README.md lists exactly the codes of ABI_ERRORS", async () => {
  const readme = await read("wasm/README.md");
  // Rows of the status table: `| −7 | meaning | message |` (U+2212 minus sign).
  const codes = [...readme.matchAll(/^\| [−-](\d+) \|/gm)].map((m) => -Number(m[1]));
  assert.deepEqual(codes.sort((a, b) => b - a), [...TS_CODES.values()].sort((a, b) => b - a));
});

Deno.test("the committed module exports every function with its arity and returns each code of ABI_ERRORS", async () => {
  const bytes = await Deno.readFile(new URL("./spectr_kernel.wasm", import.meta.url));
  const { instance } = await WebAssembly.instantiate(bytes, {});
  const x = bindExports(instance);
  for (const [name, arity] of Object.entries(EXPORT_ARITY)) {
    assert.equal((x[name as keyof typeof EXPORT_ARITY] as (...a: number[]) => number).length, arity, name);
  }
  const m = new KernelMemory(x);
  const F = (...v: number[]) => new Float32Array(v);
  /** Lays out rows a, b (and draws), runs `call`, returns [status, errorIndex, errorRow]. */
  const run = (
    a: Float32Array,
    b: Float32Array,
    call: (l: ReturnType<KernelMemory["layout"]>, n: number) => number,
    candidates: number[] = [],
    uniforms: number[] = [],
  ) => {
    const n = a.length, l = m.layout(n, Math.max(candidates.length, uniforms.length));
    m.put(a, l.a);
    m.put(b, l.b);
    m.putDraws(l, candidates, uniforms);
    m.f64.fill(0, l.out >> 3, (l.out >> 3) + 8);
    const status = call(l, n);
    return [status, m.out(l, OUT.errorIndex), m.out(l, OUT.errorRow)];
  };
  const warp = (logits: Float32Array, t = 1, topP = 1) =>
    run(logits, logits, (l, n) => x.spectr_warp(l.a, n, l.c, t, 0, topP, l.scratch, l.out));
  const rho = (p: Float32Array, q: Float32Array, k = 2) =>
    run(p, q, (l, n) => x.spectr_solve_rho(l.a, l.b, n, k, l.scratch, l.out));
  const select = (c: number[], u: number[]) =>
    run(
      F(0.5, 0.5),
      F(0.5, 0.5),
      (l, n) =>
        x.spectr_kseq_select(l.a, l.b, n, l.candidates, c.length, l.uniforms, 0, 0, 0, l.scratch, l.out),
      c,
      u,
    );
  const sample = (p: Float32Array, u: number[]) =>
    run(p, p, (l, n) => x.spectr_sample(l.a, n, l.uniforms, u.length, 1, l.ids, l.scratch, l.out), [], u);
  // [status, errorIndex, errorRow] each code must come with.
  const provoked: Partial<Record<AbiErrorName, number[]>> = {
    NanLogit: warp(F(0, NaN)),
    PosInfLogit: warp(F(0, 1, Infinity)),
    AllMasked: warp(F(-Infinity, -Infinity)),
    Temperature: warp(F(0, 1), -1),
    TopP: warp(F(0, 1), 1, 0),
    BadProb: rho(F(0.5, 0.5), F(0.5, -1)),
    ZeroMass: rho(F(0, 0), F(0.5, 0.5)),
    BadK: rho(F(0.5, 0.5), F(0.5, 0.5), 0),
    Candidate: select([0, 7], [0.5, 0.5, 0.5]),
    Uniform: select([0], [0.5, 1]),
    TooFew: sample(F(0.5, 0.5, 0), [0.1, 0.2, 0.3]),
    Empty: rho(F(), F()),
  };
  const want: Partial<Record<AbiErrorName, [number, number]>> = {
    NanLogit: [1, 0],
    PosInfLogit: [2, 0],
    BadProb: [1, 1],
    Candidate: [1, 0],
    Uniform: [1, 0],
    TooFew: [2, 0],
  };
  // TopK is reserved: a u32 top-k is always valid, so no input yields it.
  const reserved: AbiErrorName[] = ["TopK"];
  for (const [name, e] of Object.entries(ABI_ERRORS) as [AbiErrorName, { code: number }][]) {
    const got = provoked[name];
    if (reserved.includes(name)) {
      assert.equal(got, undefined);
      continue;
    }
    assert.ok(got, `${name}: no input provokes it in this test`);
    assert.deepEqual(got, [e.code, ...(want[name] ?? [0, 0])], name);
  }
  assert.deepEqual(rho(F(0.5, 0.5), F(0.5, 0.5)), [0, 0, 0]);
});

Deno.test("statusError fills each message from the out slots and the call, and names unknown statuses", () => {
  const ctx = {
    rows: ["target probs p", "draft probs q"] as [string, string],
    values: [[0.5, 0.5], [0.5, -1]] as [number[], number[]],
    action: "verify drafts",
    candidates: [0, 7],
    uniforms: [0.5, 1],
    vocab: 2,
  };
  assert.equal(
    statusError(ABI_ERRORS.BadProb.code, 1, 1, ctx).message,
    "Cannot use draft probs q: probability 1 is -1, expected a finite number >= 0",
  );
  assert.equal(
    statusError(ABI_ERRORS.BadProb.code, 1, 0, { ...ctx, values: [[0, 1e300], [1, 1]] }).message,
    "Cannot use target probs p: probability 1 is 1e+300, outside the float32 range of the WASM kernel",
  );
  assert.equal(
    statusError(ABI_ERRORS.Candidate.code, 1, 0, ctx).message,
    "Cannot verify drafts: candidate 1 is token 7, outside the vocabulary [0, 2)",
  );
  assert.equal(
    statusError(ABI_ERRORS.Uniform.code, 1, 0, ctx).message,
    "Cannot verify drafts: uniform 1 is 1, outside [0, 1)",
  );
  for (const e of Object.values(ABI_ERRORS)) {
    assert.ok(statusError(e.code, 0, 0, ctx) instanceof RangeError);
  }
  const unknown = statusError(-99, 0, 0, ctx);
  assert.equal(unknown.constructor, Error);
  assert.equal(unknown.message, "Cannot run the WASM kernel: unknown status -99");
});
