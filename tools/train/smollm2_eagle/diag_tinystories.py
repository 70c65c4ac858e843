"""Diagnostic of session 7 (models/README.md, "Diagnostic: is it the recipe or the data?"): TinyStories passages
(../shared/data/tinystories-sample.txt) wrapped as chat answers to one story prompt, packed in ids.py's layout so
refeature.py teacher-forces them through the target. Stories 0-31 are the eval split, 32.. the training split.
  python3 diag_tinystories.py 300                       # -> /tmp/eagle/ts/{eval,train}_ids.npz
  python3 refeature.py --ids /tmp/eagle/ts/eval_ids.npz --out /tmp/eagle/ts/eval --graph model.onnx
  python3 refeature.py --ids /tmp/eagle/ts/train_ids.npz --out /tmp/eagle/ts/train --graph model.onnx
  OPENBLAS_NUM_THREADS=2 /usr/bin/python3 train.py --data /tmp/eagle/ts/train --eval /tmp/eagle/ts/eval \\
      --prep /tmp/eagle/prep.npz --steps 100000 --max-minutes 12 --batch 8 --lr 2e-3 --ttt 1 --eval-every 50 \\
      --seed 1234 --out /tmp/eagle/ts/ckpt/drafter.pt          # logs/diag_tinystories.log
"""
import os, sys
import numpy as np
from tokenizers import Tokenizer

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, '..', '..', '..'))
sys.path.insert(0, os.path.join(here, '..', 'smollm2'))
from prompts import render  # noqa: E402

OUT = '/tmp/eagle/ts'
tok = Tokenizer.from_file(os.path.join(root, 'models', 'smollm2-135m-instruct', 'tokenizer.json'))
text = open(os.path.join(root, '..', 'shared', 'data', 'tinystories-sample.txt')).read()
stories = [s.strip() for s in text.split('<|endoftext|>') if s.strip()]
prompt = tok.encode(render('Write a short story for young children.'), add_special_tokens=False).ids


def pack(sel, out, per_shard=16):
    rows = []
    for i in sel:
        answer = tok.encode(stories[i], add_special_tokens=False).ids[:200] + [2]   # <|im_end|>
        rows.append((i, answer))
    np.savez_compressed(
        out,
        ids=np.concatenate([np.array(prompt + a, np.uint16) for _, a in rows]),
        row_len=np.array([len(prompt) + len(a) for _, a in rows], np.int32),
        prompt_len=np.full(len(rows), len(prompt), np.int32),
        gen_len=np.array([len(a) for _, a in rows], np.int32),
        temp=np.ones(len(rows), np.float32),
        prompt_idx=np.array([i for i, _ in rows], np.int32),
        shard=np.arange(len(rows), dtype=np.int32) // per_shard,
        shard_names=np.array([f'shard_r00_{k:03d}.npz' for k in range((len(rows) + per_shard - 1) // per_shard)]))
    print(out, len(rows), 'rows', sum(len(a) for _, a in rows), 'answer tokens')


os.makedirs(OUT, exist_ok=True)
pack(range(0, 32), os.path.join(OUT, 'eval_ids.npz'))
pack(range(32, 32 + int(sys.argv[1]) if len(sys.argv) > 1 else 332), os.path.join(OUT, 'train_ids.npz'))
