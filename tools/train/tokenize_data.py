"""Tokenise TinyStories sample with the 8k BPE tokenizer (run with pyenv python3 + `tokenizers`).
Writes tools/train/data/{train,val}.npy (uint16 token ids, <eos>=1 after every story).
The last ~5% of stories are held out for validation."""
import numpy as np, os, sys
from tokenizers import Tokenizer

here = os.path.dirname(os.path.abspath(__file__))
text = open('/work/shared/data/tinystories-sample.txt', encoding='utf-8').read()
stories = [s.strip() for s in text.split('<|endoftext|>')]
stories = [s for s in stories if s]
tok = Tokenizer.from_file('/work/shared/data/tinystories-bpe-8k.tokenizer.json')
enc = tok.encode_batch(stories, add_special_tokens=False)
n_val = max(1, round(len(stories) * 0.05))
def flat(encs):
    out = []
    for e in encs:
        out.extend(e.ids); out.append(1)  # <eos>
    return np.array(out, dtype=np.uint16)
train, val = flat(enc[:-n_val]), flat(enc[-n_val:])
os.makedirs(os.path.join(here, 'data'), exist_ok=True)
np.save(os.path.join(here, 'data', 'train.npy'), train)
np.save(os.path.join(here, 'data', 'val.npy'), val)
print(f'stories={len(stories)} train_stories={len(stories)-n_val} val_stories={n_val} train_tokens={len(train)} val_tokens={len(val)}')
print('check:', tok.encode('Once upon a time', add_special_tokens=False).ids, tok.encode('Once upon a time').ids)
