/**
 * The browser example (examples/browser/) in headless Chromium, driven by puppeteer-core (Debian's
 * `chromium` package, never a downloaded browser). The test builds the edge bundle into a temporary
 * folder (tools/bundle.ts, as `deno task bundle` does), serves the page, the bundle, onnxruntime-web's
 * files and the models on 127.0.0.1 (an ephemeral port) with the example's own server, and clicks
 * through the page. Checked:
 *
 * - the page streams a greedy story (spectr, k = 4, L = 4, temperature 0) in more than one piece; the
 *   text on the page is the generation's text, and its tokens and text equal those of the same
 *   public API (`SpeculativeGenerator` from mod.ts) on the wasm backend in Deno, token for token;
 * - the "exact?" panel: greedy spectr equals greedy autoregressive in Chromium (the page's verdict),
 *   and both equal Deno's greedy autoregressive tokens;
 * - the real pair (SmolLM2-135M-Instruct q8 + models/smollm2-draft), when `deno task model:smollm2`
 *   has built it: a short greedy chat answer in Chromium equals Deno's (ignored when absent);
 * - the same page on backend "kernel" (spectr's own WebAssembly forward pass, no onnxruntime)
 *   streams the same greedy story, token for token;
 * - tokens/s in Chromium and in Deno are printed, never asserted;
 * - WebGPU: a second Chromium with a software adapter (SwiftShader) runs the page on backend
 *   "webgpu" (onnxruntime-web's WebGPU build); the outcome is printed (adapter, tokens/s, whether
 *   the tokens equal the wasm ones) and never fails the test.
 *
 * A screenshot of the page goes to /tmp/spectr_browser_example.png. Without Chromium the test fails
 * and says how to install it; without `--allow-run`, `--allow-write` (temp dir), `--allow-net`
 * (127.0.0.1) or the bundled models it is ignored, with the reason printed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import puppeteer, { type Browser, type Page } from "npm:puppeteer-core@25.16.0";
import { type GenerationOptions, type GenerationResult, SpeculativeGenerator } from "../mod.ts";
import { haveModel, modelPath, MODELS_DIR } from "../src/model/_testing.ts";
import { buildBundle, ortDistDir } from "../tools/bundle.ts";
import { createExampleHandler, serveExample } from "../examples/browser/serve.ts";

const CHROMIUM = Deno.env.get("SPECTR_CHROMIUM") ?? "/usr/bin/chromium";
const SCREENSHOT = "/tmp/spectr_browser_example.png";
const SCREENSHOT_WEBGPU = "/tmp/spectr_browser_example_webgpu.png";
const tmpRoot = Deno.env.get("TMPDIR") ?? "/tmp";

const missing: string[] = [];
if (Deno.permissions.querySync({ name: "run" }).state !== "granted") {
  missing.push("--allow-run (spawns `deno bundle` and Chromium)");
}
if (Deno.permissions.querySync({ name: "write", path: tmpRoot }).state !== "granted") {
  missing.push(`--allow-write (the bundle and Chromium's profile under ${tmpRoot})`);
}
if (Deno.permissions.querySync({ name: "net", host: "127.0.0.1" }).state !== "granted") {
  missing.push("--allow-net=127.0.0.1 (serves the page, talks to Chromium)");
}
if (!haveModel("target") || !haveModel("draft")) {
  missing.push("the bundled models (models/target, models/draft)");
}
if (missing.length) console.log(`browser_test ignored: needs ${missing.join(", ")}`);

const REAL_TARGET = `${MODELS_DIR}smollm2-135m-instruct`;
const REAL_DRAFT = `${MODELS_DIR}smollm2-draft`;
const haveRealPair = existsSync(`${REAL_TARGET}/onnx/model_quantized.onnx`) &&
  existsSync(`${REAL_TARGET}/tokenizer.json`) && existsSync(`${REAL_DRAFT}/onnx/model.onnx`);

const PROMPT = "Once upon a time";
const TOKENS = 48;
const K = 4;
const L = 4;
const REAL_PROMPT = "Write a short story about a cat who learns to fly.";
const REAL_TOKENS = 8;
/** Flags for a software WebGPU adapter in headless Chromium (SwiftShader's Vulkan). */
const WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader"];
const WEBGPU_TOKENS = 8;

