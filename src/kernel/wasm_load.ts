/**
 * Getting the kernel module's bytes and telling why they do not validate: the loading half of
 * `loadKernel` (`wasm.ts`), which instantiates them.
 *
 * @module
 */

/** The smallest module using a SIMD instruction, to tell "no SIMD here" from "bad module". */
const SIMD_PROBE = new Uint8Array([
  0,
  97,
  115,
  109,
  1,
  0,
  0,
  0,
  1,
  5,
  1,
  96,
  0,
  1,
  123,
  3,
  2,
  1,
  0,
  10,
  10,
  1,
  8,
  0,
  65,
  0,
  253,
  15,
  253,
  98,
  11,
]);

/**
 * Where the kernel module lies: `spectr_kernel.wasm` beside this file (`src/kernel/`), or beside
 * the bundle after bundling (tools/bundle.ts copies it there). One place for both users of the
 * module: `loadKernel` (the verification kernel) and the `kernel` model backend.
 *
 * @returns The module's URL.
 * @example
 * ```ts
 * import { kernelWasmUrl } from "./wasm_load.ts";
 * console.assert(kernelWasmUrl().pathname.endsWith("/spectr_kernel.wasm"));
 * ```
 */
export function kernelWasmUrl(): URL {
  return new URL("./spectr_kernel.wasm", import.meta.url);
}

/**
 * The module's bytes: `source` itself, or fetched from a URL (a string is resolved against this
 * folder, `src/kernel/`, or the bundle's URL after bundling).
 *
 * @param source Bytes, or a URL / URL string (`file:`, `https:`, …) to fetch.
 * @returns The bytes.
 * @throws {Error} the fetch answers with an HTTP error.
 * @example
 * ```ts
 * import { readBytes } from "./wasm_load.ts";
 * const bytes = await readBytes("./spectr_kernel.wasm");
 * console.assert(bytes.byteLength > 0);
 * ```
 */
export async function readBytes(source: BufferSource | URL | string): Promise<BufferSource> {
  if (source instanceof URL || typeof source === "string") {
    const url = source instanceof URL ? source : new URL(source, import.meta.url);
    const response = await fetch(url);
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`Cannot load the WASM kernel: fetching ${url.href} gave HTTP ${response.status}`);
    }
    return new Uint8Array(await response.arrayBuffer());
  }
  return source;
}

/**
 * Why the bytes cannot be used, or `undefined` when they validate.
 *
 * @param bytes The module's bytes.
 * @returns `"this runtime lacks WebAssembly SIMD (…)"` where even a minimal SIMD module does not
 * validate, else `"the module does not validate"`; `undefined` for valid bytes.
 * @example
 * ```ts
 * import { invalidReason } from "./wasm_load.ts";
 * console.assert(invalidReason(new Uint8Array([0, 97, 115, 109])) !== undefined);
 * ```
 */
export function invalidReason(bytes: BufferSource): string | undefined {
  if (WebAssembly.validate(bytes)) return undefined;
  return WebAssembly.validate(SIMD_PROBE)
    ? "the module does not validate"
    : "this runtime lacks WebAssembly SIMD (the module does not validate)";
}
