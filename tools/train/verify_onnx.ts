// Equivalence + timing checks for models/{target,draft}/onnx/model.onnx in onnxruntime-web (WASM, 1 thread).
//   deno run -A tools/train/verify_onnx.ts            (run export.py first: it writes tools/train/ref/*)
// 1. PyTorch full forward (reference logits) vs ONNX full forward (past_seq = 0)
// 2. ONNX full forward vs prefill + one-token steps through past_key_values/present
// 3. batch 2 with left padding + attention_mask (prefill + steps) vs each sequence alone
// 4. time a single-token step with past length 64, target/draft ratio
// tools/ script outside the module: pinned inline (deno.json is not ours to change)
// deno-lint-ignore no-import-prefix
import * as ort from "npm:onnxruntime-web@1.30.0";

ort.env.wasm.numThreads = 1;
const here = new URL(".", import.meta.url).pathname;
const models = Deno.env.get("MODELS_DIR") ?? new URL("../../models", import.meta.url).pathname;

type Past = Record<string, ort.Tensor>;
interface M {
  s: ort.InferenceSession;
  layers: number;
  kvh: number;
  hd: number;
  vocab: number;
}

async function load(name: string): Promise<M> {
  const cfg = JSON.parse(await Deno.readTextFile(`${models}/${name}/config.json`));
  const s = await ort.InferenceSession.create(`${models}/${name}/onnx/model.onnx`, {
    executionProviders: ["wasm"],
  });
  if (cfg.model_type === "gpt2") {
    return { s, layers: cfg.n_layer, kvh: cfg.n_head, hd: cfg.n_embd / cfg.n_head, vocab: cfg.vocab_size };
  }
  return {
    s,
    layers: cfg.num_hidden_layers,
    kvh: cfg.num_key_value_heads,
    hd: cfg.head_dim,
    vocab: cfg.vocab_size,
  };
}

const i64 = (a: number[], dims: number[]) => new ort.Tensor("int64", BigInt64Array.from(a.map(BigInt)), dims);

