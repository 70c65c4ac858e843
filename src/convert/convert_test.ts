import assert from "node:assert/strict";
import { join } from "node:path";
import { OnnxCausalLM } from "../model/causal_lm.ts";
import { BackendUnavailableError } from "../model/errors.ts";
import { granted } from "../model/_testing.ts";
import { GgmlType } from "./ggml_types.ts";
import { InvalidGgufError, parseGguf, UnsupportedGgufError } from "./gguf.ts";
import { convertGgufToOnnx, type ConvertOptions } from "./mod.ts";
import type { Q4_1Mode } from "./nbits.ts";
import { writeGguf } from "./_gguf_writer.ts";
import {
  maxDiff,
  minimalConfig,
  ReferenceLlama,
  TINY,
  tinyLlamaGguf,
  tinyLlamaMetadata,
  tinyLlamaTensors,
  type TinyOptions,
} from "./_testing.ts";

/** fp32 graph vs the float64 reference: measured ~1e-5 on the tiny model. */
const TOL = 1e-4;
const ffi = granted("ffi", "the onnxruntime-node (cpu) runs of the converted tiny model");
const ort = { sanitizeResources: false, sanitizeOps: false };

async function convertTiny(bytes: Uint8Array, options: ConvertOptions = {}): Promise<string> {
  const parent = await Deno.makeTempDir({ prefix: "spectr-convert-" });
  const folder = join(parent, "tiny");
  await convertGgufToOnnx(bytes, folder, {
    ...options,
    writeExtras: async ({ folder, file }) => {
      await Deno.writeTextFile(join(folder, "config.json"), JSON.stringify(minimalConfig(file)));
    },
  });
  return folder;
}

async function load(
  folder: string,
  backend: "wasm" | "cpu",
  dtype: "fp32" | "q4",
): Promise<OnnxCausalLM | null> {
  try {
    return await OnnxCausalLM.load(folder, { backend, dtype, numThreads: 1 });
  } catch (error) {
    if (error instanceof BackendUnavailableError) {
      console.warn(`SKIP: ${backend}: ${error.message}`);
      return null;
    }
    throw error;
  }
}

function argmax(x: ArrayLike<number>, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[from + i] > x[from + best]) best = i;
  return best;
}

/** Prompt, cached steps of 1 and 2, then a fork to 3 rows: every logit against the reference. */
async function checkAgainstReference(model: OnnxCausalLM, ref: ReferenceLlama, tol: number): Promise<number> {
  const V = TINY.vocab;
  let worst = 0;
  const check = (got: Float32Array, want: Float64Array, what: string) => {
    const d = maxDiff(got, want);
    worst = Math.max(worst, d);
    assert.ok(d <= tol, `${what}: max |Δlogit| ${d} > ${tol}`);
  };
  const prompt = [1, 5, 9, 13, 20, 33, 7];
  ref.reset();
  model.reset();
  check(await model.append([prompt], prompt.length), ref.forward(prompt), "prompt");
  check(await model.append([[8]], 1), ref.forward([8]), "step of 1");
  check(await model.append([[3, 39]], 2), ref.forward([3, 39]), "step of 2");
  const branches = [[4, 5], [6, 0], [11, 12]];
  model.fork(3);
  const got = await model.append(branches, 2);
  branches.forEach((branch, r) => {
    ref.reset();
    const want = ref.forward([...prompt, 8, 3, 39, ...branch]).slice((prompt.length + 3) * V);
    check(got.slice(r * 2 * V, (r + 1) * 2 * V), want, `fork row ${r}`);
  });
  // greedy decoding from the prompt: the same 12 tokens
  model.reset();
  ref.reset();
  let a = await model.append([prompt], 1);
  let b: Float64Array = ref.forward(prompt).slice((prompt.length - 1) * V);
  const mine: number[] = [], theirs: number[] = [];
  for (let i = 0; i < 12; i++) {
    mine.push(argmax(a, 0, V));
    theirs.push(argmax(b, 0, V));
    a = await model.append([[mine[i]]], 1);
    b = ref.forward([theirs[i]]);
  }
  assert.deepEqual(mine, theirs);
  return worst;
}

