"""PTB quality of the word LM: seqdbr's per-epoch curve beside the PyTorch anchor's.

The runs (each one BLAS thread, started side by side on the shared 2-core machine; for both,
``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` unset so OpenBLAS picks its kernels)::

    seqdbr-train-wordlm --preset small --data ptb --data-dir ../shared/data/ptb \\
        --out runs/seqdbr_small --no-progress > runs/seqdbr_small.out
    /work/wt/_torchvenv/bin/python benchmarks/anchors/torch_wordlm.py \\
        --data-dir ../shared/data/ptb --out runs/torch_small.jsonl > runs/torch_small.out

This script reads the two logs and prints JSON: per epoch the validation perplexity and the
wall-clock minutes of each, and for each validation perplexity the anchor reached, the
minutes each program needed to reach it (``null``: not reached yet).

Wall-clock minutes of seqdbr runs made before the lead's fix of ``Trainer.serialize``
(``--snapshot-time-bug``): writing a snapshot there adds the run's seconds to the stored
elapsed time again, so the log's ``time`` counts them ``1 + saves`` times. With ``n_k``
snapshots written at the end of epoch ``k`` (2 while the validation improves: ``best`` and
``latest``; 1 otherwise), the true time ``t_k`` follows from the logged ``L_k``:
``t_k = L_k - B_{k-1}``, ``B_k = B_{k-1} + n_k t_k``, ``B_0 = 0``.

    python benchmarks/wordlm_quality.py --seqdbr-log runs/seqdbr_small/log.jsonl \\
        --torch-log runs/torch_small.jsonl [--snapshot-time-bug]
"""
import argparse
import json
import math


def seqdbr_curve(path, bug):
    rows, base, best = [], 0.0, math.inf
    for line in open(path):
        r = json.loads(line)
        t = r['time'] - base if bug else r['time']
        vp = r['val_perplexity']
        saves = 2 if vp < best else 1
        best = min(best, vp)
        base += saves * t
        rows.append({'epoch': round(r['epoch']), 'val_perplexity': round(vp, 2),
                     'train_perplexity': round(math.exp(r['train_loss']), 2),
                     'minutes': round(t / 60, 1)})
    return rows


def torch_curve(path):
    rows, final = [], None
    for line in open(path):
        r = json.loads(line)
        if r.get('final'):
            final = r
            continue
        rows.append({'epoch': r['epoch'], 'val_perplexity': round(r['val_perplexity'], 2),
                     'train_perplexity': round(r['train_perplexity'], 2),
                     'minutes': round(r['time'] / 60, 1)})
    return rows, final


def minutes_to(rows, ppl):
    for r in rows:
        if r['val_perplexity'] <= ppl:
            return r['minutes']
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--seqdbr-log', required=True)
    p.add_argument('--torch-log', required=True)
    p.add_argument('--snapshot-time-bug', action='store_true')
    a = p.parse_args(argv)
    s = seqdbr_curve(a.seqdbr_log, a.snapshot_time_bug)
    t, final = torch_curve(a.torch_log)
    reach = [{'val_perplexity': r['val_perplexity'], 'torch_minutes': r['minutes'],
              'seqdbr_minutes': minutes_to(s, r['val_perplexity'])} for r in t]
    print(json.dumps({'seqdbr': s, 'torch': t, 'torch_final': final,
                      'minutes_to_reach_torch_val_perplexity': reach}, indent=1))


if __name__ == '__main__':
    main()
