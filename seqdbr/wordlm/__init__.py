"""Word-level LSTM language models (Zaremba et al. 2014) on the Trainer: the model
(:mod:`~seqdbr.wordlm.model`), the training program (:mod:`~seqdbr.wordlm.train`),
self-contained checkpoints (:mod:`~seqdbr.wordlm.checkpoint`), sampling
(:mod:`~seqdbr.wordlm.sample`), evaluation (:mod:`~seqdbr.wordlm.evaluate`) and the
``seqdbr-{train,sample,eval}-wordlm`` commands (:mod:`~seqdbr.wordlm.cli`)."""
