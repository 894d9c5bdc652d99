"""PyTorch anchor for the word-level LM: Zaremba et al. 2014 "small"/"medium" on PTB.

Same configuration as ``seqdbr-train-wordlm --preset small`` (nn.Embedding + nn.LSTM +
nn.Linear, every parameter U(-init, init), SGD, loss summed over the window's steps and
averaged over the batch, global gradient norm clipped, lr divided after each epoch from
``decay_after + 1`` on, state carried between windows and reset at each epoch, B parallel
contiguous streams), the same data layout (``(N - 1) // B`` positions per stream, windows of
T) and the same scoring (per-epoch validation with B streams of T windows; the final model on
valid and test with one stream). Its PTB reader is its own (words + ``<eos>`` per line, the
training words as the vocabulary), so nothing is shared with seqdbr.

Run (a separate venv, never a seqdbr dependency)::

    /work/wt/_torchvenv/bin/python benchmarks/anchors/torch_wordlm.py \
        --data-dir /work/shared/data/ptb --out torch_small.jsonl

It prints one line per epoch and writes JSON lines (``epoch``, ``train_perplexity``,
``val_perplexity``, ``lr``, ``time`` = seconds since the start, validation included).
"""
import argparse
import gzip
import json
import math
import os
import time

import torch
import torch.nn as nn

PRESETS = {
    'small': dict(hidden=200, layers=2, dropout=0.0, init=0.1, lr=1.0, decay=0.5,
                  decay_after=4, epochs=13, batch=20, bptt=20, clip=5.0),
    'medium': dict(hidden=650, layers=2, dropout=0.5, init=0.05, lr=1.0, decay=1 / 1.2,
                   decay_after=6, epochs=39, batch=20, bptt=35, clip=5.0),
}


def read_words(path):
    if not os.path.exists(path) and os.path.exists(path + '.gz'):
        path += '.gz'
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rt', encoding='utf-8') as f:
        words = []
        for line in f:
            words.extend(line.split())
            words.append('<eos>')
    return words


