// spectr's browser example: loads the edge bundle (dist/spectr.js, built by `deno task bundle`)
// and a model pair by URL, streams a story, and compares greedy spectr with greedy autoregressive
// decoding. State for scripts (tests/browser_test.ts reads it) is on `window.spectrDemo`.
// @ts-check

import { generationMethods, SpeculativeGenerator } from "./dist/spectr.js";

/**
 * @typedef {object} Pair
 * @property {string} id
 * @property {string} label
 * @property {string} target folder URL, relative to the page
 * @property {string} draft folder URL, relative to the page
 * @property {Record<string, unknown>} options extra `fromPretrained` options
 * @property {boolean} chat whether the prompt is a user message rendered with the chat template
 * @property {string} prompt the default prompt
 * @property {string[]} files files that must exist for the pair to be offered
 * @property {string} missing what to do when they do not
 */

/** @type {Pair[]} */
const PAIRS = [
  {
    id: "toy",
    label: "toy pair: 8.5 M target + 0.44 M draft (TinyStories, fp32)",
    target: "models/target/",
    draft: "models/draft/",
    options: {},
    chat: false,
    prompt: "Once upon a time",
    files: ["models/target/onnx/model.onnx", "models/draft/onnx/model.onnx"],
    missing: "models/target and models/draft ship with the repository",
  },
  {
    id: "smollm2",
    label: "SmolLM2-135M-Instruct q8 + smollm2-draft",
    target: "models/smollm2-135m-instruct/",
    draft: "models/smollm2-draft/",
    options: { dtype: "q8", draftOptions: { dtype: "fp32" } },
    chat: true,
    prompt: "Write a short story about a cat who learns to fly.",
    files: ["models/smollm2-135m-instruct/onnx/model_quantized.onnx", "models/smollm2-draft/onnx/model.onnx"],
    missing: "not built: run `deno task model:smollm2`",
  },
];

/**
 * What the page did last; read by scripts.
 * @type {{
 *   state: "starting" | "idle" | "loading" | "running" | "done" | "error",
 *   pairs: { id: string, available: boolean }[],
 *   loaded: null | { pair: string, backend: string, resolvedBackend: string, kernel: string, loadMs: number },
 *   story: null | Record<string, unknown>,
 *   exact: null | Record<string, unknown>,
 *   error: null | { name: string, message: string },
 * }}
 */
const demo = { state: "starting", pairs: [], loaded: null, story: null, exact: null, error: null };
/** @type {any} */ (globalThis).spectrDemo = demo;

/** @param {string} id */
function el(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`Cannot start the page: #${id} is missing`);
  return e;
}
const input = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ (el(id));
const select = (/** @type {string} */ id) => /** @type {HTMLSelectElement} */ (el(id));

const status = el("status");
const story = el("story");
const generateButton = /** @type {HTMLButtonElement} */ (el("generate"));
const stopButton = /** @type {HTMLButtonElement} */ (el("stop"));
const exactButton = /** @type {HTMLButtonElement} */ (el("exact"));

/**
 * @param {typeof demo.state} state
 * @param {string} text
 */
function setStatus(state, text) {
  demo.state = state;
  status.dataset.state = state;
  status.textContent = text;
}

/** @param {unknown} error */
function showError(error) {
  const e = error instanceof Error ? error : new Error(String(error));
  demo.error = { name: e.name, message: e.message };
  setStatus("error", `${e.name}: ${e.message}`);
  console.error(e);
}

/** @param {boolean} busy */
function setBusy(busy) {
  generateButton.disabled = busy;
  exactButton.disabled = busy;
  stopButton.disabled = !busy;
}

// ---- the form, prefilled from the query string (?pair=toy&backend=wasm&method=spectr&k=4&L=4&tokens=96&temperature=0&seed=1&prompt=…)

const params = new URL(location.href).searchParams;
for (const m of generationMethods) select("method").add(new Option(m, m, m === "spectr", m === "spectr"));
/** @type {Record<string, string>} */
const FIELDS = {
  backend: "backend",
  method: "method",
  k: "k",
  L: "draft-length",
  tokens: "max-new-tokens",
  temperature: "temperature",
  seed: "seed",
  prompt: "prompt",
};
for (const [param, id] of Object.entries(FIELDS)) {
  const value = params.get(param);
  if (value !== null) /** @type {HTMLInputElement} */ (el(id)).value = value;
}

