"""Seq2seq training and greedy decoding speed in PyTorch (the anchor of
``benchmarks/seq2seq.py``): target tokens per second.

The same model as ``seqdbr.examples.seq2seq.Seq2seq`` with the same shapes: character
embeddings (E), a bidirectional ``nn.LSTM`` encoder (H per direction, packed
variable-length sources), an ``nn.LSTMCell`` decoder (H) fed ``[embed(y_prev) ; ht_prev]``
(input feeding), Luong 'general' attention with a source-length mask, ``ht = tanh(W_c [c ;
h])``, ``nn.Linear(H, V)``; cross-entropy over the target symbols, Adam and global-norm
gradient clipping at 5. Batches are the generated date pairs of ``seqdbr/datasets/dates.py``
(loaded from its file: seqdbr itself is not imported). Prints one JSON object.

    /work/wt/_torchvenv/bin/python benchmarks/anchors/torch_seq2seq.py --threads 1
"""
import importlib.util
import json
import os
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, os.pardir, os.pardir)


def load_dates_module():
    spec = importlib.util.spec_from_file_location(
        'dates', os.path.join(ROOT, 'seqdbr', 'datasets', 'dates.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def batches(n_batches, batch_size, seed):
    """Lists of (source ids, target ids) batches; ids as in seqdbr's date_vocabs()."""
    d = load_dates_module()
    pairs = d.load_dates(n_batches * batch_size, 0, 0, seed=seed)['train']
    sx = {c: i + 1 for i, c in enumerate(d.SOURCE_ALPHABET)}
    ty = {c: i + 2 for i, c in enumerate(d.TARGET_ALPHABET)}
    ex = [([sx[c] for c in s], [ty[c] for c in t]) for s, t in pairs]
    return [ex[i:i + batch_size] for i in range(0, len(ex), batch_size)], \
        len(d.SOURCE_ALPHABET) + 1, len(d.TARGET_ALPHABET) + 2


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--embed', type=int, default=32)
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--iters', type=int, default=40, help='timed training iterations')
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--decode-batch', type=int, default=256)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    nn = torch.nn
    E, H = args.embed, args.hidden
    data, Vs, Vt = batches(args.warmup + args.iters, args.batch_size, args.seed)
    EOS, BOS = 0, 1

    class Seq2seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_x = nn.Embedding(Vs, E)
            self.encoder = nn.LSTM(E, H, 1, batch_first=True, bidirectional=True)
            self.bridge = nn.Linear(2 * H, H)
            self.embed_y = nn.Embedding(Vt, E)
            self.decoder = nn.LSTMCell(E + H, H)
            self.linear_in = nn.Linear(H, 2 * H, bias=False)
            self.linear_out = nn.Linear(3 * H, H, bias=False)
            self.out = nn.Linear(H, Vt)

        def encode(self, xs):
            lengths = torch.tensor([len(x) for x in xs])
            pad = nn.utils.rnn.pad_sequence([torch.tensor(x) for x in xs], batch_first=True)
            packed = nn.utils.rnn.pack_padded_sequence(self.embed_x(pad), lengths,
                                                       batch_first=True, enforce_sorted=False)
            out, (hn, _) = self.encoder(packed)
            hs, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
            mask = torch.arange(hs.shape[1])[None, :] < lengths[:, None]
            h = torch.tanh(self.bridge(torch.cat([hn[0], hn[1]], dim=1)))
            z = torch.zeros_like(h)
            return hs, mask, (h, z, z)

        def step(self, state, y_prev, hs, mask):
            h, c, ht = state
            h, c = self.decoder(torch.cat([self.embed_y(y_prev), ht], dim=1), (h, c))
            s = torch.bmm(hs, self.linear_in(h).unsqueeze(2)).squeeze(2)
            a = torch.softmax(s.masked_fill(~mask, float('-inf')), dim=1)
            ctx = torch.bmm(a.unsqueeze(1), hs).squeeze(1)
            ht = torch.tanh(self.linear_out(torch.cat([ctx, h], dim=1)))
            return (h, c, ht)

        def loss(self, xs, ys):
            hs, mask, state = self.encode(xs)
            B, T = len(ys), max(len(y) for y in ys) + 1
            y_in = torch.full((T, B), EOS, dtype=torch.long)
            y_out = torch.full((T, B), -1, dtype=torch.long)
            y_in[0] = BOS
            for b, y in enumerate(ys):
                y_in[1:len(y) + 1, b] = torch.tensor(y)
                y_out[:len(y), b] = torch.tensor(y)
                y_out[len(y), b] = EOS
            hts = []
            for t in range(T):
                state = self.step(state, y_in[t], hs, mask)
                hts.append(state[2])
            logits = self.out(torch.stack(hts)).reshape(T * B, -1)
            return nn.functional.cross_entropy(logits, y_out.reshape(-1), ignore_index=-1)

        @torch.no_grad()
        def greedy(self, xs, max_length):
            hs, mask, state = self.encode(xs)
            y = torch.full((len(xs),), BOS, dtype=torch.long)
            alive = torch.ones(len(xs), dtype=torch.bool)
            n = 0
            for _ in range(max_length):
                state = self.step(state, y, hs, mask)
                y = self.out(state[2]).argmax(1)
                n += len(xs)            # rows computed (alive or not), as in seqdbr's count
                alive &= y != EOS
                if not alive.any():
                    break
            return n

    model = Seq2seq()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def train_step(batch):
        xs, ys = [b[0] for b in batch], [b[1] for b in batch]
        loss = model.loss(xs, ys)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return sum(len(y) + 1 for y in ys)

    for b in data[:args.warmup]:
        train_step(b)
    t0 = time.perf_counter()
    tokens = sum(train_step(b) for b in data[args.warmup:])
    train_s = time.perf_counter() - t0
    src = [x for b in data for x, _ in b][:args.decode_batch]
    model.greedy(src, 30)
    t0 = time.perf_counter()
    dec_tokens = model.greedy(src, 30)
    dec_s = time.perf_counter() - t0
    print(json.dumps({'framework': 'torch', 'torch': torch.__version__, 'threads': args.threads,
                      'train_tokens_per_s': tokens / train_s, 'train_iter_ms':
                      1000 * train_s / args.iters, 'greedy_tokens_per_s': dec_tokens / dec_s,
                      'embed': E, 'hidden': H, 'batch_size': args.batch_size}))


if __name__ == '__main__':
    sys.exit(main())
