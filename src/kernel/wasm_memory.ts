/**
 * The WASM kernel's memory arena: where one call's buffers lie in the module's linear memory and
 * the typed views over it. JS owns everything above `spectr_heap_base()` (the module has no
 * allocator); each call lays its buffers out from there, 16-byte aligned:
 *
 *     base: a [n f32] | b [n f32] | c [n f32] | d [n f32] | out [8 f64]
 *           | candidates [count u32] | uniforms [count + 1 f64] | ids [count i32]
 *           | scratch [spectr_scratch_bytes(n, count)]
 *
 * Rows a and b are the inputs (p, q or the two logit rows), c and d the outputs; `scratch` is
 * carved into regions by the kernel itself (`wasm/src/layout.rs`). Memory grows on demand, which
 * detaches every view of the old buffer: {@linkcode KernelMemory} re-creates its views then.
 *
 * @module
 */

import type { Probs } from "./types.ts";
import { type KernelExports, OUT_BYTES } from "./wasm_abi.ts";

/** Byte offsets of one call's buffers in WASM memory. */
export interface Layout {
  /** Input row 0 (`n` f32). */
  a: number;
  /** Input row 1 (`n` f32). */
  b: number;
  /** Output row 0 (`n` f32). */
  c: number;
  /** Output row 1 (`n` f32). */
  d: number;
  /** The `out` array (8 f64). */
  out: number;
  /** Candidate ids (`count` u32). */
  candidates: number;
  /** Uniforms (`count + 1` f64). */
  uniforms: number;
  /** Drawn ids (`count` i32). */
  ids: number;
  /** The kernel's scratch. */
  scratch: number;
}

/** `x` rounded up to a multiple of 16. */
const up16 = (x: number) => (x + 15) & ~15;

/**
 * The arena over one kernel instance's memory: lays out a call's buffers ({@linkcode layout}),
 * grows memory when they do not fit, and keeps typed views of the current buffer.
 *
 * @example Lay out a call and copy a row in
 * ```ts
 * import { bindExports } from "./wasm_abi.ts";
 * import { KernelMemory } from "./wasm_memory.ts";
 * const bytes = await Deno.readFile(new URL("./spectr_kernel.wasm", import.meta.url));
 * const { instance } = await WebAssembly.instantiate(bytes, {});
 * const memory = new KernelMemory(bindExports(instance));
 * const l = memory.layout(3, 1);
 * memory.put(new Float32Array([1, 2, 3]), l.a);
 * console.assert(memory.f32[(l.a >> 2) + 2] === 3 && l.b - l.a === 16);
 * ```
 */
export class KernelMemory {
  #x: Pick<KernelExports, "memory" | "spectr_scratch_bytes">;
  #base: number;
  /** The current buffer of the module's memory. */
  buffer: ArrayBuffer;
  /** f32 view of {@linkcode buffer}. */
  f32: Float32Array;
  /** f64 view of {@linkcode buffer}. */
  f64: Float64Array;
  /** u32 view of {@linkcode buffer}. */
  u32: Uint32Array;
  /** i32 view of {@linkcode buffer}. */
  i32: Int32Array;

  /**
   * An arena starting at the instance's heap base.
   *
   * @param exports The instance's memory, heap base and scratch size.
   */
  constructor(exports: Pick<KernelExports, "memory" | "spectr_heap_base" | "spectr_scratch_bytes">) {
    this.#x = exports;
    this.#base = up16(exports.spectr_heap_base() >>> 0);
    this.buffer = exports.memory.buffer as ArrayBuffer;
    this.f32 = new Float32Array(this.buffer);
    this.f64 = new Float64Array(this.buffer);
    this.u32 = new Uint32Array(this.buffer);
    this.i32 = new Int32Array(this.buffer);
  }

  /**
   * The buffers of a call on rows of `n` with `count` candidates or uniforms, memory grown to fit
   * (which re-creates the views and detaches any taken before).
   *
   * @param n Row length (vocabulary size).
   * @param count Candidates (K-SEQ, SpecInfer) or uniforms (sample); 0 for none.
   * @returns The byte offsets.
   */
  layout(n: number, count: number): Layout {
    const row = up16(4 * n);
    const a = this.#base, b = a + row, c = b + row, d = c + row;
    const out = d + row;
    const candidates = out + OUT_BYTES;
    const uniforms = candidates + up16(4 * count);
    const ids = uniforms + up16(8 * (count + 1));
    const scratch = ids + up16(4 * count);
    const end = scratch + (this.#x.spectr_scratch_bytes(n, count) >>> 0);
    const memory = this.#x.memory;
    if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
    if (this.buffer !== memory.buffer) {
      this.buffer = memory.buffer as ArrayBuffer;
      this.f32 = new Float32Array(this.buffer);
      this.f64 = new Float64Array(this.buffer);
      this.u32 = new Uint32Array(this.buffer);
      this.i32 = new Int32Array(this.buffer);
    }
    return { a, b, c, d, out, candidates, uniforms, ids, scratch };
  }

  /**
   * Copies a row to `offset` as f32 (one `set()`); skipped for a view already at `offset` (see
   * `WasmKernel.rowViews`).
   *
   * @param row The row.
   * @param offset Its byte offset (a row of a {@linkcode Layout}).
   */
  put(row: Probs, offset: number): void {
    if (row instanceof Float32Array && row.buffer === this.buffer && row.byteOffset === offset) return;
    this.f32.set(row, offset >> 2);
  }

  /**
   * Copies candidate ids (u32) and uniforms (f64) to their buffers.
   *
   * @param l The call's layout.
   * @param candidates Candidate ids.
   * @param uniforms Uniforms.
   */
  putDraws(l: Layout, candidates: ArrayLike<number>, uniforms: ArrayLike<number>): void {
    this.u32.set(candidates, l.candidates >> 2);
    this.f64.set(uniforms, l.uniforms >> 3);
  }

  /**
   * Reads one slot (an `OUT` index, `wasm_abi.ts`) of the `out` array.
   *
   * @param l The call's layout.
   * @param slot The slot.
   * @returns Its f64 value.
   */
  out(l: Layout, slot: number): number {
    return this.f64[(l.out >> 3) + slot];
  }
}