/** Whether every file of a pair exists on the server. @param {Pair} pair */
async function available(pair) {
  for (const f of pair.files) {
    const response = await fetch(new URL(f, location.href), { method: "HEAD" });
    if (!response.ok) return false;
  }
  return true;
}

/** @param {string} id */
function pairOf(id) {
  const pair = PAIRS.find((p) => p.id === id);
  if (!pair) throw new RangeError(`Cannot load models: unknown pair ${JSON.stringify(id)}`);
  return pair;
}

/** The number in a field; spectr itself checks the ranges. @param {string} id */
function numberField(id) {
  const text = input(id).value.trim();
  const value = Number(text);
  if (text === "" || !Number.isFinite(value)) {
    throw new TypeError(`Cannot generate: ${id} must be a number, got ${JSON.stringify(text)}`);
  }
  return value;
}

function readForm() {
  const pair = pairOf(select("pair").value);
  const text = input("prompt").value;
  return {
    pair,
    backend: select("backend").value,
    prompt: pair.chat ? { messages: [{ role: "user", content: text }] } : text,
    options: {
      method: /** @type {any} */ (select("method").value),
      k: numberField("k"),
      draftLength: numberField("draft-length"),
      maxNewTokens: numberField("max-new-tokens"),
      temperature: numberField("temperature"),
      seed: numberField("seed"),
    },
  };
}

// ---- the generator: loaded on first use, reloaded when the pair or backend changes

/** @type {null | { pair: string, backend: string, generator: SpeculativeGenerator }} */
let current = null;

/**
 * @param {Pair} pair
 * @param {string} backend
 */
async function generatorFor(pair, backend) {
  if (current && current.pair === pair.id && current.backend === backend) return current.generator;
  if (current) {
    const old = current.generator;
    current = null;
    demo.loaded = null;
    await old.dispose();
  }
  setStatus("loading", `loading ${pair.label} on ${backend}…`);
  const t0 = performance.now();
  const generator = await SpeculativeGenerator.fromPretrained({
    target: new URL(pair.target, location.href).href,
    draft: new URL(pair.draft, location.href).href,
    backend: /** @type {any} */ (backend),
    numThreads: 1,
    ...pair.options,
  });
  const loadMs = performance.now() - t0;
  current = { pair: pair.id, backend, generator };
  const resolvedBackend = /** @type {any} */ (generator.target).backend ?? backend;
  demo.loaded = { pair: pair.id, backend, resolvedBackend, kernel: generator.kernel.name, loadMs };
  el("runtime").textContent = `${resolvedBackend} · ${
    generator.kernel.name === "wasm" ? "wasm SIMD" : "JS"
  } kernel`;
  return generator;
}

/** @param {number} x @param {number} digits */
const fixed = (x, digits) => (Number.isFinite(x) ? x.toFixed(digits) : "–");

/** @param {{ method: string, k: number, draftLength: number }} o */
function methodLabel(o) {
  if (o.method === "autoregressive") return "autoregressive";
  if (o.method === "sd") return `sd (k = 1, L = ${o.draftLength})`;
  return `${o.method} (k = ${o.k}, L = ${o.draftLength})`;
}

/** JSON-safe copy (NaN acceptance rates become null). @param {unknown} x */
const plain = (x) => JSON.parse(JSON.stringify(x));

/** @type {AbortController | null} */
let abort = null;

async function streamStory() {
  setBusy(true);
  demo.error = null;
  try {
    const { pair, backend, prompt, options } = readForm();
    const generator = await generatorFor(pair, backend);
    setStatus("running", `generating with ${methodLabel(options)}…`);
    story.textContent = "";
    for (
      const id of ["tokens-per-second", "block-efficiency", "token-count", "target-calls", "finish-reason"]
    ) {
      el(id).textContent = "…";
    }
    el("method-used").textContent = methodLabel(options);
    abort = new AbortController();
    const stream = generator.stream(prompt, { ...options, signal: abort.signal });
    const t0 = performance.now();
    let shown = "";
    let pieces = 0;
    for (;;) {
      const step = await stream.next();
      if (step.done) {
        const r = step.value;
        el("tokens-per-second").textContent = fixed(r.stats.tokensPerSecond, 1);
        el("block-efficiency").textContent = fixed(r.stats.blockEfficiency, 2);
        el("token-count").textContent = String(r.tokens.length);
        el("target-calls").textContent = String(r.stats.targetCalls);
        el("finish-reason").textContent = r.finishReason;
        demo.story = plain({ ...r, options, pieces, shown });
        setStatus(
          "done",
          `${r.tokens.length} tokens in ${fixed(r.stats.totalMs / 1000, 2)} s (load ${
            fixed((demo.loaded?.loadMs ?? NaN) / 1000, 2)
          } s)`,
        );
        break;
      }
      shown += step.value;
      pieces++;
      story.textContent = shown;
      el("tokens-per-second").textContent = `… ${fixed((performance.now() - t0) / 1000, 1)} s`;
    }
  } catch (error) {
    showError(error);
  } finally {
    abort = null;
    setBusy(false);
  }
}

