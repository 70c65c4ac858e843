"""Sample text from a trained checkpoint with the PyTorch model (KV cache), temperature 0.8.
Run: nice -n 19 /usr/bin/python3 tools/train/sample.py target --prompt "Once upon a time" --seed 1234
The prompt is encoded by the `tokenizers` package in pyenv's python3 (subprocess; Debian python lacks it)
and generation starts from <eos> (id 1, the story separator the models were trained with) + prompt."""
import argparse, json, os, subprocess
import torch
from model import build

here = os.path.dirname(os.path.abspath(__file__))
TOK = '/work/shared/data/tinystories-bpe-8k.tokenizer.json'
ap = argparse.ArgumentParser()
ap.add_argument('kind', choices=['target', 'draft'])
ap.add_argument('--prompt', default='Once upon a time')
ap.add_argument('--temperature', type=float, default=0.8)
ap.add_argument('--max-new', type=int, default=200)
ap.add_argument('--n', type=int, default=3)
ap.add_argument('--seed', type=int, default=1234)
ap.add_argument('--ckpt', default=None)
args = ap.parse_args()
torch.set_num_threads(2)


def encode(text):
    code = ('import json,sys; from tokenizers import Tokenizer; t=Tokenizer.from_file(sys.argv[1]); '
            'print(json.dumps(t.encode(sys.argv[2], add_special_tokens=False).ids))')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    return json.loads(subprocess.check_output(['python3', '-c', code, TOK, text], env=env))


def byte_decoder():
    # GPT-2 bytes_to_unicode, inverted
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


vocab = json.load(open(TOK, encoding='utf-8'))['model']['vocab']
inv = {i: s for s, i in vocab.items()}
bd = byte_decoder()


def decode(ids):
    return bytes(bd[ch] for i in ids if i > 2 for ch in inv[i]).decode('utf-8', errors='replace')


ck = torch.load(args.ckpt or os.path.join(here, 'ckpt', f'{args.kind}.pt'), map_location='cpu')
model = build(args.kind, ck['config'])
model.load_state_dict(ck['state_dict'])
model.eval()
max_pos = ck['config'].get('n_positions', ck['config'].get('max_position_embeddings'))
prompt = [1] + encode(args.prompt)
g = torch.Generator().manual_seed(args.seed)
for s in range(args.n):
    ids = list(prompt)
    with torch.no_grad():
        x = torch.tensor([ids])
        logits, past = model(x, torch.ones_like(x), torch.arange(len(ids)).unsqueeze(0))
        for _ in range(args.max_new):
            probs = torch.softmax(logits[0, -1] / args.temperature, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=g))
            if nxt == 1 or len(ids) >= max_pos:
                break
            ids.append(nxt)
            n = len(ids)
            logits, past = model(torch.tensor([[nxt]]), torch.ones(1, n, dtype=torch.long),
                                 torch.tensor([[n - 1]]), past)
    print(f'--- {args.kind} sample {s + 1} (seed {args.seed}, T={args.temperature}, {len(ids) - len(prompt)} new tokens)')
    print(decode(ids[1:]).strip())