Deno.test({
  name:
    "A tiny GGUF (Q8_0 embedding, Q4_1 matrices, F32 norms) converts to fp32 ONNX whose logits equal the naive reference on wasm",
  ...ort,
  async fn() {
    const bytes = tinyLlamaGguf();
    const folder = await convertTiny(bytes, { dtypes: ["fp32"] });
    const model = (await load(folder, "wasm", "fp32"))!;
    try {
      const worst = await checkAgainstReference(model, new ReferenceLlama(bytes), TOL);
      console.log(`tiny fp32 wasm vs reference: max |Δlogit| ${worst.toExponential(2)}`);
    } finally {
      await model.dispose();
    }
    await Deno.remove(join(folder, ".."), { recursive: true });
  },
});

for (const mode of ["split", "float"] as Q4_1Mode[]) {
  Deno.test({
    name:
      `The q4 graph (MatMulNBits, Q4_1 as ${mode} zero points) matches the fp32 graph and the reference on wasm and cpu`,
    ...ort,
    async fn() {
      const bytes = tinyLlamaGguf();
      const folder = await convertTiny(bytes, { q4_1: mode });
      const ref = new ReferenceLlama(bytes);
      const ids = [[1, 2, 3, 4, 5, 6, 7, 8, 9]];
      for (const backend of ffi ? ["wasm", "cpu"] as const : ["wasm"] as const) {
        const fp32 = await load(folder, backend, "fp32"), q4 = await load(folder, backend, "q4");
        if (!fp32 || !q4) continue;
        try {
          assert.match(q4.file, /model_q4\.onnx$/);
          const d = maxDiff(await q4.append(ids, 9), await fp32.append(ids, 9));
          assert.ok(d <= TOL, `${backend}: q4 vs fp32 max |Δlogit| ${d}`);
          const worst = await checkAgainstReference(q4, ref, TOL);
          console.log(
            `tiny q4 (${mode}) ${backend}: vs fp32 ${d.toExponential(2)}, vs reference ${
              worst.toExponential(2)
            }`,
          );
        } finally {
          await fp32.dispose();
          await q4.dispose();
        }
      }
      await Deno.remove(join(folder, ".."), { recursive: true });
    },
  });
}

const MIXES: [string, TinyOptions][] = [
  ["Q4_0 matrices, Q8_0 in layer 1, an untied F16 head", {
    matrixType: GgmlType.Q4_0,
    mixedType: GgmlType.Q8_0,
    outputType: GgmlType.F16,
  }],
  ["Q4_1 matrices, BF16 in layer 1 (unfused), an untied Q4_1 head", {
    mixedType: GgmlType.BF16,
    outputType: GgmlType.Q4_1,
    seed: 9,
  }],
];
for (const [what, options] of MIXES) {
  Deno.test({
    name: `Mixed tensor types convert: ${what} (fp32 and q4 on wasm vs the reference)`,
    ...ort,
    async fn() {
      const bytes = tinyLlamaGguf(options);
      const folder = await convertTiny(bytes, { lmHead: "nbits" });
      const ref = new ReferenceLlama(bytes);
      for (const dtype of ["fp32", "q4"] as const) {
        const model = (await load(folder, "wasm", dtype))!;
        try {
          await checkAgainstReference(model, ref, TOL);
        } finally {
          await model.dispose();
        }
      }
      await Deno.remove(join(folder, ".."), { recursive: true });
    },
  });
}

/** Runs a conversion that must fail; checks the error and that the parent folder stays empty. */
async function failing(
  bytes: Uint8Array,
  check: (e: unknown) => boolean,
  options: ConvertOptions = {},
): Promise<void> {
  const parent = await Deno.makeTempDir({ prefix: "spectr-convert-bad-" });
  await assert.rejects(() => convertGgufToOnnx(bytes, join(parent, "out"), options), check);
  assert.deepEqual(
    [...Deno.readDirSync(parent)].map((e) => e.name),
    [],
    "the failed conversion left files behind",
  );
  await Deno.remove(parent);
}

