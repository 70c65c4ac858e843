// `worker: true` (the onnxruntime-web session in a module Worker, src/backend/ort/_session_worker.ts)
// against `worker: false` (inline) on the same wasm kernels: logits equal bit for bit (bound 0)
// through prefill, steps, a lazy fork to 3 rows (shared token at batch 1, then 3 rows), select +
// crop, a fork before the prompt; on the bundled pair, the fp16 variant (float16 KV cache and
// logits over the wire), the merged decoder (a bool feed) and external data (weights sent to the
// worker). Greedy and seeded SpeculativeGenerator output equal both ways. Errors: bad bytes →
// InvalidModelError, a failed run → Error (the worker survives it), run after release → Error,
// no Worker → BackendUnavailableError, another backend → RangeError. wasmPaths / wasmBinary reach
// the worker's own onnxruntime-web.
import assert from "node:assert/strict";
import { SpeculativeGenerator } from "../../generate/generator.ts";
import { type BackendOptions, createOnnxSession } from "../../model/session.ts";
import { OnnxCausalLM } from "../../model/causal_lm.ts";
import { BackendUnavailableError, InvalidModelError } from "../../model/errors.ts";
import { openModelFolder } from "../../model/loader.ts";
import { haveModel, maxAbsDiff, modelPath, randomTokens } from "../../model/_testing.ts";

const VARIANTS = new URL("../../model/testdata/variants", import.meta.url).pathname;
const EXTERNAL = new URL("../../model/testdata/external", import.meta.url).pathname;
const bundled = haveModel("target") && haveModel("draft");

/** Every append's logits through a fixed sequence of KV-cache operations. */
async function trace(model: OnnxCausalLM): Promise<{ logits: Float32Array[]; calls: number }> {
  const v = model.vocabSize;
  const base = randomTokens(24, v, 11);
  const out: Float32Array[] = [];
  const calls = model.calls;
  model.reset();
  out.push(await model.append([base.slice(0, 16)], 16)); // prefill, all positions
  for (let i = 16; i < 19; i++) out.push(await model.append([base.slice(i, i + 1)], 1)); // steps
  model.fork(3); // lazy: the shared first token runs at batch 1, then 3 rows
  const shared = base[19];
  out.push(
    await model.append([[shared, ...randomTokens(2, v, 21)], [shared, ...randomTokens(2, v, 22)], [
      shared,
      ...randomTokens(2, v, 23),
    ]], 2),
  );
  assert.equal(model.rows, 3);
  model.select(2, 21); // row 2, cropped: 20 + 1 of its tokens
  assert.equal(model.length, 21);
  out.push(await model.append([randomTokens(2, v, 31)], 2));
  model.fork(3); // no shared tokens now: one forward of 3 rows
  out.push(await model.append([randomTokens(1, v, 41), randomTokens(1, v, 42), randomTokens(1, v, 43)], 1));
  model.select(0, 20);
  out.push(await model.append([randomTokens(3, v, 51)], 3));
  model.reset();
  model.fork(4); // a fork before the prompt is fed
  const prompt = randomTokens(6, v, 5);
  out.push(await model.append([0, 1, 2, 3].map((r) => [...prompt, ...randomTokens(2, v, 60 + r)]), 2));
  return { logits: out, calls: model.calls - calls };
}

/**
 * Loads inline first, then in a worker: the inline session starts onnxruntime-web's wasm runtime on
 * this thread, whose Emscripten glue then replaces globalThis.Worker with node:worker_threads' Worker
 * (under Deno); the worker session must still start a Web Worker (worker.ts keeps the original).
 */
async function compare(folder: string, options: BackendOptions): Promise<void> {
  const load = (worker: boolean) =>
    OnnxCausalLM.load(folder, { backend: "wasm", numThreads: 1, ...options, worker });
  const inline = await load(false);
  const inWorker = await load(true);
  try {
    assert.equal(inWorker.file, inline.file);
    assert.equal(inWorker.backend, "wasm");
    const a = await trace(inline);
    const b = await trace(inWorker);
    assert.equal(b.calls, a.calls, "the same forwards");
    assert.equal(b.logits.length, a.logits.length);
    let worst = 0;
    for (let i = 0; i < a.logits.length; i++) {
      const d = maxAbsDiff(a.logits[i], b.logits[i]);
      assert.equal(d, 0, `append ${i}: max |Δ| ${d}`);
      worst = Math.max(worst, d);
    }
    console.log(`${folder.split("/").at(-1)}/${inline.file}: ${a.calls} forwards, max |Δ| ${worst}`);
  } finally {
    await inline.dispose();
    await inWorker.dispose();
  }
}

