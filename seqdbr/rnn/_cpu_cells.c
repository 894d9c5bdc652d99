/*
 * seqdbr.rnn._cpu_cells: fused CPU cell arithmetic for the n-step LSTM and GRU recurrences
 * and for the stepwise cells F.lstm and F.gru_cell, and the row scatter-add of
 * seqdbr.rnn.embed_project.
 *
 * Optional C extension (setup.py builds it with optional=True; seqdbr.rnn.cpu_kernels falls
 * back to NumPy when it is missing). It replaces the ~14 NumPy calls per forward step and
 * ~20 per backward step of seqdbr/rnn/n_step.py by one pass each over the step's rows, so a
 * step costs its h W_hh^T matmul (done by NumPy/BLAS) plus one call. Pure elementwise code,
 * no BLAS, no NumPy headers: arrays arrive through the buffer protocol (C-contiguous
 * float32 or float64, checked, lengths bounds-checked), and the GIL is released while
 * computing.
 *
 * Layout (the one n_step.py uses, see its docstring):
 *   A   (4, N, H) gate-major window pre-activations in the internal order [i f o g], each
 *       scaled so that sigmoid(x) = 1 / (1 + exp(a)) for i, f, o (a = -x) and
 *       tanh(x) = 2 / (1 + exp(a)) - 1 for g (a = -2x). The forward step overwrites the
 *       block of step t (rows s .. s+Bt-1) with the activated gates i, f, o, g.
 *   hh  (Bt, 4H) row-major h_{t-1} W_hh^T in the same internal order and scaling.
 *   C, TC, Y (N, H): cell state c_t, tanh(c_t), output h_t.
 * The backward step writes the pre-activation gradients both gate-major into dG (4, N, H)
 * in the external order [i f g o] (for the window weight gradients) and row-major into
 * G4 (Bt, 4H) (for the next step's dG_t W_hh matmul).
 *
 * float32 uses a vectorisable exp (Cody-Waite range reduction and a degree-6 polynomial,
 * |relative error| < 2e-7 over [-87, 88], inputs clamped to that range: exp(-87) ~ 1.6e-38
 * gives sigmoid 1 - 1.6e-38 and exp(88) gives sigmoid 6e-39, so no inf or NaN appears);
 * float64 uses libm's exp.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define SEQDBR_INLINE static inline __attribute__((always_inline))
#else
#define SEQDBR_INLINE static inline
#define restrict __restrict
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && __GNUC__ >= 12
/* an AVX2+FMA clone chosen at load time by CPU features (ifunc), and a baseline SSE2 one.
 * (Not "arch=haswell": that clone is chosen only when the CPU *is* a Haswell.) */
#define SEQDBR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SEQDBR_CLONES
#endif

