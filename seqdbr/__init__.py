"""seqdbr: recurrent sequence modelling on define-by-run graphs.

    import seqdbr
    import seqdbr.functions as F
    import seqdbr.links as L
"""
__version__ = '0.1.0'

from seqdbr.core.hostmem import tune_host_allocator as _tune_host_allocator

_tune_host_allocator()  # see seqdbr/core/hostmem.py (opt out: SEQDBR_HOST_ALLOCATOR=default)

from seqdbr.core.config import (config, global_config, using_config,  # noqa: F401
                                no_backprop_mode, force_backprop_mode)
from seqdbr.core.backend import (get_array_module, is_gpu_available, get_device,  # noqa: F401
                                 to_cpu, to_gpu, to_device, CpuDevice, GpuDevice)
from seqdbr.core.variable import Variable, Parameter, as_variable, as_array  # noqa: F401
from seqdbr.core.function_node import FunctionNode  # noqa: F401
from seqdbr.core import functions as _functions  # noqa: F401  (installs operators)
from seqdbr.core.link import Link, Chain, ChainList  # noqa: F401
from seqdbr.core.graph import build_computational_graph  # noqa: F401
from seqdbr.core.seeding import seed  # noqa: F401
from seqdbr import functions, links, optimizers, serializers, initializers  # noqa: F401,E402
from seqdbr import gradient_check  # noqa: F401
