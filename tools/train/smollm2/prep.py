"""Head vocabulary and embedding initialisation for the SmolLM2 draft (pyenv python3: onnx + numpy).

head: the K tokens with the largest target probability mass over the sampled training data
(sum over generated positions of the target's stored top-k probabilities, plus the sampled tokens'
counts), always including the special/chat-template tokens 0, 1, 2. Input-only tokens outside the head
(e.g. rare prompt words) share one extra embedding row.
init: uncentred PCA (top-d right singular vectors P of the target's tied token_embd E [49152, 576]);
the draft's embedding rows are E[head] @ P and, for the shared row, the mean of E[other] @ P,
rescaled to unit RMS per row times --scale.
  python3 prep.py --data /tmp/smollm2_draft/train --k 6144 --d 256 --out /tmp/smollm2_draft/init.npz
"""
import argparse, glob, os
import numpy as np
import onnx
from onnx import numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, '..', '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--data', default='/tmp/smollm2_draft/train')
ap.add_argument('--target', default=os.path.join(root, 'models', 'smollm2-135m-instruct', 'onnx', 'model.onnx'))
ap.add_argument('--k', type=int, default=6144)
ap.add_argument('--d', type=int, default=256)
ap.add_argument('--out', default='/tmp/smollm2_draft/init.npz')
ap.add_argument('--max-files', type=int, default=0, help='use only the first N shards (sorted names)')
args = ap.parse_args()
V = 49152

m = onnx.load(args.target)
E = numpy_helper.to_array(next(i for i in m.graph.initializer if i.name == 'token_embd.weight')).astype(np.float64)
del m
soft = np.zeros(V)
cnt = np.zeros(V)
n = 0
for f in sorted(glob.glob(os.path.join(args.data, '*.npz')))[:args.max_files or None]:
    d = np.load(f)
    np.add.at(soft, d['topk_ids'].astype(np.int64).ravel(), np.exp(d['topk_logp'].astype(np.float64)).ravel())
    o, pl = d['row_off'], d['prompt_len']
    for b in range(len(pl)):
        np.add.at(cnt, d['ids'][o[b] + pl[b]:o[b + 1]], 1)
    n += int(d['gen_len'].sum())
score = soft + cnt
score[[0, 1, 2]] = 1e9
head = np.sort(np.argsort(-score, kind='stable')[:args.k])
cover_soft = soft[head].sum() / soft.sum()
cover_cnt = cnt[head].sum() / cnt.sum()
# uncentred PCA of the embedding
_, s, vt = np.linalg.svd(E, full_matrices=False)
P = vt[:args.d].T                                   # [576, d]
Ed = E @ P
other = np.setdiff1d(np.arange(V), head)
rows = np.concatenate([Ed[head], Ed[other].mean(0, keepdims=True)], 0)
rows = rows / np.sqrt((rows ** 2).mean(1, keepdims=True))   # unit RMS per row
np.savez(args.out, head_ids=head.astype(np.int64), emb=rows.astype(np.float32), P=P.astype(np.float32),
         sv=s.astype(np.float32))
print(f'{n} generated tokens; head K={args.k}: covers {cover_soft:.4f} of target top-k mass, '
      f'{cover_cnt:.4f} of sampled tokens; PCA d={args.d} keeps {float((s[:args.d]**2).sum() / (s**2).sum()):.3f} '
      f'of embedding energy; wrote {args.out}')
