"""A second fp32 route for tests/llama_cpp_parity_test.ts: a plain NumPy Llama forward on a GGUF.

The weights are dequantized by the `gguf` package (llama.cpp's own gguf-py, PyPI `gguf`), not by
spectr's src/convert/dequant.ts, and the forward is written from the Llama math on the GGUF layout,
as llama.cpp computes it: q/k rows stay in GGUF order and RoPE rotates adjacent pairs (2i, 2i + 1)
("normal" rope), so it shares nothing with the converter's un-permutation and rotate_half. Computes
in float64 (the weights are exact float32 values after dequantization), causal attention over each
whole passage from position 0.

Usage (see tools/parity/measure_spread.ts, which drives it):
  python3 numpy_llama.py < request.json
request: {"gguf": path, "passages": [[id, ...], ...], "out": path}. Writes the logits of every
position of every passage, float32 little-endian, passage after passage, [positions, vocab] each;
prints one JSON line {"positions", "vocab", "seconds"}.

Needs: pip install gguf numpy (measured with gguf 0.17.1, numpy 2.4).
"""

import json
import sys
import time

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main() -> None:
    request = json.load(sys.stdin)
    started = time.time()
    reader = GGUFReader(request["gguf"])

    def field(key: str):
        f = reader.fields[key]
        return f.parts[f.data[0]][0]

    n_layers = int(field("llama.block_count"))
    n_heads = int(field("llama.attention.head_count"))
    n_kv = int(field("llama.attention.head_count_kv"))
    hidden = int(field("llama.embedding_length"))
    eps = float(field("llama.attention.layer_norm_rms_epsilon"))
    theta = float(field("llama.rope.freq_base"))
    head_dim = hidden // n_heads
    tensors = {t.name: t for t in reader.tensors}

    def weight(name: str) -> np.ndarray:
        t = tensors[name]
        # numpy shape is the ggml dims reversed: [rows (out), cols (in)] for a matrix
        return dequantize(t.data, t.tensor_type).astype(np.float64)

    embed = weight("token_embd.weight")  # [vocab, hidden]
    head = weight("output.weight") if "output.weight" in tensors else embed
    layers = []
    for i in range(n_layers):
        p = f"blk.{i}."
        layers.append({n: weight(p + n + ".weight") for n in (
            "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
            "ffn_down")})
    out_norm = weight("output_norm.weight")

    def rms(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(x: np.ndarray) -> np.ndarray:
        # x [T, heads, D]: rotate pairs (2j, 2j + 1) by pos · theta^(−2j/D)
        t = x.shape[0]
        freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
        ang = np.arange(t, dtype=np.float64)[:, None] * freq[None, :]  # [T, D/2]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., 0::2], x[..., 1::2]
        y = np.empty_like(x)
        y[..., 0::2] = a * cos - b * sin
        y[..., 1::2] = a * sin + b * cos
        return y

    positions = 0
    with open(request["out"], "wb") as out:
        for ids in request["passages"]:
            t = len(ids)
            x = embed[np.asarray(ids)]
            mask = np.triu(np.full((t, t), -np.inf), 1)
            rep = n_heads // n_kv
            for w in layers:
                h = rms(x, w["attn_norm"])
                q = rope((h @ w["attn_q"].T).reshape(t, n_heads, head_dim))
                k = rope((h @ w["attn_k"].T).reshape(t, n_kv, head_dim))
                v = (h @ w["attn_v"].T).reshape(t, n_kv, head_dim)
                ctx = np.empty((t, n_heads, head_dim))
                for hh in range(n_heads):
                    kv = hh // rep
                    s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(head_dim) + mask
                    s = np.exp(s - s.max(axis=-1, keepdims=True))
                    ctx[:, hh, :] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kv, :]
                x = x + ctx.reshape(t, hidden) @ w["attn_output"].T
                h2 = rms(x, w["ffn_norm"])
                g = h2 @ w["ffn_gate"].T
                u = h2 @ w["ffn_up"].T
                x = x + ((g / (1 + np.exp(-g))) * u) @ w["ffn_down"].T
            logits = rms(x, out_norm) @ head.T
            out.write(logits.astype("<f4").tobytes())
            positions += t
    print(json.dumps({"positions": positions, "vocab": int(embed.shape[0]), "seconds": time.time() - started}))


if __name__ == "__main__":
    main()
