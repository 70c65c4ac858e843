/**
 * A model file read straight into the kernel's WebAssembly memory (its "image"), so that the
 * 8-bit layers' codes are used where they lie instead of being copied: the file is never held
 * twice (once as file bytes, once as weights), which is what keeps the real q8 pair within an edge
 * function's memory.
 *
 * A family's reader parses the image like any file and returns weights whose arrays may be views
 * of it. {@linkcode adoptImage} then settles every such view before the family places its weights
 * (placing allocates, and growing the memory detaches every view of it): an 8-bit weight's codes
 * are re-centred in place (code − 128, what `LinearMemory.linear` does while copying) and recorded
 * by offset, as are float32 weights (used as they lie); any other view is copied out of the image.
 *
 * @module
 */
import type { LinearMemory } from "./ops.ts";
import { recentreCodes } from "./q8_weight.ts";

/** Where the image's 8-bit codes and float32 weights lie in the kernel's memory, by the view the reader returned. */
export type InPlaceCodes = WeakMap<Uint8Array | Float32Array, number>;

/**
 * Settles the views of `image` inside `weights` (walked through plain objects and arrays): codes
 * of `{ kind: "q8" }` weights are re-centred in place and recorded, float32 views recorded; every
 * other view of the image is replaced by a copy.
 *
 * @param weights A family reader's weights over `image`.
 * @param image The file's bytes, a view of `memory`'s buffer at byte offset `at`.
 * @returns The in-place arrays (for `LinearMemory.adopt`) and the codes' byte count.
 * @throws {Error} two different code views overlap (re-centring twice would undo it).
 */
export function adoptImage(weights: unknown, image: Uint8Array): { codes: InPlaceCodes; bytes: number } {
  const codes: InPlaceCodes = new WeakMap();
  const ranges: [number, number][] = [];
  const seen = new Set<unknown>();
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== "object" || seen.has(node) || ArrayBuffer.isView(node)) return;
    seen.add(node);
    const record = node as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const value = record[key];
      if (ArrayBuffer.isView(value)) {
        if (value.buffer !== image.buffer) continue;
        if (record.kind === "q8" && key === "codes" && value instanceof Uint8Array) {
          if (!codes.has(value)) {
            ranges.push([value.byteOffset, value.byteOffset + value.byteLength]);
            recentreCodes(value, value);
            codes.set(value, value.byteOffset);
          }
        } else if (value instanceof Float32Array) {
          codes.set(value, value.byteOffset); // float32 views are 4-aligned: used where they lie
        } else {
          record[key] = (value as Uint8Array).slice();
        }
      } else visit(value);
    }
  };
  visit(weights);
  ranges.sort((a, b) => a[0] - b[0]);
  let bytes = 0;
  for (let i = 0; i < ranges.length; i++) {
    if (i > 0 && ranges[i][0] < ranges[i - 1][1]) {
      throw new Error(
        `Cannot use the model file in place: two weights' codes overlap at bytes ${ranges[i][0]}–${
          ranges[i - 1][1]
        }`,
      );
    }
    bytes += ranges[i][1] - ranges[i][0];
  }
  return { codes, bytes };
}

/**
 * Reads `file` of a folder into `memory` (allocated there, at the current top), piece by piece
 * where the loader can ({@linkcode ModelLoader.readInto}).
 *
 * @returns The image: a view of the memory's buffer.
 */
export async function readImage(
  folder: {
    readInto?(name: string, destination: (n: number) => Uint8Array): Promise<Uint8Array>;
    readBytes(name: string): Promise<Uint8Array>;
  },
  file: string,
  memory: LinearMemory,
): Promise<Uint8Array> {
  const into = (n: number) => {
    const at = memory.alloc(n);
    return memory.u8.subarray(at, at + n);
  };
  if (typeof folder.readInto === "function") return await folder.readInto(file, into);
  const bytes = await folder.readBytes(file);
  const image = into(bytes.length);
  image.set(bytes);
  return image;
}
