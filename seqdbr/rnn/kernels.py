"""CuPy elementwise kernels of the recurrent cells (one forward, one backward per cell).

Importing this module never imports CuPy: the kernels are declared in the registry of
:mod:`seqdbr.core.cuda_kernels` (at float16, float32 and float64, with int32 scalars) and
each is compiled on first use; :func:`get_kernel` raises ``RuntimeError`` when CuPy is
missing. CI compiles all four at all three dtypes through NVRTC without a GPU. The kernels
are shared by the single-step functions (``lstm``, ``gru_cell``) and by the
whole-window n-step functions, which call them once per time step after the
recurrent matmul.

Index convention: the loop runs over the ``(R, H)`` state elements (``i`` = ``r * H
+ j``); gate arrays are passed ``raw`` (C-contiguous, row length ``4H`` or ``3H``)
and addressed as ``r * kH + gate * H + j``. Sigmoids are computed as
``0.5 * tanh(0.5 x) + 0.5``, which cannot overflow for any finite ``x``.

LSTM (gate layout ``[i | f | g | o]``, Hochreiter & Schmidhuber 1997 with the forget
gate of Gers et al. 2000)::

    lstm_fwd: in  raw T xa, raw T hh, T c_prev, int32 H, int32 use_hh
              out T c, T h, raw T act
        a = xa (+ hh when use_hh); act = [sig(a_i), sig(a_f), tanh(a_g), sig(a_o)]
        c = f * c_prev + i * g;  h = o * tanh(c)

    lstm_bwd: in  raw T act, T c_prev, T c, T dh_in, T gy, T dc_in, int32 H
              out T dc_out, raw T dg
        dh = dh_in + gy;  dc = dc_in + dh * o * (1 - tanh(c)^2)
        dg = [dc g i(1-i), dc c_prev f(1-f), dc i (1-g^2), dh tanh(c) o(1-o)]
        dc_out = dc * f

GRU (gate layout ``[r | z | n]``, Cho et al. 2014 in the cuDNN/PyTorch form where
``r`` multiplies the hidden projection including its bias)::

    gru_fwd:  in  raw T gi, raw T gh, raw T bh, T h_prev, int32 H, int32 flags
              out T h, raw T act
        gh' = (gh if flags & 1 else 0) + (bh if flags & 2 else 0)
        r = sig(gi_r + gh'_r); z = sig(gi_z + gh'_z); n = tanh(gi_n + r * gh'_n)
        h = n + z * (h_prev - n);  act = [r, z, n, gh'_n]   (row length 4H)

    gru_bwd:  in  raw T act, T h_prev, T dh_in, T gy, int32 H
              out T dh_direct, raw T dgi, raw T dgh
        dh = dh_in + gy; dn = dh (1-z)(1-n^2); dz = dh (h_prev-n) z(1-z);
        dr = dn gh'_n r(1-r); dgi = [dr, dz, dn]; dgh = [dr, dz, dn r]; dh_direct = dh z
"""
from seqdbr.core import cuda_kernels

__all__ = ['get_kernel']

_PREAMBLE = '''
template <typename T> __device__ __forceinline__ T seqdbr_sigmoid(T x) {
    return T(0.5) * tanh(T(0.5) * x) + T(0.5);
}
'''

