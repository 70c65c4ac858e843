// The dtype and merged-decoder variants of a model folder (fp16, q8, decoder_model_merged) on a tiny
// seeded fixture, src/model/testdata/variants (made by tools/train/export_variants.py; see
// src/model/testdata/README.md): the file each option picks, and the logits through the KV-cache
// operations (prefill, steps, fork, select + crop, a lazy fork before the prompt) against the fp32 model.
import assert from "node:assert/strict";
import { createDecoder } from "../decode/mod.ts";
import { loadKernel } from "../kernel/wasm.ts";
import type { Tensor } from "../backend/types.ts";
import { type BackendOptions, createOnnxSession } from "./session.ts";
import { OnnxCausalLM } from "./causal_lm.ts";
import { ModelNotFoundError } from "./errors.ts";
import { openModelFolder } from "./loader.ts";
import { argmax, granted, maxAbsDiff, randomTokens } from "./_testing.ts";

const DIR = new URL("./testdata/variants", import.meta.url).pathname;

/**
 * fp32 model, KV cache vs a full uncached forward (same backend): float32 rounding only; bound 1e-4.
 */
const TOL_CACHE = 1e-4;
/**
 * Merged decoder vs model.onnx: the with-past branch is model.onnx's body and the no-past branch the
 * same weights exported without past inputs, so only float32 rounding differs; bound 1e-5 (measured 0:
 * onnxruntime runs the same kernels on the same shapes).
 */
const TOL_MERGED = 1e-5;
/**
 * fp16 vs fp32, max |Δlogit| over every logit of the trace: float16 weights (relative rounding
 * 2^-11 ≈ 4.9e-4), float16 activations, KV cache and logits through 2 layers, logits of size
 * up to ~13 (float16 spacing there 2^-7 ≈ 7.8e-3); bound 0.05 (about 6 float16 ulps at the
 * largest logits, 1.8 % of the logits' standard deviation ≈ 2.84; measured 1.5e-2 on wasm and cpu).
 */
const TOL_FP16 = 0.05;
/**
 * q8 (dynamic uint8 quantisation, one scale per weight matrix and per activation tensor) vs fp32: errors of
 * order (range / 255) per matmul input add up through 2 layers and the tied output projection, and the
 * activation scale depends on everything in the batch (prefill vs step vs 3 rows), so q8 is not
 * compared position by position at a tight bound but by max |Δlogit| relative to the fp32 logits'
 * standard deviation (bound 0.35; measured 0.22 = 0.62 / 2.84 on wasm and cpu) and by top-1 agreement
 * (bound ≥ 80 % of positions; measured 91 %: a random model has near-ties that 0.6 flips).
 */
const TOL_Q8_RELATIVE = 0.35;
const MIN_Q8_TOP1 = 0.8;

const ffi = granted("ffi", "the cpu (onnxruntime-node) variant tests");
const BACKENDS = ffi ? (["wasm", "cpu"] as const) : (["wasm"] as const);

function load(backend: "wasm" | "cpu", options: BackendOptions = {}): Promise<OnnxCausalLM> {
  return OnnxCausalLM.load(DIR, { backend, numThreads: 1, ...options });
}

/** A fixed sequence of KV-cache operations; returns every append's logits and the full-forward references. */
async function trace(model: OnnxCausalLM): Promise<Float32Array[]> {
  const v = model.vocabSize;
  const base = randomTokens(16, v, 11);
  const branch = [randomTokens(2, v, 21), randomTokens(2, v, 22), randomTokens(2, v, 23)];
  const extra = randomTokens(2, v, 31);
  const prompt = randomTokens(9, v, 5);
  const drafts = [randomTokens(3, v, 6), randomTokens(3, v, 7), randomTokens(3, v, 8), randomTokens(3, v, 9)];
  const out: Float32Array[] = [];
  model.reset();
  out.push(await model.append([base.slice(0, 10)], 10)); // prefill
  for (let i = 10; i < 13; i++) out.push(await model.append([base.slice(i, i + 1)], 1)); // steps of 1
  out.push(await model.append([base.slice(13, 16)], 3)); // step of 3
  model.fork(3);
  out.push(await model.append(branch, 2)); // 3 rows
  model.select(1, 17); // row 1, cropped to 16 + 1 tokens
  assert.equal(model.rows, 1);
  assert.equal(model.length, 17);
  out.push(await model.append([extra], 2));
  // a fork before the prompt is fed: the shared prompt at batch 1 (past 0), then 4 rows (past 8)
  model.reset();
  const calls = model.calls;
  model.fork(4);
  out.push(await model.append(drafts.map((d) => [...prompt, ...d]), 4));
  assert.equal(model.calls - calls, 2);
  model.select(2, 11);
  out.push(await model.append([[drafts[2][2]]], 1));
  // the same sequences by full uncached forwards (single row, past 0)
  const full = async (tokens: number[], from: number) => {
    model.reset();
    const logits = await model.append([tokens], tokens.length);
    return logits.slice(from * v);
  };
  out.push(await full([...base, ...branch[0]], 0));
  out.push(await full([...base, branch[1][0], ...extra], 0));
  for (const d of drafts) out.push(await full([...prompt, ...d], 0));
  return out;
}

