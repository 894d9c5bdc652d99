"""docs/training.md's example runs as shown, learns, and resumes exactly."""
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / 'docs' / 'training.md'
STOP = "stop_trigger=(8, 'epoch')"


def _code():
    blocks = re.findall(r'```python\n(.*?)```', DOC.read_text(), re.S)
    assert blocks and STOP in blocks[0] and 'trainer.run()' in blocks[0]
    return blocks[0]


def _run(code, cwd, extra=''):
    code = code + extra + ('\nimport numpy\nnumpy.savez("params.npz", **{n: p.array for n, p '
                           'in model.namedparams()})\n')
    r = subprocess.run([sys.executable, '-c', code], cwd=cwd, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _log(folder):
    return [{k: v for k, v in json.loads(line).items() if k != 'time'}
            for line in (folder / 'result' / 'log.jsonl').read_text().splitlines()]


def test_docs_example_runs_learns_and_resumes_exactly(tmp_path):
    code = _code()
    whole = tmp_path / 'whole'
    whole.mkdir()
    out = _run(code, whole)
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[0] for r in rows] == [str(20 * i) for i in range(1, 9)]
    assert float(rows[-1][-1]) >= 0.9                  # val/accuracy after 8 epochs
    documented = re.search(r'```text\n(.*?)```', DOC.read_text(), re.S).group(1)
    assert documented.splitlines()[0] == out.splitlines()[0]

    split = tmp_path / 'split'
    split.mkdir()
    _run(code.replace(STOP, "stop_trigger=(50, 'iteration')"), split)   # mid-epoch 3
    _run(code.replace('trainer.run()', 'trainer.resume("result/latest.npz")\ntrainer.run()'),
         split)
    assert _log(whole) == _log(split)
    import numpy
    a, b = numpy.load(whole / 'params.npz'), numpy.load(split / 'params.npz')
    assert sorted(a.files) == sorted(b.files)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a.files)
