"""Packs the token ids of sample.py shards into one compact file per split (committed under ids/, kept
out of the published package) — everything else in a shard (features, top-k log-probs) is a function of
these ids and the target graph: refeature.py recomputes it.
  python3 ids.py --data /tmp/eagle/train --out ids/train.npz
"""
import argparse, glob, os
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument('--data', required=True)
ap.add_argument('--out', required=True)
args = ap.parse_args()
files = sorted(glob.glob(os.path.join(args.data, 'shard_*.npz')))
cols = {k: [] for k in ('ids', 'row_len', 'prompt_len', 'gen_len', 'temp', 'prompt_idx', 'shard')}
for si, f in enumerate(files):
    d = np.load(f)
    o = d['row_off']
    cols['ids'].append(d['ids'].astype(np.uint16))
    cols['row_len'].append(np.diff(o).astype(np.int32))
    for k in ('prompt_len', 'gen_len', 'temp', 'prompt_idx'):
        cols[k].append(d[k])
    cols['shard'].append(np.full(len(o) - 1, si, np.int32))
out = {k: np.concatenate(v) for k, v in cols.items()}
out['shard_names'] = np.array([os.path.basename(f) for f in files])
os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
np.savez_compressed(args.out, **out)
print(f'{len(files)} shards, {len(out["row_len"])} rows, {int(out["gen_len"].sum())} answer tokens, '
      f'{int(out["row_len"].sum())} tokens -> {args.out} ({os.path.getsize(args.out):,} bytes)')
