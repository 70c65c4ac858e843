// OnnxCausalLM's target features (`features` option, `lastFeatures`) on a real onnxruntime
// session: the tiny Llama of src/convert converted with `hiddenStates: [0, 1]` and a 4D-capable
// mask. Features of a prefill followed by single-token steps, of a lazy fork's rows and of a tree's
// nodes must equal those of one full forward over the same tokens (float32 reordering noise only:
// TOL 1e-4 on hidden states of magnitude ~1–10).

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertGgufToOnnx } from "../convert/mod.ts";
import { minimalConfig, TINY, tinyLlamaGguf } from "../convert/_testing.ts";
import { OnnxCausalLM } from "./causal_lm.ts";
import { InvalidModelError } from "./errors.ts";
import type { BackendName } from "../backend/mod.ts";

const TOL = 1e-4;

async function tinyFolder(dir: string, name: string, hiddenStates: number[]): Promise<string> {
  await convertGgufToOnnx(tinyLlamaGguf(), join(dir, name), {
    dtypes: ["fp32"],
    attentionMask: "any",
    hiddenStates,
    writeExtras: ({ folder, file }) =>
      Deno.writeTextFile(join(folder, "config.json"), JSON.stringify(minimalConfig(file))),
  });
  return join(dir, name);
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  assert.ok(worst <= TOL, `${what}: max |Δ| = ${worst} > ${TOL}`);
}

/** Features of one full forward over `tokens` from an empty cache: `[tokens.length, F]`. */
async function fullFeatures(model: OnnxCausalLM, tokens: number[]): Promise<Float32Array> {
  model.reset();
  await model.append([tokens], 1);
  return model.lastFeatures().slice();
}

const dir = await Deno.makeTempDir();
const both = await tinyFolder(dir, "both", [1, 0]);
const none = await tinyFolder(dir, "none", []);
const backends: BackendName[] = ["wasm", "cpu"];

for (const backend of backends) {
  Deno.test(`features on ${backend}: prefill then single steps equal one full forward, per layer in ascending order`, async () => {
    await using model = await OnnxCausalLM.load(both, { backend, numThreads: 1, features: true });
    const f = TINY.hidden * 2;
    assert.equal(model.featureSize, f);
    assert.deepEqual(model.featureLayers, [0, 1]);
    const tokens = [1, 5, 6, 7, 9, 3, 12, 30];
    const full = await fullFeatures(model, tokens);
    assert.equal(full.length, tokens.length * f);
    model.reset();
    await model.append([tokens.slice(0, 4)], 1);
    const parts = [model.lastFeatures().slice()];
    for (let i = 4; i < tokens.length; i++) {
      await model.append([[tokens[i]]], 1);
      parts.push(model.lastFeatures().slice());
    }
    const joined = new Float32Array(full.length);
    let at = 0;
    for (const p of parts) {
      joined.set(p, at);
      at += p.length;
    }
    assertClose(joined, full, "prefill + steps");
    // A single layer: the matching half of each position's features.
    await using one = await OnnxCausalLM.load(both, { backend, numThreads: 1, features: [1] });
    assert.equal(one.featureSize, TINY.hidden);
    const layer1 = await fullFeatures(one, tokens);
    const expected = new Float32Array(tokens.length * TINY.hidden);
    for (let p = 0; p < tokens.length; p++) {
      expected.set(full.subarray(p * f + TINY.hidden, (p + 1) * f), p * TINY.hidden);
    }
    assertClose(layer1, expected, "layer 1 alone");
  });

  Deno.test(`features on ${backend}: a lazy fork returns every row's features, the shared prefix repeated`, async () => {
    await using model = await OnnxCausalLM.load(both, { backend, numThreads: 1, features: true });
    const f = model.featureSize!;
    const rows = [[1, 5, 6, 7, 8, 9], [1, 5, 6, 7, 10, 11], [1, 5, 6, 7, 12, 13]];
    model.fork(3);
    const calls = model.calls;
    await model.append(rows, 2);
    assert.equal(model.calls - calls, 2, "the shared prefix ran once at batch 1, then the rows");
    const got = model.lastFeatures().slice();
    assert.equal(got.length, 3 * 6 * f);
    for (let r = 0; r < 3; r++) {
      const full = await fullFeatures(model, rows[r]);
      assertClose(got.subarray(r * 6 * f, (r + 1) * 6 * f), full, `row ${r}`);
    }
    // After a plain fork (rows share nothing new): [rows, T, F] of the appended positions only.
    model.reset();
    await model.append([[1, 5, 6]], 1);
    model.fork(2);
    await model.append([[7, 8], [9, 10]], 1);
    const step = model.lastFeatures().slice();
    assert.equal(step.length, 2 * 2 * f);
    const full = await fullFeatures(model, [1, 5, 6, 9, 10]);
    assertClose(step.subarray(2 * f, 4 * f), full.subarray(3 * f), "row 1 after a fork");
  });

  Deno.test(`features on ${backend}: a tree's nodes equal the full forward of their paths`, async () => {
    await using model = await OnnxCausalLM.load(both, { backend, numThreads: 1, features: true });
    const f = model.featureSize!;
    await model.append([[1, 5, 6]], 1);
    //                   p  a  b  c     parents: p ← a ← b, a ← c
    await model.appendTree([9, 3, 4, 8], [-1, 0, 1, 1]);
    const tree = model.lastFeatures().slice();
    assert.equal(tree.length, 4 * f);
    model.keepTreePath([0, 1, 3]);
    const pathB = await fullFeatures(model, [1, 5, 6, 9, 3, 4]);
    const pathC = await fullFeatures(model, [1, 5, 6, 9, 3, 8]);
    assertClose(tree.subarray(0, 3 * f), pathB.subarray(3 * f), "nodes p a b");
    assertClose(tree.subarray(3 * f), pathC.subarray(5 * f), "node c");
  });
}

Deno.test("features: off by default, and a graph without the outputs asked for is an InvalidModelError naming them", async () => {
  await using plain = await OnnxCausalLM.load(both, { backend: "wasm", numThreads: 1 });
  assert.equal(plain.featureSize, undefined);
  await plain.append([[1, 2]], 1);
  assert.throws(() => plain.lastFeatures(), RangeError);
  await assert.rejects(
    () => OnnxCausalLM.load(none, { backend: "wasm", numThreads: 1, features: [1] }),
    (e: Error) =>
      e instanceof InvalidModelError && /hidden_states\.1/.test(e.message) &&
      /deno task model:smollm2/.test(e.message),
  );
  await assert.rejects(
    () => OnnxCausalLM.load(none, { backend: "wasm", numThreads: 1, features: true }),
    InvalidModelError,
  );
  await assert.rejects(
    () => OnnxCausalLM.load(both, { backend: "wasm", numThreads: 1, features: [2] }),
    RangeError,
  );
  await using fresh = await OnnxCausalLM.load(both, { backend: "wasm", numThreads: 1, features: true });
  assert.throws(() => fresh.lastFeatures(), /nothing was appended/);
});

Deno.test({
  name: "features: temp folder removed",
  fn: () => Deno.remove(dir, { recursive: true }),
});
