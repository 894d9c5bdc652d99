"""Trainer(comm=...) without MPI: a fake communicator standing for rank r of 2, whose
Allreduce adds a fixed "other rank" contribution. Checks the agreed observations and stop
reason, root-only extensions and the non-root snapshot (assembled, not written)."""
import numpy

from seqdbr.training import trainer as trainer_mod
from seqdbr.training.extension import Extension


class FakeComm:
    def __init__(self, rank, other):
        self.rank, self.size, self.other = rank, 2, numpy.asarray(other, numpy.float64)
        self.calls = 0

    def allreduce_array(self, a):
        self.calls += 1
        return numpy.asarray(a, numpy.float64) + self.other


def test_agree_averages_observations_and_keeps_lr():
    comm = FakeComm(0, [3.0, 0.0, 0, 0, 0, 0])     # other rank: loss 3, accuracy 0, no stop
    obs = {'loss': 1.0, 'lr': 0.5, 'accuracy': 1.0}
    assert trainer_mod._agree(comm, obs, None) is None
    assert obs == {'loss': 0.5, 'lr': 0.5, 'accuracy': 2.0}   # sorted keys: accuracy, loss
    assert comm.calls == 1


def test_agree_any_ranks_time_budget_or_signal_stops_everyone():
    # this rank wants to go on; the other saw a signal -> both stop as 'interrupted'
    comm = FakeComm(1, [2.0, 0, 0, 1, 0])
    obs = {'loss': 2.0}
    assert trainer_mod._agree(comm, obs, None) == 'interrupted'
    comm = FakeComm(1, [2.0, 0, 1, 0, 0])
    assert trainer_mod._agree(comm, {'loss': 2.0}, 'interrupted') == 'time budget'
    comm = FakeComm(0, [2.0, 1, 0, 0, 0])
    assert trainer_mod._agree(comm, {'loss': 2.0}, 'done') == 'done'


class _Counting(Extension):
    trigger = (1, 'iteration')

    def __init__(self, root_only):
        self.root_only = root_only
        self.calls = 0

    def __call__(self, trainer):
        self.calls += 1


def test_root_only_extensions_and_snapshots_on_rank_0_only(tmp_path, tr):
    from seqdbr.training import extensions as E
    logs = {}
    for rank in (0, 1):
        comm = FakeComm(rank, [0.0] * 8)
        comm.allreduce_array = lambda a: numpy.asarray(a, numpy.float64) * 2  # 2 equal ranks
        out = tmp_path / str(rank)
        t = tr.make_mlp_trainer(out, stop=(3, 'iteration'))
        t.comm, t.is_root = comm, rank == 0
        root, everyone = _Counting(True), _Counting(False)
        t.extend(root, name='root')
        t.extend(everyone, name='all')
        t.extend(E.LogReport(trigger=(1, 'iteration')))
        t.extend(E.snapshot('snap.npz'), trigger=(1, 'iteration'))
        t.run()
        assert everyone.calls == 3
        assert root.calls == (3 if rank == 0 else 0)
        assert out.exists() == (rank == 0)               # rank 1 creates and writes nothing
        if rank == 0:
            assert sorted(p.name for p in out.iterdir()) == ['log.jsonl', 'snap.npz']
            logs[rank] = (out / 'log.jsonl').read_text()
    assert logs[0].count('\n') == 3
