"""Recomputes sample.py shards (features + top-k log-probs) from packed ids (ids.py) by teacher forcing
through the target graph: the next session's way back to training data without sampling again.
  python3 refeature.py --ids ids/train.npz --out /tmp/eagle/train --graph model.onnx
Writes the same shard names and layout as sample.py; existing shards are skipped (resumable).
"""
import argparse, json, os
import numpy as np
import onnxruntime as ort

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, '..', '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--ids', required=True)
ap.add_argument('--out', required=True)
ap.add_argument('--model', default=os.path.join(root, 'models', 'smollm2-135m-instruct'))
ap.add_argument('--graph', default='model.onnx')
ap.add_argument('--topk', type=int, default=64)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--rows', type=int, default=8, help='rows per forward')
args = ap.parse_args()
LAYERS = [2, 15, 29]
cfg = json.load(open(os.path.join(args.model, 'config.json')))
NL, KVH, HD = cfg['num_hidden_layers'], cfg['num_key_value_heads'], cfg['head_dim']
so = ort.SessionOptions()
so.intra_op_num_threads = args.threads
sess = ort.InferenceSession(os.path.join(args.model, 'onnx', args.graph), so, providers=['CPUExecutionProvider'])
names = ['logits'] + [f'hidden_states.{l}' for l in LAYERS]
d = np.load(args.ids)
off = np.concatenate([[0], np.cumsum(d['row_len'])])
os.makedirs(args.out, exist_ok=True)
for si, name in enumerate(d['shard_names']):
    path = os.path.join(args.out, str(name))
    if os.path.exists(path):
        continue
    rows = np.nonzero(d['shard'] == si)[0]
    seqs = [d['ids'][off[r]:off[r + 1]].astype(np.int64) for r in rows]
    feats, tk_ids, tk_lp = [], [], []
    for s in range(0, len(rows), args.rows):
        group = seqs[s:s + args.rows]
        S = max(len(x) for x in group)
        ids = np.full((len(group), S), 2, np.int64)
        mask = np.zeros((len(group), S), np.int64)
        for b, x in enumerate(group):
            ids[b, S - len(x):] = x
            mask[b, S - len(x):] = 1
        feeds = {'input_ids': ids, 'attention_mask': mask, 'position_ids': np.maximum(np.cumsum(mask, 1) - 1, 0)}
        for l in range(NL):
            for kv in ('key', 'value'):
                feeds[f'past_key_values.{l}.{kv}'] = np.zeros((len(group), KVH, 0, HD), np.float32)
        outs = sess.run(names, feeds)
        for b, x in enumerate(group):
            r = rows[s + b]
            lo = S - len(x)
            feats.append(np.concatenate([o[b, lo:S - 1] for o in outs[1:]], -1).astype(np.float16))
            pl = int(d['prompt_len'][r])
            lg = outs[0][b, lo + pl - 1:S - 1].astype(np.float64)      # positions predicting answer tokens
            lse = lg.max(1) + np.log(np.exp(lg - lg.max(1, keepdims=True)).sum(1))
            top = np.argsort(-lg, 1)[:, :args.topk]
            tk_ids.append(top.astype(np.uint16))
            tk_lp.append((np.take_along_axis(lg, top, 1) - lse[:, None]).astype(np.float16))
    lens = np.array([len(x) for x in seqs])
    np.savez(path + '.tmp.npz', ids=np.concatenate(seqs).astype(np.int32),
             row_off=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
             prompt_len=d['prompt_len'][rows], gen_len=d['gen_len'][rows], temp=d['temp'][rows],
             prompt_idx=d['prompt_idx'][rows], feats=np.concatenate(feats), topk_ids=np.concatenate(tk_ids),
             topk_logp=np.concatenate(tk_lp))
    os.replace(path + '.tmp.npz', path)
    print(f'{name}: {len(rows)} rows', flush=True)