Deno.test("Bad input throws a typed error naming the problem and leaves no output folder", async () => {
  const good = tinyLlamaGguf();
  const named =
    (type: typeof InvalidGgufError | typeof UnsupportedGgufError, pattern: RegExp) => (e: unknown) =>
      e instanceof type && pattern.test((e as Error).message);
  await failing(
    good.subarray(0, good.length - 100),
    named(InvalidGgufError, /Truncated GGUF: tensor "output_norm\.weight"/),
  );
  await failing(
    new TextEncoder().encode("ggjt" + "\0".repeat(40)),
    named(InvalidGgufError, /Not a GGUF file: magic bytes are 67 67 6a 74/),
  );
  // a Q5_1 ffn_down (a real llama.cpp type this converter does not dequantize)
  const tensors = tinyLlamaTensors().map((t) =>
    t.name === "blk.1.ffn_down.weight"
      ? { ...t, type: 7, raw: new Uint8Array((64 * 32 / 32) * 24), data: undefined }
      : t
  );
  await failing(
    writeGguf({ metadata: tinyLlamaMetadata(), tensors }),
    named(UnsupportedGgufError, /"blk\.1\.ffn_down\.weight" has ggml type Q5_1/),
  );
  await failing(
    writeGguf({ metadata: tinyLlamaMetadata("gpt2"), tensors: tinyLlamaTensors() }),
    named(UnsupportedGgufError, /Architecture "gpt2" is not supported/),
  );
  const withBias = [...tinyLlamaTensors(), {
    name: "blk.0.attn_q.bias",
    dims: [32],
    type: 0,
    data: new Float32Array(32),
  }];
  await failing(
    writeGguf({ metadata: tinyLlamaMetadata(), tensors: withBias }),
    named(UnsupportedGgufError, /"blk\.0\.attn_q\.bias" is not part of a dense Llama/),
  );
  const noNorm = tinyLlamaTensors().filter((t) => t.name !== "output_norm.weight");
  await failing(
    writeGguf({ metadata: tinyLlamaMetadata(), tensors: noNorm }),
    named(InvalidGgufError, /"output_norm\.weight" is missing/),
  );
  await failing(good, (e) => e instanceof RangeError && /dtype/.test((e as Error).message), {
    dtypes: ["q8" as "q4"],
  });
});

Deno.test("A conversion that fails while writing (or in writeExtras) removes its temporary folder", async () => {
  const bytes = tinyLlamaGguf();
  let calls = 0;
  await failing(bytes, (e) => (e as Error).message === "interrupted", {
    onProgress: () => {
      if (++calls === 5) throw new Error("interrupted");
    },
  });
  await failing(bytes, (e) => (e as Error).message === "no config", {
    writeExtras: () => Promise.reject(new Error("no config")),
  });
});

Deno.test("An existing target is kept unless overwrite is set; the result lists what was written", async () => {
  const parent = await Deno.makeTempDir({ prefix: "spectr-convert-" });
  const folder = join(parent, "m");
  await Deno.mkdir(folder);
  await Deno.writeTextFile(join(folder, "old.txt"), "x");
  await assert.rejects(() => convertGgufToOnnx(tinyLlamaGguf(), folder), Deno.errors.AlreadyExists);
  const result = await convertGgufToOnnx(tinyLlamaGguf(), folder, { overwrite: true, dtypes: ["q4"] });
  assert.deepEqual([...Deno.readDirSync(parent)].map((e) => e.name), ["m"]);
  assert.deepEqual([...Deno.readDirSync(join(folder, "onnx"))].map((e) => e.name), ["model_q4.onnx"]);
  assert.equal(result.files[0].bytes, Deno.statSync(join(folder, "onnx/model_q4.onnx")).size);
  assert.equal(result.spec.numKvHeads, 2);
  assert.equal(Deno.statSync(folder).mode! & 0o777, 0o755 & ~Deno.umask());
  assert.equal(parseGguf(tinyLlamaGguf()).tensors.length, 2 + 9 * TINY.layers);
  await Deno.remove(parent, { recursive: true });
});
