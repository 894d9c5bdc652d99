"""Small models, data and trainers for the training-framework tests (imported by
``conftest.py``, and by the subprocesses of the resume tests)."""
import numpy

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.datasets import SerialIterator, TupleDataset
from seqdbr.rnn.bptt import ParallelSequentialBatcher
from seqdbr.training import BPTTUpdater, StandardUpdater, Trainer


class MLP(seqdbr.Chain):
    def __init__(self, n_out=3):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(4, 8)
            self.l2 = L.Linear(8, n_out)

    def forward(self, x, t):
        y = self.l2(F.relu(self.l1(x)))
        return F.softmax_cross_entropy(y, t), {'accuracy': F.accuracy(y, t)}


class StepLM(seqdbr.Chain):
    """Embedding -> stepwise L.LSTM -> Linear: one (B,) column per call."""

    def __init__(self, V=7, H=6):
        super().__init__()
        with self.init_scope():
            self.embed = L.EmbedID(V, H)
            self.rnn = L.LSTM(H, H)
            self.out = L.Linear(H, V)

    def forward(self, x):
        return self.out(self.rnn(self.embed(x)))


def make_data(n=60, seed=0):
    rng = numpy.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(numpy.float32)
    t = (x[:, 0] > 0).astype(numpy.int32) + (x[:, 1] > 0.5).astype(numpy.int32)
    return TupleDataset(x, t)


def make_mlp_trainer(out, stop=(10, 'iteration'), program='test-mlp', seed=0, n_out=3):
    seqdbr.seed(seed)
    model = MLP(n_out)
    opt = seqdbr.optimizers.Adam(alpha=0.01).setup(model)
    it = SerialIterator(make_data(), 16, seed=seed)
    return Trainer(StandardUpdater(it, opt, model), stop_trigger=stop, out=str(out),
                   program=program)


def make_step_trainer(out, stop=(10, 'iteration'), seed=0):
    seqdbr.seed(seed)
    model = StepLM()
    opt = seqdbr.optimizers.SGD(lr=0.5).setup(model)
    tokens = numpy.random.default_rng(1).integers(0, 7, 400).astype(numpy.int32)
    batcher = ParallelSequentialBatcher(tokens, 4, 5)
    return Trainer(BPTTUpdater(batcher, opt, model, bptt_len=5, mode='step'),
                   stop_trigger=stop, out=str(out))


def params(model):
    return {n: p.array.copy() for n, p in sorted(model.namedparams())}


def _lm_windows(n=8, seed=2):
    """Validation windows for StepLM: (x, t) pairs of shape (5,)."""
    tok = numpy.random.default_rng(seed).integers(0, 7, n * 6).astype(numpy.int32)
    return TupleDataset(tok.reshape(n, 6)[:, :5].copy(), tok.reshape(n, 6)[:, 1:].copy())


def _step_eval_fn(model):
    def fn(x, t):                      # x, t: (B, 5); the state starts from zeros
        model.rnn.reset_state()
        loss = sum(F.softmax_cross_entropy(model(x[:, j]), t[:, j]) for j in range(5)) / 5.0
        return {'loss': loss}, int(t.size)
    return fn


def full_trainer(kind, out, stop_iters):
    """A trainer with every stateful extension, for the exact-resume tests."""
    from seqdbr.core.lr_schedules import ExponentialDecay, WarmupCosine
    from seqdbr.training import IntervalTrigger, MinValueTrigger, extensions as E
    if kind == 'mlp':
        trainer = make_mlp_trainer(out, stop=(stop_iters, 'iteration'))
        model = trainer.updater.model
        ev = E.Evaluator(make_data(30, seed=5), model, batch_size=7)
        sched, log_every = WarmupCosine(3, 30), 4
    else:
        trainer = make_step_trainer(out, stop=(stop_iters, 'iteration'))
        model = trainer.updater.model
        ev = E.Evaluator(_lm_windows(), _step_eval_fn(model), batch_size=3, model=model)
        sched, log_every = ExponentialDecay(0.5, after=1), 3
    trainer.extend(E.DivergenceGuard())
    trainer.extend(ev, trigger=IntervalTrigger(4, 'iteration', at_end=True))
    trainer.extend(E.LRScheduler(sched))
    trainer.extend(E.LogReport(trigger=(log_every, 'iteration')))
    trainer.extend(E.PlotReport(['loss', 'val/loss']))
    trainer.extend(E.snapshot('best.npz'), trigger=MinValueTrigger('val/loss'))
    trainer.extend(E.snapshot('latest.npz'), trigger=(7, 'iteration'))
    return trainer


def dump_state(trainer, path):
    """Parameters, optimizer state, LR and RNG states after a run, into one npz."""
    import json
    from seqdbr.core import seeding, serializers
    arrays = {'param/' + k: v for k, v in params(trainer.updater.model).items()}
    arrays.update(serializers.serialize_to_dict(trainer.updater.optimizer, 'opt'))
    arrays['lr'] = numpy.float64(trainer.updater.optimizer.lr)
    arrays['rng'] = numpy.array(json.dumps(seeding.get_rng_state(), sort_keys=True))
    numpy.savez(path, **arrays)


def main(argv):
    """``python training_models.py KIND OUT STOP [resume]``: run, then dump the state."""
    import os
    kind, out, stop = argv[0], argv[1], int(argv[2])
    trainer = full_trainer(kind, out, stop)
    if len(argv) > 3:
        trainer.resume(os.path.join(out, 'latest.npz'))
    trainer.run()
    dump_state(trainer, os.path.join(out, 'state.npz'))


if __name__ == '__main__':
    import sys
    main(sys.argv[1:])