_SOURCES = {
    'lstm_fwd': (
        'raw T xa, raw T hh, T c_prev, int32 H, int32 use_hh',
        'T c, T h, raw T act',
        '''
        const ptrdiff_t r = i / H;
        const ptrdiff_t base = r * 4 * H + (i - r * H);
        T ai = xa[base], af = xa[base + H], ag = xa[base + 2 * H], ao = xa[base + 3 * H];
        if (use_hh) {
            ai += hh[base]; af += hh[base + H]; ag += hh[base + 2 * H]; ao += hh[base + 3 * H];
        }
        const T si = seqdbr_sigmoid(ai);
        const T sf = seqdbr_sigmoid(af);
        const T tg = tanh(ag);
        const T so = seqdbr_sigmoid(ao);
        const T cn = sf * c_prev + si * tg;
        c = cn;
        h = so * tanh(cn);
        act[base] = si; act[base + H] = sf; act[base + 2 * H] = tg; act[base + 3 * H] = so;
        '''),
    'lstm_bwd': (
        'raw T act, T c_prev, T c, T dh_in, T gy, T dc_in, int32 H',
        'T dc_out, raw T dg',
        '''
        const ptrdiff_t r = i / H;
        const ptrdiff_t base = r * 4 * H + (i - r * H);
        const T si = act[base], sf = act[base + H], tg = act[base + 2 * H];
        const T so = act[base + 3 * H];
        const T tc = tanh(c);
        const T dh = dh_in + gy;
        const T dc = dc_in + dh * so * (T(1) - tc * tc);
        dg[base] = dc * tg * si * (T(1) - si);
        dg[base + H] = dc * c_prev * sf * (T(1) - sf);
        dg[base + 2 * H] = dc * si * (T(1) - tg * tg);
        dg[base + 3 * H] = dh * tc * so * (T(1) - so);
        dc_out = dc * sf;
        '''),
    'gru_fwd': (
        'raw T gi, raw T gh, raw T bh, T h_prev, int32 H, int32 flags',
        'T h, raw T act',
        '''
        const ptrdiff_t r = i / H;
        const ptrdiff_t j = i - r * H;
        const ptrdiff_t b3 = r * 3 * H + j;
        const ptrdiff_t b4 = r * 4 * H + j;
        T ghr = 0, ghz = 0, ghn = 0;
        if (flags & 1) { ghr = gh[b3]; ghz = gh[b3 + H]; ghn = gh[b3 + 2 * H]; }
        if (flags & 2) { ghr += bh[j]; ghz += bh[j + H]; ghn += bh[j + 2 * H]; }
        const T rr = seqdbr_sigmoid(gi[b3] + ghr);
        const T zz = seqdbr_sigmoid(gi[b3 + H] + ghz);
        const T nn = tanh(gi[b3 + 2 * H] + rr * ghn);
        h = nn + zz * (h_prev - nn);
        act[b4] = rr; act[b4 + H] = zz; act[b4 + 2 * H] = nn; act[b4 + 3 * H] = ghn;
        '''),
    'gru_bwd': (
        'raw T act, T h_prev, T dh_in, T gy, int32 H',
        'T dh_direct, raw T dgi, raw T dgh',
        '''
        const ptrdiff_t r = i / H;
        const ptrdiff_t j = i - r * H;
        const ptrdiff_t b3 = r * 3 * H + j;
        const ptrdiff_t b4 = r * 4 * H + j;
        const T rr = act[b4], zz = act[b4 + H], nn = act[b4 + 2 * H], ghn = act[b4 + 3 * H];
        const T dh = dh_in + gy;
        const T dn = dh * (T(1) - zz) * (T(1) - nn * nn);
        const T dz = dh * (h_prev - nn) * zz * (T(1) - zz);
        const T dr = dn * ghn * rr * (T(1) - rr);
        dgi[b3] = dr; dgi[b3 + H] = dz; dgi[b3 + 2 * H] = dn;
        dgh[b3] = dr; dgh[b3 + H] = dz; dgh[b3 + 2 * H] = dn * rr;
        dh_direct = dh * zz;
        '''),
}

_SCALARS = {'lstm_fwd': ('H', 'use_hh'), 'lstm_bwd': ('H',), 'gru_fwd': ('H', 'flags'),
            'gru_bwd': ('H',)}

_KERNELS = {name: cuda_kernels.elementwise(
    'seqdbr_' + name, in_params, out_params, body, _PREAMBLE,
    types=[{'T': t} for t in cuda_kernels.FLOATS], scalars=_SCALARS[name])
    for name, (in_params, out_params, body) in _SOURCES.items()}


def get_kernel(name):
    """The kernel ``name`` (one of ``lstm_fwd``, ``lstm_bwd``, ``gru_fwd``, ``gru_bwd``): a
    callable with ``cupy.ElementwiseKernel``'s calling convention, compiled on first call.

    Raises:
        RuntimeError: (when called) CuPy is not installed.
        KeyError: unknown name.
    """
    return _KERNELS[name]
