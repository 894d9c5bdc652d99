"""The engine: backend, config, Variable, FunctionNode, backprop, functions, links,
initializers, optimizers, serializers, DOT graph export."""
