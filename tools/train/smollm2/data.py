"""Load sampled shards (sample_target.py) into training/eval rows for the SmolLM2 draft."""
import glob, os
import numpy as np


def load_rows(data_dir, head_ids=None, V=49152, max_files=None):
    """Returns a list of dicts: ids (int64 [n]), plen, glen, temp, prompt_idx,
    tk (int64 [glen, k]: head column of each top-k token, -1 outside the head, or the token id when
    head_ids is None), tp (float32 [glen, k]: target T=1 probabilities), tlogp (float32 [glen, k])."""
    col = None
    if head_ids is not None:
        col = np.full(V, -1, np.int64)
        col[head_ids] = np.arange(len(head_ids))
    rows = []
    files = sorted(glob.glob(os.path.join(data_dir, '*.npz')))
    if max_files:
        files = files[:max_files]
    for f in files:
        d = np.load(f)
        o, pl, gl = d['row_off'], d['prompt_len'], d['gen_len']
        go = np.concatenate([[0], np.cumsum(gl)])
        ti, tl = d['topk_ids'].astype(np.int64), d['topk_logp'].astype(np.float32)
        for b in range(len(pl)):
            if gl[b] == 0:
                continue
            t = ti[go[b]:go[b + 1]]
            rows.append({'ids': d['ids'][o[b]:o[b + 1]].astype(np.int64), 'plen': int(pl[b]), 'glen': int(gl[b]),
                         'temp': float(d['temp'][b]), 'prompt_idx': int(d['prompt_idx'][b]),
                         'tk': col[t] if col is not None else t, 'tlogp': tl[go[b]:go[b + 1]]})
    return rows