/** What the page keeps on `window.spectrDemo` (examples/browser/app.js). */
interface DemoState {
  state: "starting" | "idle" | "loading" | "running" | "done" | "error";
  pairs: { id: string; available: boolean }[];
  loaded: null | { pair: string; backend: string; resolvedBackend: string; kernel: string; loadMs: number };
  story: null | GenerationResult & { pieces: number; shown: string };
  exact: null | {
    equal: boolean;
    firstDifference: number;
    spectr: GenerationResult;
    autoregressive: GenerationResult;
  };
  error: null | { name: string; message: string };
}

/** Fails loudly, saying how to install it, when Chromium is not there. */
function requireChromium(): void {
  let ok = false;
  try {
    ok = Deno.statSync(CHROMIUM).isFile;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new Error(
      `Cannot run the browser test: Chromium is not installed at ${CHROMIUM}. Install Debian's package ` +
        "with `apt-get update && apt-get install -y chromium` (as root; .ci/run does this), or point " +
        "SPECTR_CHROMIUM at a Chromium or Chrome binary.",
    );
  }
}

function launch(extraArgs: string[] = []): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: Chromium refuses to start as root with its sandbox (CI runs as root); the page
    // is ours, served on loopback.
    args: ["--no-sandbox", ...extraArgs],
  });
}

