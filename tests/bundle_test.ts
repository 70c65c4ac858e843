/**
 * The edge bundle (tools/bundle.ts → spectr.js + spectr_kernel.wasm + onnxruntime-web's
 * ort-wasm-simd-threaded.{wasm,mjs}) is built into a temporary folder, imported from there (not the
 * source) and run on the bundled model pair (backend "wasm", one thread, as on an edge runtime). Its
 * output must equal the source module's token for token: greedy, and seeded sampling with SpecTr (K-SEQ).
 * Then a fresh `deno run` with no deno.json, no npm resolution and read access to the bundle folder
 * and the models only (the closest this machine gets to an edge runtime) runs the bundle with backend
 * "wasm" and "auto" (which must fall back to wasm: onnxruntime-node is not in the bundle) and must
 * give the same greedy tokens.
 *
 * Building spawns `deno bundle` and writes the temporary folder, so the test needs `--allow-run` and
 * `--allow-write` on top of the project's test flags; without them it is ignored, with the reason
 * printed.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as source from "../mod.ts";
import { haveModel, modelPath, MODELS_DIR } from "../src/model/_testing.ts";
import { buildBundle, EXTERNAL } from "../tools/bundle.ts";

const tmpRoot = Deno.env.get("TMPDIR") ?? "/tmp";
const missing: string[] = [];
if (Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state !== "granted") {
  missing.push("--allow-run (spawns `deno bundle`)");
}
if (Deno.permissions.querySync({ name: "write", path: tmpRoot }).state !== "granted") {
  missing.push(`--allow-write (writes the bundle under ${tmpRoot})`);
}
if (!haveModel("target") || !haveModel("draft")) {
  missing.push("the bundled models (models/target, models/draft)");
}
const reason = missing.length ? `bundle_test ignored: needs ${missing.join(", ")}` : "";
if (reason) console.log(reason);

type Api = typeof source;
const LOAD = {
  target: modelPath("target"),
  draft: modelPath("draft"),
  backend: "wasm",
  numThreads: 1,
} as const;
const PROMPT = "Once upon a time";

async function run(api: Api) {
  const generator = await api.SpeculativeGenerator.fromPretrained(LOAD);
  try {
    const greedy = await generator.generate(PROMPT, { maxNewTokens: 8, temperature: 0 });
    const sampled = await generator.generate(PROMPT, {
      maxNewTokens: 12,
      temperature: 1,
      topK: 8,
      seed: 7,
      method: "spectr",
      k: 4,
      draftLength: 3,
    });
    return { greedy, sampled };
  } finally {
    await generator.dispose();
  }
}

Deno.test({
  name: "edge bundle: built, imported from its folder, generates the same tokens as the source",
  ignore: missing.length > 0,
  async fn() {
    const outdir = await Deno.makeTempDir({ prefix: "spectr_bundle_" });
    try {
      const { bundle, sizes } = await buildBundle({ outdir, log: false });
      for (
        const f of [
          "spectr.js",
          "spectr_kernel.wasm",
          "ort-wasm-simd-threaded.wasm",
          "ort-wasm-simd-threaded.mjs",
        ]
      ) {
        assert.ok(sizes[f] > 0, `${f} is missing or empty`);
      }
      const text = await Deno.readTextFile(bundle);
      // onnxruntime-node stays out: at most the lazy import of its name is left.
      assert.ok(!/onnxruntime_binding/.test(text), "onnxruntime-node code is inlined");
      // The only npm: specifiers left are the two lazily imported externals.
      const specifiers = [...text.matchAll(/["'](npm:[^"']+)["']/g)].map((m) => m[1]).sort();
      assert.deepEqual([...new Set(specifiers)], [...EXTERNAL].sort(), "npm: specifiers left in the bundle");

      const bundled: Api = await import(new URL(`file://${bundle}`).href);
      assert.notEqual(
        bundled.SpeculativeGenerator,
        source.SpeculativeGenerator,
        "imported the source, not the bundle",
      );

      const fromBundle = await run(bundled);
      const fromSource = await run(source);
      assert.equal(fromBundle.greedy.tokens.length, 8);
      assert.deepEqual(fromBundle.greedy.tokens, fromSource.greedy.tokens);
      assert.equal(fromBundle.greedy.text, fromSource.greedy.text);
      assert.ok(fromBundle.sampled.tokens.length > 0);
      assert.deepEqual(fromBundle.sampled.tokens, fromSource.sampled.tokens);
      assert.equal(fromBundle.sampled.text, fromSource.sampled.text);

      // Edge-like run: a fresh process with no deno.json (no import map), no npm resolution, no lock
      // file, no remote imports, and read access to the bundle folder and the models only.
      // Backend "auto" must fall back to wasm there (onnxruntime-node is not reachable).
      const edge = await edgeRun(outdir, ["wasm", "auto"]);
      assert.deepEqual(edge.wasm, fromSource.greedy.tokens);
      assert.deepEqual(edge.auto, fromSource.greedy.tokens);

      // Backend "kernel" needs none of onnxruntime's runtime files: the same edge-like run with them
      // deleted from the folder gives the same greedy tokens (and "wasm" then fails, as it must).
      for (const f of ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"]) {
        await Deno.remove(`${outdir}/${f}`);
      }
      const kernelEdge = await edgeRun(outdir, ["kernel", "wasm"]);
      assert.deepEqual(kernelEdge.kernel, fromSource.greedy.tokens);
      assert.ok(
        typeof kernelEdge.wasm === "string",
        `wasm ran without its runtime files: ${kernelEdge.wasm}`,
      );
    } finally {
      await Deno.remove(outdir, { recursive: true });
    }
  },
});

/**
 * Greedy tokens of the bundle in `outdir` per backend, from a fresh edge-like process (no config,
 * npm, lock or remote imports; read access to the bundle and the models only); a backend that
 * fails gives its error's name instead.
 */
async function edgeRun(outdir: string, backends: string[]): Promise<Record<string, number[] | string>> {
  const script = `${outdir}/_edge_${backends.join("_")}.ts`;
  await Deno.writeTextFile(
    script,
    `import { SpeculativeGenerator } from "./spectr.js";
const [target, draft] = Deno.args;
const out: Record<string, unknown> = {};
for (const backend of ${JSON.stringify(backends)}) {
  try {
    const g = await SpeculativeGenerator.fromPretrained({ target, draft, backend, numThreads: 1 });
    out[backend] = (await g.generate(${JSON.stringify(PROMPT)}, { maxNewTokens: 8, temperature: 0 })).tokens;
    await g.dispose();
  } catch (e) {
    out[backend] = String((e as Error).name);
  }
}
console.log(JSON.stringify(out));
`,
  );
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-config",
      "--no-npm",
      "--no-lock",
      "--no-remote",
      `--allow-read=${outdir},${MODELS_DIR}`,
      script,
      modelPath("target"),
      modelPath("draft"),
    ],
    cwd: outdir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert.ok(child.success, `the edge-like run (${backends}) failed:\n${dec.decode(child.stderr)}`);
  return JSON.parse(dec.decode(child.stdout).trim().split("\n").at(-1)!);
}
