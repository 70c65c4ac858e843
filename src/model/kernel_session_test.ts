// The kernel backend (src/model/kernel_session.ts) against onnxruntime-web on the same ONNX files:
// the bundled GPT-2 target and Llama draft, through OnnxCausalLM as users drive them (prefill, one
// cached step, fork to rows, a tree), and greedy generation token for token.
//
// Tolerance: both compute in float32 with different summation orders. onnxruntime's own two builds
// (cpu vs wasm) differ on these models by a few 1e-6 in the logits (measured below, in the same
// run); we allow 50× the larger of that and 1e-6, and the power checks (a wrong RoPE layout, a mask
// one position too wide) must exceed it by far.
import assert from "node:assert/strict";
import { OnnxCausalLM } from "./causal_lm.ts";
import { SpeculativeGenerator } from "../generate/generator.ts";

const TARGET = new URL("../../models/target", import.meta.url);
const DRAFT = new URL("../../models/draft", import.meta.url);

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The logits of one fixed script of calls: prefill 12, one step, fork to 3 rows × 3 tokens. */
async function script(model: OnnxCausalLM): Promise<Float32Array[]> {
  const prompt = [1, 45, 907, 33, 18, 2600, 71, 4, 300, 12, 99, 512];
  const out = [await model.append([prompt], prompt.length)];
  out.push(await model.append([[77]], 1));
  model.fork(3);
  out.push(await model.append([[5, 6, 7], [8, 9, 10], [11, 12, 13]], 3));
  model.select(1, model.length - 1);
  out.push(await model.append([[400]], 1));
  return out;
}

for (const [name, folder] of [["target (gpt2)", TARGET], ["draft (llama)", DRAFT]] as const) {
  Deno.test(`kernel backend: ${name} logits equal onnxruntime's over prefill, cache, rows`, async () => {
    const kernel = await OnnxCausalLM.load(folder, { backend: "kernel" });
    const wasm = await OnnxCausalLM.load(folder, { backend: "wasm", numThreads: 1 });
    const cpu = await OnnxCausalLM.load(folder, { backend: "cpu", numThreads: 1 });
    try {
      assert.equal(kernel.backend, "kernel");
      const [k, w, c] = [await script(kernel), await script(wasm), await script(cpu)];
      const ortSpread = Math.max(...w.map((x, i) => maxDiff(x, c[i])));
      const limit = 50 * Math.max(ortSpread, 1e-6);
      const ours = w.map((x, i) => maxDiff(x, k[i]));
      console.log(
        `${name}: kernel vs ort wasm ${ours.map((d) => d.toExponential(1))}; ort cpu vs wasm ${
          ortSpread.toExponential(1)
        }; limit ${limit.toExponential(1)}`,
      );
      for (const d of ours) assert.ok(d <= limit, `kernel vs onnxruntime ${d} > ${limit}`);
    } finally {
      await Promise.all([kernel.dispose(), wasm.dispose(), cpu.dispose()]);
    }
  });
}

Deno.test("kernel backend: a tree scored in one call equals the same paths scored as rows", async () => {
  const model = await OnnxCausalLM.load(DRAFT, { backend: "kernel" });
  const rowsModel = await OnnxCausalLM.load(DRAFT, { backend: "wasm", numThreads: 1 });
  try {
    assert.equal(model.supportsTree, true);
    const prompt = [1, 300, 301, 302];
    await model.append([prompt], 1);
    await rowsModel.append([prompt], 1);
    // two drafts sharing their first token: 10 11 12 and 10 13 14
    const tree = await model.appendTree([10, 11, 12, 13, 14], [-1, 0, 1, 0, 3]);
    rowsModel.fork(2);
    const rows = await rowsModel.append([[10, 11, 12], [10, 13, 14]], 3);
    const v = model.vocabSize;
    const node = (i: number) => tree.subarray(i * v, (i + 1) * v);
    const row = (r: number, j: number) => rows.subarray((r * 3 + j) * v, (r * 3 + j + 1) * v);
    const pairs: [number, number, number][] = [[0, 0, 0], [1, 0, 1], [2, 0, 2], [0, 1, 0], [3, 1, 1], [
      4,
      1,
      2,
    ]];
    for (const [i, r, j] of pairs) assert.ok(maxDiff(node(i), row(r, j)) < 1e-4, `node ${i}`);
    model.keepTreePath([0, 3, 4]);
    rowsModel.select(1, rowsModel.length);
    const a = await model.append([[20]], 1), b = await rowsModel.append([[20]], 1);
    assert.ok(maxDiff(a, b) < 1e-4);
  } finally {
    await Promise.all([model.dispose(), rowsModel.dispose()]);
  }
});

