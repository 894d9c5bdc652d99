"""Export a recorded computational graph as Graphviz DOT text.

    g = build_computational_graph([loss])
    with open('graph.dot', 'w') as f:
        f.write(g.dump())
    # dot -Tpng graph.dot -o graph.png

The walk goes backwards from the outputs through ``creator`` links, iteratively (no
recursion, so 10,000-step unrolled RNN graphs work). Only what is still alive is shown:
function nodes hold their outputs weakly, and ``unchain_backward`` cuts the graph.
"""
import collections

from seqdbr.core.variable import Variable

__all__ = ['ComputationalGraph', 'build_computational_graph']

_RANKDIRS = ('TB', 'BT', 'LR', 'RL')


def _quote(text):
    return '"%s"' % str(text).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def _attrs(d):
    return ','.join('%s=%s' % (k, _quote(v)) for k, v in d.items())


def _var_label(v):
    name = v.name
    a = v.array
    desc = 'None' if a is None else '%s, %s' % (tuple(a.shape), a.dtype)
    return desc if name is None else '%s: %s' % (name, desc)


class ComputationalGraph:
    """A snapshot of a graph: ``nodes`` (Variables and FunctionNodes, in discovery order
    from the outputs) and ``edges`` (``(src, dst)`` pairs of those objects, data flow
    direction).

    Use :func:`build_computational_graph` to make one; :meth:`dump` renders it.
    """

    def __init__(self, nodes, edges, variable_style=None, function_style=None, rankdir='TB',
                 remove_variable=False):
        self.nodes = nodes
        self.edges = edges
        self.variable_style = dict(variable_style or {'shape': 'oval'})
        self.function_style = dict(function_style or {'shape': 'box'})
        self.rankdir = rankdir
        self.remove_variable = remove_variable

    def dump(self, format='dot'):
        """The graph as Graphviz DOT text (``format='dot'``, the only format).

        Node ids (``n0``, ``n1``, ...) follow discovery order, so two dumps of the same
        graph are identical. Variables are labelled ``name: (shape), dtype`` (the name only
        when set), function nodes with ``FunctionNode.label``.

        Raises:
            ValueError: another ``format``.
        """
        if format != 'dot':
            raise ValueError("ComputationalGraph.dump supports format='dot' only, got %r"
                             % (format,))
        ids = {}
        lines = ['digraph graphname {', '  rankdir=%s;' % self.rankdir]
        for node in self.nodes:
            nid = 'n%d' % len(ids)
            ids[id(node)] = nid
            if isinstance(node, Variable):
                attrs = dict(self.variable_style)
                attrs['label'] = _var_label(node)
            else:
                attrs = dict(self.function_style)
                attrs['label'] = node.label
            lines.append('  %s [%s];' % (nid, _attrs(attrs)))
        for src, dst in self.edges:
            lines.append('  %s -> %s;' % (ids[id(src)], ids[id(dst)]))
        lines.append('}')
        return '\n'.join(lines) + '\n'


def build_computational_graph(outputs, variable_style=None, function_style=None, rankdir='TB',
                              remove_variable=False):
    """Collect the graph that produced ``outputs``.

    Args:
        outputs (Variable or iterable of Variable): where the backward walk starts.
        variable_style (dict or None): Graphviz attributes of variable nodes (default
            ``{'shape': 'oval'}``); ``label`` is always set by seqdbr.
        function_style (dict or None): attributes of function nodes (default
            ``{'shape': 'box'}``).
        rankdir (str): ``'TB'``, ``'BT'``, ``'LR'`` or ``'RL'``.
        remove_variable (bool): show only function nodes, with an edge from each function
            to every function consuming one of its outputs.

    Returns:
        ComputationalGraph: call ``.dump()`` for DOT text.

    Raises:
        TypeError: an output is not a Variable.
        ValueError: unknown ``rankdir``.
    """
    if rankdir not in _RANKDIRS:
        raise ValueError('rankdir must be one of %s, got %r' % (', '.join(_RANKDIRS), rankdir))
    if isinstance(outputs, Variable):
        outputs = [outputs]
    outputs = list(outputs)
    for o in outputs:
        if not isinstance(o, Variable):
            raise TypeError('build_computational_graph expects Variables, got %s; pass the '
                            'outputs of seqdbr functions' % type(o).__name__)
    for style in (variable_style, function_style):
        if style is not None and not isinstance(style, dict):
            raise TypeError('styles must be dicts of Graphviz attributes, got %r' % (style,))

    nodes = []
    seen = set()
    edges = []
    edge_seen = set()

    def add_node(n):
        if id(n) not in seen:
            seen.add(id(n))
            nodes.append(n)

    def add_edge(a, b):
        key = (id(a), id(b))
        if key not in edge_seen:
            edge_seen.add(key)
            edges.append((a, b))

    queue = collections.deque()
    funcs_seen = set()
    for o in outputs:
        if not remove_variable:
            add_node(o)
        f = o.creator
        if f is not None and id(f) not in funcs_seen:
            funcs_seen.add(id(f))
            queue.append(f)
    while queue:
        f = queue.popleft()
        add_node(f)
        if not remove_variable:
            for ref in f.outputs:
                y = ref()
                if y is not None:
                    add_node(y)
                    add_edge(f, y)
        for x in f.inputs:
            g = x.creator
            if remove_variable:
                if g is not None:
                    add_edge(g, f)
            else:
                add_node(x)
                add_edge(x, f)
            if g is not None and id(g) not in funcs_seen:
                funcs_seen.add(id(g))
                queue.append(g)
    return ComputationalGraph(nodes, edges, variable_style, function_style, rankdir,
                              remove_variable)
