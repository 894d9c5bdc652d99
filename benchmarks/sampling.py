"""Sampling speed: microseconds per generated character, one character at a time.

A char-RNN (``CharRNN(V=65, H, 2 layers)``, random weights: speed does not depend on them)
generates ``--length`` characters with ``seqdbr.charlm.sample.sample`` (temperature 1,
seeded), i.e. per character: one model step under ``no_backprop_mode`` (batch 1, one time
step), softmax sampling on the host, decoding. Reported for LSTM and GRU, the n-step and the
stepwise implementation, and with the compiled kernels on and off (``SEQDBR_CPU_KERNELS``
semantics via ``cpu_kernels.set_enabled``). ``anchors/torch_sampling.py`` is the same loop
with PyTorch's ``nn.LSTM`` / ``nn.GRU``.

    python benchmarks/sampling.py [--hidden 128] [--length 2000] [--repeats 5]

Prints JSON: ``us_per_char`` (median of ``--repeats`` runs) per configuration; the
configurations are timed round robin (after one untimed round), so a change of machine load
hits all of them alike.
"""
import os
import sys
import time

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from common import add_sampling_args, emit, machine_info, make_parser  # noqa: E402


def main():
    p = make_parser(__doc__)
    add_sampling_args(p)
    args = p.parse_args()

    import seqdbr
    from seqdbr.charlm.model import CharRNN
    from seqdbr.charlm.sample import sample
    from seqdbr.charlm.vocab import Vocabulary
    from seqdbr.core import initializers
    from seqdbr.rnn import cpu_kernels

    vocab = Vocabulary.from_text(''.join(chr(33 + i) for i in range(65)))
    configs = []
    for model in ('lstm', 'gru'):
        for impl in ('nstep', 'stepwise'):
            for compiled in ((True, False) if cpu_kernels.available else (False,)):
                initializers.set_seed(0)
                m = CharRNN(len(vocab), args.hidden, 2, model=model, impl=impl)
                configs.append(((model, impl, compiled), m, []))
    # round robin: every repeat times every configuration once, so all see the same load
    for r in range(args.repeats + 1):
        for (model, impl, compiled), m, runs in configs:
            cpu_kernels.set_enabled(compiled)
            t = time.perf_counter()
            sample(m, vocab, args.length, rng=numpy.random.default_rng(r))
            if r:                                    # round 0 is the warm-up
                runs.append((time.perf_counter() - t) / args.length * 1e6)
    results = [{'model': model, 'impl': impl, 'compiled_kernels': compiled,
                'us_per_char': round(float(numpy.median(runs)), 1),
                'us_per_char_runs': [round(x, 1) for x in runs]}
               for (model, impl, compiled), _, runs in configs]
    cpu_kernels.set_enabled(cpu_kernels.available)
    out = {'benchmark': 'sampling', 'framework': 'seqdbr'}
    out.update(machine_info({'seqdbr': seqdbr.__version__}))
    out.update({'hidden': args.hidden, 'layers': 2, 'vocab': len(vocab),
                'length': args.length, 'results': results})
    emit(out)


if __name__ == '__main__':
    main()
