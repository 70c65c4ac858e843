/**
 * Private helpers: the token → bytes mapping used by {@linkcode Tokenizer.tokenBytes}.
 *
 * @module
 */

/** How a tokenizer's model vocabulary strings map to bytes. */
export type ByteMode = "byteLevel" | "sentencepiece" | "unsupported";

let _unicodeToByte: Map<string, number> | undefined;

/**
 * GPT-2's `bytes_to_unicode` table, inverted: the printable character that stands for each byte in a
 * byte-level BPE vocabulary → that byte.
 */
export function unicodeToByte(): Map<string, number> {
  if (_unicodeToByte) return _unicodeToByte;
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  _unicodeToByte = new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]), b]));
  return _unicodeToByte;
}

function _types(component: any): string[] {
  if (!component || typeof component !== "object") return [];
  if (component.type === "Sequence") {
    const parts = component.decoders ?? component.pretokenizers ?? [];
    return parts.flatMap(_types);
  }
  return [String(component.type)];
}

function _find(component: any, type: string): any {
  if (!component || typeof component !== "object") return undefined;
  if (component.type === type) return component;
  if (component.type === "Sequence") {
    for (const c of component.decoders ?? component.pretokenizers ?? []) {
      const hit = _find(c, type);
      if (hit) return hit;
    }
  }
  return undefined;
}

/** Reads from a tokenizer.json how vocabulary strings become bytes and whether encode adds a prefix space. */
export function byteModeOf(json: any): { mode: ByteMode; prefixSpace: boolean } {
  const decoderTypes = _types(json.decoder);
  if (decoderTypes.includes("ByteLevel")) {
    const pre = _find(json.pre_tokenizer, "ByteLevel");
    return { mode: "byteLevel", prefixSpace: Boolean(pre?.add_prefix_space) };
  }
  if (
    json.model?.byte_fallback || decoderTypes.includes("Metaspace") || decoderTypes.includes("ByteFallback")
  ) {
    const meta = _find(json.decoder, "Metaspace");
    const strip = _find(json.decoder, "Strip");
    const prefixSpace = meta
      ? (meta.prepend_scheme ? meta.prepend_scheme !== "never" : meta.add_prefix_space !== false)
      : Boolean(strip && strip.start > 0);
    return { mode: "sentencepiece", prefixSpace };
  }
  return { mode: "unsupported", prefixSpace: false };
}

const _encoder = new TextEncoder();
const _byteFallback = /^<0x([0-9A-Fa-f]{2})>$/;

/** The bytes one model-vocabulary string stands for. */
export function pieceBytes(piece: string, mode: ByteMode, byteFallback: boolean): Uint8Array {
  if (mode === "byteLevel") {
    const table = unicodeToByte();
    const out: number[] = [];
    for (const ch of piece) {
      const b = table.get(ch);
      if (b === undefined) out.push(..._encoder.encode(ch));
      else out.push(b);
    }
    return Uint8Array.from(out);
  }
  if (mode === "sentencepiece") {
    const m = byteFallback ? _byteFallback.exec(piece) : null;
    if (m) return Uint8Array.of(parseInt(m[1], 16));
    return _encoder.encode(piece.replaceAll("\u2581", " "));
  }
  return _encoder.encode(piece);
}
