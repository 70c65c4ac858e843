/**
 * Converts a Llama-family GGUF into a model folder: `onnx/model.onnx` (fp32),
 * `onnx/model_q4.onnx` (4-bit MatMulNBits) and / or `onnx/model_quantized.onnx` (q8: 8-bit
 * MatMulNBits, the name transformers.js gives q8), plus config.json, generation_config.json,
 * tokenizer.json and tokenizer_config.json from src/convert/hf_files.ts (skip them with
 * `--onnx-only`).
 *
 * Run: `deno run --allow-read --allow-write tools/convert.ts <file.gguf> <folder>
 * [--dtype fp32,q4,q8] [--overwrite] [--onnx-only]` (default `--dtype fp32,q4`). Exit code 1 with
 * a one-line message on a bad or unsupported file.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { buildHfFiles } from "../src/convert/hf_files.ts";
import {
  convertGgufToOnnx,
  InvalidGgufError,
  type Precision,
  UnsupportedGgufError,
} from "../src/convert/mod.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    dtype: { type: "string", default: "fp32,q4" },
    overwrite: { type: "boolean", default: false },
    "onnx-only": { type: "boolean", default: false },
  },
});
if (positionals.length !== 2) {
  console.error(
    "usage: tools/convert.ts <file.gguf> <folder> [--dtype fp32,q4,q8] [--overwrite] [--onnx-only]",
  );
  Deno.exit(2);
}
const [gguf, folder] = positionals;
const encoder = new TextEncoder();
const tty = Deno.stdout.isTerminal();
let lastLine = 0;
const started = performance.now();
try {
  const result = await convertGgufToOnnx(gguf, folder, {
    dtypes: values.dtype.split(",").map((d) => d.trim()) as Precision[],
    overwrite: values.overwrite,
    onProgress: ({ file, done, total }) => {
      const now = performance.now();
      if (done < total && now - lastLine < (tty ? 100 : 2000)) return;
      lastLine = now;
      const line = `${file}: ${(done / 2 ** 20).toFixed(0)} / ${(total / 2 ** 20).toFixed(0)} MiB ` +
        `(${((100 * done) / total).toFixed(0)}%)`;
      if (tty) Deno.stdout.writeSync(encoder.encode(`\r${line}`.padEnd(60)));
      else console.log(line);
      if (tty && done === total) Deno.stdout.writeSync(encoder.encode("\n"));
    },
    writeExtras: values["onnx-only"] ? undefined : async ({ folder, file }) => {
      for (const [name, json] of Object.entries(buildHfFiles(file))) {
        await Deno.writeTextFile(`${folder}/${name}`, JSON.stringify(json, null, 2) + "\n");
      }
    },
  });
  for (const f of result.files) {
    console.log(`${f.path}: ${(f.bytes / 1e6).toFixed(1)} MB in ${f.seconds.toFixed(1)} s`);
  }
  const s = result.spec;
  console.log(
    `${folder}: ${s.numLayers} layers, hidden ${s.hiddenSize}, ${s.numHeads}/${s.numKvHeads} heads, vocab ${s.vocabSize}; ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
} catch (error) {
  if (
    error instanceof InvalidGgufError || error instanceof UnsupportedGgufError || error instanceof RangeError
  ) {
    console.error(`${error.name}: ${error.message}`);
    Deno.exit(1);
  }
  if (error instanceof Deno.errors.AlreadyExists || error instanceof Deno.errors.NotFound) {
    console.error(error.message);
    Deno.exit(1);
  }
  throw error;
}
