/**
 * The kernels the statistical tests run against: the float64 reference always, plus the WASM SIMD
 * kernel when `src/kernel/wasm.ts` exists and exports `loadKernel`. The WASM module is imported
 * dynamically so these tests keep working while it does not exist yet; once it exists, a failure
 * to load it is an error (a kernel that cannot load must not make its tests pass by absence).
 *
 * @module
 */

import { referenceKernel } from "../src/kernel/reference.ts";
import type { Kernel } from "../src/kernel/types.ts";

const WASM_MODULE = new URL("../src/kernel/wasm.ts", import.meta.url);

let loaded: Promise<Kernel[]> | undefined;

async function exists(url: URL): Promise<boolean> {
  try {
    return (await Deno.stat(url)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function load(): Promise<Kernel[]> {
  const kernels: Kernel[] = [referenceKernel];
  if (!(await exists(WASM_MODULE))) return kernels;
  // A non-literal specifier keeps the type checker from requiring the file to exist.
  const specifier = WASM_MODULE.href;
  const mod = await import(specifier) as { loadKernel?: (options?: { fallback?: boolean }) => unknown };
  if (typeof mod.loadKernel !== "function") return kernels;
  // `fallback: false`: fail instead of silently handing back the reference where SIMD is missing.
  const wasm = await mod.loadKernel({ fallback: false }) as Kernel;
  if (!wasm || typeof wasm.kseqSelect !== "function") {
    throw new TypeError(`Cannot use the WASM kernel: loadKernel() returned ${String(wasm)}, not a Kernel`);
  }
  if (wasm !== referenceKernel && wasm.name !== "reference") kernels.push(wasm);
  return kernels;
}

/**
 * Every kernel under test: `[referenceKernel]`, plus the WASM kernel when it is available.
 *
 * @returns The reference first, then the WASM kernel if `src/kernel/wasm.ts` provides one.
 * @throws {Error} `src/kernel/wasm.ts` exists and exports `loadKernel`, but loading fails.
 */
export function kernelsUnderTest(): Promise<Kernel[]> {
  loaded ??= load();
  return loaded;
}

/**
 * The fastest kernel available: the WASM kernel when present, else the reference.
 *
 * @returns The kernel to use for expensive (large-vocabulary) statistical runs.
 */
export async function fastestKernel(): Promise<Kernel> {
  const kernels = await kernelsUnderTest();
  return kernels.find((k) => k.name === "wasm") ?? referenceKernel;
}
