// Checks of models/smollm2-draft/onnx/model.onnx (run export_draft.py + simplify first):
// 1. PyTorch full forward (/tmp/smollm2_draft/ref/*) vs ONNX full forward, onnxruntime-web WASM 1 thread:
//    max |Δlogit| over finite logits, and the -inf pattern identical (q = 0 exactly outside the head)
// 2. ONNX full forward vs prefill + one-token steps through past_key_values/present
// 3. batch 2 with left padding vs each row alone
//   deno run -A tools/train/smollm2/verify_draft.ts
// tools/ script outside the module: pinned inline (deno.json is not ours to change)
// deno-lint-ignore no-import-prefix
import * as ort from "npm:onnxruntime-web@1.30.0";

ort.env.wasm.numThreads = 1;
const dir = Deno.env.get("DRAFT_DIR") ?? new URL("../../../models/smollm2-draft", import.meta.url).pathname;
const ref = Deno.env.get("REF_DIR") ?? "/tmp/smollm2_draft/ref";
const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
const s = await ort.InferenceSession.create(`${dir}/onnx/model.onnx`, { executionProviders: ["wasm"] });
const NL = cfg.num_hidden_layers, KVH = cfg.num_key_value_heads, HD = cfg.head_dim, V = cfg.vocab_size;
type Past = Record<string, ort.Tensor>;
const i64 = (a: number[], dims: number[]) => new ort.Tensor("int64", BigInt64Array.from(a.map(BigInt)), dims);
const emptyPast = (b: number): Past => {
  const p: Past = {};
  for (let i = 0; i < NL; i++) {
    for (const kv of ["key", "value"]) p[`past_key_values.${i}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [b, KVH, 0, HD]);
  }
  return p;
};
async function run(ids: number[][], mask: number[][], pos: number[][], past: Past) {
  const b = ids.length, t = ids[0].length;
  const out = await s.run({
    input_ids: i64(ids.flat(), [b, t]),
    attention_mask: i64(mask.flat(), [b, mask[0].length]),
    position_ids: i64(pos.flat(), [b, t]),
    ...past,
  });
  const next: Past = {};
  for (let i = 0; i < NL; i++) for (const kv of ["key", "value"]) next[`past_key_values.${i}.${kv}`] = out[`present.${i}.${kv}`];
  return { logits: out.logits.data as Float32Array, past: next };
}
let infMismatch = 0;
function maxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    const fa = Number.isFinite(a[i]), fb = Number.isFinite(b[i]);
    if (fa !== fb || (!fa && a[i] !== b[i])) infMismatch++;
    else if (fa) d = Math.max(d, Math.abs(a[i] - b[i]));
  }
  return d;
}
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const ones = (n: number) => new Array(n).fill(1);
const ids = Array.from(new Int32Array((await Deno.readFile(`${ref}/smollm2-draft.ids.bin`)).buffer));
const refLogits = new Float32Array((await Deno.readFile(`${ref}/smollm2-draft.logits.bin`)).buffer);
const L = ids.length;
const full = await run([ids], [ones(L)], [range(0, L)], emptyPast(1));
const dTorch = maxDiff(full.logits, refLogits);
let nInf = 0;
for (let i = 0; i < V; i++) if (full.logits[i] === -Infinity) nInf++;
// softmax of row 0 outside the head: exactly 0
let mx = -Infinity;
for (let i = 0; i < V; i++) mx = Math.max(mx, full.logits[i]);
let z = 0, outside = 0;
for (let i = 0; i < V; i++) z += Math.exp(full.logits[i] - mx);
for (let i = 0; i < V; i++) if (full.logits[i] === -Infinity) outside += Math.exp(full.logits[i] - mx) / z;

const P = 20;
let r = await run([ids.slice(0, P)], [ones(P)], [range(0, P)], emptyPast(1));
let dCache = maxDiff(r.logits, full.logits.slice(0, P * V));
for (let t = P; t < L; t++) {
  r = await run([[ids[t]]], [ones(t + 1)], [[t]], r.past);
  dCache = Math.max(dCache, maxDiff(r.logits, full.logits.slice(t * V, (t + 1) * V)));
}
// batch 2, left padding: row 0 = ids[0..40), row 1 = ids[8..32) left-padded; prefill + 8 steps
const A = ids.slice(0, 40), Bs = ids.slice(8, 32), nPad = A.length - Bs.length, steps = 8;
const contA = ids.slice(40, 48), contB = ids.slice(32, 40);
const soloA = await run([[...A, ...contA]], [ones(48)], [range(0, 48)], emptyPast(1));
const soloB = await run([[...Bs, ...contB]], [ones(32)], [range(0, 32)], emptyPast(1));
let mask = [ones(40), [...new Array(nPad).fill(0), ...ones(Bs.length)]];
let br = await run([A, [...new Array(nPad).fill(2), ...Bs]], mask, [range(0, 40), [...new Array(nPad).fill(0), ...range(0, Bs.length)]], emptyPast(2));
let dBatch = Math.max(
  maxDiff(br.logits.slice(39 * V, 40 * V), soloA.logits.slice(39 * V, 40 * V)),
  maxDiff(br.logits.slice((40 + 39) * V, 80 * V), soloB.logits.slice(23 * V, 24 * V)),
);
for (let st = 0; st < steps; st++) {
  mask = mask.map((row) => [...row, 1]);
  br = await run([[contA[st]], [contB[st]]], mask, [[40 + st], [Bs.length + st]], br.past);
  dBatch = Math.max(
    dBatch,
    maxDiff(br.logits.slice(0, V), soloA.logits.slice((40 + st) * V, (41 + st) * V)),
    maxDiff(br.logits.slice(V, 2 * V), soloB.logits.slice((Bs.length + st) * V, (Bs.length + st + 1) * V)),
  );
}
const res = {
  maxAbsDiff_torch_vs_onnx_full: dTorch,
  maxAbsDiff_onnx_full_vs_prefill_plus_steps: dCache,
  maxAbsDiff_batch2_leftpad_vs_solo: dBatch,
  inf_pattern_mismatches: infMismatch,
  minus_inf_logits_per_row: nInf,
  head_tokens: V - nInf,
  softmax_mass_outside_head: outside,
};
console.log(JSON.stringify(res));
if (infMismatch !== 0 || dTorch > 1e-3 || dCache > 1e-3 || dBatch > 1e-3 || outside !== 0) {
  console.error("FAILED");
  Deno.exit(1);
}
console.log("OK");
