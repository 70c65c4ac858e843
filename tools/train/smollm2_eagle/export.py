"""Writes models/smollm2-eagle/{config.json, drafter.safetensors} from a train.py checkpoint
(Debian /usr/bin/python3 with torch; the safetensors format is written by hand: u64 LE header length,
JSON header, little-endian data). Weights are stored float16, d2t int32.
  /usr/bin/python3 export.py --ckpt /tmp/eagle/ckpt/drafter.pt --prep /tmp/eagle/prep.npz
"""
import argparse, json, os, struct
import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, '..', '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--ckpt', default='/tmp/eagle/ckpt/drafter.pt')
ap.add_argument('--prep', default='/tmp/eagle/prep.npz')
ap.add_argument('--out', default=os.path.join(root, 'models', 'smollm2-eagle'))
ap.add_argument('--meta', default='{}', help='JSON object stored as the header __metadata__ (strings)')
args = ap.parse_args()

ck = torch.load(args.ckpt)
sd = ck['state_dict']
names = {'fc.weight': 'fc.weight', 'in_proj.weight': 'in_proj.weight', 'in_proj.bias': 'in_proj.bias',
         'layer.input_norm.weight': 'input_norm', 'layer.post_norm.weight': 'post_norm',
         'layer.q.weight': 'q.weight', 'layer.k.weight': 'k.weight', 'layer.v.weight': 'v.weight',
         'layer.o.weight': 'o.weight', 'layer.gate.weight': 'gate.weight', 'layer.up.weight': 'up.weight',
         'layer.down.weight': 'down.weight', 'norm.weight': 'norm'}
tensors = {k: sd[v].detach().float().numpy().astype('<f2') for k, v in names.items()}
d2t = np.load(args.prep)['d2t'].astype('<i4')
assert np.all(np.diff(d2t) > 0)
tensors['d2t'] = d2t
header, blobs, off = {}, [], 0
meta = {k: str(v) for k, v in json.loads(args.meta).items()}
meta.update({'step': str(ck['step']), 'format': 'spectr_eagle drafter, docs/eagle_drafter.md'})
header['__metadata__'] = meta
for k in sorted(tensors):
    a = np.ascontiguousarray(tensors[k])
    b = a.tobytes()
    header[k] = {'dtype': 'F16' if a.dtype == np.float16 else 'I32', 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(header, separators=(',', ':')).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, 'drafter.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(h)))
    f.write(h)
    for b in blobs:
        f.write(b)
m = ck['args']
config = {
    'model_type': 'spectr_eagle', 'architectures': ['SpectrEagleDrafter'],
    'target_hidden_layers': [2, 15, 29], 'target_hidden_size': 576,
    'hidden_size': 576, 'intermediate_size': 1536, 'num_attention_heads': 9, 'num_key_value_heads': 3,
    'head_dim': 64, 'rms_norm_eps': 1e-5, 'rope_theta': 100000, 'vocab_size': 49152,
    'draft_vocab_size': int(len(d2t)), 'max_position_embeddings': 8192, 'target': 'smollm2-135m-instruct',
}
with open(os.path.join(args.out, 'config.json'), 'w') as f:
    json.dump(config, f, indent=2)
    f.write('\n')
print(f'wrote {args.out}/drafter.safetensors ({8 + len(h) + off:,} bytes, step {ck["step"]}) and config.json')