function emptyPast(m: M, batch: number): Past {
  const p: Past = {};
  for (let i = 0; i < m.layers; i++) {
    for (const kv of ["key", "value"]) {
      p[`past_key_values.${i}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [
        batch,
        m.kvh,
        0,
        m.hd,
      ]);
    }
  }
  return p;
}

async function run(m: M, ids: number[][], mask: number[][], pos: number[][], past: Past) {
  const b = ids.length, t = ids[0].length;
  const out = await m.s.run({
    input_ids: i64(ids.flat(), [b, t]),
    attention_mask: i64(mask.flat(), [b, mask[0].length]),
    position_ids: i64(pos.flat(), [b, t]),
    ...past,
  });
  const next: Past = {};
  for (let i = 0; i < m.layers; i++) {
    for (const kv of ["key", "value"]) next[`past_key_values.${i}.${kv}`] = out[`present.${i}.${kv}`];
  }
  return { logits: out.logits.data as Float32Array, dims: out.logits.dims, past: next };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const ones = (n: number) => new Array(n).fill(1);
const results: Record<string, Record<string, number>> = {};
const timing: Record<string, { m: M; feeds: Record<string, ort.Tensor> }> = {};

for (const name of ["target", "draft"]) {
  const m = await load(name);
  const ids = Array.from(new Int32Array((await Deno.readFile(`${here}ref/${name}.ids.bin`)).buffer));
  const ref = new Float32Array((await Deno.readFile(`${here}ref/${name}.logits.bin`)).buffer);
  const L = ids.length, V = m.vocab;

  // 1. full forward, past_seq = 0
  const full = await run(m, [ids], [ones(L)], [range(0, L)], emptyPast(m, 1));
  const dTorch = maxDiff(full.logits, ref);

  // 2. prefill 20 + 28 single-token steps with the KV cache
  const P = 20;
  let r = await run(m, [ids.slice(0, P)], [ones(P)], [range(0, P)], emptyPast(m, 1));
  let dCache = maxDiff(r.logits, full.logits.slice(0, P * V));
  let dCacheTorch = maxDiff(r.logits, ref.slice(0, P * V));
  for (let t = P; t < L; t++) {
    r = await run(m, [[ids[t]]], [ones(t + 1)], [[t]], r.past);
    dCache = Math.max(dCache, maxDiff(r.logits, full.logits.slice(t * V, (t + 1) * V)));
    dCacheTorch = Math.max(dCacheTorch, maxDiff(r.logits, ref.slice(t * V, (t + 1) * V)));
  }

  // 3. batch 2, left padding: row 0 = ids[0..40), row 1 = ids[8..32) padded on the left with <pad>=2;
  //    prefill then 8 steps, compared with each row run alone (no padding)
  const A = ids.slice(0, 40), Bs = ids.slice(8, 32), nPad = A.length - Bs.length, steps = 8;
  const contA = ids.slice(40, 48), contB = ids.slice(32, 40);
  const soloA = await run(m, [[...A, ...contA]], [ones(48)], [range(0, 48)], emptyPast(m, 1));
  const soloB = await run(m, [[...Bs, ...contB]], [ones(32)], [range(0, 32)], emptyPast(m, 1));
  let mask = [ones(40), [...new Array(nPad).fill(0), ...ones(Bs.length)]];
  let br = await run(
    m,
    [A, [...new Array(nPad).fill(2), ...Bs]],
    mask,
    [range(0, 40), [...new Array(nPad).fill(0), ...range(0, Bs.length)]],
    emptyPast(m, 2),
  );
  // compare last prefill position of each row
  let dBatch = Math.max(
    maxDiff(br.logits.slice(39 * V, 40 * V), soloA.logits.slice(39 * V, 40 * V)),
    maxDiff(br.logits.slice((40 + 39) * V, (40 + 40) * V), soloB.logits.slice(23 * V, 24 * V)),
  );
  // all real (unpadded) prefill positions of row 1
  for (let t = 0; t < Bs.length; t++) {
    dBatch = Math.max(
      dBatch,
      maxDiff(
        br.logits.slice((40 + nPad + t) * V, (40 + nPad + t + 1) * V),
        soloB.logits.slice(t * V, (t + 1) * V),
      ),
    );
  }
  for (let s = 0; s < steps; s++) {
    mask = mask.map((row) => [...row, 1]);
    br = await run(m, [[contA[s]], [contB[s]]], mask, [[40 + s], [Bs.length + s]], br.past);
    dBatch = Math.max(
      dBatch,
      maxDiff(br.logits.slice(0, V), soloA.logits.slice((40 + s) * V, (41 + s) * V)),
      maxDiff(br.logits.slice(V, 2 * V), soloB.logits.slice((Bs.length + s) * V, (Bs.length + s + 1) * V)),
    );
  }

  // 4. timing feeds: one-token step with past length 64 (batch 1); timed below, interleaved
  const ctx = range(0, 64).map((i) => ids[i % L]);
  const pre = await run(m, [ctx], [ones(64)], [range(0, 64)], emptyPast(m, 1));
  timing[name] = {
    m,
    feeds: {
      input_ids: i64([ids[0]], [1, 1]),
      attention_mask: i64(ones(65), [1, 65]),
      position_ids: i64([64], [1, 1]),
      ...pre.past,
    },
  };
  results[name] = {
    maxAbsDiff_torch_vs_onnx_full: dTorch,
    maxAbsDiff_onnx_full_vs_prefill_plus_steps: dCache,
    maxAbsDiff_torch_vs_onnx_prefill_plus_steps: dCacheTorch,
    maxAbsDiff_batch2_leftpad_vs_solo: dBatch,
  };
  console.log(name, JSON.stringify(results[name]));
}
// Timing: the machine is shared, so target and draft are measured in alternating rounds of 30 steps
// (each round's ratio sees similar load); report median and min per-step time and the median round ratio.
const REPS = Number(Deno.env.get("REPS") ?? 15), N = 30;
const per: Record<string, number[]> = { target: [], draft: [] };
const ratios: number[] = [];
for (const name of ["target", "draft"]) {
  for (let i = 0; i < 20; i++) await timing[name].m.s.run(timing[name].feeds);
}
for (let rep = 0; rep < REPS; rep++) {
  for (const name of ["target", "draft"]) {
    const { m, feeds } = timing[name];
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await m.s.run(feeds);
    per[name].push((performance.now() - t0) / N);
  }
  ratios.push(per.target[rep] / per.draft[rep]);
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const name of ["target", "draft"]) {
  results[name].step_ms_past64_median = Number(med(per[name]).toFixed(4));
  results[name].step_ms_past64_min = Number(Math.min(...per[name]).toFixed(4));
  console.log(name, JSON.stringify(results[name]));
}
console.log(
  `target/draft step-time ratio (past 64, batch 1, onnxruntime-web 1.30.0 WASM, numThreads 1): ` +
    `median of per-round ratios ${med(ratios).toFixed(2)}, ratio of medians ${
      (med(per.target) / med(per.draft)).toFixed(2)
    }, ` +
    `ratio of mins ${
      (Math.min(...per.target) / Math.min(...per.draft)).toFixed(2)
    } (${REPS} rounds x ${N} steps)`,
);
