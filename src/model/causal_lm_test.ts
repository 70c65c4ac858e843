import assert from "node:assert/strict";
import { OnnxCausalLM } from "./causal_lm.ts";
import { granted, haveModel, maxAbsDiff, modelPath, randomTokens } from "./_testing.ts";

/** fp32 logits, KV cache vs one full forward, same backend: measured ~1e-6; bound 1e-4. */
const TOL_CACHE = 1e-4;
/** wasm vs cpu (different kernels, same fp32 math): bound 1e-4. */
const TOL_BACKENDS = 1e-4;
/** webgpu vs wasm (GPU reductions in another order, possibly fp16 accumulation in places): bound 1e-2. */
const TOL_WEBGPU = 1e-2;

const have = { target: haveModel("target"), draft: haveModel("draft") };
const ffi = granted("ffi", "the wasm-vs-cpu comparisons");

async function fullForward(model: OnnxCausalLM, tokens: number[]): Promise<Float32Array> {
  model.reset();
  const logits = await model.append([tokens], tokens.length);
  model.reset();
  return logits;
}

function positions(logits: Float32Array, from: number, to: number, vocab: number): Float32Array {
  return logits.slice(from * vocab, to * vocab);
}

for (const name of ["target", "draft"] as const) {
  Deno.test({
    name:
      `The ${name} model's logits with the KV cache (prefill, steps of 1 and 3, fork to 3 rows, select and crop) equal a full forward's`,
    ignore: !have[name],
    async fn() {
      const model = await OnnxCausalLM.load(modelPath(name), { backend: "wasm", numThreads: 1 });
      try {
        const v = model.vocabSize;
        const base = randomTokens(14, v, 11); // prefill 10, step 1, step 3
        const branch = [randomTokens(2, v, 21), randomTokens(2, v, 22), randomTokens(2, v, 23)];
        const extra = randomTokens(2, v, 31);
        const fulls: Float32Array[] = [];
        for (const b of branch) fulls.push(await fullForward(model, [...base, ...b]));
        const cropped = [...base, branch[1][0], ...extra];
        const fullCropped = await fullForward(model, cropped);
        let worst = 0;
        const check = (got: Float32Array, want: Float32Array, what: string) => {
          const d = maxAbsDiff(got, want);
          worst = Math.max(worst, d);
          assert.ok(d <= TOL_CACHE, `${what}: max abs diff ${d} > ${TOL_CACHE}`);
        };
        model.reset();
        check(await model.append([base.slice(0, 10)], 10), positions(fulls[0], 0, 10, v), "prefill");
        check(await model.append([base.slice(10, 11)], 1), positions(fulls[0], 10, 11, v), "step of 1");
        check(await model.append([base.slice(11, 14)], 3), positions(fulls[0], 11, 14, v), "step of 3");
        model.fork(3);
        const forked = await model.append(branch, 2);
        for (let r = 0; r < 3; r++) {
          check(forked.subarray(r * 2 * v, (r + 1) * 2 * v), positions(fulls[r], 14, 16, v), `fork row ${r}`);
        }
        model.select(1, 15);
        assert.equal(model.rows, 1);
        assert.equal(model.length, 15);
        check(await model.append([extra], 2), positions(fullCropped, 15, 17, v), "after select + crop");
        console.log(
          `${name}: KV cache vs full forward, max abs logit diff ${
            worst.toExponential(2)
          } (bound ${TOL_CACHE})`,
        );
      } finally {
        await model.dispose();
      }
    },
  });

  Deno.test({
    name:
      `A fork of the ${name} model before the prompt is fed runs the shared prompt once and still gives the full forward's logits`,
    ignore: !have[name],
    async fn() {
      const model = await OnnxCausalLM.load(modelPath(name), { backend: "wasm", numThreads: 1 });
      try {
        const v = model.vocabSize;
        const prompt = randomTokens(9, v, 5);
        const drafts = [
          randomTokens(3, v, 6),
          randomTokens(3, v, 7),
          randomTokens(3, v, 8),
          randomTokens(3, v, 9),
        ];
        const fulls: Float32Array[] = [];
        for (const d of drafts) fulls.push(await fullForward(model, [...prompt, ...d]));
        model.reset();
        const calls = model.calls;
        model.fork(4);
        const got = await model.append(drafts.map((d) => [...prompt, ...d]), 4);
        assert.equal(model.calls - calls, 2, "one batch-1 forward of the shared prompt, one batch-4 forward");
        let worst = 0;
        for (let r = 0; r < 4; r++) {
          worst = Math.max(
            worst,
            maxAbsDiff(got.subarray(r * 4 * v, (r + 1) * 4 * v), positions(fulls[r], 8, 12, v)),
          );
        }
        assert.ok(
          maxAbsDiff(got.subarray(v, 2 * v), got.subarray(5 * v, 6 * v)) > 1e-3,
          "different drafts, different logits",
        );
        console.log(`${name}: lazy fork vs full forward, max abs logit diff ${worst.toExponential(2)}`);
        assert.ok(worst <= TOL_CACHE, `max abs diff ${worst} > ${TOL_CACHE}`);
        model.select(2, 11);
        assert.equal(model.length, 11);
        const next = await model.append([[drafts[2][2]]], 1);
        assert.ok(maxAbsDiff(next, positions(fulls[2], 11, 12, v)) <= TOL_CACHE);
      } finally {
        await model.dispose();
      }
    },
  });

  Deno.test({
    name: `The wasm and cpu backends give the same ${name} logits`,
    ignore: !have[name] || !ffi,
    async fn() {
      const wasm = await OnnxCausalLM.load(modelPath(name), { backend: "wasm", numThreads: 1 });
      const cpu = await OnnxCausalLM.load(modelPath(name), { backend: "cpu", numThreads: 1 });
      try {
        assert.equal(cpu.backend, "cpu");
        const v = wasm.vocabSize;
        const prompt = randomTokens(20, v, 3);
        const rows = [randomTokens(3, v, 4), randomTokens(3, v, 5)];
        let worst = 0;
        const outs: Float32Array[][] = [];
        for (const model of [wasm, cpu]) {
          const out = [await model.append([prompt], 20)];
          model.fork(2);
          out.push(await model.append(rows, 3));
          outs.push(out);
        }
        for (let i = 0; i < outs[0].length; i++) worst = Math.max(worst, maxAbsDiff(outs[0][i], outs[1][i]));
        console.log(
          `${name}: wasm vs cpu, max abs logit diff ${worst.toExponential(2)} (bound ${TOL_BACKENDS})`,
        );
        assert.ok(worst <= TOL_BACKENDS, `max abs diff ${worst} > ${TOL_BACKENDS}`);
      } finally {
        await wasm.dispose();
        await cpu.dispose();
      }
    },
  });
}