async function compareGreedy() {
  setBusy(true);
  demo.error = null;
  const verdict = el("exact-verdict");
  try {
    const { pair, backend, prompt, options } = readForm();
    const generator = await generatorFor(pair, backend);
    const greedy = { maxNewTokens: options.maxNewTokens, temperature: 0 };
    verdict.dataset.verdict = "running";
    verdict.textContent = "running greedy spectr…";
    setStatus("running", "exact? greedy spectr, then greedy autoregressive…");
    abort = new AbortController();
    const spectr = await generator.generate(prompt, {
      ...greedy,
      method: "spectr",
      k: options.k,
      draftLength: options.draftLength,
      signal: abort.signal,
    });
    el("exact-spectr-tokens").textContent = String(spectr.tokens.length);
    el("exact-spectr-tps").textContent = fixed(spectr.stats.tokensPerSecond, 1);
    el("exact-spectr-be").textContent = fixed(spectr.stats.blockEfficiency, 2);
    verdict.textContent = "running greedy autoregressive…";
    const ar = await generator.generate(prompt, {
      ...greedy,
      method: "autoregressive",
      signal: abort.signal,
    });
    el("exact-ar-tokens").textContent = String(ar.tokens.length);
    el("exact-ar-tps").textContent = fixed(ar.stats.tokensPerSecond, 1);
    el("exact-ar-be").textContent = fixed(ar.stats.blockEfficiency, 2);
    let firstDifference = -1;
    const n = Math.max(spectr.tokens.length, ar.tokens.length);
    for (let i = 0; i < n && firstDifference < 0; i++) {
      if (spectr.tokens[i] !== ar.tokens[i]) firstDifference = i;
    }
    const equal = firstDifference < 0;
    verdict.dataset.verdict = equal ? "equal" : "different";
    verdict.textContent = equal
      ? `✓ identical, token for token (${ar.tokens.length} tokens; spectr ${
        fixed(spectr.stats.tokensPerSecond / ar.stats.tokensPerSecond, 2)
      }× the speed)`
      : `✗ different from token ${firstDifference}: spectr ${
        spectr.tokens[firstDifference]
      } vs autoregressive ${ar.tokens[firstDifference]}`;
    demo.exact = plain({
      equal,
      firstDifference,
      options: { ...greedy, k: options.k, draftLength: options.draftLength },
      spectr,
      autoregressive: ar,
    });
    setStatus("done", equal ? "exact: yes" : "exact: NO");
  } catch (error) {
    verdict.dataset.verdict = "error";
    verdict.textContent = "error (see above)";
    showError(error);
  } finally {
    abort = null;
    setBusy(false);
  }
}

el("controls").addEventListener("submit", (event) => {
  event.preventDefault();
  streamStory();
});
exactButton.addEventListener("click", () => compareGreedy());
stopButton.addEventListener(
  "click",
  () => abort?.abort(new DOMException("stopped by the user", "AbortError")),
);
select("pair").addEventListener("change", () => {
  input("prompt").value = pairOf(select("pair").value).prompt;
});

// ---- start: offer the pairs whose files the server has

generateButton.disabled = true;
exactButton.disabled = true;
try {
  for (const pair of PAIRS) {
    const ok = await available(pair);
    demo.pairs.push({ id: pair.id, available: ok });
    const option = new Option(ok ? pair.label : `${pair.label} (${pair.missing})`, pair.id);
    option.disabled = !ok;
    select("pair").add(option);
  }
  const wanted = params.get("pair");
  const first = demo.pairs.find((p) => p.available && (wanted === null || p.id === wanted));
  if (!first) {
    throw new Error(
      `Cannot start: ${wanted === null ? "no model pair" : `pair ${JSON.stringify(wanted)}`} is available`,
    );
  }
  select("pair").value = first.id;
  if (params.get("prompt") === null) input("prompt").value = pairOf(first.id).prompt;
  setBusy(false);
  setStatus("idle", "ready: press “Stream a story”, or “Compare” below");
} catch (error) {
  showError(error);
}
