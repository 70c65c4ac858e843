"""Export a SmolDraft checkpoint to models/smollm2-draft/onnx/model.onnx with the I/O layout of
tools/train/export.py (input_ids, attention_mask, position_ids, past_key_values.{i}.key|value ->
logits [b, t, 49152], present.{i}.key|value), copy the target's tokenizer/generation files, write
config.json, and PyTorch reference logits for verify_draft.ts (/tmp/smollm2_draft/ref/*).
Run: /usr/bin/python3 tools/train/smollm2/export_draft.py --ckpt /tmp/smollm2_draft/ckpt/draft.pt
(then pyenv python3 tools/train/simplify.py --dir models/smollm2-draft, which also runs onnx.checker)
"""
import argparse, json, os, shutil
import numpy as np
import torch
from draft_model import SmolDraft

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, '..', '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--ckpt', required=True)
ap.add_argument('--out', default=os.path.join(root, 'models', 'smollm2-draft'))
ap.add_argument('--target', default=os.path.join(root, 'models', 'smollm2-135m-instruct'))
ap.add_argument('--ref', default='/tmp/smollm2_draft/ref')
ap.add_argument('--eval-shard', default='/tmp/smollm2_draft/eval/shard_r00_000.npz')
ap.add_argument('--opset', type=int, default=17)
args = ap.parse_args()
torch.set_num_threads(2)

ck = torch.load(args.ckpt, map_location='cpu')
cfg = ck['config']
model = SmolDraft(cfg)
model.load_state_dict(ck['state_dict'])
model.eval()
n_layer, kvh, hd = cfg['num_hidden_layers'], cfg['num_key_value_heads'], cfg['head_dim']


class Wrapper(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, position_ids, *past):
        pkv = [(past[2 * i], past[2 * i + 1]) for i in range(n_layer)]
        logits, presents = self.m(input_ids, attention_mask, position_ids, pkv)
        flat = [logits]
        for k, v in presents:
            flat += [k, v]
        return tuple(flat)


os.makedirs(os.path.join(args.out, 'onnx'), exist_ok=True)
onnx_path = os.path.join(args.out, 'onnx', 'model.onnx')
B, S, P = 2, 3, 5
ids = torch.randint(3, cfg['vocab_size'], (B, S))
am = torch.ones(B, P + S, dtype=torch.long)
pos = torch.arange(P, P + S).unsqueeze(0).expand(B, S).contiguous()
past = []
for _ in range(n_layer):
    past += [torch.randn(B, kvh, P, hd), torch.randn(B, kvh, P, hd)]
in_names = ['input_ids', 'attention_mask', 'position_ids']
out_names = ['logits']
dyn = {'input_ids': {0: 'batch_size', 1: 'sequence_length'},
       'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
       'position_ids': {0: 'batch_size', 1: 'sequence_length'},
       'logits': {0: 'batch_size', 1: 'sequence_length'}}
for i in range(n_layer):
    for kv in ('key', 'value'):
        in_names.append(f'past_key_values.{i}.{kv}')
        out_names.append(f'present.{i}.{kv}')
        dyn[f'past_key_values.{i}.{kv}'] = {0: 'batch_size', 2: 'past_sequence_length'}
        dyn[f'present.{i}.{kv}'] = {0: 'batch_size', 2: 'total_sequence_length'}
with torch.no_grad():
    torch.onnx.export(Wrapper(model), (ids, am, pos, *past), onnx_path, input_names=in_names,
                      output_names=out_names, dynamic_axes=dyn, opset_version=args.opset,
                      do_constant_folding=True)
print('exported', onnx_path, os.path.getsize(onnx_path), 'bytes')

config = {k: v for k, v in cfg.items()}
config['transformers_version'] = '4.46.0'
with open(os.path.join(args.out, 'config.json'), 'w') as f:
    json.dump(config, f, indent=2)
for name in ('tokenizer.json', 'tokenizer_config.json', 'generation_config.json'):
    shutil.copyfile(os.path.join(args.target, name), os.path.join(args.out, name))

# reference logits: the first eval row (prompt + target continuation), full no-cache forward
d = np.load(args.eval_shard)
o = d['row_off']
seq = torch.from_numpy(d['ids'][o[0]:o[1]].astype(np.int64))[:64].unsqueeze(0)
L = seq.shape[1]
with torch.no_grad():
    logits, _ = model(seq, torch.ones(1, L, dtype=torch.long), torch.arange(L).unsqueeze(0))
os.makedirs(args.ref, exist_ok=True)
seq.numpy().astype(np.int32).tofile(os.path.join(args.ref, 'smollm2-draft.ids.bin'))
logits.numpy().astype(np.float32).tofile(os.path.join(args.ref, 'smollm2-draft.logits.bin'))
print('reference: ids', tuple(seq.shape), 'logits', tuple(logits.shape), 'finite share',
      float(torch.isfinite(logits).float().mean()))