const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
if (!adapter) console.warn("SKIP: no WebGPU adapter in this runtime; the webgpu smoke test is ignored");

Deno.test({
  name: "The webgpu backend gives the wasm backend's draft logits on a few tokens (smoke test)",
  ignore: !adapter || !have.draft,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const wasm = await OnnxCausalLM.load(modelPath("draft"), { backend: "wasm", numThreads: 1 });
    const webgpu = await OnnxCausalLM.load(modelPath("draft"), { backend: "webgpu" });
    try {
      assert.equal(webgpu.backend, "webgpu");
      const tokens = randomTokens(5, wasm.vocabSize, 9);
      const a = [await wasm.append([tokens.slice(0, 4)], 4), await wasm.append([tokens.slice(4)], 1)];
      const b = [await webgpu.append([tokens.slice(0, 4)], 4), await webgpu.append([tokens.slice(4)], 1)];
      const d = Math.max(maxAbsDiff(a[0], b[0]), maxAbsDiff(a[1], b[1]));
      console.log(`draft: webgpu vs wasm, max abs logit diff ${d.toExponential(2)} (bound ${TOL_WEBGPU})`);
      assert.ok(d <= TOL_WEBGPU, `max abs diff ${d} > ${TOL_WEBGPU}`);
    } finally {
      await wasm.dispose();
      await webgpu.dispose();
    }
  },
});