Deno.test({
  name: "worker: logits equal inline on the bundled target and draft (prefill, steps, fork, select + crop)",
  ignore: !bundled,
  async fn() {
    await compare(modelPath("target"), {});
    await compare(modelPath("draft"), {});
  },
});

Deno.test("worker: logits equal inline on the fp16 variant (float16 KV cache), the merged decoder and external data", async () => {
  await compare(VARIANTS, { dtype: "fp16" });
  await compare(VARIANTS, { merged: true });
  await compare(EXTERNAL, {});
});

Deno.test({
  name: "worker: SpeculativeGenerator output equals inline (greedy and seeded, spectr and autoregressive)",
  ignore: !bundled,
  async fn() {
    const load = (worker: boolean) =>
      SpeculativeGenerator.fromPretrained({
        target: modelPath("target"),
        draft: modelPath("draft"),
        backend: "wasm",
        numThreads: 1,
        worker,
      });
    const inline = await load(false);
    const inWorker = await load(true);
    try {
      for (const method of ["spectr", "autoregressive"] as const) {
        for (const sampling of [{ temperature: 0 }, { temperature: 1, topK: 20, seed: 9 }]) {
          const options = { method, k: 4, draftLength: 4, maxNewTokens: 24, ...sampling };
          const a = await inline.generate("Once upon a time", options);
          const b = await inWorker.generate("Once upon a time", options);
          assert.ok(a.tokens.length > 0);
          assert.deepEqual(b.tokens, a.tokens, `${method} ${JSON.stringify(sampling)}`);
          assert.equal(b.text, a.text);
        }
      }
    } finally {
      await inline.dispose();
      await inWorker.dispose();
    }
  },
});

