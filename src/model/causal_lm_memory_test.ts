import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { OnnxCausalLM } from "./causal_lm.ts";
import { granted, haveModel, modelPath, randomTokens } from "./_testing.ts";

const have = haveModel("draft");
const ffi = granted("ffi", "the cpu-backend memory test");
const CYCLES = 1000;
const WINDOW = 100;
/** Allowed growth of the median RSS between the first and last 100 cycles. */
const RSS_BOUND_MB = 16;
/** Allowed growth of the median V8 heapUsed between the first and last 100 cycles. */
const HEAP_BOUND_MB = 4;

/** V8's gc(): the global one under --v8-flags=--expose-gc, else enabled at runtime through node:v8 / node:vm. */
function findGc(): (() => void) | undefined {
  const global = (globalThis as { gc?: () => void }).gc;
  if (typeof global === "function") return global;
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc");
    return typeof gc === "function" ? gc : undefined;
  } catch {
    return undefined;
  }
}
const gc = findGc();

// The ORT WASM heap is not part of onnxruntime-web's API: catch its WebAssembly.Memory when the
// runtime instantiates (this test file runs in its own isolate, before any wasm session exists).
const wasmMemories = new Set<WebAssembly.Memory>();
function collectMemories(...values: unknown[]): void {
  for (const value of values) {
    if (value instanceof WebAssembly.Memory) wasmMemories.add(value);
    else if (value && typeof value === "object") {
      for (const inner of Object.values(value)) {
        if (inner instanceof WebAssembly.Memory) wasmMemories.add(inner);
        else if (inner && typeof inner === "object" && !(inner instanceof WebAssembly.Module)) {
          for (const x of Object.values(inner)) if (x instanceof WebAssembly.Memory) wasmMemories.add(x);
        }
      }
    }
  }
}
const originalInstantiate = WebAssembly.instantiate;
WebAssembly.instantiate =
  (async (source: BufferSource | WebAssembly.Module, imports?: WebAssembly.Imports) => {
    const result = await originalInstantiate(source as BufferSource, imports);
    const instance = (result as { instance?: WebAssembly.Instance }).instance ??
      (result as unknown as WebAssembly.Instance);
    collectMemories(imports, instance.exports);
    return result;
  }) as typeof WebAssembly.instantiate;
const originalStreaming = WebAssembly.instantiateStreaming;
WebAssembly.instantiateStreaming = async (source, imports) => {
  const result = await originalStreaming(source, imports);
  collectMemories(imports, result.instance.exports);
  return result;
};
function wasmHeapMiB(): number | undefined {
  if (wasmMemories.size === 0) return undefined;
  let most = 0;
  for (const memory of wasmMemories) most = Math.max(most, memory.buffer.byteLength);
  return most / 2 ** 20;
}
/** Allowed growth of the ORT WASM heap (it never shrinks, so any growth after warm-up is kept). */
const WASM_HEAP_BOUND_MB = 4;
const GC_EVERY = 50;
const WARMUP = 50;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

for (const backend of ["wasm", "cpu"] as const) {
  Deno.test({
    name:
      `Memory stays flat over ${CYCLES} reset/prefill/fork/append/select cycles of the draft model on ${backend}`,
    ignore: !have || (backend === "cpu" && !ffi),
    async fn() {
      const model = await OnnxCausalLM.load(modelPath("draft"), { backend, numThreads: 1 });
      try {
        const v = model.vocabSize;
        const prompt = randomTokens(8, v, 1);
        const rows = [0, 1, 2, 3].map((r) => randomTokens(3, v, 10 + r));
        const rss: number[] = [], heap: number[] = [];
        let started = performance.now();
        let heapAtStart: number | undefined;
        for (let i = -WARMUP; i < CYCLES; i++) {
          if (i === 0) {
            gc?.();
            started = performance.now();
            heapAtStart = wasmHeapMiB();
          }
          model.reset();
          await model.append([prompt], 1);
          model.fork(4);
          await model.append(rows, 3);
          const r = (i + WARMUP) % 4;
          model.select(r, 8 + r);
          if (i % GC_EVERY === 0) gc?.();
          if (i < 0) continue;
          const m = Deno.memoryUsage();
          rss.push(m.rss / 2 ** 20);
          heap.push(m.heapUsed / 2 ** 20);
        }
        const ms = performance.now() - started;
        const rssGrowth = median(rss.slice(-WINDOW)) - median(rss.slice(0, WINDOW));
        const heapGrowth = median(heap.slice(-WINDOW)) - median(heap.slice(0, WINDOW));
        console.log(
          `${backend}: ${CYCLES} cycles in ${(ms / 1000).toFixed(1)} s; median rss ${
            median(rss.slice(0, WINDOW)).toFixed(1)
          } → ${median(rss.slice(-WINDOW)).toFixed(1)} MiB (+${
            rssGrowth.toFixed(2)
          }, bound ${RSS_BOUND_MB}); ` +
            `median heapUsed ${median(heap.slice(0, WINDOW)).toFixed(1)} → ${
              median(heap.slice(-WINDOW)).toFixed(1)
            } MiB (+${heapGrowth.toFixed(2)}, bound ${HEAP_BOUND_MB}); gc ${
              gc ? `forced every ${GC_EVERY} cycles` : "not reachable"
            }`,
        );
        const heapAtEnd = wasmHeapMiB();
        if (backend === "wasm") {
          if (heapAtStart === undefined || heapAtEnd === undefined) {
            console.log("wasm: the ORT WASM heap was not reachable (no WebAssembly.Memory seen)");
          } else {
            console.log(
              `wasm: ORT WASM heap ${heapAtStart.toFixed(1)} → ${
                heapAtEnd.toFixed(1)
              } MiB (bound +${WASM_HEAP_BOUND_MB})`,
            );
            assert.ok(
              heapAtEnd - heapAtStart <= WASM_HEAP_BOUND_MB,
              `ORT WASM heap grew ${heapAtEnd - heapAtStart} MiB`,
            );
          }
        }
        assert.ok(rssGrowth < RSS_BOUND_MB, `rss grew ${rssGrowth.toFixed(2)} MiB`);
        assert.ok(heapGrowth < HEAP_BOUND_MB, `heapUsed grew ${heapGrowth.toFixed(2)} MiB`);
      } finally {
        await model.dispose();
      }
    },
  });
}
