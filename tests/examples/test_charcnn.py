"""The character-CNN sentence classifier (seqdbr.examples.charcnn, scripts/train_charcnn.py).

The synthetic motif task runs everywhere; the language-ID task reads ../shared/data (or
$SEQDBR_TEST_DATA) and skips without it."""
import json
import os
import pathlib
import subprocess
import sys

import numpy

from seqdbr.core.config import using_config
from seqdbr.examples import charcnn

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_synthetic_task_plants_exactly_one_motif_per_line():
    train, test = charcnn.synthetic_task(n_train=90, n_test=30, seed=1)
    assert len(train) == 90 and len(test) == 30
    for ds in (train, test):
        assert numpy.bincount(ds.labels).tolist() == [len(ds) // 3] * 3
        for line, label in zip(ds.lines, ds.labels):
            present = [m for m in charcnn.MOTIFS if m in line]
            assert present == [charcnn.MOTIFS[label]]
            assert set(line) <= set('abcdefgh')


def test_encode_pads_with_minus_one_and_maps_unknown_characters():
    vocab = charcnn.build_vocab(['abca', 'b'])
    assert vocab == {'a': 2, 'b': 3, 'c': 4}
    ids, lengths = charcnn.encode(['ab', 'cazb'], vocab)
    assert lengths.tolist() == [2, 4]
    assert ids.tolist() == [[2, 3, -1, -1], [4, 2, charcnn.UNK, 3]]


def test_padding_does_not_change_a_lines_logits():
    # Masked max-over-time pooling: a short line gives the same logits alone and in a batch
    # padded to a longer line's length (wide convolutions see the padding as zeros).
    model = charcnn.CharCNN(10, 3, n_embed=4, n_filters=5, widths=(2, 3))
    vocab = {ch: i + 2 for i, ch in enumerate('abcdefgh')}
    alone = charcnn.encode(['abc'], vocab)
    batch = charcnn.encode(['abc', 'hgfedcbahgfedcba'], vocab)
    with using_config('train', False):
        y1 = model(*alone).array
        y2 = model(*batch).array
    numpy.testing.assert_allclose(y2[0], y1[0], rtol=1e-5, atol=1e-6)


def test_char_cnn_learns_the_motif_task_and_unigram_filters_cannot():
    train, test = charcnn.synthetic_task(seed=0)
    cfg = dict(epochs=8, n_filters=32, verbose=False)
    good = charcnn.train(charcnn.CharCNNConfig(widths=(3,), **cfg), train, test)
    bag = charcnn.train(charcnn.CharCNNConfig(widths=(1,), **cfg), train, test)
    acc = good['log'][-1]['test_accuracy']
    print('motif task test accuracy: width 3 %.3f, width 1 %.3f'
          % (acc, bag['log'][-1]['test_accuracy']))
    assert acc >= 0.95
    # same letter distribution in every class: characters alone are at chance (1/3)
    assert bag['log'][-1]['test_accuracy'] < 0.45
    assert [r['epoch'] for r in good['log']] == list(range(1, 9))


def test_language_id_on_the_real_corpora(shared_data):
    train, test = charcnn.load_language_lines(str(shared_data), per_class=300,
                                              test_per_class=200, seed=0)
    assert train.classes == ('en', 'es', 'ja') and len(train) == 900 and len(test) == 600
    assert not set(train.lines) & set(test.lines)
    es = [ln for ln, lab in zip(train.lines + test.lines,
                                numpy.concatenate([train.labels, test.labels])) if lab == 1]
    assert not any('Gutenberg' in ln for ln in es)      # the licence text is cut off
    run = charcnn.train(charcnn.CharCNNConfig(epochs=2, verbose=False), train, test)
    acc = run['log'][-1]['test_accuracy']
    print('language ID (en/es/ja), 300 lines per class, 2 epochs: test accuracy %.4f' % acc)
    assert acc >= 0.95


def test_script_synthetic_run_and_missing_data_error(tmp_path):
    script = str(ROOT / 'scripts' / 'train_charcnn.py')
    env = dict(os.environ, OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')
    r = subprocess.run([sys.executable, script, '--task', 'synthetic', '--per-class', '90',
                        '--test-per-class', '30', '--epochs', '2', '--filters', '8',
                        '--out', str(tmp_path / 'run')], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'final test accuracy' in r.stdout
    log = json.loads((tmp_path / 'run' / 'log.json').read_text())
    assert [e['epoch'] for e in log['log']] == [1, 2]
    assert (tmp_path / 'run' / 'model.npz').exists()
    r = subprocess.run([sys.executable, script, '--data-dir', str(tmp_path / 'nowhere')],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1
    assert 'error: the en corpus' in r.stderr and 'is missing' in r.stderr