Deno.test("worker: bad model bytes → InvalidModelError, as inline; the caller's bytes stay usable", async () => {
  const bad = new Uint8Array([1, 2, 3]);
  const folder = await openModelFolder({ "onnx/model.onnx": bad });
  const inline = await createOnnxSession(folder, { backend: "wasm" }).catch((e) => e);
  const inWorker = await createOnnxSession(folder, { backend: "wasm", worker: true }).catch((e) => e);
  assert.ok(inWorker instanceof InvalidModelError, String(inWorker));
  assert.ok(inline instanceof InvalidModelError, String(inline));
  assert.match(
    inWorker.message,
    /^Cannot load onnx\/model\.onnx: onnxruntime \(wasm\) rejected the file \(3 bytes/,
  );
  assert.equal(inWorker.message, inline.message);
  assert.deepEqual([...bad], [1, 2, 3], "copied to the worker, not transferred");
});

Deno.test("worker: a failed run rejects with an Error and the session keeps working; run after release throws", async () => {
  const folder = await openModelFolder(VARIANTS);
  const session = await createOnnxSession(folder, { backend: "wasm", numThreads: 1, worker: true });
  const inline = await createOnnxSession(folder, { backend: "wasm", numThreads: 1 });
  try {
    assert.deepEqual(session.inputNames, inline.inputNames);
    assert.deepEqual(session.outputNames, inline.outputNames);
    assert.deepEqual(session.inputMetadata, inline.inputMetadata);
    assert.deepEqual(session.outputMetadata, inline.outputMetadata);
    const ids = (n: number) => session.tensor("int64", new BigInt64Array(n).fill(1n), [1, n]);
    const feeds: Record<string, ReturnType<typeof ids>> = {
      input_ids: ids(2),
      attention_mask: ids(2),
      position_ids: session.tensor("int64", new BigInt64Array([0n, 1n]), [1, 2]),
    };
    for (const name of session.inputNames.filter((n) => n.startsWith("past_key_values."))) {
      feeds[name] = session.tensor("float32", new Float32Array(0), [1, 2, 0, 8]);
    }
    // a missing feed: onnxruntime refuses the run
    const { input_ids: _, ...missing } = feeds;
    const inlineError = await inline.run(missing).catch((e) => e);
    const workerError = await session.run(missing).catch((e) => e);
    assert.ok(
      workerError instanceof Error && !(workerError instanceof InvalidModelError),
      String(workerError),
    );
    assert.equal(workerError.message, inlineError.message);
    // the worker survived; the feeds' data was copied, not moved
    const outputs = await session.run(feeds);
    const reference = await inline.run(feeds);
    assert.equal(feeds.attention_mask.data.length, 2, "feeds stay usable");
    assert.deepEqual(Object.keys(outputs).sort(), Object.keys(reference).sort());
    for (const [name, tensor] of Object.entries(reference)) {
      assert.equal(outputs[name].type, tensor.type, name);
      assert.deepEqual(outputs[name].dims, tensor.dims, name);
      assert.equal(outputs[name].data.constructor, tensor.data.constructor, name);
      assert.equal(maxAbsDiff(outputs[name].data as Float32Array, tensor.data as Float32Array), 0, name);
    }
    await session.release();
    await session.release(); // idempotent
    await assert.rejects(
      () => session.run(feeds),
      /Cannot run the model: the session of onnx\/model\.onnx was released/,
    );
  } finally {
    await session.release();
    await inline.release();
  }
});

Deno.test("worker: no Worker → BackendUnavailableError; another backend → RangeError; not a boolean → TypeError", async () => {
  const folder = await openModelFolder(VARIANTS);
  const saved = Object.getOwnPropertyDescriptor(globalThis, "Worker");
  assert.ok(saved, "this runtime has a Worker");
  try {
    delete (globalThis as { Worker?: unknown }).Worker;
    await assert.rejects(
      () => createOnnxSession(folder, { backend: "wasm", worker: true }),
      (e: Error) => e instanceof BackendUnavailableError && /this runtime has no Worker/.test(e.message),
    );
    // worker: false is unaffected (one wasm thread where there is no Worker)
    const session = await createOnnxSession(folder, { backend: "wasm", numThreads: 1 });
    await session.release();
  } finally {
    Object.defineProperty(globalThis, "Worker", saved);
  }
  assert.equal(typeof Worker, "function");
  for (const backend of ["cpu", "webgpu", "auto", undefined] as const) {
    await assert.rejects(
      () => createOnnxSession(folder, { backend, worker: true }),
      (e: Error) => e instanceof RangeError && /worker: true .* needs backend "wasm"/.test(e.message),
    );
  }
  await assert.rejects(
    () => OnnxCausalLM.load(VARIANTS, { backend: "cpu", worker: true }),
    (e: Error) => e instanceof RangeError && /got backend "cpu"/.test(e.message),
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => createOnnxSession(folder, { backend: "wasm", worker: "yes" as any }),
    (e: Error) => e instanceof TypeError && /worker must be a boolean, got "yes"/.test(e.message),
  );
});

Deno.test("worker: wasmPaths and wasmBinary reach the worker's own onnxruntime-web (a fresh env per worker)", async () => {
  const folder = await openModelFolder(VARIANTS);
  // An unreachable runtime folder: the worker's onnxruntime-web cannot start, as inline would not.
  await assert.rejects(
    () =>
      createOnnxSession(folder, {
        backend: "wasm",
        numThreads: 1,
        worker: true,
        wasmPaths: "file:///nonexistent-spectr-dir/",
      }),
    (e: Error) => e instanceof BackendUnavailableError && /could not be started/.test(e.message),
  );
  // The .wasm bytes given directly, its URL unreachable: wasmBinary is what the worker loads.
  const dist = await ortDist();
  if (dist === undefined) return;
  const binary = await Deno.readFile(`${dist}/ort-wasm-simd-threaded.wasm`);
  const paths = {
    mjs: new URL(`file://${dist}/ort-wasm-simd-threaded.mjs`),
    wasm: "file:///nonexistent-spectr-dir/x.wasm",
  };
  // power check: without the bytes the same paths do not start
  await assert.rejects(
    () => createOnnxSession(folder, { backend: "wasm", numThreads: 1, worker: true, wasmPaths: paths }),
    BackendUnavailableError,
  );
  const session = await createOnnxSession(folder, {
    backend: "wasm",
    numThreads: 1,
    worker: true,
    wasmPaths: paths,
    wasmBinary: binary,
  });
  await session.release();
});

/** onnxruntime-web 1.30.0's dist/ folder in Deno's npm cache (`deno info --json`), or undefined (printed). */
async function ortDist(): Promise<string | undefined> {
  if (Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state !== "granted") {
    console.warn("SKIP: the wasmBinary check needs --allow-run (deno info); ignored");
    return undefined;
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  })
    .output();
  const cache: string | undefined = out.success
    ? JSON.parse(new TextDecoder().decode(out.stdout)).npmCache
    : undefined;
  if (cache) {
    for await (const registry of Deno.readDir(cache)) {
      const dir = `${cache}/${registry.name}/onnxruntime-web/1.30.0/dist`;
      try {
        await Deno.stat(`${dir}/ort-wasm-simd-threaded.wasm`);
        return dir;
      } catch { /* another registry folder */ }
    }
  }
  console.warn("SKIP: onnxruntime-web 1.30.0 is not in Deno's npm cache; the wasmBinary check is ignored");
  return undefined;
}
