"""Recurrent layer: fused LSTM/GRU cells, whole-window n-step recurrences and RNN links.

* ``seqdbr.rnn.functions`` (re-exported by ``seqdbr.functions``): ``lstm``, ``gru_cell``,
  ``n_step_lstm``, ``n_step_bilstm``, ``n_step_gru``, ``n_step_bigru``, ``n_step_rnn``,
  ``n_step_birnn``, ``embed_project``.
* ``seqdbr.rnn.links`` (re-exported by ``seqdbr.links``): ``LSTM``, ``StatelessLSTM``,
  ``GRU``/``StatelessGRU``, ``StatefulGRU``, ``NStepLSTM``, ``NStepBiLSTM``, ``NStepGRU``,
  ``NStepBiGRU``, ``NStepRNNTanh``, ``NStepRNNReLU``, ``NStepBiRNNTanh``, ``NStepBiRNNReLU``.
* ``seqdbr.rnn.kernels``: the CuPy elementwise kernels (compiled lazily on first GPU use).

Conventions shared by all of them (cuDNN/PyTorch): LSTM gate blocks ``[i | f | g | o]``,
GRU gate blocks ``[r | z | n]`` with the reset gate applied to ``h W_hn^T + b_hn``, weights
``W_ih (G*H, in)``, ``W_hh (G*H, H)``, biases ``b_ih``, ``b_hh`` ``(G*H,)``.

The submodules are imported on demand, so importing this package is cheap.
"""
__all__ = []