/** Opens the page and waits until it has probed the model pairs. */
async function open(browser: Browser, url: string, log: string[]): Promise<Page> {
  const page = await browser.newPage();
  page.on("console", (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => log.push(`[pageerror] ${e}`));
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(
    () => (globalThis as unknown as { spectrDemo?: DemoState }).spectrDemo?.state !== "starting",
    { timeout: 30_000 },
  ).catch((e) => {
    throw new Error(`The page did not start: ${e}\n${log.join("\n")}`);
  });
  return page;
}

function demoState(page: Page): Promise<DemoState> {
  return page.evaluate(() => (globalThis as unknown as { spectrDemo: DemoState }).spectrDemo);
}

/** Clicks a button and waits until the page is done (or failed). */
async function clickAndWait(page: Page, selector: string, timeout: number): Promise<DemoState> {
  await page.click(selector);
  await page.waitForFunction(
    () => {
      const s = (globalThis as unknown as { spectrDemo: DemoState }).spectrDemo.state;
      return s === "done" || s === "error";
    },
    { timeout },
  );
  return await demoState(page);
}

function assertNoError(state: DemoState, log: string[]): void {
  if (state.error) {
    assert.fail(`the page failed: ${state.error.name}: ${state.error.message}\n${log.slice(-20).join("\n")}`);
  }
}

const tps = (r: GenerationResult) => r.stats.tokensPerSecond.toFixed(1).padStart(7);

Deno.test("browser example server: serves the page, bundle, onnxruntime and models only", async () => {
  const root = await Deno.makeTempDir({ prefix: "spectr_browser_srv_" });
  try {
    for (const d of ["page", "dist", "ort", "models/m/onnx"]) {
      await Deno.mkdir(`${root}/${d}`, { recursive: true });
    }
    await Deno.writeTextFile(`${root}/page/index.html`, "<p>page</p>");
    await Deno.writeTextFile(`${root}/page/serve.ts`, "secret");
    await Deno.writeTextFile(`${root}/dist/spectr.js`, "export {};");
    await Deno.writeFile(`${root}/dist/spectr_kernel.wasm`, new Uint8Array([0, 97, 115, 109]));
    await Deno.writeTextFile(`${root}/ort/ort.webgpu.min.mjs`, "export {};");
    await Deno.writeFile(`${root}/models/m/onnx/model.onnx`, new Uint8Array(10));
    await Deno.writeTextFile(`${root}/models/.secret`, "x");
    const handler = createExampleHandler({
      pageDir: `${root}/page`,
      bundleDir: `${root}/dist`,
      ortDir: `${root}/ort`,
      modelsDir: `${root}/models`,
    });
    const get = async (path: string, method = "GET") => {
      const r = await handler(new Request(`http://127.0.0.1${path}`, { method }));
      return {
        status: r.status,
        type: r.headers.get("content-type"),
        length: r.headers.get("content-length"),
        body: await r.text(),
      };
    };
    assert.deepEqual(await get("/"), {
      status: 200,
      type: "text/html; charset=utf-8",
      length: "11",
      body: "<p>page</p>",
    });
    assert.equal((await get("/dist/spectr.js")).type, "text/javascript; charset=utf-8");
    assert.equal((await get("/dist/spectr_kernel.wasm")).type, "application/wasm");
    assert.equal((await get("/ort/ort.webgpu.min.mjs")).status, 200);
    const head = await get("/models/m/onnx/model.onnx", "HEAD");
    assert.deepEqual([head.status, head.length, head.body], [200, "10", ""]);
    // the server's own source, hidden files, traversal, unknown roots and missing files: 404
    for (
      const p of [
        "/serve.ts",
        "/models/.secret",
        "/models/%2e%2e/page/serve.ts",
        "/dist/..%2fpage/serve.ts",
        "/etc/passwd",
        "/models/m/onnx/missing.onnx",
        "/models/m",
      ]
    ) {
      assert.equal((await get(p)).status, 404, p);
    }
    assert.equal((await get("/", "POST")).status, 405);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name:
    "browser example in headless Chromium: greedy text equals Deno's token for token; exact? panel; WebGPU",
  ignore: missing.length > 0,
  async fn(t) {
    requireChromium();
    const outdir = await Deno.makeTempDir({ prefix: "spectr_browser_bundle_" });
    let server: { url: string; shutdown(): Promise<void> } | undefined;
    const browsers: Browser[] = [];
    try {
      await buildBundle({ outdir, log: false });
      server = serveExample({ bundleDir: outdir, ortDir: await ortDistDir(), modelsDir: MODELS_DIR });

      // Deno first (alone on the CPUs), then Chromium, with the same calls in the same order.
      const greedy: GenerationOptions = { maxNewTokens: TOKENS, temperature: 0 };
      const generator = await SpeculativeGenerator.fromPretrained({
        target: modelPath("target"),
        draft: modelPath("draft"),
        backend: "wasm",
        numThreads: 1,
      });
      let deno: { story: GenerationResult; spectr: GenerationResult; ar: GenerationResult };
      try {
        deno = {
          story: await generator.generate(PROMPT, {
            ...greedy,
            method: "spectr",
            k: K,
            draftLength: L,
            seed: 1,
          }),
          spectr: await generator.generate(PROMPT, { ...greedy, method: "spectr", k: K, draftLength: L }),
          ar: await generator.generate(PROMPT, { ...greedy, method: "autoregressive" }),
        };
      } finally {
        await generator.dispose();
      }
      assert.equal(deno.story.tokens.length, TOKENS);
      assert.deepEqual(
        deno.spectr.tokens,
        deno.ar.tokens,
        "Deno: greedy spectr differs from greedy autoregressive",
      );

      const browser = await launch();
      browsers.push(browser);
      console.log(`Chromium: ${await browser.version()} (${CHROMIUM})`);
      const log: string[] = [];
      const query =
        `?pair=toy&backend=wasm&method=spectr&k=${K}&L=${L}&tokens=${TOKENS}&temperature=0&seed=1&prompt=${
          encodeURIComponent(PROMPT)
        }`;
      const page = await open(browser, server.url + query, log);
      await page.setViewport({ width: 1000, height: 900 });
      let chromium!: DemoState;

      await t.step("streams a greedy story equal to Deno's, token for token", async () => {
        const state = await clickAndWait(page, "#generate", 120_000);
        assertNoError(state, log);
        chromium = state;
        const story = state.story!;
        assert.equal(state.loaded?.resolvedBackend, "wasm");
        assert.equal(state.loaded?.kernel, "wasm", "the page fell back from the WebAssembly kernel");
        assert.deepEqual(story.tokens, deno.story.tokens);
        assert.equal(story.text, deno.story.text);
        assert.ok(story.pieces > 1, `the story came in ${story.pieces} piece(s), not streamed`);
        assert.equal(story.shown, story.text, "the streamed pieces do not add up to the text");
        assert.equal(await page.$eval("#story", (e) => e.textContent), story.text);
        assert.equal(
          await page.$eval("#block-efficiency", (e) => e.textContent),
          story.stats.blockEfficiency.toFixed(2),
        );
      });

      await t.step("exact? panel: greedy spectr equals greedy autoregressive (and Deno's)", async () => {
        const state = await clickAndWait(page, "#exact", 120_000);
        assertNoError(state, log);
        chromium = state;
        const exact = state.exact!;
        assert.equal(
          exact.equal,
          true,
          `the page says spectr and autoregressive differ at token ${exact.firstDifference}`,
        );
        assert.equal(await page.$eval("#exact-verdict", (e) => e.getAttribute("data-verdict")), "equal");
        assert.deepEqual(exact.autoregressive.tokens, deno.ar.tokens);
        assert.deepEqual(exact.spectr.tokens, deno.ar.tokens);
        assert.equal(exact.autoregressive.tokens.length, TOKENS);
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        console.log(`screenshot: ${SCREENSHOT}`);
      });

      await t.step("tokens/s in Chromium vs Deno (printed, not asserted)", () => {
        assert.ok(chromium.story && chromium.exact, "the steps above did not run");
        console.log(`toy pair, wasm, 1 thread, ${TOKENS} greedy tokens: tokens/s   Chromium      Deno`);
        const rows: [string, GenerationResult, GenerationResult][] = [
          [`story (spectr k=${K} L=${L}, first call)`, chromium.story, deno.story],
          [`exact? greedy spectr k=${K} L=${L}`, chromium.exact.spectr, deno.spectr],
          ["exact? greedy autoregressive", chromium.exact.autoregressive, deno.ar],
        ];
        for (const [name, c, d] of rows) console.log(`  ${name.padEnd(42)} ${tps(c)}   ${tps(d)}`);
        console.log(
          `  load (both models, page)                  ${(chromium.loaded!.loadMs / 1000).toFixed(2)} s`,
        );
      });

      await t.step(
        "kernel backend (no onnxruntime) in Chromium: the same greedy story, token for token",
        async () => {
          const kernelPage = await open(
            browser,
            server!.url + query.replace("backend=wasm", "backend=kernel"),
            log,
          );
          const state = await clickAndWait(kernelPage, "#generate", 120_000);
          assertNoError(state, log);
          assert.equal(state.loaded?.resolvedBackend, "kernel");
          assert.deepEqual(state.story!.tokens, deno.story.tokens);
          assert.equal(state.story!.text, deno.story.text);
          console.log(
            `toy pair, kernel backend, ${TOKENS} greedy tokens (spectr k=${K} L=${L}, first call): Chromium ${
              tps(state.story!)
            } tokens/s (wasm backend above: ${tps(chromium.story!)})`,
          );
          await kernelPage.close();
        },
      );

      await t.step({
        name: "real pair (SmolLM2-135M-Instruct q8 + smollm2-draft): greedy chat answer equals Deno's",
        ignore: !haveRealPair,
        fn: async () => {
          const chat = { messages: [{ role: "user" as const, content: REAL_PROMPT }] };
          const real = await SpeculativeGenerator.fromPretrained({
            target: REAL_TARGET,
            draft: REAL_DRAFT,
            backend: "wasm",
            numThreads: 1,
            dtype: "q8",
            draftOptions: { dtype: "fp32" },
          });
          let denoReal: GenerationResult;
          try {
            denoReal = await real.generate(chat, {
              maxNewTokens: REAL_TOKENS,
              temperature: 0,
              method: "spectr",
              k: K,
              draftLength: L,
            });
          } finally {
            await real.dispose();
          }
          const realPage = await open(
            browser,
            `${server!.url}?pair=smollm2&backend=wasm&method=spectr&k=${K}&L=${L}&tokens=${REAL_TOKENS}` +
              `&temperature=0&prompt=${encodeURIComponent(REAL_PROMPT)}`,
            log,
          );
          const state = await clickAndWait(realPage, "#generate", 300_000);
          assertNoError(state, log);
          assert.deepEqual(state.story!.tokens, denoReal.tokens);
          assert.equal(state.story!.text, denoReal.text);
          console.log(
            `real pair q8, wasm, ${REAL_TOKENS} greedy tokens: Chromium ${tps(state.story!)} tokens/s, Deno ${
              tps(denoReal)
            } tokens/s; ${JSON.stringify(denoReal.text)}`,
          );
          await realPage.close();
        },
      });
      if (!haveRealPair) {
        console.log(
          "real pair step ignored: models/smollm2-135m-instruct/onnx/model_quantized.onnx or models/smollm2-draft " +
            "is missing (deno task model:smollm2 builds the target)",
        );
      }
      await browser.close();
      browsers.length = 0;

      await t.step("WebGPU (software adapter): outcome printed, never failed", async () => {
        const outcome = await tryWebGpu(server!.url, deno.ar.tokens.slice(0, WEBGPU_TOKENS)).catch((e) =>
          `did not run: ${e instanceof Error ? e.message : e}`
        );
        console.log(`WebGPU in headless Chromium (${WEBGPU_FLAGS.join(" ")}): ${outcome}`);
      });
    } finally {
      for (const b of browsers) await b.close().catch(() => {});
      await server?.shutdown();
      await Deno.remove(outdir, { recursive: true });
    }
  },
});

/** Runs the page on backend "webgpu" in a Chromium with a software adapter; returns what happened. */
async function tryWebGpu(url: string, wasmTokens: number[]): Promise<string> {
  const browser = await launch(WEBGPU_FLAGS);
  try {
    const log: string[] = [];
    const page = await open(
      browser,
      `${url}?pair=toy&backend=webgpu&method=spectr&k=${K}&L=${L}&tokens=${WEBGPU_TOKENS}&temperature=0` +
        `&prompt=${encodeURIComponent(PROMPT)}`,
      log,
    );
    const adapter = await page.evaluate(async () => {
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<any> } }).gpu;
      if (!gpu) {
        return {
          ok: false,
          why: `navigator.gpu is missing (secure context: ${
            (globalThis as { isSecureContext?: boolean }).isSecureContext
          })`,
        };
      }
      const a = await gpu.requestAdapter().catch((e: unknown) => ({ error: String(e) }));
      if (!a) {
        return { ok: false, why: "requestAdapter() gave null (no adapter: GPU blocklisted or no Vulkan)" };
      }
      if (a.error) return { ok: false, why: `requestAdapter() failed: ${a.error}` };
      const info = a.info ?? {};
      return {
        ok: true,
        why: `adapter ${info.vendor || "?"}/${info.architecture || "?"}${
          a.isFallbackAdapter || info.isFallbackAdapter ? " (fallback)" : ""
        }`,
      };
    });
    if (!adapter.ok) return `unavailable: ${adapter.why}`;
    const state = await clickAndWait(page, "#generate", 180_000);
    if (state.error) {
      return `${adapter.why}; onnxruntime-web's webgpu build failed: ${state.error.name}: ${state.error.message}`;
    }
    await page.screenshot({ path: SCREENSHOT_WEBGPU, fullPage: true });
    const story = state.story!;
    const same = JSON.stringify(story.tokens) === JSON.stringify(wasmTokens);
    return `runs: ${adapter.why}; backend ${state.loaded?.resolvedBackend}, load ${
      (state.loaded!.loadMs / 1000).toFixed(1)
    } s, ` +
      `${story.tokens.length} greedy tokens at ${story.stats.tokensPerSecond.toFixed(1)} tokens/s, ` +
      `${same ? "the same tokens as wasm" : `tokens DIFFER from wasm: ${story.tokens} vs ${wasmTokens}`} ` +
      `(screenshot ${SCREENSHOT_WEBGPU})`;
  } finally {
    await browser.close();
  }
}