/** The trace's cached logits rebuilt from its full forwards (fp32 self-check). */
function cachedFromFull(t: Float32Array[], v: number): Float32Array[] {
  const [fullBase, fullCropped, ...fullDrafts] = t.slice(9);
  const pos = (x: Float32Array, from: number, to: number) => x.slice(from * v, to * v);
  return [
    pos(fullBase, 0, 10),
    pos(fullBase, 10, 11),
    pos(fullBase, 11, 12),
    pos(fullBase, 12, 13),
    pos(fullBase, 13, 16),
    null as unknown as Float32Array, // fork rows: checked only across models
    pos(fullCropped, 17, 19),
    new Float32Array([...fullDrafts.flatMap((d) => [...pos(d, 8, 12)])]),
    pos(fullDrafts[2], 11, 12),
  ];
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function std(x: Float32Array): number {
  let s = 0, s2 = 0;
  for (const a of x) {
    s += a;
    s2 += a * a;
  }
  const m = s / x.length;
  return Math.sqrt(s2 / x.length - m * m);
}

function top1Agreement(a: Float32Array, b: Float32Array, v: number): number {
  let same = 0;
  const n = a.length / v;
  for (let r = 0; r < n; r++) if (argmax(a, r, v) === argmax(b, r, v)) same++;
  return same / n;
}

const fp32Trace = new Map<string, Float32Array[]>();
async function reference(backend: "wasm" | "cpu"): Promise<Float32Array[]> {
  let t = fp32Trace.get(backend);
  if (t === undefined) {
    const model = await load(backend, { dtype: "fp32", merged: false });
    try {
      t = await trace(model);
    } finally {
      await model.dispose();
    }
    fp32Trace.set(backend, t);
  }
  return t;
}

Deno.test("Each dtype / merged option picks its ONNX file of the fixture folder", async () => {
  const cases: [BackendOptions, string][] = [
    [{}, "onnx/model.onnx"],
    [{ dtype: "fp32" }, "onnx/model.onnx"],
    [{ dtype: "fp16" }, "onnx/model_fp16.onnx"],
    [{ dtype: "q8" }, "onnx/model_quantized.onnx"],
    [{ merged: true }, "onnx/decoder_model_merged.onnx"],
    [{ dtype: "fp32", merged: false }, "onnx/model.onnx"],
  ];
  for (const [options, file] of cases) {
    const model = await load("wasm", options);
    try {
      assert.equal(model.file, file, JSON.stringify(options));
      assert.equal(model.vocabSize, 512);
    } finally {
      await model.dispose();
    }
  }
  // merged undefined and no model.onnx: the merged decoder
  const files: Record<string, Uint8Array> = {};
  for (const name of ["config.json", "onnx/decoder_model_merged.onnx"]) {
    files[name] = await Deno.readFile(`${DIR}/${name}`);
  }
  const onlyMerged = await OnnxCausalLM.load(files, { backend: "wasm", numThreads: 1 });
  try {
    assert.equal(onlyMerged.file, "onnx/decoder_model_merged.onnx");
  } finally {
    await onlyMerged.dispose();
  }
  // no fp16 merged decoder in the folder: a typed error naming it
  await assert.rejects(
    () => load("wasm", { dtype: "fp16", merged: true }),
    (e: Error) => e instanceof ModelNotFoundError && e.message.includes("decoder_model_merged_fp16.onnx"),
  );
});

Deno.test("The fixture's graphs have the I/O types of real exports (fp16: float16 KV and logits; merged: use_cache_branch)", async () => {
  const folder = await openModelFolder(DIR);
  const expect: [BackendOptions, string, string | undefined][] = [
    [{ dtype: "fp32", merged: false }, "float32", undefined],
    [{ dtype: "fp16", merged: false }, "float16", undefined],
    [{ dtype: "q8", merged: false }, "float32", undefined],
    [{ dtype: "fp32", merged: true }, "float32", "bool"],
  ];
  for (const [options, kv, branch] of expect) {
    const session = await createOnnxSession(folder, { backend: "wasm", numThreads: 1, ...options });
    try {
      assert.equal(session.input("past_key_values.1.value")?.type, kv, session.file);
      assert.equal(session.output("present.0.key")?.type, kv, session.file);
      assert.equal(session.output("logits")?.type, kv, session.file);
      assert.equal(session.input("use_cache_branch")?.type, branch, session.file);
    } finally {
      await session.release();
    }
  }
});

for (const backend of BACKENDS) {
  Deno.test(`${backend}: the fixture's fp32 logits with the KV cache equal its full forwards`, async () => {
    const t = await reference(backend);
    const v = 512;
    const want = cachedFromFull(t, v);
    let worst = 0;
    for (let i = 0; i < want.length; i++) {
      if (want[i] === null) continue;
      worst = Math.max(worst, maxAbsDiff(t[i], want[i]));
    }
    console.log(`${backend} fp32 fixture: KV cache vs full forward, max |Δlogit| ${worst.toExponential(2)}`);
    assert.ok(worst <= TOL_CACHE, `${worst} > ${TOL_CACHE}`);
  });

  Deno.test(`${backend}: the merged decoder (use_cache_branch) gives model.onnx's logits through prefill, steps, fork, select and a lazy fork`, async () => {
    const ref = await reference(backend);
    const model = await load(backend, { merged: true });
    try {
      assert.equal(model.file, "onnx/decoder_model_merged.onnx");
      const got = await trace(model);
      const d = maxAbsDiff(concat(got), concat(ref));
      console.log(
        `${backend} merged vs model.onnx: max |Δlogit| ${d.toExponential(2)} (bound ${TOL_MERGED})`,
      );
      assert.ok(d <= TOL_MERGED, `${d} > ${TOL_MERGED}`);
    } finally {
      await model.dispose();
    }
    await model.dispose(); // idempotent
    assert.throws(() => model.reset(), /disposed/);
  });

  Deno.test(`${backend}: the fp16 model (float16 weights, KV cache and logits) gives the fp32 logits within ${TOL_FP16}`, async () => {
    const ref = await reference(backend);
    const model = await load(backend, { dtype: "fp16" });
    try {
      assert.equal(model.file, "onnx/model_fp16.onnx");
      const got = await trace(model);
      for (const x of got) assert.ok(x instanceof Float32Array && x.every(Number.isFinite));
      const a = concat(got), b = concat(ref);
      const d = maxAbsDiff(a, b);
      const top1 = top1Agreement(a, b, 512);
      console.log(
        `${backend} fp16 vs fp32: max |Δlogit| ${d.toExponential(2)} (bound ${TOL_FP16}; fp32 logit std ${
          std(b).toFixed(2)
        }), top-1 agreement ${(top1 * 100).toFixed(1)} %`,
      );
      assert.ok(d <= TOL_FP16, `${d} > ${TOL_FP16}`);
    } finally {
      await model.dispose();
    }
  });

  Deno.test(`${backend}: the q8 model (dynamic uint8 quantisation) tracks the fp32 logits (relative max |Δ| ≤ ${TOL_Q8_RELATIVE}, top-1 ≥ ${MIN_Q8_TOP1})`, async () => {
    const ref = await reference(backend);
    const model = await load(backend, { dtype: "q8" });
    try {
      assert.equal(model.file, "onnx/model_quantized.onnx");
      const got = await trace(model);
      const a = concat(got), b = concat(ref);
      const scale = std(b);
      const rel = maxAbsDiff(a, b) / scale;
      const top1 = top1Agreement(a, b, 512);
      console.log(
        `${backend} q8 vs fp32: max |Δlogit| ${(rel * scale).toFixed(3)} = ${rel.toFixed(3)} × logit std ${
          scale.toFixed(2)
        } (bound ${TOL_Q8_RELATIVE}), top-1 agreement ${(top1 * 100).toFixed(1)} % of ${
          a.length / 512
        } positions`,
      );
      assert.ok(rel <= TOL_Q8_RELATIVE, `${rel} > ${TOL_Q8_RELATIVE}`);
      assert.ok(top1 >= MIN_Q8_TOP1, `${top1} < ${MIN_Q8_TOP1}`);
    } finally {
      await model.dispose();
    }
  });
}

Deno.test("The merged decoder's use_cache_branch selects its branch (false ignores a non-empty past)", async () => {
  const folder = await openModelFolder(DIR);
  const session = await createOnnxSession(folder, { backend: "wasm", numThreads: 1, merged: true });
  try {
    const ids = (xs: number[]) => session.tensor("int64", BigInt64Array.from(xs, BigInt), [1, xs.length]);
    const empty = (n: number) => session.tensor("float32", new Float32Array(0), [1, 2, n, 8]);
    const feeds = (tokens: number[], past: number, kv: Tensor[] | null, branch: boolean) => {
      const f: Record<string, Tensor> = {
        input_ids: ids(tokens),
        // the no-past branch attends to the new tokens only, so its mask covers just them
        attention_mask: ids(new Array((branch ? past : 0) + tokens.length).fill(1)),
        position_ids: ids(tokens.map((_, i) => past + i)),
        use_cache_branch: session.tensor("bool", new Uint8Array([branch ? 1 : 0]), [1]),
      };
      for (let i = 0; i < 2; i++) {
        for (const [j, name] of ["key", "value"].entries()) {
          f[`past_key_values.${i}.${name}`] = kv ? kv[2 * i + j] : empty(0);
        }
      }
      return f;
    };
    const first = await session.run(feeds([1, 7, 9], 0, null, false));
    const present = [0, 1].flatMap((i) => ["key", "value"].map((n) => first[`present.${i}.${n}`]));
    const withPast = await session.run(feeds([4], 3, present, true));
    const noPast = await session.run(feeds([4], 3, present, false));
    assert.deepEqual(withPast["present.0.key"].dims, [1, 2, 4, 8]);
    assert.deepEqual(noPast["present.0.key"].dims, [1, 2, 1, 8]);
    assert.ok(maxAbsDiff(withPast.logits.data as Float32Array, noPast.logits.data as Float32Array) > 1e-3);
  } finally {
    await session.release();
  }
});

Deno.test("K-SEQ (k 3, L 3) at temperature 0, merged fp32 target and fp16 draft of the fixture, equals the target's greedy decoding", async () => {
  const target = await load("wasm", { merged: true });
  const draft = await load("wasm", { dtype: "fp16" });
  try {
    const prompt = randomTokens(8, target.vocabSize, 77);
    const expected: number[] = [];
    let logits = await target.append([prompt], 1);
    while (expected.length < 24) {
      expected.push(argmax(logits, 0, target.vocabSize));
      if (expected.length < 24) logits = await target.append([[expected.at(-1)!]], 1);
    }
    target.reset();
    const decoder = createDecoder("kseq", {
      target,
      draft,
      kernel: await loadKernel(),
      k: 3,
      draftLength: 3,
      warp: { temperature: 0 },
    });
    const { tokens, stats } = await decoder.generate(prompt, { maxNewTokens: 24, seed: 3 });
    console.log(`fixture merged <- fp16: ${stats.blocks} blocks for ${tokens.length} tokens`);
    assert.deepEqual(tokens, expected);
  } finally {
    await target.dispose();
    await draft.dispose();
  }
});

Deno.test("Every variant survives 300 fork / append / select cycles with flat memory, and dispose is idempotent", async () => {
  const CYCLES = 300, WINDOW = 100, RSS_BOUND_MB = 16;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  for (const options of [{ dtype: "fp16" }, { dtype: "q8" }, { merged: true }] as BackendOptions[]) {
    const model = await load("wasm", options);
    const rss: number[] = [];
    try {
      const v = model.vocabSize;
      await model.append([randomTokens(12, v, 1)], 1);
      for (let c = 0; c < CYCLES; c++) {
        model.fork(3);
        const rows = [0, 1, 2].map((r) => randomTokens(3, v, 1000 * c + r));
        const logits = await model.append(rows, 3);
        assert.equal(logits.length, 3 * 3 * v);
        model.select(c % 3, 12 + (c % 4)); // back to 12..15 tokens: rows differ, lengths vary
        rss.push(Deno.memoryUsage().rss);
      }
    } finally {
      await model.dispose();
    }
    await model.dispose(); // idempotent
    await assert.rejects(() => model.append([[1]], 1), /disposed/);
    const growth = (median(rss.slice(-WINDOW)) - median(rss.slice(0, WINDOW))) / 2 ** 20;
    console.log(
      `${model.file}: RSS growth over ${CYCLES} cycles ${growth.toFixed(1)} MB (bound ${RSS_BOUND_MB})`,
    );
    assert.ok(growth <= RSS_BOUND_MB, `${growth} MB > ${RSS_BOUND_MB} MB`);
  }
});