/* always inlined: GCC does not inline a plain-target helper into an arch=... clone */
SEQDBR_INLINE float exp_f32(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* n = round(x / ln 2) with the 1.5 * 2^23 trick (round to nearest, vectorisable) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;          /* ln 2, high part (exact in float) */
    r = r + n * 2.12194440e-4f;              /* ln 2 - 0.693359375 */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;   /* 2^n, n in [-126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* ---- forward step ---------------------------------------------------------------------- */
/* The row loops are written once per (dtype, has_cprev) so that each is a straight-line,
 * vectorisable loop (no branch inside); `restrict` is true: every output block is disjoint
 * from every input block. */

#define FWD_ROW(NAME, T, EXP, HAS_CP, HAS_HH)                                                \
SEQDBR_CLONES static void NAME(                                     \
    T *restrict ai, T *restrict af, T *restrict ao, T *restrict ag, const T *restrict hr,   \
    const T *restrict cp, T *restrict c, T *restrict tc, T *restrict h, Py_ssize_t H)       \
{                                                                                            \
    for (Py_ssize_t j = 0; j < H; j++) {                                                     \
        T xi = ai[j], xf = af[j], xo = ao[j], xg = ag[j];                                    \
        if (HAS_HH) {                                                                        \
            xi += hr[j]; xf += hr[H + j]; xo += hr[2 * H + j]; xg += hr[3 * H + j];          \
        }                                                                                    \
        T i = (T)1 / ((T)1 + EXP(xi));                                                       \
        T f = (T)1 / ((T)1 + EXP(xf));                                                       \
        T og = (T)1 / ((T)1 + EXP(xo));                                                      \
        T g = (T)2 / ((T)1 + EXP(xg)) - (T)1;                                                \
        T cc = i * g;                                                                        \
        if (HAS_CP)                                                                          \
            cc += f * cp[j];                                                                 \
        T t = (T)2 / ((T)1 + EXP((T)-2 * cc)) - (T)1;                                        \
        ai[j] = i; af[j] = f; ao[j] = og; ag[j] = g;                                         \
        c[j] = cc; tc[j] = t; h[j] = og * t;                                                 \
    }                                                                                        \
}

FWD_ROW(fwd_row_f32_11, float, exp_f32, 1, 1)
FWD_ROW(fwd_row_f32_10, float, exp_f32, 1, 0)
FWD_ROW(fwd_row_f32_01, float, exp_f32, 0, 1)
FWD_ROW(fwd_row_f32_00, float, exp_f32, 0, 0)
FWD_ROW(fwd_row_f64_11, double, exp, 1, 1)
FWD_ROW(fwd_row_f64_10, double, exp, 1, 0)
FWD_ROW(fwd_row_f64_01, double, exp, 0, 1)
FWD_ROW(fwd_row_f64_00, double, exp, 0, 0)

#define FWD_CALL(ROW)                                                                        \
    ROW(a + o, a + gs + o, a + 2 * gs + o, a + 3 * gs + o, hh ? hh + b * 4 * H : NULL,       \
        cp ? cp + o : NULL, c + o, tc + o, h + o, H)

#define DEFINE_FWD(NAME, T, R11, R10, R01, R00)                                             \
static void NAME(T *a, Py_ssize_t gs, const T *hh, const T *cp, T *c, T *tc,  \
                               T *h, Py_ssize_t Bt, Py_ssize_t H)                           \
{                                                                                            \
    for (Py_ssize_t b = 0; b < Bt; b++) {                                                    \
        Py_ssize_t o = b * H;                                                                \
        if (cp && hh) FWD_CALL(R11);                                                         \
        else if (cp) FWD_CALL(R10);                                                          \
        else if (hh) FWD_CALL(R01);                                                          \
        else FWD_CALL(R00);                                                                  \
    }                                                                                        \
}

DEFINE_FWD(fwd_f32, float, fwd_row_f32_11, fwd_row_f32_10, fwd_row_f32_01, fwd_row_f32_00)
DEFINE_FWD(fwd_f64, double, fwd_row_f64_11, fwd_row_f64_10, fwd_row_f64_01, fwd_row_f64_00)

/* ---- backward step --------------------------------------------------------------------- */

#define BWD_ROW(NAME, T, HAS_CP, HAS_GY)                                                     \
SEQDBR_CLONES static void NAME(                                     \
    const T *restrict ai, const T *restrict af, const T *restrict ao, const T *restrict ag, \
    const T *restrict tc, const T *restrict cp, const T *restrict gy,                       \
    const T *restrict dh, T *restrict dc, T *restrict di, T *restrict df,                   \
    T *restrict dgg, T *restrict dout, T *restrict gr, Py_ssize_t H)                        \
{                                                                                            \
    for (Py_ssize_t j = 0; j < H; j++) {                                                     \
        T i = ai[j], f = af[j], og = ao[j], g = ag[j], t = tc[j];                            \
        T d_h = dh[j];                                                                       \
        if (HAS_GY)                                                                          \
            d_h += gy[j];                                                                    \
        T vo = d_h * t * og * ((T)1 - og);                                                   \
        T d_c = dc[j] + d_h * og * ((T)1 - t * t);                                           \
        T vi = d_c * g * i * ((T)1 - i);                                                     \
        T vf = HAS_CP ? d_c * cp[j] * f * ((T)1 - f) : (T)0;                                 \
        T vg = d_c * i * ((T)1 - g * g);                                                     \
        di[j] = vi; df[j] = vf; dgg[j] = vg; dout[j] = vo;                                   \
        gr[j] = vi; gr[H + j] = vf; gr[2 * H + j] = vg; gr[3 * H + j] = vo;                  \
        dc[j] = d_c * f;                                                                     \
    }                                                                                        \
}

BWD_ROW(bwd_row_f32_11, float, 1, 1)
BWD_ROW(bwd_row_f32_10, float, 1, 0)
BWD_ROW(bwd_row_f32_01, float, 0, 1)
BWD_ROW(bwd_row_f32_00, float, 0, 0)
BWD_ROW(bwd_row_f64_11, double, 1, 1)
BWD_ROW(bwd_row_f64_10, double, 1, 0)
BWD_ROW(bwd_row_f64_01, double, 0, 1)
BWD_ROW(bwd_row_f64_00, double, 0, 0)

#define BWD_CALL(ROW)                                                                        \
    ROW(a + o, a + gs + o, a + 2 * gs + o, a + 3 * gs + o, tc + o, cp ? cp + o : NULL,       \
        gy ? gy + o : NULL, dh + o, dc + o, dg + o, dg + gs + o, dg + 2 * gs + o,            \
        dg + 3 * gs + o, g4 + b * 4 * H, H)

#define DEFINE_BWD(NAME, T, R11, R10, R01, R00)                                             \
static void NAME(const T *a, Py_ssize_t gs, const T *tc, const T *cp,        \
                               const T *gy, const T *dh, T *dc, T *dg, T *g4,              \
                               Py_ssize_t Bt, Py_ssize_t H)                                 \
{                                                                                            \
    for (Py_ssize_t b = 0; b < Bt; b++) {                                                    \
        Py_ssize_t o = b * H;                                                                \
        if (cp && gy) BWD_CALL(R11);                                                         \
        else if (cp) BWD_CALL(R10);                                                          \
        else if (gy) BWD_CALL(R01);                                                          \
        else BWD_CALL(R00);                                                                  \
    }                                                                                        \
}

DEFINE_BWD(bwd_f32, float, bwd_row_f32_11, bwd_row_f32_10, bwd_row_f32_01, bwd_row_f32_00)
DEFINE_BWD(bwd_f64, double, bwd_row_f64_11, bwd_row_f64_10, bwd_row_f64_01, bwd_row_f64_00)

/* ---- GRU (order [r z n]; r and z pre-activations negated, n unscaled) ------------------ */
/* forward: r = 1/(1+exp(a_r + hh_r)), z likewise, ghn = hh_n + b_hn (the recurrent part of
 * n, saved for the backward), n = tanh(a_n + r ghn), h = (1 - z) n + z h_prev. Without a
 * previous state (first step, no h0) hh and h_prev are absent: ghn = b_hn, h = (1 - z) n. */

#define GRU_FWD_ROW(NAME, T, EXP, HAS_H)                                                     \
SEQDBR_CLONES static void NAME(                                                             \
    T *restrict ar, T *restrict az, T *restrict an, const T *restrict hr,                   \
    const T *restrict hz, const T *restrict hn, const T *restrict bhn,                      \
    const T *restrict hp, T *restrict ghn, T *restrict y, Py_ssize_t H)                     \
{                                                                                            \
    for (Py_ssize_t j = 0; j < H; j++) {                                                     \
        T xr = ar[j], xz = az[j], g = bhn[j];                                                \
        if (HAS_H) {                                                                         \
            xr += hr[j]; xz += hz[j]; g += hn[j];                                            \
        }                                                                                    \
        T r = (T)1 / ((T)1 + EXP(xr));                                                       \
        T z = (T)1 / ((T)1 + EXP(xz));                                                       \
        T n = (T)2 / ((T)1 + EXP((T)-2 * (an[j] + r * g))) - (T)1;                           \
        ar[j] = r; az[j] = z; an[j] = n; ghn[j] = g;                                         \
        y[j] = HAS_H ? (hp[j] - n) * z + n : n - z * n;                                      \
    }                                                                                        \
}

GRU_FWD_ROW(gru_fwd_row_f32_1, float, exp_f32, 1)
GRU_FWD_ROW(gru_fwd_row_f32_0, float, exp_f32, 0)
GRU_FWD_ROW(gru_fwd_row_f64_1, double, exp, 1)
GRU_FWD_ROW(gru_fwd_row_f64_0, double, exp, 0)

/* hh: gate-major (3, B, H) buffer, gate k's rows at hh + k * hs */
#define DEFINE_GRU_FWD(NAME, T, R1, R0)                                                     \
static void NAME(T *a, Py_ssize_t gs, const T *hh, Py_ssize_t hs, const T *bhn,            \
                 const T *hp, T *ghn, T *y, Py_ssize_t Bt, Py_ssize_t H)                    \
{                                                                                            \
    for (Py_ssize_t b = 0; b < Bt; b++) {                                                    \
        Py_ssize_t o = b * H;                                                                \
        if (hh)                                                                              \
            R1(a + o, a + gs + o, a + 2 * gs + o, hh + o, hh + hs + o, hh + 2 * hs + o,      \
               bhn, hp + o, ghn + o, y + o, H);                                              \
        else                                                                                 \
            R0(a + o, a + gs + o, a + 2 * gs + o, NULL, NULL, NULL, bhn, NULL, ghn + o,      \
               y + o, H);                                                                    \
    }                                                                                        \
}

DEFINE_GRU_FWD(gru_fwd_f32, float, gru_fwd_row_f32_1, gru_fwd_row_f32_0)
DEFINE_GRU_FWD(gru_fwd_f64, double, gru_fwd_row_f64_1, gru_fwd_row_f64_0)

/* backward: dh = carry (+ the GEMM part m for rows b < Bn) (+ gy); writes dGH rows
 * [dr, dz, dn r] (gate-major, the gradients of h W_hh^T + b_hh), dGIn = dn (the gradient of
 * the n block of the input projection), G3 = [dr | dz | dn r] row-major for the next GEMM,
 * and carry = dh z (the direct path to h_prev). */
#define GRU_BWD_ROW(NAME, T, HAS_H, HAS_M, HAS_GY)                                           \
SEQDBR_CLONES static void NAME(                                                             \
    const T *restrict ar, const T *restrict az, const T *restrict an,                       \
    const T *restrict ghn, const T *restrict hp, const T *restrict gy,                      \
    const T *restrict m, T *restrict carry, T *restrict dr_, T *restrict dz_,               \
    T *restrict dnr_, T *restrict dn_, T *restrict g3, Py_ssize_t H)                        \
{                                                                                            \
    for (Py_ssize_t j = 0; j < H; j++) {                                                     \
        T r = ar[j], z = az[j], n = an[j];                                                   \
        T dh = carry[j];                                                                     \
        if (HAS_M)                                                                           \
            dh += m[j];                                                                      \
        if (HAS_GY)                                                                          \
            dh += gy[j];                                                                     \
        T dz = dh * ((HAS_H ? hp[j] : (T)0) - n) * z * ((T)1 - z);                           \
        T dn = dh * ((T)1 - z) * ((T)1 - n * n);                                             \
        T dr = dn * ghn[j] * r * ((T)1 - r);                                                 \
        T dnr = dn * r;                                                                      \
        dr_[j] = dr; dz_[j] = dz; dnr_[j] = dnr; dn_[j] = dn;                                \
        g3[j] = dr; g3[H + j] = dz; g3[2 * H + j] = dnr;                                     \
        carry[j] = dh * z;                                                                   \
    }                                                                                        \
}

GRU_BWD_ROW(gru_bwd_row_f32_111, float, 1, 1, 1)
GRU_BWD_ROW(gru_bwd_row_f32_110, float, 1, 1, 0)
GRU_BWD_ROW(gru_bwd_row_f32_101, float, 1, 0, 1)
GRU_BWD_ROW(gru_bwd_row_f32_100, float, 1, 0, 0)
GRU_BWD_ROW(gru_bwd_row_f32_011, float, 0, 1, 1)
GRU_BWD_ROW(gru_bwd_row_f32_010, float, 0, 1, 0)
GRU_BWD_ROW(gru_bwd_row_f32_001, float, 0, 0, 1)
GRU_BWD_ROW(gru_bwd_row_f32_000, float, 0, 0, 0)
GRU_BWD_ROW(gru_bwd_row_f64_111, double, 1, 1, 1)
GRU_BWD_ROW(gru_bwd_row_f64_110, double, 1, 1, 0)
GRU_BWD_ROW(gru_bwd_row_f64_101, double, 1, 0, 1)
GRU_BWD_ROW(gru_bwd_row_f64_100, double, 1, 0, 0)
GRU_BWD_ROW(gru_bwd_row_f64_011, double, 0, 1, 1)
GRU_BWD_ROW(gru_bwd_row_f64_010, double, 0, 1, 0)
GRU_BWD_ROW(gru_bwd_row_f64_001, double, 0, 0, 1)
GRU_BWD_ROW(gru_bwd_row_f64_000, double, 0, 0, 0)

/* rows b < Bn get the GEMM part m; h_prev is absent only at the first step when there is
 * no h0 (then h_prev = 0) */
#define GRU_BWD_CALL(ROW, M)                                                                 \
    ROW(a + o, a + gs + o, a + 2 * gs + o, ghn + o, hp ? hp + o : NULL, gy ? gy + o : NULL,  \
        M, carry + o, dgh + o, dgh + gs + o, dgh + 2 * gs + o, dgin + o, g3 + b * 3 * H, H)

#define DEFINE_GRU_BWD(NAME, T, P)                                                          \
static void NAME(const T *a, Py_ssize_t gs, const T *ghn, const T *hp, const T *gy,        \
                 const T *m, Py_ssize_t Bn, T *carry, T *dgh, T *dgin, T *g3,              \
                 Py_ssize_t Bt, Py_ssize_t H)                                               \
{                                                                                            \
    for (Py_ssize_t b = 0; b < Bt; b++) {                                                    \
        Py_ssize_t o = b * H;                                                                \
        int hm = m != NULL && b < Bn;                                                        \
        if (hp) {                                                                            \
            if (hm) {                                                                        \
                if (gy) GRU_BWD_CALL(P##_111, m + o); else GRU_BWD_CALL(P##_110, m + o);     \
            } else {                                                                         \
                if (gy) GRU_BWD_CALL(P##_101, NULL); else GRU_BWD_CALL(P##_100, NULL);       \
            }                                                                                \
        } else if (hm) {                                                                     \
            if (gy) GRU_BWD_CALL(P##_011, m + o); else GRU_BWD_CALL(P##_010, m + o);         \
        } else {                                                                             \
            if (gy) GRU_BWD_CALL(P##_001, NULL); else GRU_BWD_CALL(P##_000, NULL);           \
        }                                                                                    \
    }                                                                                        \
}

DEFINE_GRU_BWD(gru_bwd_f32, float, gru_bwd_row_f32)
DEFINE_GRU_BWD(gru_bwd_f64, double, gru_bwd_row_f64)

/* ---- the stepwise cell F.lstm: row-major (Bx, 4H) pre-activations [i f g o], unscaled ---- */

#define CELL_FWD_ROW(NAME, T, EXP)                                                           \
SEQDBR_CLONES static void NAME(const T *restrict x, const T *restrict cp, T *restrict act,  \
                               T *restrict c, T *restrict tc, T *restrict h, Py_ssize_t H)  \
{                                                                                            \
    for (Py_ssize_t j = 0; j < H; j++) {                                                     \
        T i = (T)1 / ((T)1 + EXP(-x[j]));                                                    \
        T f = (T)1 / ((T)1 + EXP(-x[H + j]));                                                \
        T g = (T)2 / ((T)1 + EXP((T)-2 * x[2 * H + j])) - (T)1;                              \
        T o = (T)1 / ((T)1 + EXP(-x[3 * H + j]));                                            \
        T cc = f * cp[j] + i * g;                                                            \
        T t = (T)2 / ((T)1 + EXP((T)-2 * cc)) - (T)1;                                        \
        act[j] = i; act[H + j] = f; act[2 * H + j] = g; act[3 * H + j] = o;                  \
        c[j] = cc; tc[j] = t; h[j] = o * t;                                                  \
    }                                                                                        \
}

CELL_FWD_ROW(cell_fwd_row_f32, float, exp_f32)
CELL_FWD_ROW(cell_fwd_row_f64, double, exp)

/* dc holds the incoming gradient of c (or zeros) and leaves with that of c_prev */
#define CELL_BWD_ROW(NAME, T, HAS_GH)                                                        \
SEQDBR_CLONES static void NAME(const T *restrict act, const T *restrict tc,                 \
                               const T *restrict cp, const T *restrict gh, T *restrict dc,  \
                               T *restrict gx, Py_ssize_t H)                                \
{                                                                                            \
    for (Py_ssize_t j = 0; j < H; j++) {                                                     \
        T i = act[j], f = act[H + j], g = act[2 * H + j], o = act[3 * H + j];                \
        T d_c = dc[j], vo = (T)0;                                                            \
        if (HAS_GH) {                                                                        \
            T t = tc[j];                                                                     \
            vo = gh[j] * t * o * ((T)1 - o);                                                 \
            d_c += gh[j] * o * ((T)1 - t * t);                                               \
        }                                                                                    \
        gx[j] = d_c * g * i * ((T)1 - i);                                                    \
        gx[H + j] = d_c * cp[j] * f * ((T)1 - f);                                            \
        gx[2 * H + j] = d_c * i * ((T)1 - g * g);                                            \
        gx[3 * H + j] = vo;                                                                  \
        dc[j] = d_c * f;                                                                     \
    }                                                                                        \
}

CELL_BWD_ROW(cell_bwd_row_f32_1, float, 1)
CELL_BWD_ROW(cell_bwd_row_f32_0, float, 0)
CELL_BWD_ROW(cell_bwd_row_f64_1, double, 1)
CELL_BWD_ROW(cell_bwd_row_f64_0, double, 0)

/* ---- argument handling ----------------------------------------------------------------- */

typedef struct {
    Py_buffer view;
    int held;
} Buf;

/* Acquire a C-contiguous buffer of format f/d; None -> not held (allowed only if `opt`). */
static int get_buf(PyObject *obj, Buf *b, int writable, int opt, const char *name,
                   char *fmt)
{
    b->held = 0;
    if (obj == Py_None) {
        if (opt)
            return 0;
        PyErr_Format(PyExc_TypeError, "%s must be an array, not None", name);
        return -1;
    }
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0)
        return -1;
    b->held = 1;
    const char *f = b->view.format ? b->view.format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    char kind = (strcmp(f, "f") == 0 && b->view.itemsize == 4) ? 'f'
              : (strcmp(f, "d") == 0 && b->view.itemsize == 8) ? 'd' : 0;
    if (!kind) {
        PyErr_Format(PyExc_TypeError, "%s must be float32 or float64 (buffer format '%s')",
                     name, b->view.format ? b->view.format : "B");
        return -1;
    }
    if (*fmt == 0)
        *fmt = kind;
    else if (*fmt != kind) {
        PyErr_Format(PyExc_TypeError, "%s has dtype %s but the other arrays are %s", name,
                     kind == 'f' ? "float32" : "float64", *fmt == 'f' ? "float32" : "float64");
        return -1;
    }
    return 0;
}

/* elements [off, off + n) must lie inside the buffer */
static int check_len(Buf *b, Py_ssize_t off, Py_ssize_t n, const char *name)
{
    if (!b->held)
        return 0;
    Py_ssize_t size = b->view.len / b->view.itemsize;
    if (off < 0 || n < 0 || off + n > size) {
        PyErr_Format(PyExc_ValueError, "%s: elements [%zd, %zd) are outside its %zd elements",
                     name, off, off + n, size);
        return -1;
    }
    return 0;
}

static void release(Buf *bufs, int n)
{
    for (int i = 0; i < n; i++)
        if (bufs[i].held)
            PyBuffer_Release(&bufs[i].view);
}

#define PTR(b, T, off) ((b).held ? (T *)(b).view.buf + (off) : NULL)

/* One array argument of a kernel: the object, whether it is written or may be None, and
 * the elements [off, off + n) the kernel touches. */
typedef struct {
    PyObject *obj;
    const char *name;
    int writable, optional;
    Py_ssize_t off, n;
} Arg;

/* Acquire every argument's buffer (all of one dtype, returned in *fmt), then check that
 * the touched elements lie inside each. On failure an exception is set; the caller
 * releases what was acquired (release(b, n) is always safe). */
static int acquire(const Arg *a, Buf *b, int n, char *fmt)
{
    memset(b, 0, (size_t)n * sizeof *b);
    *fmt = 0;
    for (int i = 0; i < n; i++)
        if (get_buf(a[i].obj, &b[i], a[i].writable, a[i].optional, a[i].name, fmt))
            return -1;
    for (int i = 0; i < n; i++)
        if (check_len(&b[i], a[i].off, a[i].n, a[i].name))
            return -1;
    return 0;
}

static int bad_sizes(int bad, Py_ssize_t N, Py_ssize_t s, Py_ssize_t Bt, Py_ssize_t H)
{
    if (bad)
        PyErr_Format(PyExc_ValueError, "bad sizes N=%zd s=%zd Bt=%zd H=%zd", N, s, Bt, H);
    return bad;
}

PyDoc_STRVAR(lstm_fwd_step_doc,
"lstm_fwd_step(A, N, s, Bt, H, hh, cprev, cprev_off, C, TC, Y)\n\n"
"One forward step of the gate-major n-step LSTM recurrence (see the module comment):\n"
"rows s .. s+Bt-1 of A (4, N, H) get hh (Bt, 4H) added (hh may be None) and are replaced\n"
"by the activated gates; C, TC, Y (N, H) rows get c, tanh(c), h. cprev (None, or an\n"
"array whose elements cprev_off .. cprev_off+Bt*H-1 hold c_{t-1}).");

static PyObject *lstm_fwd_step(PyObject *self, PyObject *args)
{
    PyObject *oA, *ohh, *ocp, *oC, *oTC, *oY;
    Py_ssize_t N, s, Bt, H, cpo;
    if (!PyArg_ParseTuple(args, "OnnnnOOnOOO", &oA, &N, &s, &Bt, &H, &ohh, &ocp, &cpo, &oC,
                          &oTC, &oY))
        return NULL;
    if (bad_sizes(N < 0 || H < 1 || s < 0 || Bt < 0 || s + Bt > N, N, s, Bt, H))
        return NULL;
    const Arg a[6] = {{oA, "A", 1, 0, 0, 4 * N * H}, {ohh, "hh", 0, 1, 0, Bt * 4 * H},
                      {ocp, "cprev", 0, 1, cpo, Bt * H}, {oC, "C", 1, 0, 0, N * H},
                      {oTC, "TC", 1, 0, 0, N * H}, {oY, "Y", 1, 0, 0, N * H}};
    Buf b[6];
    char fmt;
    if (acquire(a, b, 6, &fmt))
        goto fail;
    Py_ssize_t o = s * H, gs = N * H;
    Py_BEGIN_ALLOW_THREADS
    if (fmt == 'f')
        fwd_f32(PTR(b[0], float, o), gs, PTR(b[1], float, 0), PTR(b[2], float, cpo),
                PTR(b[3], float, o), PTR(b[4], float, o), PTR(b[5], float, o), Bt, H);
    else
        fwd_f64(PTR(b[0], double, o), gs, PTR(b[1], double, 0), PTR(b[2], double, cpo),
                PTR(b[3], double, o), PTR(b[4], double, o), PTR(b[5], double, o), Bt, H);
    Py_END_ALLOW_THREADS
    release(b, 6);
    Py_RETURN_NONE;
fail:
    release(b, 6);
    return NULL;
}

PyDoc_STRVAR(lstm_bwd_step_doc,
"lstm_bwd_step(A, N, s, Bt, H, TC, cprev, cprev_off, gY, DH, DC, dG, G4)\n\n"
"One backward step: from the activated gates A and TC of rows s .. s+Bt-1, the carried\n"
"dh = DH[:Bt] (+ gY rows s.., gY may be None) and dc = DC[:Bt], write the pre-activation\n"
"gradients to dG (4, N, H) rows s.. in the order [i f g o] and to G4 (Bt, 4H) row-major,\n"
"and replace DC[:Bt] by dc * f (the carry to step t-1). cprev as in lstm_fwd_step (None:\n"
"c_{t-1} = 0).");

static PyObject *lstm_bwd_step(PyObject *self, PyObject *args)
{
    PyObject *oA, *oTC, *ocp, *ogy, *odh, *odc, *odg, *og4;
    Py_ssize_t N, s, Bt, H, cpo;
    if (!PyArg_ParseTuple(args, "OnnnnOOnOOOOO", &oA, &N, &s, &Bt, &H, &oTC, &ocp, &cpo,
                          &ogy, &odh, &odc, &odg, &og4))
        return NULL;
    if (bad_sizes(N < 0 || H < 1 || s < 0 || Bt < 0 || s + Bt > N, N, s, Bt, H))
        return NULL;
    const Arg a[8] = {{oA, "A", 0, 0, 0, 4 * N * H}, {oTC, "TC", 0, 0, 0, N * H},
                      {ocp, "cprev", 0, 1, cpo, Bt * H}, {ogy, "gY", 0, 1, 0, N * H},
                      {odh, "DH", 0, 0, 0, Bt * H}, {odc, "DC", 1, 0, 0, Bt * H},
                      {odg, "dG", 1, 0, 0, 4 * N * H}, {og4, "G4", 1, 0, 0, Bt * 4 * H}};
    Buf b[8];
    char fmt;
    if (acquire(a, b, 8, &fmt))
        goto fail;
    Py_ssize_t o = s * H, gs = N * H;
    Py_BEGIN_ALLOW_THREADS
    if (fmt == 'f')
        bwd_f32(PTR(b[0], float, o), gs, PTR(b[1], float, o), PTR(b[2], float, cpo),
                PTR(b[3], float, o), PTR(b[4], float, 0), PTR(b[5], float, 0),
                PTR(b[6], float, o), PTR(b[7], float, 0), Bt, H);
    else
        bwd_f64(PTR(b[0], double, o), gs, PTR(b[1], double, o), PTR(b[2], double, cpo),
                PTR(b[3], double, o), PTR(b[4], double, 0), PTR(b[5], double, 0),
                PTR(b[6], double, o), PTR(b[7], double, 0), Bt, H);
    Py_END_ALLOW_THREADS
    release(b, 8);
    Py_RETURN_NONE;
fail:
    release(b, 8);
    return NULL;
}

PyDoc_STRVAR(gru_fwd_step_doc,
"gru_fwd_step(A, N, s, Bt, H, hh, hh_gate_stride, b_hn, hprev, hprev_off, GHN, Y)\n\n"
"One forward step of the gate-major n-step GRU ([r z n], r and z negated): rows\n"
"s .. s+Bt-1 of A (3, N, H) are replaced by r, z, n; GHN and Y (N, H) rows get the\n"
"recurrent part of n and h. hh: the (3, B, H) buffer of h_{t-1} W_hh^T (gate k's rows\n"
"start at element k * hh_gate_stride), or None together with hprev at a first step\n"
"without state; hprev: elements hprev_off .. of an array holding h_{t-1}.");

static PyObject *gru_fwd_step(PyObject *self, PyObject *args)
{
    PyObject *oA, *ohh, *obhn, *ohp, *oG, *oY;
    Py_ssize_t N, s, Bt, H, hs, hpo;
    if (!PyArg_ParseTuple(args, "OnnnnOnOOnOO", &oA, &N, &s, &Bt, &H, &ohh, &hs, &obhn, &ohp,
                          &hpo, &oG, &oY))
        return NULL;
    if (bad_sizes(N < 0 || H < 1 || s < 0 || Bt < 0 || s + Bt > N || hs < 0, N, s, Bt, H))
        return NULL;
    if ((ohh == Py_None) != (ohp == Py_None)) {
        PyErr_SetString(PyExc_ValueError, "hh and hprev must both be given or both be None");
        return NULL;
    }
    const Arg a[6] = {{oA, "A", 1, 0, 0, 3 * N * H}, {ohh, "hh", 0, 1, 2 * hs, Bt * H},
                      {obhn, "b_hn", 0, 0, 0, H}, {ohp, "hprev", 0, 1, hpo, Bt * H},
                      {oG, "GHN", 1, 0, 0, N * H}, {oY, "Y", 1, 0, 0, N * H}};
    Buf b[6];
    char fmt;
    if (acquire(a, b, 6, &fmt))
        goto fail;
    if (b[1].held && hs < Bt * H) {
        PyErr_Format(PyExc_ValueError, "hh_gate_stride %zd is smaller than Bt*H = %zd", hs,
                     Bt * H);
        goto fail;
    }
    Py_ssize_t o = s * H, gs = N * H;
    Py_BEGIN_ALLOW_THREADS
    if (fmt == 'f')
        gru_fwd_f32(PTR(b[0], float, o), gs, PTR(b[1], float, 0), hs, PTR(b[2], float, 0),
                    PTR(b[3], float, hpo), PTR(b[4], float, o), PTR(b[5], float, o), Bt, H);
    else
        gru_fwd_f64(PTR(b[0], double, o), gs, PTR(b[1], double, 0), hs, PTR(b[2], double, 0),
                    PTR(b[3], double, hpo), PTR(b[4], double, o), PTR(b[5], double, o), Bt, H);
    Py_END_ALLOW_THREADS
    release(b, 6);
    Py_RETURN_NONE;
fail:
    release(b, 6);
    return NULL;
}

PyDoc_STRVAR(gru_bwd_step_doc,
"gru_bwd_step(A, N, s, Bt, H, GHN, hprev, hprev_off, gY, M, Bn, CARRY, dGH, dGIn, G3)\n\n"
"One backward step of the n-step GRU: dh = CARRY[:Bt] (+ M[:Bn] on the first Bn rows, the\n"
"G3 W_hh product of the later step; M may be None) (+ gY rows s.., may be None); writes\n"
"dGH (3, N, H) rows s.. = [dr, dz, dn r], dGIn (N, H) rows s.. = dn, G3 (Bt, 3H)\n"
"row-major, and CARRY[:Bt] = dh z.");

static PyObject *gru_bwd_step(PyObject *self, PyObject *args)
{
    PyObject *oA, *oG, *ohp, *ogy, *om, *oc, *odgh, *odgin, *og3;
    Py_ssize_t N, s, Bt, H, hpo, Bn;
    if (!PyArg_ParseTuple(args, "OnnnnOOnOOnOOOO", &oA, &N, &s, &Bt, &H, &oG, &ohp, &hpo,
                          &ogy, &om, &Bn, &oc, &odgh, &odgin, &og3))
        return NULL;
    if (N < 0 || H < 1 || s < 0 || Bt < 0 || s + Bt > N || Bn < 0 || Bn > Bt) {
        PyErr_Format(PyExc_ValueError, "bad sizes N=%zd s=%zd Bt=%zd Bn=%zd H=%zd", N, s, Bt,
                     Bn, H);
        return NULL;
    }
    const Arg a[9] = {{oA, "A", 0, 0, 0, 3 * N * H}, {oG, "GHN", 0, 0, 0, N * H},
                      {ohp, "hprev", 0, 1, hpo, Bt * H}, {ogy, "gY", 0, 1, 0, N * H},
                      {om, "M", 0, 1, 0, Bn * H}, {oc, "CARRY", 1, 0, 0, Bt * H},
                      {odgh, "dGH", 1, 0, 0, 3 * N * H}, {odgin, "dGIn", 1, 0, 0, N * H},
                      {og3, "G3", 1, 0, 0, Bt * 3 * H}};
    Buf b[9];
    char fmt;
    if (acquire(a, b, 9, &fmt))
        goto fail;
    Py_ssize_t o = s * H, gs = N * H;
    Py_BEGIN_ALLOW_THREADS
    if (fmt == 'f')
        gru_bwd_f32(PTR(b[0], float, o), gs, PTR(b[1], float, o), PTR(b[2], float, hpo),
                    PTR(b[3], float, o), PTR(b[4], float, 0), Bn, PTR(b[5], float, 0),
                    PTR(b[6], float, o), PTR(b[7], float, o), PTR(b[8], float, 0), Bt, H);
    else
        gru_bwd_f64(PTR(b[0], double, o), gs, PTR(b[1], double, o), PTR(b[2], double, hpo),
                    PTR(b[3], double, o), PTR(b[4], double, 0), Bn, PTR(b[5], double, 0),
                    PTR(b[6], double, o), PTR(b[7], double, o), PTR(b[8], double, 0), Bt, H);
    Py_END_ALLOW_THREADS
    release(b, 9);
    Py_RETURN_NONE;
fail:
    release(b, 9);
    return NULL;
}

PyDoc_STRVAR(lstm_cell_fwd_doc,
"lstm_cell_fwd(x, c_prev, Bx, H, act, c, tc, h)\n\n"
"The stepwise cell: x (Bx, 4H) pre-activations [i f g o] -> act (Bx, 4H) activations,\n"
"c, tanh(c), h (first Bx rows of c; tc and h are (Bx, H)) from c_prev (>= Bx rows).");

static PyObject *lstm_cell_fwd(PyObject *self, PyObject *args)
{
    PyObject *ox, *ocp, *oact, *oc, *otc, *oh;
    Py_ssize_t Bx, H;
    if (!PyArg_ParseTuple(args, "OOnnOOOO", &ox, &ocp, &Bx, &H, &oact, &oc, &otc, &oh))
        return NULL;
    if (bad_sizes(Bx < 0 || H < 0, Bx, 0, Bx, H))   /* H = 0: nothing to do */
        return NULL;
    const Arg a[6] = {{ox, "x", 0, 0, 0, Bx * 4 * H}, {ocp, "c_prev", 0, 0, 0, Bx * H},
                      {oact, "act", 1, 0, 0, Bx * 4 * H}, {oc, "c", 1, 0, 0, Bx * H},
                      {otc, "tc", 1, 0, 0, Bx * H}, {oh, "h", 1, 0, 0, Bx * H}};
    Buf b[6];
    char fmt;
    if (acquire(a, b, 6, &fmt))
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < Bx; r++) {
        Py_ssize_t o = r * H, o4 = r * 4 * H;
        if (fmt == 'f')
            cell_fwd_row_f32(PTR(b[0], float, o4), PTR(b[1], float, o), PTR(b[2], float, o4),
                             PTR(b[3], float, o), PTR(b[4], float, o), PTR(b[5], float, o), H);
        else
            cell_fwd_row_f64(PTR(b[0], double, o4), PTR(b[1], double, o),
                             PTR(b[2], double, o4), PTR(b[3], double, o),
                             PTR(b[4], double, o), PTR(b[5], double, o), H);
    }
    Py_END_ALLOW_THREADS
    release(b, 6);
    Py_RETURN_NONE;
fail:
    release(b, 6);
    return NULL;
}

PyDoc_STRVAR(lstm_cell_bwd_doc,
"lstm_cell_bwd(act, tc, c_prev, gh, Bx, H, dc, gx)\n\n"
"Backward of lstm_cell_fwd: dc (>= Bx rows) holds the gradient of c on entry (zeros when\n"
"none) and that of c_prev on exit; gh (Bx, H) or None; gx (Bx, 4H) gets the gradient of x.");

static PyObject *lstm_cell_bwd(PyObject *self, PyObject *args)
{
    PyObject *oact, *otc, *ocp, *ogh, *odc, *ogx;
    Py_ssize_t Bx, H;
    if (!PyArg_ParseTuple(args, "OOOOnnOO", &oact, &otc, &ocp, &ogh, &Bx, &H, &odc, &ogx))
        return NULL;
    if (bad_sizes(Bx < 0 || H < 0, Bx, 0, Bx, H))   /* H = 0: nothing to do */
        return NULL;
    const Arg a[6] = {{oact, "act", 0, 0, 0, Bx * 4 * H}, {otc, "tc", 0, 0, 0, Bx * H},
                      {ocp, "c_prev", 0, 0, 0, Bx * H}, {ogh, "gh", 0, 1, 0, Bx * H},
                      {odc, "dc", 1, 0, 0, Bx * H}, {ogx, "gx", 1, 0, 0, Bx * 4 * H}};
    Buf b[6];
    char fmt;
    if (acquire(a, b, 6, &fmt))
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < Bx; r++) {
        Py_ssize_t o = r * H, o4 = r * 4 * H;
        if (fmt == 'f') {
            if (b[3].held)
                cell_bwd_row_f32_1(PTR(b[0], float, o4), PTR(b[1], float, o),
                                   PTR(b[2], float, o), PTR(b[3], float, o),
                                   PTR(b[4], float, o), PTR(b[5], float, o4), H);
            else
                cell_bwd_row_f32_0(PTR(b[0], float, o4), PTR(b[1], float, o),
                                   PTR(b[2], float, o), NULL, PTR(b[4], float, o),
                                   PTR(b[5], float, o4), H);
        } else {
            if (b[3].held)
                cell_bwd_row_f64_1(PTR(b[0], double, o4), PTR(b[1], double, o),
                                   PTR(b[2], double, o), PTR(b[3], double, o),
                                   PTR(b[4], double, o), PTR(b[5], double, o4), H);
            else
                cell_bwd_row_f64_0(PTR(b[0], double, o4), PTR(b[1], double, o),
                                   PTR(b[2], double, o), NULL, PTR(b[4], double, o),
                                   PTR(b[5], double, o4), H);
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 6);
    Py_RETURN_NONE;
fail:
    release(b, 6);
    return NULL;
}

/* ---- the stepwise GRU cell (F.gru_cell): row-major blocks [r z n] ---------------------- */

#define GRU_CELL_FWD_ROW(NAME, T, EXP)                                                       \
SEQDBR_CLONES static void NAME(const T *restrict gi, const T *restrict gh,                  \
                               const T *restrict hp, T *restrict act, T *restrict h,        \
                               Py_ssize_t H)                                                 \
{                                                                                            \
    for (Py_ssize_t j = 0; j < H; j++) {                                                     \
        T r = (T)1 / ((T)1 + EXP(-(gi[j] + gh[j])));                                         \
        T z = (T)1 / ((T)1 + EXP(-(gi[H + j] + gh[H + j])));                                 \
        T x = gi[2 * H + j] + r * gh[2 * H + j];                                             \
        T n = (T)2 / ((T)1 + EXP((T)-2 * x)) - (T)1;                                         \
        act[j] = r; act[H + j] = z; act[2 * H + j] = n;                                      \
        h[j] = n + z * (hp[j] - n);                                                          \
    }                                                                                        \
}

GRU_CELL_FWD_ROW(gru_cell_fwd_row_f32, float, exp_f32)
GRU_CELL_FWD_ROW(gru_cell_fwd_row_f64, double, exp)

#define GRU_CELL_BWD_ROW(NAME, T)                                                            \
SEQDBR_CLONES static void NAME(const T *restrict act, const T *restrict gh,                 \
                               const T *restrict hp, const T *restrict gy,                  \
                               T *restrict ghp, T *restrict ggi, T *restrict ggh,           \
                               Py_ssize_t H)                                                 \
{                                                                                            \
    for (Py_ssize_t j = 0; j < H; j++) {                                                     \
        T r = act[j], z = act[H + j], n = act[2 * H + j], g = gy[j];                         \
        T dn = g * ((T)1 - z) * ((T)1 - n * n);                                              \
        T dz = g * (hp[j] - n) * z * ((T)1 - z);                                             \
        T dr = dn * gh[2 * H + j] * r * ((T)1 - r);                                          \
        ggi[j] = dr; ggi[H + j] = dz; ggi[2 * H + j] = dn;                                   \
        ggh[j] = dr; ggh[H + j] = dz; ggh[2 * H + j] = dn * r;                               \
        ghp[j] = g * z;                                                                      \
    }                                                                                        \
}

GRU_CELL_BWD_ROW(gru_cell_bwd_row_f32, float)
GRU_CELL_BWD_ROW(gru_cell_bwd_row_f64, double)

PyDoc_STRVAR(gru_cell_fwd_doc,
"gru_cell_fwd(gi, gh, h_prev, Bx, H, act, h)\n\n"
"The stepwise GRU cell: gi, gh (Bx, 3H) projections [r z n], h_prev (>= Bx rows, H)\n"
"-> act (Bx, 3H) = [r z n] and h (Bx, H) = n + z (h_prev - n).");

static PyObject *gru_cell_fwd(PyObject *self, PyObject *args)
{
    PyObject *ogi, *ogh, *ohp, *oact, *oh;
    Py_ssize_t Bx, H;
    if (!PyArg_ParseTuple(args, "OOOnnOO", &ogi, &ogh, &ohp, &Bx, &H, &oact, &oh))
        return NULL;
    if (bad_sizes(Bx < 0 || H < 0, Bx, 0, Bx, H))   /* H = 0: nothing to do */
        return NULL;
    const Arg a[5] = {{ogi, "gi", 0, 0, 0, Bx * 3 * H}, {ogh, "gh", 0, 0, 0, Bx * 3 * H},
                      {ohp, "h_prev", 0, 0, 0, Bx * H}, {oact, "act", 1, 0, 0, Bx * 3 * H},
                      {oh, "h", 1, 0, 0, Bx * H}};
    Buf b[5];
    char fmt;
    if (acquire(a, b, 5, &fmt))
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < Bx; r++) {
        Py_ssize_t o = r * H, o3 = r * 3 * H;
        if (fmt == 'f')
            gru_cell_fwd_row_f32(PTR(b[0], float, o3), PTR(b[1], float, o3),
                                 PTR(b[2], float, o), PTR(b[3], float, o3),
                                 PTR(b[4], float, o), H);
        else
            gru_cell_fwd_row_f64(PTR(b[0], double, o3), PTR(b[1], double, o3),
                                 PTR(b[2], double, o), PTR(b[3], double, o3),
                                 PTR(b[4], double, o), H);
    }
    Py_END_ALLOW_THREADS
    release(b, 5);
    Py_RETURN_NONE;
fail:
    release(b, 5);
    return NULL;
}

PyDoc_STRVAR(gru_cell_bwd_doc,
"gru_cell_bwd(act, gh, h_prev, gy, Bx, H, gh_prev, ggi, ggh)\n\n"
"Backward of gru_cell_fwd for the first Bx rows: gy (Bx, H) -> gh_prev (Bx, H) = gy z,\n"
"ggi (Bx, 3H) = [dr dz dn] and ggh (Bx, 3H) = [dr dz dn r].");

static PyObject *gru_cell_bwd(PyObject *self, PyObject *args)
{
    PyObject *oact, *ogh, *ohp, *ogy, *oghp, *oggi, *oggh;
    Py_ssize_t Bx, H;
    if (!PyArg_ParseTuple(args, "OOOOnnOOO", &oact, &ogh, &ohp, &ogy, &Bx, &H, &oghp, &oggi,
                          &oggh))
        return NULL;
    if (bad_sizes(Bx < 0 || H < 0, Bx, 0, Bx, H))   /* H = 0: nothing to do */
        return NULL;
    const Arg a[7] = {{oact, "act", 0, 0, 0, Bx * 3 * H}, {ogh, "gh", 0, 0, 0, Bx * 3 * H},
                      {ohp, "h_prev", 0, 0, 0, Bx * H}, {ogy, "gy", 0, 0, 0, Bx * H},
                      {oghp, "gh_prev", 1, 0, 0, Bx * H}, {oggi, "ggi", 1, 0, 0, Bx * 3 * H},
                      {oggh, "ggh", 1, 0, 0, Bx * 3 * H}};
    Buf b[7];
    char fmt;
    if (acquire(a, b, 7, &fmt))
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < Bx; r++) {
        Py_ssize_t o = r * H, o3 = r * 3 * H;
        if (fmt == 'f')
            gru_cell_bwd_row_f32(PTR(b[0], float, o3), PTR(b[1], float, o3),
                                 PTR(b[2], float, o), PTR(b[3], float, o),
                                 PTR(b[4], float, o), PTR(b[5], float, o3),
                                 PTR(b[6], float, o3), H);
        else
            gru_cell_bwd_row_f64(PTR(b[0], double, o3), PTR(b[1], double, o3),
                                 PTR(b[2], double, o), PTR(b[3], double, o),
                                 PTR(b[4], double, o), PTR(b[5], double, o3),
                                 PTR(b[6], double, o3), H);
    }
    Py_END_ALLOW_THREADS
    release(b, 7);
    Py_RETURN_NONE;
fail:
    release(b, 7);
    return NULL;
}

/* ---- scatter-add of rows (the backward of a table lookup) ------------------------------ */

#define SCATTER_ROWS(NAME, T)                                                                \
SEQDBR_CLONES                                                                                \
static void NAME(T *restrict out, const T *restrict g, const int64_t *ids, Py_ssize_t N,    \
                 Py_ssize_t K)                                                               \
{                                                                                            \
    for (Py_ssize_t n = 0; n < N; n++) {                                                     \
        T *restrict o = out + ids[n] * K;                                                    \
        const T *restrict r = g + n * K;                                                     \
        for (Py_ssize_t k = 0; k < K; k++)                                                   \
            o[k] += r[k];                                                                    \
    }                                                                                        \
}

SCATTER_ROWS(scatter_f32, float)
SCATTER_ROWS(scatter_f64, double)

PyDoc_STRVAR(scatter_add_rows_doc,
"scatter_add_rows(out, g, ids, V, N, K)\n\n"
"out[ids[n], :] += g[n, :] for n in 0 .. N-1 (in order), with out (V, K) and g (N, K) of\n"
"one float dtype and ids an int64 array of N entries, each in [0, V) (checked: ValueError\n"
"naming the first bad one, and out is left unchanged).");

static PyObject *scatter_add_rows(PyObject *self, PyObject *args)
{
    PyObject *oout, *og, *oids;
    Py_ssize_t V, N, K;
    if (!PyArg_ParseTuple(args, "OOOnnn", &oout, &og, &oids, &V, &N, &K))
        return NULL;
    if (V < 0 || N < 0 || K < 0) {
        PyErr_Format(PyExc_ValueError, "bad sizes V=%zd N=%zd K=%zd", V, N, K);
        return NULL;
    }
    const Arg a[2] = {{oout, "out", 1, 0, 0, V * K}, {og, "g", 0, 0, 0, N * K}};
    Buf b[2];
    Py_buffer iv;
    int ids_held = 0;
    char fmt;
    if (acquire(a, b, 2, &fmt))
        goto fail;
    if (PyObject_GetBuffer(oids, &iv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto fail;
    ids_held = 1;
    const char *f = iv.format ? iv.format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (iv.itemsize != 8 || !(strcmp(f, "q") == 0 || strcmp(f, "l") == 0)) {
        PyErr_Format(PyExc_TypeError, "ids must be int64 (buffer format '%s')",
                     iv.format ? iv.format : "B");
        goto fail;
    }
    if (iv.len / 8 < N) {
        PyErr_Format(PyExc_ValueError, "ids has %zd elements, fewer than N=%zd",
                     (Py_ssize_t)(iv.len / 8), N);
        goto fail;
    }
    const int64_t *ids = (const int64_t *)iv.buf;
    for (Py_ssize_t n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V) {
            PyErr_Format(PyExc_ValueError, "ids[%zd] = %lld is outside [0, %zd)", n,
                         (long long)ids[n], V);
            goto fail;
        }
    Py_BEGIN_ALLOW_THREADS
    if (fmt == 'f')
        scatter_f32(PTR(b[0], float, 0), PTR(b[1], float, 0), ids, N, K);
    else
        scatter_f64(PTR(b[0], double, 0), PTR(b[1], double, 0), ids, N, K);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&iv);
    release(b, 2);
    Py_RETURN_NONE;
fail:
    if (ids_held)
        PyBuffer_Release(&iv);
    release(b, 2);
    return NULL;
}

static PyMethodDef methods[] = {
    {"lstm_fwd_step", lstm_fwd_step, METH_VARARGS, lstm_fwd_step_doc},
    {"lstm_bwd_step", lstm_bwd_step, METH_VARARGS, lstm_bwd_step_doc},
    {"gru_fwd_step", gru_fwd_step, METH_VARARGS, gru_fwd_step_doc},
    {"lstm_cell_fwd", lstm_cell_fwd, METH_VARARGS, lstm_cell_fwd_doc},
    {"lstm_cell_bwd", lstm_cell_bwd, METH_VARARGS, lstm_cell_bwd_doc},
    {"gru_bwd_step", gru_bwd_step, METH_VARARGS, gru_bwd_step_doc},
    {"scatter_add_rows", scatter_add_rows, METH_VARARGS, scatter_add_rows_doc},
    {"gru_cell_fwd", gru_cell_fwd, METH_VARARGS, gru_cell_fwd_doc},
    {"gru_cell_bwd", gru_cell_bwd, METH_VARARGS, gru_cell_bwd_doc},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cpu_cells",
    "Fused CPU cell arithmetic for seqdbr's n-step LSTM and GRU (optional; see cpu_kernels.py).",
    -1, methods
};

PyMODINIT_FUNC PyInit__cpu_cells(void)
{
    return PyModule_Create(&module);
}
