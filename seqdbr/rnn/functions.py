"""Recurrent functions, re-exported by ``seqdbr.functions`` (``F``).

* :func:`lstm` -- fused LSTM cell from gate pre-activations ``[i | f | g | o]``.
* :func:`gru_cell` -- fused GRU cell from the input and hidden projections ``[r | z | n]``.
* :func:`n_step_lstm`, :func:`n_step_bilstm`, :func:`n_step_gru`, :func:`n_step_bigru`,
  :func:`n_step_rnn`, :func:`n_step_birnn` -- whole-window multi-layer recurrences over
  batches of variable-length sequences.
* :func:`embed_project` -- ``W_embed[ids] W^T`` as one lookup in ``W_embed W^T`` (the
  embedding and the first layer's input projection of a token-level RNN).
"""
from seqdbr.rnn.embed_project import embed_project
from seqdbr.rnn.lstm import lstm
from seqdbr.rnn.gru import gru_cell
from seqdbr.rnn.n_step import (n_step_lstm, n_step_bilstm, n_step_gru, n_step_bigru,
                               n_step_rnn, n_step_birnn)

__all__ = ['lstm', 'gru_cell', 'embed_project', 'n_step_lstm', 'n_step_bilstm', 'n_step_gru',
           'n_step_bigru', 'n_step_rnn', 'n_step_birnn']
