"""DOT export of computational graphs: structure (nodes/edges), labels, determinism."""
import re

import numpy
import pytest

from seqdbr.core.function_node import FunctionNode
from seqdbr.core.graph import build_computational_graph
from seqdbr.core.variable import Parameter, Variable


class Times(FunctionNode):
    def forward(self, inputs):
        a, b = inputs
        return (a * b,)


class Plus(FunctionNode):
    def forward(self, inputs):
        a, b = inputs
        return (a + b,)


class Halves(FunctionNode):
    """Two outputs."""

    @property
    def label(self):
        return 'Halves"split"'

    def forward(self, inputs):
        (x,) = inputs
        return (x / 2, x / 2)


def _parse(dot):
    nodes = dict(re.findall(r'^  (n\d+) \[.*label="((?:[^"\\]|\\.)*)".*\];$', dot, re.M))
    edges = re.findall(r'^  (n\d+) -> (n\d+);$', dot, re.M)
    return nodes, edges


def _known_graph():
    x = Variable(numpy.ones((2, 3), numpy.float32), name='x')
    w = Parameter(numpy.full((2, 3), 2.0, numpy.float32), name='W')
    y = Times().apply((x, w))[0]
    z = Plus().apply((y, x))[0]
    z.name = 'z'
    return x, w, y, z


def test_nodes_edges_and_labels():
    x, w, y, z = _known_graph()
    dot = build_computational_graph(z).dump()
    assert dot.startswith('digraph') and dot.rstrip().endswith('}')
    assert 'rankdir=TB;' in dot
    nodes, edges = _parse(dot)
    assert len(nodes) == 6 and len(edges) == 6
    labels = sorted(nodes.values())
    assert labels == sorted(['x: (2, 3), float32', 'W: (2, 3), float32', '(2, 3), float32',
                             'z: (2, 3), float32', 'Times', 'Plus'])
    named = {(nodes[a], nodes[b]) for a, b in edges}
    assert named == {('x: (2, 3), float32', 'Times'), ('W: (2, 3), float32', 'Times'),
                     ('Times', '(2, 3), float32'), ('(2, 3), float32', 'Plus'),
                     ('x: (2, 3), float32', 'Plus'), ('Plus', 'z: (2, 3), float32')}
    # default styles
    assert len(re.findall(r'shape="oval"', dot)) == 4
    assert len(re.findall(r'shape="box"', dot)) == 2


def test_graph_object_holds_nodes_and_edges():
    x, w, y, z = _known_graph()
    g = build_computational_graph([z])
    assert g.nodes[0] is z
    assert {id(n) for n in g.nodes} == {id(x), id(w), id(y), id(z), id(z.creator),
                                        id(y.creator)}
    # identity, not ==: comparing Variables raises (as in Chainer)
    assert any(a is x and b is y.creator for a, b in g.edges)


def test_deterministic_ids():
    x, w, y, z = _known_graph()
    d1 = build_computational_graph(z).dump()
    d2 = build_computational_graph(z).dump()
    g = build_computational_graph(z)
    assert d1 == d2 == g.dump() == g.dump()
    # the same computation rebuilt gives the same text
    assert build_computational_graph(_known_graph()[3]).dump() == d1


def test_remove_variable():
    _, _, _, z = _known_graph()
    nodes, edges = _parse(build_computational_graph(z, remove_variable=True).dump())
    assert sorted(nodes.values()) == ['Plus', 'Times']
    assert [(nodes[a], nodes[b]) for a, b in edges] == [('Times', 'Plus')]


def test_styles_rankdir_and_escaping():
    x = Variable(numpy.zeros(3, numpy.float64), name='say "hi"\\')
    a, b = Halves().apply((x,))
    dot = build_computational_graph([a, b], variable_style={'shape': 'ellipse', 'color': 'red'},
                                    function_style={'shape': 'record'}, rankdir='LR').dump()
    assert 'rankdir=LR;' in dot
    assert 'color="red"' in dot and 'shape="record"' in dot
    nodes, edges = _parse(dot)
    assert 'say \\"hi\\"\\\\: (3,), float64' in nodes.values()
    assert 'Halves\\"split\\"' in nodes.values()
    # two outputs of one node: 3 variables, 1 function, 3 edges
    assert len(nodes) == 4 and len(edges) == 3


def test_dead_outputs_are_not_shown():
    x = Variable(numpy.zeros(3, numpy.float32))
    a = Halves().apply((x,))[0]  # the second output is garbage at once
    nodes, edges = _parse(build_computational_graph(a).dump())
    assert len(nodes) == 3 and len(edges) == 2


def test_leaf_only_and_deep_graph_iterative():
    v = Variable(numpy.zeros(1, numpy.float32))
    nodes, edges = _parse(build_computational_graph(v).dump())
    assert len(nodes) == 1 and edges == []
    one = Variable(numpy.ones(1, numpy.float32))
    h = v
    n = 3000  # deeper than the default recursion limit
    for _ in range(n):
        h = Plus().apply((h, one))[0]
    g = build_computational_graph(h)
    assert len(g.nodes) == 2 * n + 2  # n functions, n outputs, v and one
    assert len(g.edges) == 3 * n
    assert len(build_computational_graph(h, remove_variable=True).edges) == n - 1


def test_errors():
    _, _, _, z = _known_graph()
    with pytest.raises(ValueError, match='rankdir'):
        build_computational_graph(z, rankdir='XY')
    with pytest.raises(TypeError, match='expects Variables'):
        build_computational_graph([numpy.zeros(2)])
    with pytest.raises(TypeError, match='dicts'):
        build_computational_graph(z, variable_style='red')
    with pytest.raises(ValueError, match="format='dot'"):
        build_computational_graph(z).dump('png')