Deno.test("kernel backend: greedy speculative text equals onnxruntime-web's token for token", async () => {
  const options = { maxNewTokens: 48, method: "spectr", k: 2, draftLength: 3, temperature: 0 } as const;
  const kernel = await SpeculativeGenerator.fromPretrained({
    target: TARGET,
    draft: DRAFT,
    backend: "kernel",
  });
  const wasm = await SpeculativeGenerator.fromPretrained({
    target: TARGET,
    draft: DRAFT,
    backend: "wasm",
    numThreads: 1,
  });
  try {
    const a = await kernel.generate("Once upon a time", options);
    const b = await wasm.generate("Once upon a time", options);
    assert.deepEqual(a.tokens, b.tokens);
    assert.equal(a.tokens.length, 48);
  } finally {
    await Promise.all([kernel.dispose(), wasm.dispose()]);
  }
});

Deno.test("kernel backend: power checks — doubled positions and a mask that sees one future token are caught", async () => {
  const { createOnnxSession } = await import("./backend.ts");
  const { openModelFolder } = await import("./loader.ts");
  for (const folder of [TARGET, DRAFT]) {
    const files = await openModelFolder(folder);
    const kernel = await createOnnxSession(files, { backend: "kernel" });
    const ort = await createOnnxSession(files, { backend: "wasm", numThreads: 1 });
    try {
      const t = 6;
      const ids = new BigInt64Array([1, 45, 907, 33, 18, 2600].map(BigInt));
      const positions = (step: number) =>
        new BigInt64Array(Array.from({ length: t }, (_, i) => BigInt(i * step)));
      const mask2d = new BigInt64Array(t).fill(1n);
      const feeds = (s: typeof kernel, pos: BigInt64Array, mask: BigInt64Array, dims: number[]) => {
        const f: Record<string, ReturnType<typeof s.tensor>> = {
          input_ids: s.tensor("int64", ids, [1, t]),
          attention_mask: s.tensor("int64", mask, dims),
          position_ids: s.tensor("int64", pos, [1, t]),
        };
        for (const name of s.inputNames.filter((n) => n.startsWith("past_key_values"))) {
          f[name] = s.tensor("float32", new Float32Array(0), [
            1,
            s.input(name)!.shape![1] as number,
            0,
            s.input(name)!.shape![3] as number,
          ]);
        }
        return f;
      };
      const logits = async (s: typeof kernel, pos: BigInt64Array, mask: BigInt64Array, dims: number[]) =>
        (await s.run(feeds(s, pos, mask, dims))).logits.data as Float32Array;
      const want = await logits(ort, positions(1), mask2d, [1, t]);
      const right = maxDiff(await logits(kernel, positions(1), mask2d, [1, t]), want);
      // doubled, not shifted: RoPE attention depends on position differences only
      const doubled = maxDiff(await logits(kernel, positions(2), mask2d, [1, t]), want);
      const causal = new BigInt64Array(t * t);
      for (let i = 0; i < t; i++) for (let j = 0; j < t; j++) causal[i * t + j] = j <= i + 1 ? 1n : 0n; // one too wide
      const peeking = maxDiff(await logits(kernel, positions(1), causal, [1, 1, t, t]), want);
      console.log(
        `${folder.pathname.split("/").at(-1)}: right ${right.toExponential(1)}, doubled positions ${
          doubled.toFixed(3)
        }, peeking mask ${peeking.toFixed(3)}`,
      );
      assert.ok(right < 1e-4);
      assert.ok(doubled > 100 * right && doubled > 1e-2, `doubled positions caught: ${doubled}`);
      assert.ok(peeking > 100 * right && peeking > 1e-2, `a mask one token wide caught: ${peeking}`);
    } finally {
      await Promise.all([kernel.release(), ort.release()]);
    }
  }
});
