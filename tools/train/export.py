"""Export a trained checkpoint to the HF Optimum / transformers.js folder layout:
    models/<name>/{config.json, generation_config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx}
and write PyTorch reference logits for the equivalence check (tools/train/ref/<name>.*).
Run: nice -n 19 /usr/bin/python3 tools/train/export.py target   (and: draft)
"""
import argparse, json, os, shutil
import numpy as np
import torch
import onnx
from model import build

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
ap = argparse.ArgumentParser()
ap.add_argument('kind', choices=['target', 'draft'])
ap.add_argument('--ckpt', default=None)
ap.add_argument('--out', default=None)
ap.add_argument('--opset', type=int, default=17)
ap.add_argument('--random', action='store_true', help='untrained weights (for testing the export only)')
args = ap.parse_args()
torch.set_num_threads(2)

if args.random:
    from model import target_config, draft_config
    torch.manual_seed(0)
    cfg = target_config() if args.kind == 'target' else draft_config()
    model = build(args.kind, cfg)
else:
    ck = torch.load(args.ckpt or os.path.join(here, 'ckpt', f'{args.kind}.pt'), map_location='cpu')
    cfg = ck['config']
    model = build(args.kind, cfg)
    model.load_state_dict(ck['state_dict'])
model.eval()
if args.kind == 'target':
    n_layer, kvh, hd = cfg['n_layer'], cfg['n_head'], cfg['n_embd'] // cfg['n_head']
else:
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


out_dir = args.out or os.path.join(root, 'models', args.kind)
os.makedirs(os.path.join(out_dir, 'onnx'), exist_ok=True)
onnx_path = os.path.join(out_dir, 'onnx', 'model.onnx')

# trace with batch 2, seq 3, past 5 (all axes dynamic)
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
m = onnx.load(onnx_path)
# Tied lm_head: torch exports it as MatMul(x2d, W^T) and constant folding stores W^T as a second
# initializer. Replace it with Gemm(x2d, W, transB=1) on the embedding itself (stored once).
from onnx import numpy_helper, helper
emb_name = 'm.wte.weight' if args.kind == 'target' else 'm.embed_tokens.weight'
inits = {i.name: i for i in m.graph.initializer}
emb = numpy_helper.to_array(inits[emb_name])
n_swapped = 0
for idx, node in enumerate(list(m.graph.node)):
    if node.op_type == 'MatMul' and node.input[1] in inits and inits[node.input[1]].dims == [emb.shape[1], emb.shape[0]]:
        wt = numpy_helper.to_array(inits[node.input[1]])
        assert np.array_equal(wt, emb.T)
        gemm = helper.make_node('Gemm', [node.input[0], emb_name], list(node.output), name=node.name + '_tied_gemm', transB=1)
        m.graph.node.remove(node)
        m.graph.node.insert(idx, gemm)
        m.graph.initializer.remove(inits[node.input[1]])
        n_swapped += 1
assert n_swapped == 1, n_swapped
onnx.save(m, onnx_path)
onnx.checker.check_model(m, full_check=True)
print('onnx.checker: OK;', onnx_path, os.path.getsize(onnx_path), 'bytes;',
      'inputs', [i.name for i in m.graph.input][:5], '... outputs', [o.name for o in m.graph.output][:3], '...')

# ---- HF-style config files
config = dict(cfg)
config['transformers_version'] = '4.46.0'
with open(os.path.join(out_dir, 'config.json'), 'w') as f:
    json.dump(config, f, indent=2)
with open(os.path.join(out_dir, 'generation_config.json'), 'w') as f:
    json.dump({'bos_token_id': 1, 'eos_token_id': 1, 'pad_token_id': 2, 'do_sample': True,
               'temperature': 0.8, 'max_length': cfg.get('n_positions', cfg.get('max_position_embeddings')),
               'transformers_version': '4.46.0'}, f, indent=2)
shutil.copyfile('/work/shared/data/tinystories-bpe-8k.tokenizer.json', os.path.join(out_dir, 'tokenizer.json'))
with open(os.path.join(out_dir, 'tokenizer_config.json'), 'w') as f:
    json.dump({'tokenizer_class': 'PreTrainedTokenizerFast', 'model_max_length': 256,
               'bos_token': '<eos>', 'eos_token': '<eos>', 'unk_token': '<unk>', 'pad_token': '<pad>',
               'add_bos_token': True, 'add_eos_token': False, 'clean_up_tokenization_spaces': False,
               'padding_side': 'left'}, f, indent=2)

# ---- reference logits for the equivalence check: a validation window, full no-cache forward
val = np.load(os.path.join(here, 'data', 'val.npy')).astype(np.int64)
L = 48
seq = torch.from_numpy(val[1000:1000 + L]).unsqueeze(0)
with torch.no_grad():
    logits, _ = model(seq, torch.ones(1, L, dtype=torch.long), torch.arange(L).unsqueeze(0))
os.makedirs(os.path.join(here, 'ref'), exist_ok=True)
seq.numpy().astype(np.int32).tofile(os.path.join(here, 'ref', f'{args.kind}.ids.bin'))
logits.numpy().astype(np.float32).tofile(os.path.join(here, 'ref', f'{args.kind}.logits.bin'))
print('reference: ids', seq.shape, 'logits', tuple(logits.shape))
