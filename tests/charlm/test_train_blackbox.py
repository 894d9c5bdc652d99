"""The char-RNN trainer checked from outside (``train(TrainConfig)`` and its files only),
against values computed independently here, so the tests hold for any implementation of the
training loop.

Per-epoch state reset (documented in :mod:`seqdbr.charlm.train`): the hidden state is
carried from window to window and reset at the start of each epoch. The logged training loss
of the first window of epoch 2 must therefore equal the loss of that window computed here
from a state of zeros with the weights saved at the end of epoch 1, and differ from the loss
with the carried state.
"""
import json
import math

import numpy
import pytest

from seqdbr.charlm.checkpoint import load_checkpoint
from seqdbr.core.config import no_backprop_mode, using_config


def read_jsonl(path):
    """The trainer's log: one JSON object per line (read here, not with seqdbr's reader)."""
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


B, T = 3, 6


def _window_loss(model, x, t):
    """Mean cross-entropy (nats per token) of logits ``model(x)`` against ``t``, in float64."""
    with no_backprop_mode(), using_config('train', False):
        y = model(x).array.astype(numpy.float64)                      # (B, T, V)
    z = y - y.max(axis=-1, keepdims=True)
    logp = z - numpy.log(numpy.exp(z).sum(axis=-1, keepdims=True))
    return float(-numpy.take_along_axis(logp, t[..., None], axis=-1).mean())


@pytest.mark.parametrize('model_kind,impl', [('lstm', 'nstep'), ('gru', 'nstep'),
                                             ('lstm', 'stepwise')])
def test_state_is_reset_at_the_start_of_every_epoch(charlm, tmp_path, model_kind, impl):
    text = charlm.make_text(600, seed=3)
    corpus = tmp_path / 'c.txt'
    corpus.write_text(text, encoding='utf-8', newline='')
    n_train = int(len(text) * 0.9)                      # contiguous split, documented
    stream_len = (n_train - 1) // B                     # B streams of consecutive text
    wpe = stream_len // T                               # windows per epoch
    assert wpe >= 3
    kw = dict(batch_size=B, seq_length=T, train_frac=0.9, val_frac=0.1, model=model_kind,
              impl=impl, eval_every=wpe, checkpoint_every=wpe)
    # run A stops at the end of epoch 1; run B (same seed) goes one window further
    res_a, _ = charlm.run_train(corpus, tmp_path / 'a', max_iters=wpe, **kw)
    res_b, _ = charlm.run_train(corpus, tmp_path / 'b', max_iters=wpe + 1, **kw)
    log_a = read_jsonl(tmp_path / 'a' / 'log.jsonl')
    log_b = read_jsonl(tmp_path / 'b' / 'log.jsonl')
    assert [r['train_loss'] for r in log_a] == [r['train_loss'] for r in log_b[:wpe]]
    last = log_b[wpe]
    assert last['iteration'] == wpe + 1 and last['epoch'] == pytest.approx((wpe + 1) / wpe)

    ck = load_checkpoint(res_a.latest)
    assert ck.iteration == wpe
    ids = ck.vocab.encode(text[:n_train])
    # the first window of an epoch: positions 0..T-1 of each stream, targets shifted by one
    starts = numpy.arange(B) * stream_len
    x = numpy.stack([ids[s:s + T] for s in starts]).astype(numpy.int32)
    t = numpy.stack([ids[s + 1:s + T + 1] for s in starts]).astype(numpy.int32)
    model = ck.build_model()
    model.reset_state()
    from_zeros = _window_loss(model, x, t)
    carried = ck.carried_state()
    assert carried is not None                          # the state at the end of epoch 1
    model.set_state({k: numpy.asarray(v) for k, v in carried.items()})
    with_carried = _window_loss(model, x, t)
    assert abs(with_carried - from_zeros) > 1e-3        # the test can tell the two apart
    assert last['train_loss'] == pytest.approx(from_zeros, rel=2e-6, abs=2e-6)
    assert math.isfinite(last['train_loss'])
