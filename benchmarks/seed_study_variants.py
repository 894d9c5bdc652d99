"""Per-epoch seed study of CharRNN's initialisation conventions (an experiment, not product
code): ``charlm_quality.py`` for 10 epochs, validation at every epoch end, with the model's
initial weights or the optimizer patched in.

    OPENBLAS_NUM_THREADS=1 python benchmarks/seed_study_variants.py VARIANT SEED > out.json

VARIANT:
  uniform    recurrent and output weights U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's scale), biases
             as CharRNN makes them (run with the forget bias of 1 that was then the default:
             add --forget-bias 1 below when reproducing);
  noforget   CharRNN's weights with the forget-gate biases set to 0 (now CharRNN's default);
  torchlike  uniform weights, every LSTM bias b = U + U (PyTorch's b_ih + b_hh), output bias
             uniform, and the LSTM biases' Adam step doubled (PyTorch's two biases move
             together); forget biases not raised.
Results: ``benchmarks/results/seed_study/`` (tabulated in benchmarks/README.md).
"""
import os
import sys

import numpy

variant, seed = sys.argv[1], int(sys.argv[2])
extra = sys.argv[3:]
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import seqdbr.charlm.model as M  # noqa: E402
import seqdbr.charlm.train as T  # noqa: E402
orig_init = M.CharRNN.__init__


def patched(self, *a, **k):
    orig_init(self, *a, **k)
    rs = numpy.random.RandomState(seed + 1000)
    H = self.rnn_size
    bound = 1.0 / numpy.sqrt(H)
    for name, p in self.canonical_params().items():
        a = p.array
        if variant in ('uniform', 'torchlike') and (name.endswith('W_ih')
                                                    or name.endswith('W_hh') or name == 'out/W'):
            a[...] = rs.uniform(-bound, bound, a.shape)
        if variant == 'noforget' and name.startswith('rnn/') and name.endswith('/b'):
            a[H:2 * H] = 0
        if variant == 'torchlike' and name.startswith('rnn/') and name.endswith('/b'):
            a[...] = rs.uniform(-bound, bound, a.shape) + rs.uniform(-bound, bound, a.shape)
        if variant == 'torchlike' and name == 'out/b':
            a[...] = rs.uniform(-bound, bound, a.shape)


M.CharRNN.__init__ = patched
orig_opt = T._make_optimizer


def patched_opt(cfg, model):
    opt, sched = orig_opt(cfg, model)
    if variant == 'torchlike':
        for layer in model.rnn:
            layer.b.update_rule.hyperparam.alpha = 2 * cfg.learning_rate
    return opt, sched


T._make_optimizer = patched_opt
import charlm_quality  # noqa: E402
sys.argv = ['charlm_quality.py', '--minutes', '60', '--max-epochs', '10', '--eval-every', '401',
            '--seed', str(seed), '--out', os.path.join('runs', 'variant_%s_%d' % (variant, seed))
            ] + extra
charlm_quality.main()
