"""PyTorch anchor for ``benchmarks/distributed.py``: the char-LM window, 1 process or DDP.

Run with the anchor venv (never imports seqdbr)::

    /work/wt/_torchvenv/bin/python benchmarks/anchors/torch_ddp_charlm.py --nproc 2 --threads 1

One window = Embedding(65, 128) -> 2-layer ``nn.LSTM`` (batch_first) -> Linear(128, 65) ->
cross-entropy (mean over the window's tokens) -> backward -> gradient clipping 5 -> Adam(lr
2e-3), on a global batch of B=50 random-token streams x T=50 steps, state carried and
detached. ``--nproc 1``: one process over all 50 streams. ``--nproc 2``: two processes
(``torch.multiprocessing``), each 25 streams, wrapped in ``DistributedDataParallel`` with
the gloo backend on 127.0.0.1 (gradients all-reduced in buckets during backward).
Prints one JSON line from rank 0: the median window time (the slowest rank's), and for DDP
the median time of a bare gloo all-reduce of the same gradient bytes (measured after the
timed windows, for reference).
"""
import json
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402

B, T, H, VOCAB = 50, 50, 128, 65


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(rank, nproc, threads, windows, warmup, port):
    import numpy
    import torch
    import torch.distributed as dist
    torch.set_num_threads(threads)
    if nproc > 1:
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
        dist.init_process_group('gloo', rank=rank, world_size=nproc)
    torch.manual_seed(0)

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, H)
            self.rnn = torch.nn.LSTM(H, H, num_layers=2, batch_first=True)
            self.out = torch.nn.Linear(H, VOCAB)

        def forward(self, x, state):
            y, state = self.rnn(self.embed(x), state)
            return self.out(y), state

    model = LM()
    net = model if nproc == 1 else torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    lo, hi = rank * B // nproc, (rank + 1) * B // nproc
    wins = common.make_token_windows(B, T, windows + warmup, 0, VOCAB, numpy.int64)
    state, times = None, []
    for i, (x, t) in enumerate(wins):
        x = torch.from_numpy(x[lo:hi])
        t = torch.from_numpy(t[lo:hi])
        if nproc > 1:
            dist.barrier()
        t0 = time.perf_counter()
        y, state = net(x, state)
        loss = torch.nn.functional.cross_entropy(y.reshape(-1, VOCAB), t.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = tuple(s.detach() for s in state)
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    ar = 0.0
    if nproc > 1:
        tt = torch.tensor(times)
        dist.all_reduce(tt, op=dist.ReduceOp.MAX)
        times = tt.tolist()
        flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        ts = []
        for _ in range(10):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(flat)
            ts.append(time.perf_counter() - t0)
        ar = statistics.median(ts)
    if rank == 0:
        print(json.dumps({'window_s': statistics.median(times),
                          'allreduce_s': ar, 'processes': nproc,
                          'torch': torch.__version__}), flush=True)
    if nproc > 1:
        dist.barrier()                 # both ranks done before gloo is torn down
        dist.destroy_process_group()


def main():
    p = common.make_parser(__doc__)
    p.add_argument('--nproc', type=int, default=1)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--windows', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    a = p.parse_args()
    if a.nproc == 1:
        return run(0, 1, a.threads, a.windows, a.warmup, 0)
    import torch.multiprocessing as mp
    mp.spawn(run, args=(a.nproc, a.threads, a.windows, a.warmup, _free_port()),
             nprocs=a.nproc, join=True)


if __name__ == '__main__':
    main()