class Model(nn.Module):
    def __init__(self, V, H, layers, dropout, init):
        super().__init__()
        self.embed = nn.Embedding(V, H)
        self.lstm = nn.LSTM(H, H, layers, batch_first=True, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(H, V)
        for p in self.parameters():
            nn.init.uniform_(p, -init, init)

    def forward(self, x, state):
        y, state = self.lstm(self.drop(self.embed(x)), state)
        return self.out(self.drop(y)), state


def streams(ids, B):
    L = (ids.numel() - 1) // B
    x = ids[:B * L].view(B, L)
    t = ids[1:B * L + 1].view(B, L)
    return x, t, L


def evaluate(model, ids, B, T):
    """Mean nats per token over every next-word target; the (N-1) mod B leftover targets
    are scored by continuing the last stream, as seqdbr.rnn.lm_eval does."""
    model.eval()
    x, t, L = streams(ids, B)
    total, n, state = 0.0, 0, None
    with torch.no_grad():
        for s in range(0, L, T):
            y, state = model(x[:, s:s + T], state)
            total += nn.functional.cross_entropy(y.reshape(-1, y.shape[-1]),
                                                 t[:, s:s + T].reshape(-1),
                                                 reduction='sum').item()
            n += t[:, s:s + T].numel()
        rest = ids.numel() - 1 - B * L
        if rest:
            st = tuple(v[:, -1:].contiguous() for v in state)
            xr = ids[B * L:B * L + rest].view(1, -1)
            tr = ids[B * L + 1:B * L + 1 + rest]
            y, _ = model(xr, st)
            total += nn.functional.cross_entropy(y.reshape(-1, y.shape[-1]), tr,
                                                 reduction='sum').item()
            n += rest
    model.train()
    return total / n


def worker(a):
    """Timing worker for ``benchmarks/wordlm_speed.py`` (random ids, same update)."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import numpy
    import interleave
    c = PRESETS[a.worker]
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    V, B, T = a.vocab, a.batchsize, c['bptt']
    model = Model(V, c['hidden'], c['layers'], c['dropout'], c['init'])
    rng = numpy.random.default_rng(a.seed)
    wins = [(torch.from_numpy(rng.integers(0, V, (B, T))), torch.from_numpy(rng.integers(0, V, (B, T))))
            for _ in range(8)]
    st = {'state': None}

    def window(i):
        x, t = wins[i % len(wins)]
        state = st['state']
        if state is not None:
            state = tuple(v.detach() for v in state)
        y, st['state'] = model(x, state)
        loss = nn.functional.cross_entropy(y.reshape(-1, V), t.reshape(-1))
        model.zero_grad(set_to_none=False)
        (loss * T).backward()
        nn.utils.clip_grad_norm_(model.parameters(), c['clip'])
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-c['lr'])
        loss.item()

    interleave.serve(window, a.warmup)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--worker', choices=sorted(PRESETS), help=argparse.SUPPRESS)
    ap.add_argument('--batchsize', type=int, default=20)
    ap.add_argument('--vocab', type=int, default=10000)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--data-dir')
    ap.add_argument('--preset', default='small', choices=sorted(PRESETS))
    ap.add_argument('--epochs', type=int)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--out', default='torch_wordlm.jsonl')
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    if not a.data_dir:
        ap.error('--data-dir is required (the folder of ptb.{train,valid,test}.txt[.gz])')
    c = dict(PRESETS[a.preset])
    if a.epochs:
        c['epochs'] = a.epochs
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    split = {k: read_words(os.path.join(a.data_dir, 'ptb.%s.txt' % k))
             for k in ('train', 'valid', 'test')}
    vocab = {w: i for i, w in enumerate(sorted(set(split['train'])))}
    ids = {k: torch.tensor([vocab[w] for w in v], dtype=torch.long) for k, v in split.items()}
    V, B, T = len(vocab), c['batch'], c['bptt']
    model = Model(V, c['hidden'], c['layers'], c['dropout'], c['init'])
    print('vocab %d, train %d tokens, %s' % (V, ids['train'].numel(), c), flush=True)
    x, t, L = streams(ids['train'], B)
    n_win = L // T                      # full windows only, like ParallelSequentialBatcher
    t0 = time.perf_counter()
    log = open(a.out, 'w')
    for epoch in range(1, c['epochs'] + 1):
        lr = c['lr'] * c['decay'] ** max(0, epoch - 1 - c['decay_after'] + 1) \
            if epoch - 1 >= max(c['decay_after'], 1) else c['lr']
        state, total = None, 0.0
        for w in range(n_win):
            xs, ts = x[:, w * T:(w + 1) * T], t[:, w * T:(w + 1) * T]
            if state is not None:
                state = tuple(v.detach() for v in state)
            y, state = model(xs, state)
            loss = nn.functional.cross_entropy(y.reshape(-1, V), ts.reshape(-1))
            model.zero_grad(set_to_none=False)
            (loss * T).backward()         # summed over steps, mean over the batch
            nn.utils.clip_grad_norm_(model.parameters(), c['clip'])
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
            total += loss.item()
        train_loss = total / n_win
        val = evaluate(model, ids['valid'], B, T)
        rec = {'epoch': epoch, 'train_perplexity': math.exp(train_loss),
               'val_perplexity': math.exp(val), 'lr': lr, 'time': time.perf_counter() - t0}
        print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + '\n')
        log.flush()
    final = {'final': True, 'valid_perplexity': math.exp(evaluate(model, ids['valid'], 1, 100)),
             'test_perplexity': math.exp(evaluate(model, ids['test'], 1, 100)),
             'time': time.perf_counter() - t0}
    print(json.dumps(final), flush=True)
    log.write(json.dumps(final) + '\n')
    log.close()


if __name__ == '__main__':
    main()
