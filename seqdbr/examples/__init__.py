"""Example applications built on the public API (``seqdbr.examples.mnist``: the MNIST MLP)."""
