# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The Gaussian-mixture pass: one sweep over the data serving every fitting method.

For each row x_n (in coordinates shifted by a fixed vector, which keeps the second moments well
conditioned) and each component k the pass computes

    log rho_nk = c_k - 1/2 || (x_n - m_k) U_k ||^2

where U_k is the upper-triangular factor of the precision (Lambda_k = U_k U_k^T) and c_k carries
everything that does not depend on x_n (log weight, log det U_k, -D/2 log 2 pi for EM; expected
logs for mean field). It normalises over k with log-sum-exp, giving r_nk and
log p(x_n) = logsumexp_k log rho_nk, and accumulates the weighted sufficient statistics

    N_k = sum_n w_n r_nk,   S1_k = sum_n w_n r_nk x_n,   S2_k = second moment (see below),
    LL  = sum_n w_n log p(x_n),   H = sum_n w_n sum_k r_nk log r_nk   (for the entropy of q(z)).

Second moments by covariance type, each centred at the component's centre c_k (``means``;
full: the current mean m_k; diag / spherical: m_k, or 0 = the shift, see below), so that a
component far from the shift can lose nothing to cancellation (the caller re-centres them at
the new means):
    full       S2_k = sum_n w_n r_nk (x_n - c_k)(x_n - c_k)^T   (only the lower triangle, in
                      row-major terms, is filled)
    tied       nothing: sum_n w_n x_n x_n^T does not depend on r and is computed once per fit
    diag       S2_kj = sum_n w_n r_nk (x_nj - c_kj)^2
    spherical  S2_k = sum_n w_n r_nk ||x_n - c_k||^2

The quadratic form of full is computed from one GEMM per chunk, y_nk = x_n U_k for all k at
once, minus m_k U_k, and its statistics from one GEMM of the responsibilities with the row
features [1, x_n, lower(x_n x_n^T)] (S2 about the shift, centred at c_k chunk by chunk; see
_full_stats_gemm); a component far from the shift (||m_k U_k||^2 > 2^20), and every component
of a model beyond FULL_GEMM_MAX_D / FULL_GEMM_MAX_KD, takes (x_n - m_k) U_k and a SYRK of the
centred rows instead, which lose nothing to cancellation. For tied, and for the diag / spherical
components centred at the shift (c_k = 0), it is a dot product of a per-row feature vector z_n
with a per-component vector a_k (built by the caller), so one GEMM per chunk computes it (and
S2 of those diag / spherical components, r^T [x^2] resp. r^T [||x||^2], is one GEMM too):

    tied       z_n = [y_n, ||y_n||^2],  y_n = x_n U      a_k = [-2 m_k U, 1]
    diag       z_n = [x_n, x_n^2]                        a_k = [-2 m_k p_k^2, p_k^2]
    spherical  z_n = [x_n, ||x_n||^2]                    a_k = [-2 m_k p_k^2, p_k^2]

with the constant ||m_k U||^2 (resp. sum_j m_kj^2 p_kj^2) folded into c_k by the caller. That
form loses about log10(sum_j p_kj^2 m_kj^2) digits to cancellation, so the caller gives a diag
/ spherical component far from the shift (in its own standard deviations) its mean as centre
instead: its quadratic form is then sum_j p_kj^2 (x_nj - m_kj)^2, with p_k^2 read from the
last D columns (resp. the last column) of aux and the rest of its aux row zero.

Fused tiles (diag / spherical, every component in the GEMM form, responsibilities computed
by the pass, no draws): each group's chunks go through _tile_group, which keeps the chunk's
features f_n = [z_n, 1] feature-major, takes log rho from one GEMM against [-1/2 a_k, c_k],
normalises component-major (vbf_gmm_lse_cols: one row per vector lane) and adds
[S1 | S2 | N] = (w r)^T f into the group's accumulator with one GEMM.

Fused tiles of 'full' and 'tied' (D <= FULL_TILE_MAX_D, responsibilities computed by the
pass, no draws, no panel sweep): _full_tile_group, without BLAS. Each group's rows go in tiles
of FULL_TILE_ROWS, feature-major, vector lanes over rows: 'full' takes every component in the
centred form ((x_n - m_k) U_k over U_k's triangle, S2 about m_k from r (x_n - m_k)), so
nothing is lost to a component's distance from the shift; 'tied' takes y = x U once a tile
and ||y_n - m_k U||^2. The far-from-shift rule and the GEMM forms above serve the other
passes (given responsibilities, draws, larger D). float32 X with float32_work: the same
kernels in float32 (_full_tile_group with a float tile), each tile's sums added in float64;
'full' with given responsibilities (_full_given_group32) and weighted_gram (_gram_tiles32)
take the float32 statistics tile alone.

Sampled z (Gibbs): with ``sample_z`` the pass also draws z_n ~ Cat(r_n) for every row and the
statistics become hard counts (r_n replaced by the one-hot vector of z_n); LL then holds
sum_n w_n log p(x_n, z_n) = sum_n w_n log rho_{n z_n} (the complete-data log-likelihood) instead
of sum_n w_n log p(x_n), and H is not computed. The uniform for row n is the (n+1)-th output of a
SplitMix64 generator whose start depends on (seed, sweep) only, so a draw depends on
(seed, sweep, row) and nothing else: not on the chunking, the grouping or the thread count.

Determinism: rows are cut into fixed-size chunks and the chunks into `n_groups` runs of
consecutive chunks (n_groups chosen by the caller from the data size only). Each group is handled
by one thread, in chunk order, and accumulates into its own slot; the caller reduces the slots in
group order. The result is therefore bitwise identical for any number of threads.
"""
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.math cimport exp, log, sqrt, fabs, INFINITY
from libc.stdint cimport uint64_t, uint32_t
from scipy.linalg.cython_blas cimport dgemm, dsyrk, dtrmm, sgemm

ctypedef fused floating:
    float
    double

# A tile's working precision (independent of the data's `floating`).
ctypedef fused tile_t:
    float
    double

# Covariance types, as the Python layer numbers them.
cdef enum:
    FULL = 0
    TIED = 1
    DIAG = 2
    SPHERICAL = 3

# 'full' takes the GEMM form (see _GaussPass) up to these sizes, for the components within
# sqrt(FULL_FAR_FROM_SHIFT) = 1024 standard deviations (in the component's own metric) of the
# shift, as 'diag' does (gaussian.FAR_FROM_SHIFT)
cdef enum:
    FULL_GEMM_MAX_D = 32
    FULL_GEMM_MAX_KD = 1024
cdef double FULL_FAR_FROM_SHIFT = 1048576.0

# diag / spherical tiles: a chunk's statistics come from its nonzero responsibilities alone
# (vbf_gmm_tile_stats_*sparse*) when that is cheaper than the dense GEMM by a rough count of
# cycles: a nonzero costs about (SPARSE_NONZERO_COST + D) / 8 (listing it, then D / 4 vector
# steps with their latency), the GEMM b K W / 16 (at its peak); nonzero
# (SPARSE_NONZERO_COST + D) * 8 <= b K W. At D = K = 16 that is 1.4 nonzero a row; at
# D = K = 64 (PyCave's diag workload) 7.8; the float32 tile's SGEMM runs at twice the rate,
# so its nonzeros count twice. The nonzero masks are not even made for a chunk size and
# model where two nonzero a row would not pay (the chunk's rows average above one). A rule
# of the data only.
cdef enum:
    SPARSE_NONZERO_COST = 32


cdef inline bint _sparse_stats(Py_ssize_t n_nonzero, int b, int K, int D,
                               int W) noexcept nogil:
    return n_nonzero * (SPARSE_NONZERO_COST + D) * 8 <= <Py_ssize_t>b * K * W


# The float64 diag tile runs each chunk in tiles of DIAG_TILE_ROWS rows (when the chunk size
# is a multiple of it): at D = K = 16 a tile's features and log rho, (2 D + 1 + K) 8 bytes
# a row, then stay in L1 (25 KB against 100 KB for 256 rows). Measured, one thread, CPU time
# of a pass (N = 200,000 at D = K = 16; 100,000 at D = K = 64): 15-21 % less than 256-row
# tiles at D = K = 16, 18 % at D = K = 64 (256-row tiles' feature rows, 2 KB apart, also
# share L1 sets: padding them to 264 gave half of it); spherical (fewer features) and the
# float32 tile (SGEMM's per-call cost) were as fast or faster with whole chunks. A rule of
# the sizes only.
cdef enum:
    DIAG_TILE_ROWS = 64

# The float64 diag / spherical tile's E-step in registers (vbf_gmm_tile_estep16, AVX-512):
# up to this many components, every log rho of eight rows stays in a register through the
# log-sum-exp, in place of log rho's DGEMM into the tile and the log-sum-exp's three sweeps
# of it. A rule of the model's size only.
cdef enum:
    ESTEP_MAX_K = 16
# Past ESTEP_MAX_K, up to this many components, log rho of eight rows by fused multiply-adds
# in blocks of sixteen components (vbf_gmm_tile_estep_blocks_avx512), each stored once and
# its log-sum-exp taken while in L1, in place of the DGEMM (OpenBLAS' small-matrix kernel at
# the tile's shapes); the coefficients (W, K) are read once per eight rows, so the rule stops
# where they outgrow L2. A rule of the model's size only.
cdef enum:
    ESTEP_BLOCKS_MAX_K = 128
# The float64 diag tile with K <= ESTEP_MAX_K and up to this many features (a row of x -
# shift in two registers) takes its statistics inside the register E-step from the nonzero
# w r_nk alone (vbf_gmm_tile_estep16_stats), in place of the statistics DGEMM: one pass at
# D = K = 16, one thread, 1.18-1.22x less CPU (benchmarks/RESULTS.md, gmmdiag7). Spherical
# keeps the DGEMM (W = D + 2: the DGEMM's half the work, the fused form 0.95-1.00x). A rule
# of the model's size only.
cdef enum:
    ESTEP_STATS_MAX_D = 16


def sparse_stats_form(Py_ssize_t n_nonzero, int b, int K, int D, bint diag):
    """Whether a diag (``diag``) / spherical tile's chunk of b rows with ``n_nonzero``
    nonzero w r_nk takes its statistics from those alone rather than the dense GEMM."""
    return _sparse_stats(n_nonzero, b, K, D, 2 * D + 1 if diag else D + 2)

# float32 input, diag / spherical, asked to work in float32 (``float32_work``): the tile runs
# in float32 (_tile_group with a float tile) when every component's squared distance from the shift in its
# own standard deviations, sum_j m_kj^2 p_kj^2, is at most this (2^12). S2 about the shift
# then loses at most log10(2^12) ~ 3.6 of float32's 7.2 digits to the M-step's subtraction
# m^2 within one chunk's sum (far less in the float64 sum over chunks, whose rounding errors
# average out); a component farther away sends the pass to the float64 tile.
cdef double FAR_FROM_SHIFT_F32 = 4096.0
# The float32 'full' / 'tied' tiles (_full_tile_group, float) centre every row at m_k (no
# cancellation of terms of size ||m_k U_k||^2, unlike the diag tile's GEMM form): a row's
# centred coordinates, in standard deviations, carry u ||(x - shift) U_k|| of rounding
# (x - shift and m_k rounded to float32 once), at most u 2^12 ~ 2.4e-4 within this
# distance (2^24 squared): the order of float32 X's own rounding, u |x| / sigma, for data
# near the origin. A component farther away (its rows' coordinates then keep fewer digits
# than X gave them) sends the pass to the float64 tile.
cdef double FULL_FAR_FROM_SHIFT_F32 = 16777216.0

# 'full' as fused tiles (_full_tile_group) up to this D, in tiles of FULL_TILE_ROWS rows (a
# multiple of 32: the kernels' row blocks): every component centred, no BLAS. The tile's
# feature rows are FULL_TILE_LD apart, not 4 KiB: rows a multiple of 4 KiB apart share L1
# sets and alias store-to-load, which the S2 kernel's four-row blocks hit.
cdef enum:
    FULL_TILE_MAX_D = 64
    FULL_TILE_ROWS = 512
    FULL_TILE_LD = 520
    # the float32 tiles (_full_tile_group, float): rows in blocks of 64 (sixteen lanes times
    # four), feature rows 528 floats apart (a multiple of 16 for the float32 log-sum-exp)
    FULL_TILE_LD32 = 528

cdef char CH_N = b'N'
cdef char CH_T = b'T'
cdef char CH_L = b'L'
cdef char CH_U = b'U'

# The counter-based stream of the sampled-z pass: keyed by (seed, sweep), output ``row`` drawn
# directly, so a row's uniform depends on nothing else.
cdef extern from "vbf_rng.h":
    uint64_t vbf_stream_key2(uint64_t seed, uint64_t a) noexcept nogil
    double vbf_uniform_at(uint64_t key, uint64_t i) noexcept nogil

cdef extern from "_gaussian_kernels.h":
    void vbf_gmm_resp_rows(double* lp, int b, int K, const double* log_const, double* lpn,
                           double* rlogr) noexcept nogil
    void vbf_gmm_full_quad(const double* y, int b, int K, int D, const double* mu,
                           const double* log_const, double* lp) noexcept nogil
    void vbf_gmm_lse_cols(double* lpT, int ld, int b, int K, const double* w, double* lpn,
                          double* rlogr) noexcept nogil
    void vbf_gmm_tile_features_f64(const double* x, int b, int D, const double* shift,
                                   int diag, double* f, int ld) noexcept nogil
    void vbf_gmm_tile_features_f32(const float* x, int b, int D, const double* shift,
                                   int diag, double* f, int ld) noexcept nogil
    void vbf_gmm_tile_features32(const float* x, int b, int D, const double* shift,
                                 int diag, float* f, int ld) noexcept nogil
    Py_ssize_t vbf_gmm_nonzero_masks(const double* r, int ld, int b, int K,
                                     unsigned char* mask) noexcept nogil
    Py_ssize_t vbf_gmm_nonzero_masks32(const float* r, int ld, int b, int K,
                                       unsigned char* mask) noexcept nogil
    void vbf_gmm_tile_stats_sparse_f64(const double* x, int b, int D, const double* shift,
                                       const double* sq, const double* r, int ld, int K,
                                       const unsigned char* mask, double* acc,
                                       int W) noexcept nogil
    void vbf_gmm_tile_stats_sparse_f32(const float* x, int b, int D, const double* shift,
                                       const double* sq, const double* r, int ld, int K,
                                       const unsigned char* mask, double* acc,
                                       int W) noexcept nogil
    void vbf_gmm_tile_stats_sparse32(const float* x, int b, int D, const double* shift,
                                     const float* sq, const float* r, int ld, int K,
                                     const unsigned char* mask, double* acc,
                                     int W) noexcept nogil
    void vbf_gmm_column_sums_f64(const double* x, Py_ssize_t b, int D, const double* w,
                                 const double* shift, double* out) noexcept nogil
    void vbf_gmm_column_sums_f32(const float* x, Py_ssize_t b, int D, const double* w,
                                 const double* shift, double* out) noexcept nogil
    void vbf_gmm_square_sums_f64(const double* x, Py_ssize_t b, int D, const double* w,
                                 const double* shift, double* out) noexcept nogil
    void vbf_gmm_square_sums_f32(const float* x, Py_ssize_t b, int D, const double* w,
                                 const double* shift, double* out) noexcept nogil
    void vbf_gmm_lse_cols_f32(float* lpT, int ld, int b, int K, const double* w,
                              double* lpn, double* rlogr) noexcept nogil
    int vbf_gmm_tile_estep16(const double* f, int ld, int b, int W, int K,
                             const double* coefT, const double* w, double* lpT, double* lpn,
                             double* rlogr) noexcept nogil
    int vbf_gmm_given_stats(const double* x, int b, int D, const double* shift,
                            const double* r, int K, const double* w, double* acc,
                            int W) noexcept nogil
    Py_ssize_t vbf_gmm_count_nonzero(const double* r, Py_ssize_t count) noexcept nogil
    int vbf_gmm_tile_estep16_stats(const double* f, int ld, int b, int W, int K,
                                   const double* coefT, const double* w, double* lpT,
                                   double* lpn, double* rlogr, const double* x, int D,
                                   const double* shift, const double* ws,
                                   double* acc) noexcept nogil
    int vbf_gmm_tile_estep_f32(const float* f, int ld, int b, int W, int K,
                               const float* coefT, const double* w, float* lpT, double* lpn,
                               double* rlogr) noexcept nogil

    void vbf_gmm_full_pack_u(const double* u, int D, int K, double* up) noexcept nogil
    void vbf_gmm_full_quad_tile(const double* xT, int ld, int nr, int D, int K,
                                const double* means, const double* up,
                                const double* log_const, double* xc, double* lpT) noexcept nogil
    void vbf_gmm_full_stats_tile(const double* xT, int ld, int nr, int D, int K,
                                 const double* means, const double* rT, double* xc, double* rx,
                                 double* nk, double* s1, double* s2) noexcept nogil
    void vbf_gmm_tied_quad_tile(const double* xT, int ld, int nr, int D, int K,
                                const double* mu, const double* up, const double* log_const,
                                double* yT, double* lpT) noexcept nogil
    void vbf_gmm_full_quad_tile_32(const float* xT, int ld, int nr, int D, int K,
                                   const float* means, const float* up,
                                   const double* log_const, float* xc, float* lpT) noexcept nogil
    void vbf_gmm_full_stats_tile_32(const float* xT, int ld, int nr, int D, int K,
                                    const float* means, const float* rT, float* xc, float* rx,
                                    double* nk, double* s1, double* s2) noexcept nogil
    void vbf_gmm_tied_quad_tile_32(const float* xT, int ld, int nr, int D, int K,
                                   const float* mu, const float* up, const double* log_const,
                                   float* yT, float* lpT) noexcept nogil
    void vbf_gmm_tied_stats_tile_32(const float* xT, int ld, int nr, int D, int K,
                                    const float* rT, double* nk, double* s1) noexcept nogil
    void vbf_gmm_tied_stats_tile(const double* xT, int ld, int nr, int D, int K,
                                 const double* rT, double* nk, double* s1) noexcept nogil
    void vbf_gmm_full_tile_fill_f64(const double* x, int b, int nr, int D, int ld,
                                    const double* shift, double* xT) noexcept nogil
    void vbf_gmm_full_tile_fill_f32(const float* x, int b, int nr, int D, int ld,
                                    const double* shift, double* xT) noexcept nogil
    void vbf_mt19937_words(uint32_t* key, int* pos, uint32_t* words,
                           Py_ssize_t count) noexcept nogil
    void vbf_mt19937_resp_rows(double* out, Py_ssize_t n_rows, int K) noexcept nogil
    void vbf_gmm_full_tile_fill32(const float* x, int b, int nr, int D, int ld,
                                  const double* shift, float* xT) noexcept nogil


# Rows a task of the random responsibilities' parallel step (each row its own: any split
# gives the same bits; 256 rows of K = 16 doubles, 32 KiB, make ~780 tasks at N = 200,000)
cdef enum:
    RANDOM_RESP_ROWS = 256


def mt19937_random_resp(uint32_t[::1] key, int pos, double[:, ::1] out, int n_threads=1):
    """out (N, K) = numpy's ``RandomState.uniform(size=(N, K))`` drawn from the MT19937
    state (key (624,) uint32, advanced in place; pos: the next word's index, 0..624), each
    row divided by its sum (summed in numpy's pairwise order): the bits of
    ``u = uniform(size=(N, K)); u /= u.sum(axis=1)[:, None]``. Returns the new pos.

    The generator's words (a serial recurrence) are written first, two a double where the
    double goes (``vbf_mt19937_words``); the doubles and the rows' normalisation, each row
    from its own words, then run on ``n_threads`` threads (``vbf_mt19937_resp_rows``): the
    same bits for any thread count."""
    if key.shape[0] != 624 or not 0 <= pos <= 624:
        raise ValueError("an MT19937 state is 624 words and a position in [0, 624]")
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    cdef Py_ssize_t N = out.shape[0], t, n_tasks
    cdef int K = <int>out.shape[1]
    if N > 0 and K > 0:
        n_tasks = (N + RANDOM_RESP_ROWS - 1) // RANDOM_RESP_ROWS
        with nogil:
            vbf_mt19937_words(&key[0], &pos, <uint32_t*>&out[0, 0], 2 * N * K)
            for t in prange(n_tasks, schedule='dynamic', chunksize=1, num_threads=n_threads):
                vbf_mt19937_resp_rows(&out[t * RANDOM_RESP_ROWS, 0],
                                      min(RANDOM_RESP_ROWS, N - t * RANDOM_RESP_ROWS), K)
    return pos


def uniforms(unsigned long long seed, unsigned long long sweep, Py_ssize_t start,
             Py_ssize_t stop):
    """The uniforms the sampled-z pass uses for rows [start, stop) (for tests)."""
    import numpy as np
    out = np.empty(stop - start)
    cdef double[::1] o = out
    cdef uint64_t stream = vbf_stream_key2(seed, sweep)
    cdef Py_ssize_t i
    for i in range(stop - start):
        o[i] = vbf_uniform_at(stream, <uint64_t>(start + i))
    return out


cdef struct _GaussPass:
    # What every chunk of one pass shares, built once by gmm_pass. An optional array is NULL
    # when absent. The data and the per-row outputs are in X's dtype (float32 or float64), so
    # they are _chunk's arguments: a fused type cannot be a struct field.
    # IN
    int D, K, cov_type
    const double* weights      # (N,) sample weights; NULL: unit weights
    const double* shift        # (D,) subtracted from every row
    const double* means        # (K, D) shifted means
    const double* prec_chol    # full (K, D, D), tied (D, D) upper factors; unused otherwise
    const double* aux          # (K, n_aux) the a_k of the GEMM form; unused for full
    int n_aux                  # >= 1 (a valid BLAS leading dimension even when unused)
    const unsigned char* centred  # diag / spherical (K,): 1 where means[k] != 0 (centred
    int n_centred              # form), 0 where the centre is the shift (GEMM form); count
    const double* log_const    # (K,) the c_k
    # 'full' in GEMM form (full_gemm): quadratic forms from y = x [U_0 ... U_{K-1}] (one GEMM
    # a chunk) and S1, S2 from one GEMM of the responsibilities with the row features
    # f_n = [1, x_n, lower(x_n x_n^T)] (n_feat of them), S2 then centred chunk by chunk; the
    # components flagged far (far_full) keep the per-component Cholesky form
    bint full_gemm
    const double* u_cat        # (D, K D) row-major: U_k in columns k D .. k D + D - 1
    const double* mu           # (K, D) m_k U_k
    const unsigned char* far_full  # (K,)
    int n_feat                 # 1 + D + D (D + 1) / 2
    const double* resp_in      # (N, K) responsibilities to use; NULL: computed here
    bint compute_stats         # accumulate N_k, S1, S2
    bint sample_z              # draw z_n and count it (Gibbs)
    uint64_t stream            # key of the draws' stream
    uint64_t row_offset        # global index of X's first row (the draws are keyed by it)
    # OUT: one slot per group g, at g times the sizes
    double* nk                 # (G, K)
    double* s1                 # (G, K D)
    double* s2                 # (G, s2_size); NULL when s2_size is 0 (tied)
    Py_ssize_t s2_size
    double* resp_w             # (N, K) receives w_n r_nk when S2 is left to the panel sweep
                               # (full, s2_panels); NULL otherwise
    double* ll                 # (G,) log-likelihood (complete-data with sample_z)
    double* ent                # (G,) sum_n w_n sum_k r_nk log r_nk
    int* z_out                 # (N,) the drawn z_n; NULL: not wanted
    # diag / spherical with every component in the GEMM form, responsibilities computed
    # here, no draws: each group's chunks as fused tiles (_tile_group)
    bint tile
    int n_tile                 # W = 2 D + 1 (diag), D + 2 (spherical): features [z_n, 1]
    const double* coef         # (K, W): [-1/2 a_k, c_k]
    # K <= ESTEP_BLOCKS_MAX_K (float64 tile): coef transposed and padded to (W, Kp), Kp = K
    # rounded up to 16, the components past K zero with constant -inf, for the E-step by
    # fused multiply-adds (vbf_gmm_tile_estep16); NULL otherwise
    const double* coef16
    # the tile in float32 (float32 X, float32_work, every component within
    # FAR_FROM_SHIFT_F32): coef rounded to float32
    bint tile32
    const float* coef32        # (K, W)
    # K <= ESTEP_BLOCKS_MAX_K: coef16 rounded to float32 (its layout), for the float32
    # E-step by fused multiply-adds (vbf_gmm_tile_estep_f32); NULL otherwise
    const float* coef32T

    # 'full' with responsibilities computed here, no draws, D <= FULL_TILE_MAX_D: each
    # group's rows as fused tiles (_full_tile_group)
    bint full_tile
    const double* u_pack       # (K, DP, DP) the U_k packed by vbf_gmm_full_pack_u (tied: U)
    # 'tied' likewise (the same tiles, y = x U once a tile): mu_k = m_k U and the constants
    # with ||mu_k||^2 taken back out of c_k (K, D + 1)
    bint tied_tile
    const double* tied_mu
    # 'full' / 'tied' tiles in float32 (float32 X, float32_work, every component within
    # FULL_FAR_FROM_SHIFT_F32 of the shift in its own metric): the means (full) or mu_k (tied)
    # and the packed factors rounded to float32
    bint full_tile32
    const float* means32
    const float* u_pack32
    # 'full' statistics of given responsibilities (resp_in) as float32 tiles (float32 X,
    # float32_work, D <= FULL_TILE_MAX_D, no panel sweep): the centres (means) rounded to
    # float32 in means32, w_n r_nk rounded to float32, each tile's sums added in float64
    bint full_given32


cdef void _chunk(
    const _GaussPass* p, const floating* X, floating* resp_out, floating* log_prob_norm_out,
    Py_ssize_t g, Py_ssize_t start, Py_ssize_t end, double* xbuf, double* zbuf, double* lp,
    double* sbuf, double* gbuf,
) noexcept nogil:
    """Process rows [start, end) and add their statistics to group g's slot.

    X: (N, D) rows; resp_out: (N, K) responsibilities, log_prob_norm_out: (N,) log p(x_n),
    either NULL to skip. xbuf: (b, D) shifted rows; zbuf: (b, width) scratch (see gmm_pass);
    lp: (b, K) log rho, then responsibilities (times the sample weight once the bound terms
    are taken), followed by 2 b entries of per-row scratch; sbuf: (K, 2 D + 1) scratch (diag /
    spherical); gbuf: full_gemm's (b, max(K D, n_feat)) + (K, n_feat) scratch. Thread-private
    scratch stays out of the shared struct.
    """
    # p's fields as locals: the loops below then read them from registers.
    cdef int D = p.D, K = p.K, cov_type = p.cov_type, n_aux = p.n_aux
    cdef const double* weights = p.weights
    cdef const double* shift = p.shift
    cdef const double* means = p.means
    cdef const double* prec_chol = p.prec_chol
    cdef const double* aux = p.aux
    cdef const double* log_const = p.log_const
    cdef const double* resp_in = p.resp_in
    cdef bint has_weights = weights != NULL
    cdef bint has_resp_in = resp_in != NULL
    cdef bint has_resp_out = resp_out != NULL
    cdef bint has_lpn_out = log_prob_norm_out != NULL
    cdef bint compute_stats = p.compute_stats, sample_z = p.sample_z
    cdef uint64_t stream = p.stream
    cdef int* z_out = p.z_out
    cdef bint has_z_out = z_out != NULL
    cdef double* nk = p.nk + g * K
    cdef double* s1 = p.s1 + g * K * D
    cdef double* s2 = (p.s2 + g * p.s2_size) if p.s2 != NULL else <double*>NULL
    cdef double* ll = p.ll + g
    cdef double* ent = p.ent + g
    cdef int b = <int>(end - start)
    cdef int n, j, k, z
    cdef double v, v_k, s, mx, lpn, w, r, u, r_log_r, ll_chunk = 0.0, ent_chunk = 0.0
    cdef double one = 1.0, zero = 0.0, minus_half = -0.5
    cdef const double* m_k
    cdef const double* p2
    cdef const double* x_j
    cdef double* acc
    cdef double* z_n
    cdef double* lp_n
    cdef double* tbuf
    cdef const unsigned char* centred = p.centred
    # diag / spherical: some components take the GEMM form (centre at the shift), some the
    # centred one
    cdef bint any_gemm = (cov_type == DIAG or cov_type == SPHERICAL) and p.n_centred < K
    cdef bint any_centred = (cov_type == DIAG or cov_type == SPHERICAL) and p.n_centred > 0
    cdef int s2_width = D if cov_type == DIAG else 1
    # after lp's b K entries: each row's log p(x_n) and sum_k r_nk log r_nk
    cdef double* lpn_buf = lp + b * K
    cdef double* rlogr_buf = lpn_buf + b
    cdef const double* add_const = NULL  # constants still to add to lp (GEMM forms)

    # diag / spherical with every component in the GEMM form: the features straight from X
    # (no shifted copy), and S1, S2 from one GEMM with them (below)
    cdef bint gemm_only = any_gemm and not any_centred
    # Shifted copy of the chunk, in float64 whatever the input dtype.
    if gemm_only:
        for n in range(b):
            z_n = zbuf + n * n_aux
            for j in range(D):
                z_n[j] = <double>X[(start + n) * D + j] - shift[j]
    else:
        for n in range(b):
            for j in range(D):
                xbuf[n * D + j] = <double>X[(start + n) * D + j] - shift[j]

    # Per-row features for the GEMM form of tied.
    if cov_type == TIED and not has_resp_in:
        for n in range(b):
            z_n = zbuf + n * n_aux
            for j in range(D):
                z_n[j] = xbuf[n * D + j]
        # y = x U, for all rows of the chunk at once: in column-major terms Y^T = U^T X^T,
        # and U (row-major, upper) read column-major is U^T, lower triangular.
        dtrmm(&CH_L, &CH_L, &CH_N, &CH_N, &D, &b, &one, <double*>prec_chol, &D,
              zbuf, &n_aux)
        for n in range(b):
            z_n = zbuf + n * n_aux
            s = 0.0
            for j in range(D):
                s = s + z_n[j] * z_n[j]
            z_n[D] = s
    if any_gemm:
        # z_n = [x_n, x_n^2] (diag) or [x_n, ||x_n||^2] (spherical) in the first b n_aux
        # entries of zbuf, for the GEMM form (quadratic form and S2 about the shift)
        for n in range(b):
            z_n = zbuf + n * n_aux
            if not gemm_only:
                for j in range(D):
                    z_n[j] = xbuf[n * D + j]
            if cov_type == DIAG:
                for j in range(D):
                    z_n[D + j] = z_n[j] * z_n[j]
            else:
                s = 0.0
                for j in range(D):
                    s = s + z_n[j] * z_n[j]
                z_n[D] = s
    tbuf = zbuf + b * n_aux
    if any_centred and not has_resp_in:
        # The chunk transposed to (D, b) after the features: the per-component loops of the
        # centred form then run over rows, contiguous and independent (vectorised, each
        # row's sum in feature order).
        for n in range(b):
            for j in range(D):
                tbuf[j * b + n] = xbuf[n * D + j]

    if has_resp_in:
        for n in range(b):
            for k in range(K):
                lp[n * K + k] = resp_in[(start + n) * K + k]
    else:
        if cov_type == FULL and p.full_gemm:
            # y = x [U_0 ... U_{K-1}]: row-major (b, K D) = (b, D) (D, K D); column-major
            # y^T = u_cat^T x^T
            k = K * D
            dgemm(&CH_N, &CH_N, &k, &b, &D, &one, <double*>p.u_cat, &k, xbuf, &D, &zero,
                  gbuf, &k)
            vbf_gmm_full_quad(gbuf, b, K, D, p.mu, log_const, lp)
            for k in range(K):
                if p.far_full[k]:
                    _full_quad_cholesky(D, K, b, k, xbuf, means + k * D,
                                        prec_chol + k * D * D, log_const[k], zbuf, lp)
        elif cov_type == FULL:
            for k in range(K):
                m_k = means + k * D
                for n in range(b):
                    for j in range(D):
                        zbuf[n * D + j] = xbuf[n * D + j] - m_k[j]
                dtrmm(&CH_L, &CH_L, &CH_N, &CH_N, &D, &b, &one,
                      <double*>(prec_chol + k * D * D), &D, zbuf, &D)
                for n in range(b):
                    s = 0.0
                    for j in range(D):
                        s = s + zbuf[n * D + j] * zbuf[n * D + j]
                    lp[n * K + k] = log_const[k] - 0.5 * s
        elif cov_type == DIAG or cov_type == SPHERICAL:
            if any_gemm:
                # lp = -1/2 z a^T + c for all components (as for tied, below); the centred
                # ones are overwritten next
                dgemm(&CH_T, &CH_N, &K, &b, &n_aux, &minus_half, <double*>aux, &n_aux,
                      zbuf, &n_aux, &zero, lp, &K)
                if any_centred:
                    for n in range(b):
                        for k in range(K):
                            lp[n * K + k] = lp[n * K + k] + log_const[k]
                else:
                    add_const = log_const  # (added by vbf_gmm_resp_rows)
            # Centred: sum_j (x_nj - m_kj)^2 p_kj^2, accumulated per row in the b entries
            # after the transposed chunk
            acc = tbuf + D * b
            for k in range(K):
                if not centred[k]:
                    continue
                m_k = means + k * D
                p2 = aux + k * n_aux + D  # diag: p_k^2 (D,); spherical: p_k^2 (1,)
                for n in range(b):
                    acc[n] = 0.0
                for j in range(D):
                    v_k = m_k[j]
                    w = p2[j] if cov_type == DIAG else 1.0
                    x_j = tbuf + j * b
                    for n in range(b):
                        v = x_j[n] - v_k
                        acc[n] = acc[n] + w * (v * v)
                w = 0.5 if cov_type == DIAG else 0.5 * p2[0]
                for n in range(b):
                    lp[n * K + k] = log_const[k] - w * acc[n]
        else:
            # lp (b x K, row-major) = -1/2 z (b x n_aux) a^T (n_aux x K); column-major this is
            # lp^T = -1/2 a z^T, with a read as (n_aux x K) and z^T as (n_aux x b).
            dgemm(&CH_T, &CH_N, &K, &b, &n_aux, &minus_half, <double*>aux, &n_aux,
                  zbuf, &n_aux, &zero, lp, &K)
            add_const = log_const  # (added by vbf_gmm_resp_rows)

        # Log-sum-exp over components, four at a time; lp becomes the responsibilities,
        # lpn_buf / rlogr_buf receive each row's log p(x_n) and sum_k r_nk log r_nk.
        vbf_gmm_resp_rows(lp, b, K, add_const, lpn_buf, rlogr_buf)
        for n in range(b):
            lp_n = lp + n * K
            lpn = lpn_buf[n]
            r_log_r = rlogr_buf[n]
            # (every density zero: uniform responsibilities, no entropy term)
            if lpn > -INFINITY and not sample_z:
                w = weights[start + n] if has_weights else 1.0
                ent_chunk = ent_chunk + w * r_log_r
            if has_lpn_out:
                log_prob_norm_out[start + n] = <floating>lpn
            w = weights[start + n] if has_weights else 1.0
            if not sample_z:
                ll_chunk = ll_chunk + w * lpn
                continue
            if has_resp_out:  # the responsibilities the draw used, before the one-hot
                for k in range(K):
                    resp_out[(start + n) * K + k] = <floating>lp_n[k]
            # Inverse-CDF draw: the first k whose cumulative sum exceeds u times the total
            # (the total rather than 1, so rounding in the normalisation cannot overrun); a
            # component with r = 0 is never chosen, since the sum does not move past it.
            s = 0.0
            for k in range(K):
                s = s + lp_n[k]
            u = vbf_uniform_at(stream, p.row_offset + <uint64_t>(start + n)) * s
            z = K - 1
            v = 0.0
            for k in range(K):
                v = v + lp_n[k]
                if u < v:
                    z = k
                    break
            while lp_n[z] <= 0.0 and z > 0:  # (only if u * s rounded up to s)
                z = z - 1
            # log p(x_n, z_n) = log p(x_n) + log r_{n z_n}
            ll_chunk = ll_chunk + w * (lpn + log(lp_n[z]))
            for k in range(K):
                lp_n[k] = 0.0
            lp_n[z] = 1.0
            if has_z_out:
                z_out[start + n] = z
        if has_resp_out and not sample_z:
            for n in range(b):
                for k in range(K):
                    resp_out[(start + n) * K + k] = <floating>lp[n * K + k]
        ll[0] = ll[0] + ll_chunk
        ent[0] = ent[0] + ent_chunk

    if not compute_stats:
        return

    if has_weights:
        for n in range(b):
            w = weights[start + n]
            for k in range(K):
                lp[n * K + k] = lp[n * K + k] * w
    if cov_type == FULL and p.full_gemm and not sample_z and p.resp_w == NULL:
        _full_stats_gemm(p, b, xbuf, lp, gbuf, zbuf, nk, s1, s2)
        return
    for n in range(b):
        for k in range(K):
            nk[k] = nk[k] + lp[n * K + k]
    if gemm_only:
        # the chunk's [S1 | S2] (K x n_aux, row-major) = r^T z; column-major its transpose
        # z^T (n_aux x b) R (b x K)
        dgemm(&CH_N, &CH_T, &n_aux, &K, &b, &one, zbuf, &n_aux, lp, &K, &zero, sbuf, &n_aux)
        for k in range(K):
            for j in range(D):
                s1[k * D + j] = s1[k * D + j] + sbuf[k * n_aux + j]
            for j in range(s2_width):
                s2[k * s2_width + j] = s2[k * s2_width + j] + sbuf[k * n_aux + D + j]
        return
    # S1 (K x D, row-major) += r^T x; column-major: S1^T (D x K) += X^T (D x b) R (b x K),
    # where R^T is what column-major reads from lp.
    dgemm(&CH_N, &CH_T, &D, &K, &b, &one, xbuf, &D, lp, &K, &one, s1, &D)

    if p.resp_w != NULL:
        # S2 is accumulated afterwards by the panel sweep (_s2_panels), from these
        for n in range(b):
            for k in range(K):
                p.resp_w[(start + n) * K + k] = lp[n * K + k]
    elif cov_type == FULL and sample_z:
        # Hard counts: each row belongs to one component, so gather the rows of component k
        # and update S2_k with those alone (K times less work than the soft form below).
        for k in range(K):
            _gathered_syrk(D, K, b, k, xbuf, means + k * D, lp, zbuf, s2 + k * D * D)
    elif cov_type == FULL:
        for k in range(K):
            m_k = means + k * D
            for n in range(b):
                v = sqrt(lp[n * K + k])
                for j in range(D):
                    zbuf[n * D + j] = v * (xbuf[n * D + j] - m_k[j])
            # S2_k += Z^T Z; column-major Z reads as (D x b), so this is Z' Z'^T, 'U' there
            # being the lower triangle in row-major terms.
            dsyrk(&CH_U, &CH_N, &D, &b, &one, zbuf, &D, &one, s2 + k * D * D, &D)
    elif cov_type == DIAG or cov_type == SPHERICAL:
        if any_gemm:
            # S2 (K x s2_width) += r^T (x^2), x^2 being columns D.. of z, for every component
            # (the GEMM's shape as in the GEMM-only form, so its sums are the same); the
            # centred components' rows are saved before and restored after.
            for k in range(K):
                if centred[k]:
                    for j in range(s2_width):
                        sbuf[k * s2_width + j] = s2[k * s2_width + j]
            dgemm(&CH_N, &CH_T, &s2_width, &K, &b, &one, zbuf + D, &n_aux, lp, &K, &one, s2,
                  &s2_width)
            for k in range(K):
                if centred[k]:
                    for j in range(s2_width):
                        s2[k * s2_width + j] = sbuf[k * s2_width + j]
        if any_centred:
            _centred_s2(cov_type, D, K, b, centred, means, xbuf, lp, s2)


cdef inline void _tile_rows_out(
    tile_t* lpT, int ld, int b, int K, const double* weights, Py_ssize_t start,
    double* lpn_buf, double* rlogr_buf, floating* resp_out,
    floating* log_prob_norm_out, double* sums, bint lse_done,
) noexcept nogil:
    """A tile's rows from its log rho: lpT (K, ld), IN log rho, OUT r, by vbf_gmm_lse_cols
    (float64 tile) or vbf_gmm_lse_cols_f32 (float32 tile), which also fill the scratch
    lpn_buf and rlogr_buf (b,) with log p(x_n) and sum_k r log r in float64 (``lse_done``:
    the E-step in registers did that already, lpT holding r). The bound terms
    added to sums (IN/OUT: [sum w log p(x_n), sum w sum_k r log r], row order), log p(x_n)
    and r written out when asked (OUT, rows [start, start + b); NULL: not wanted), then r
    weighted in place (in the tile's precision) when the statistics want w r."""
    cdef bint has_weights = weights != NULL
    cdef int n, k
    cdef double w, lpn
    # per-row outputs want r unweighted: the weights are applied after them
    cdef const double* w_lse = weights + start if has_weights and resp_out == NULL else NULL
    if lse_done:
        pass
    elif tile_t is float:
        vbf_gmm_lse_cols_f32(lpT, ld, b, K, w_lse, lpn_buf, rlogr_buf)
    else:
        vbf_gmm_lse_cols(lpT, ld, b, K, w_lse, lpn_buf, rlogr_buf)
    for n in range(b):
        lpn = lpn_buf[n]
        w = weights[start + n] if has_weights else 1.0
        if lpn > -INFINITY:  # (every density zero: no entropy term)
            sums[1] = sums[1] + w * rlogr_buf[n]
        sums[0] = sums[0] + w * lpn
        if log_prob_norm_out != NULL:
            log_prob_norm_out[start + n] = <floating>lpn
    if resp_out != NULL:
        for n in range(b):
            for k in range(K):
                resp_out[(start + n) * K + k] = <floating>lpT[<Py_ssize_t>k * ld + n]
        if has_weights:
            for k in range(K):
                for n in range(b):
                    lpT[<Py_ssize_t>k * ld + n] = \
                        lpT[<Py_ssize_t>k * ld + n] * <tile_t>weights[start + n]


cdef inline void _tile_given_resp(tile_t* lpT, int ld, int b, int K, const double* resp_in,
                                  const double* weights, Py_ssize_t start) noexcept nogil:
    """Given responsibilities (the statistics only): lpT (K, ld) OUT w_n r_nk of rows
    [start, start + b) of resp_in (N, K), component-major, in the tile's precision."""
    cdef int n, k
    for k in range(K):
        for n in range(b):
            lpT[<Py_ssize_t>k * ld + n] = <tile_t>(resp_in[(start + n) * K + k] * (
                weights[start + n] if weights != NULL else 1.0))


cdef inline int _tile32_ld(Py_ssize_t rows) noexcept nogil:
    """The float32 tile's leading dimension for a tile of ``rows`` rows: rounded up to the
    sixteen lanes, plus sixteen floats where that is a multiple of 256 (feature rows 1 KiB
    apart would fall in four of L1's 64 sets: the E-step's blocks re-read their rows' column
    of the tile, W lines, from L2; 1,088 bytes apart they spread over every set)."""
    cdef int ld = <int>((rows + 15) // 16 * 16)
    return ld + 16 if ld % 256 == 0 else ld


cdef inline void _tile_acc_to_slots(const _GaussPass* p, Py_ssize_t g, const double* acc,
                                    int W, int s2_width) noexcept nogil:
    """A diag / spherical tile group's accumulator acc (K, W) = [S1 | S2 | N] added to group
    g's slots (OUT: p.nk, p.s1, p.s2 at group g), once after its last chunk."""
    cdef int D = p.D, K = p.K, j, k
    cdef double* nk = p.nk + g * K
    cdef double* s1 = p.s1 + g * K * D
    cdef double* s2 = p.s2 + g * p.s2_size
    for k in range(K):
        for j in range(D):
            s1[k * D + j] = s1[k * D + j] + acc[k * W + j]
        for j in range(s2_width):
            s2[k * s2_width + j] = s2[k * s2_width + j] + acc[k * W + D + j]
        nk[k] = nk[k] + acc[k * W + W - 1]


cdef void _tile_group(
    const _GaussPass* p, const floating* X, floating* resp_out, floating* log_prob_norm_out,
    Py_ssize_t g, Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t chunk_size, Py_ssize_t N,
    tile_t* feat, tile_t* lpT, double* rowbuf, double* acc, tile_t* acc_chunk,
) noexcept nogil:
    """Group g's chunks [c0, c1) of diag / spherical, every component in the GEMM form, as
    fused tiles: nothing per row is kept beyond the tile (unless asked for).

    Per tile of b rows (a chunk; the float64 diag tile: DIAG_TILE_ROWS of a chunk), with
    f_n = [z_n, 1] (W features: z_n = [x_n, x_n^2] (diag) or
    [x_n, ||x_n||^2] (spherical), x_n shifted, read from X in its own dtype):
        log rho (K, b) = coef f^T                 one GEMM (coef = [-1/2 a_k, c_k])
        w_n r_nk, log p(x_n), sum_k r_nk log r_nk  vbf_gmm_lse_cols (component-major, one
                                                   row a vector lane)
        [S1 | S2 | N] (K, W) += (w r) f             one GEMM, into the group's accumulator
                                                   (or from the nonzero w r alone, when few)
    and the accumulator is added to the group's slots once, after its last chunk. With
    given responsibilities (p.resp_in) w r replaces the densities' log-sum-
    exp: only the statistics, the bound terms and per-row outputs untouched (the float tile:
    w r rounded to float32).

    The tile's precision tile_t: double (the float64 tile), or float (float32 X with
    p.tile32: features, log rho by float32 fused multiply-adds and its log-sum-exp sixteen
    rows a vector (vbf_gmm_tile_estep_f32 against coef32T, K <= ESTEP_BLOCKS_MAX_K, AVX-512;
    else one SGEMM against coef32 and vbf_gmm_lse_cols_f32), and each chunk's [S1 | S2 | N]
    by one SGEMM into acc_chunk, then added in float64 to the accumulator; the bound terms
    are float64 sums of per-row float32 values). feat:
    (W, ld) features, feature-major (vbf_gmm_tile_features_*), ld = the tile's rows rounded up
    to the lanes (8 doubles, 16 floats); lpT: (K, ld) log rho; rowbuf: (2, ld) doubles, lpn and
    rlogr; acc: (K, W) doubles; acc_chunk: (K, W) (float tile only). The chunks, the GEMMs'
    shapes and the group's order of accumulation depend on the data size only: bitwise the
    same for any thread count.
    """
    cdef int D = p.D, K = p.K, W = p.n_tile
    cdef bint diag = p.cov_type == DIAG
    cdef const double* shift = p.shift
    cdef const double* weights = p.weights
    cdef bint has_weights = weights != NULL
    cdef bint compute_stats = p.compute_stats
    cdef int lanes = 16 if tile_t is float else 8
    cdef int rows = <int>chunk_size
    if tile_t is double and diag and chunk_size % DIAG_TILE_ROWS == 0:
        rows = DIAG_TILE_ROWS
    cdef int ld = <int>((rows + lanes - 1) // lanes * lanes)
    if tile_t is float:
        ld = _tile32_ld(rows)
    if rows == DIAG_TILE_ROWS and chunk_size > rows:
        # feature rows DIAG_TILE_ROWS + 8 doubles apart, not 512 bytes: every eighth would
        # share an L1 set (the buffers hold (chunk_size + 7) rows a feature)
        ld = DIAG_TILE_ROWS + 8
    # a float tile's nonzero w r count twice against SGEMM's rate (see _sparse_stats)
    cdef int nonzero_cost = 2 if tile_t is float else 1
    cdef double* lpn_buf = rowbuf
    cdef double* rlogr_buf = rowbuf + ld
    cdef const tile_t* sq = NULL if diag else feat + <Py_ssize_t>D * ld  # ||x_n||^2 row
    # given responsibilities (N, K) (float64 tile only): their statistics, no densities
    cdef const double* resp_in = p.resp_in
    cdef const double* w_rows
    cdef Py_ssize_t start, end, n_nonzero
    cdef int b, n, k, i, s2_width = D if diag else 1
    cdef tile_t one = 1.0, zero = 0.0
    cdef double sums[2]  # [sum w log p(x_n), sum w sum_k r log r], row order
    cdef bint lse_done = False
    cdef bint stats_done = False  # the E-step in registers added the tile's statistics
    # the nonzero masks of a chunk's w r (NULL, out of memory: the dense GEMM always)
    cdef unsigned char* masks = NULL
    sums[0] = 0.0
    sums[1] = 0.0
    if compute_stats:
        memset(acc, 0, <Py_ssize_t>K * W * sizeof(double))
        if _sparse_stats(2 * nonzero_cost * <Py_ssize_t>rows, rows, K, D, W):
            masks = <unsigned char*>malloc(<Py_ssize_t>K * (ld // 8))
    # the group's rows in tiles of `rows` (chunk_size a multiple of it: no tile straddles
    # a chunk)
    cdef Py_ssize_t stop = min(c1 * chunk_size, N)
    start = c0 * chunk_size
    while start < stop:
        end = min(start + rows, stop)
        b = <int>(end - start)
        lse_done = False
        stats_done = False
        if (tile_t is double and floating is double and resp_in != NULL and diag
                and compute_stats):
            # given responsibilities, dense (by the sparse form's rule on their nonzero
            # count): their statistics straight from the rows of X and r, no features
            # (vbf_gmm_given_stats; one pass at D = K = 16 of the random start: see
            # benchmarks/RESULTS.md, bgmdiag)
            if masks == NULL or not _sparse_stats(
                    vbf_gmm_count_nonzero(resp_in + start * K, <Py_ssize_t>b * K), b, K, D,
                    W):
                if vbf_gmm_given_stats(<const double*>X + start * D, b, D, shift,
                                       resp_in + start * K, K,
                                       weights + start if has_weights else NULL, acc, W):
                    start = end
                    continue
        # the tile's features (feature-major, its own type), then log rho, component-major
        # (K, ld) row-major = column-major (ld, K) = f coef^T, f column-major (ld, W) and
        # coef^T column-major (W, K)
        if tile_t is float:
            if floating is float:  # (a float tile is for float32 X only)
                vbf_gmm_tile_features32(X + start * D, b, D, shift, diag, feat, ld)
        elif floating is float:
            vbf_gmm_tile_features_f32(X + start * D, b, D, shift, diag, feat, ld)
        else:
            vbf_gmm_tile_features_f64(X + start * D, b, D, shift, diag, feat, ld)
        # the register E-steps' weights: w r, unweighted for per-row outputs (which weight
        # it after them)
        w_rows = weights + start if has_weights and resp_out == NULL else NULL
        if resp_in != NULL:
            _tile_given_resp(lpT, ld, b, K, resp_in, weights, start)
        elif (tile_t is double and p.coef16 != NULL and floating is double and compute_stats
              and diag and K <= ESTEP_MAX_K and D <= ESTEP_STATS_MAX_D):
            # log rho, its log-sum-exp and the statistics from the nonzero w r in
            # registers, straight into the accumulator (vbf_gmm_tile_estep16_stats)
            lse_done = vbf_gmm_tile_estep16_stats(
                feat, ld, b, W, K, p.coef16, w_rows, lpT if resp_out != NULL else NULL,
                lpn_buf, rlogr_buf, <const double*><const void*>(X + start * D), D, shift,
                weights + start if has_weights else NULL, acc)
            stats_done = lse_done
        elif tile_t is double and p.coef16 != NULL:
            # log rho and its log-sum-exp in registers
            lse_done = vbf_gmm_tile_estep16(feat, ld, b, W, K, p.coef16, w_rows, lpT,
                                            lpn_buf, rlogr_buf)
        elif tile_t is float and p.coef32T != NULL:
            # the same in float32
            lse_done = vbf_gmm_tile_estep_f32(feat, ld, b, W, K, p.coef32T, w_rows, lpT,
                                              lpn_buf, rlogr_buf)
        if resp_in == NULL and not lse_done:
            if tile_t is float:
                sgemm(&CH_N, &CH_N, &b, &K, &W, &one, feat, &ld, <float*>p.coef32, &W,
                      &zero, lpT, &ld)
            else:
                dgemm(&CH_N, &CH_N, &b, &K, &W, &one, feat, &ld, <double*>p.coef, &W,
                      &zero, lpT, &ld)
        if resp_in == NULL:
            if not lse_done:
                for k in range(K):  # the lanes past the last row: finite, unused
                    for n in range(b, ld):
                        lpT[<Py_ssize_t>k * ld + n] = 0.0
            _tile_rows_out(lpT, ld, b, K, weights, start, lpn_buf, rlogr_buf, resp_out,
                           log_prob_norm_out, sums, lse_done)
        if not compute_stats or stats_done:
            start = end
            continue
        n_nonzero = -1
        if masks != NULL:
            if tile_t is float:
                n_nonzero = vbf_gmm_nonzero_masks32(lpT, ld, b, K, masks)
            else:
                n_nonzero = vbf_gmm_nonzero_masks(lpT, ld, b, K, masks)
        if n_nonzero >= 0 and _sparse_stats(nonzero_cost * n_nonzero, b, K, D, W):
            # (the few nonzero w r straight into the float64 accumulator)
            if tile_t is float:
                if floating is float:
                    vbf_gmm_tile_stats_sparse32(X + start * D, b, D, shift, sq, lpT, ld, K,
                                                masks, acc, W)
            elif floating is float:
                vbf_gmm_tile_stats_sparse_f32(X + start * D, b, D, shift, sq, lpT, ld, K,
                                              masks, acc, W)
            else:
                vbf_gmm_tile_stats_sparse_f64(X + start * D, b, D, shift, sq, lpT, ld, K,
                                              masks, acc, W)
        elif tile_t is float:
            # the chunk's (w r) (K, b) f (b, W) in float32, then into the float64 accumulator
            sgemm(&CH_T, &CH_N, &W, &K, &b, &one, feat, &ld, lpT, &ld, &zero, acc_chunk, &W)
            for i in range(K * W):
                acc[i] = acc[i] + <double>acc_chunk[i]
        else:
            # acc (K, W) row-major += (w r) (K, b) f (b, W); column-major acc^T (W, K) +=
            # f^T (W, b) (w r)^T (b, K), f column-major (ld, W)
            dgemm(&CH_T, &CH_N, &W, &K, &b, &one, feat, &ld, lpT, &ld, &one, acc, &W)
        start = end
    free(masks)
    p.ll[g] = p.ll[g] + sums[0]
    p.ent[g] = p.ent[g] + sums[1]
    if not compute_stats:
        return
    _tile_acc_to_slots(p, g, acc, W, s2_width)


cdef void _full_tile_group(
    const _GaussPass* p, const floating* X, floating* resp_out, floating* log_prob_norm_out,
    Py_ssize_t g, Py_ssize_t row0, Py_ssize_t row1, tile_t* xT, tile_t* xc, tile_t* rx,
    tile_t* lpT, double* lpn_buf, double* rlogr_buf,
) noexcept nogil:
    """Group g's rows [row0, row1) of 'full' / 'tied' (responsibilities computed here, no
    draws) as fused tiles of FULL_TILE_ROWS rows, every component in the centred form, no
    BLAS; the tile in float64 (tile_t double: p.full_tile) or in float32 (tile_t float:
    float32 X, p.full_tile32).

    Per tile of b rows, feature-major (xT (D, ld), x_n - shift formed in float64 and rounded
    once to the tile's precision, rows past b zero):
        log rho (K, ld)                     vbf_gmm_full_quad_tile (the tile centred at each
                                            m_k, y = (x_n - m_k) U_k over U_k's triangle;
                                            'tied': y = x U once, then ||y_n - mu_k||^2)
        w_n r_nk, log p(x_n), sum r log r   vbf_gmm_lse_cols (_f32) (component-major, as the
                                            diag tiles)
        N_k, S1_k, S2_k (centred at m_k)    vbf_gmm_full_stats_tile, into group g's slots
    The float32 tile's sums over a tile's rows run in float32 lanes (sixteen rows a vector
    with AVX-512), their lanes added in float64 into group g's float64 slots; the bound terms
    are float64 sums of per-row values. xT, xc, rx: (DP, ld) scratch (DP = D rounded up to
    4); lpT: (K, ld); lpn_buf, rlogr_buf: ld doubles each; ld = FULL_TILE_LD (float64),
    FULL_TILE_LD32 (float32). The tiles and the order of accumulation depend on the data size
    only: bitwise the same for any thread count.
    """
    cdef int D = p.D, K = p.K, DP = (p.D + 3) // 4 * 4
    # rows a multiple of the kernels' row blocks: 32 (float64), 64 (float32)
    cdef int ld = FULL_TILE_LD, row_block = 32
    if tile_t is float:
        ld = FULL_TILE_LD32
        row_block = 64
    cdef const double* shift = p.shift
    cdef const double* weights = p.weights
    cdef bint has_weights = weights != NULL
    cdef bint compute_stats = p.compute_stats
    cdef Py_ssize_t start, end
    cdef int b, nr, n, k
    cdef double sums[2]
    sums[0] = 0.0
    sums[1] = 0.0
    start = row0
    while start < row1:
        end = min(start + FULL_TILE_ROWS, row1)
        b = <int>(end - start)
        nr = (b + row_block - 1) // row_block * row_block
        _full_tile_fill(X + start * D, b, nr, D, ld, shift, xT)
        if tile_t is double:
            if p.tied_tile:
                vbf_gmm_tied_quad_tile(xT, ld, nr, D, K, p.tied_mu, p.u_pack,
                                       p.tied_mu + K * D, xc, lpT)
            else:
                vbf_gmm_full_quad_tile(xT, ld, nr, D, K, p.means, p.u_pack, p.log_const, xc,
                                       lpT)
        else:
            if p.tied_tile:
                vbf_gmm_tied_quad_tile_32(xT, ld, nr, D, K, p.means32, p.u_pack32,
                                          p.tied_mu + K * D, xc, lpT)
            else:
                vbf_gmm_full_quad_tile_32(xT, ld, nr, D, K, p.means32, p.u_pack32,
                                          p.log_const, xc, lpT)
        _tile_rows_out(lpT, ld, b, K, weights, start, lpn_buf, rlogr_buf, resp_out,
                       log_prob_norm_out, sums, False)
        if compute_stats:
            for k in range(K):  # rows past b: no weight
                for n in range(b, nr):
                    lpT[<Py_ssize_t>k * ld + n] = 0.0
            if tile_t is double:
                if p.tied_tile:
                    vbf_gmm_tied_stats_tile(xT, ld, nr, D, K, lpT, p.nk + g * K,
                                            p.s1 + g * K * D)
                else:
                    vbf_gmm_full_stats_tile(xT, ld, nr, D, K, p.means, lpT, xc, rx,
                                            p.nk + g * K, p.s1 + g * K * D,
                                            p.s2 + g * p.s2_size)
            else:
                if p.tied_tile:
                    vbf_gmm_tied_stats_tile_32(xT, ld, nr, D, K, lpT, p.nk + g * K,
                                               p.s1 + g * K * D)
                else:
                    vbf_gmm_full_stats_tile_32(xT, ld, nr, D, K, p.means32, lpT, xc, rx,
                                               p.nk + g * K, p.s1 + g * K * D,
                                               p.s2 + g * p.s2_size)
        start = end
    p.ll[g] = p.ll[g] + sums[0]
    p.ent[g] = p.ent[g] + sums[1]


cdef inline void _full_tile_fill(
    const floating* x, int b, int nr, int D, int ld, const double* shift, tile_t* xT,
) noexcept nogil:
    """The tile of rows x[0:b] (row-major, D features) feature-major (OUT: xT (DP, ld)):
    x_n - shift formed in float64 and rounded once to the tile's precision; rows b..nr and
    the padded features D..DP (which the S2 blocks read) zero (vbf_gmm_full_tile_fill*)."""
    if tile_t is float:
        if floating is float:
            vbf_gmm_full_tile_fill32(x, b, nr, D, ld, shift, xT)
    else:
        if floating is float:
            vbf_gmm_full_tile_fill_f32(x, b, nr, D, ld, shift, xT)
        else:
            vbf_gmm_full_tile_fill_f64(x, b, nr, D, ld, shift, xT)


cdef void _full_given_group32(
    const _GaussPass* p, const floating* X, Py_ssize_t g, Py_ssize_t row0, Py_ssize_t row1,
    float* xT, float* xc, float* rx, float* rT,
) noexcept nogil:
    """Group g's rows [row0, row1) of 'full' with given responsibilities (p.resp_in) as
    float32 tiles of FULL_TILE_ROWS rows (p.full_given32): the tile as _full_tile_group's,
    rT (K, ld) = w_n r_nk rounded to float32 (zero past the rows), and N_k, S1_k, S2_k
    centred at c_k = p.means32[k] by vbf_gmm_full_stats_tile_32 into group g's slots (each
    tile's float32 lane sums added in float64). xT, xc, rx: (DP, ld) scratch, ld =
    FULL_TILE_LD32. The tiles depend on the data size only: the same bits for any thread
    count. (float64 X keeps the GEMM form of _chunk.)"""
    cdef int D = p.D, K = p.K, ld = FULL_TILE_LD32, row_block = 64
    cdef const double* resp_in = p.resp_in
    cdef const double* weights = p.weights
    cdef Py_ssize_t start, end
    cdef int b, nr, n, k
    cdef double w
    start = row0
    while start < row1:
        end = min(start + FULL_TILE_ROWS, row1)
        b = <int>(end - start)
        nr = (b + row_block - 1) // row_block * row_block
        _full_tile_fill(X + start * D, b, nr, D, ld, p.shift, xT)
        for n in range(b):
            w = weights[start + n] if weights != NULL else 1.0
            for k in range(K):
                rT[<Py_ssize_t>k * ld + n] = <float>(w * resp_in[(start + n) * K + k])
        for k in range(K):
            for n in range(b, nr):
                rT[<Py_ssize_t>k * ld + n] = 0.0
        vbf_gmm_full_stats_tile_32(xT, ld, nr, D, K, p.means32, rT, xc, rx,
                                   p.nk + g * K, p.s1 + g * K * D, p.s2 + g * p.s2_size)
        start = end


cdef inline void _gathered_syrk(
    int D, int K, int b, int k, const double* xbuf, const double* c_k, const double* lp,
    double* zbuf, double* s2k,
) noexcept nogil:
    """s2k (D, D, upper) += sum over the rows with r = lp[n, k] > 0 of r (x_n - c_k)(x_n - c_k)^T:
    those rows alone, scaled by sqrt(r), gathered into zbuf ((b, D) scratch), one SYRK."""
    cdef int n, j, z = 0
    cdef double v, one = 1.0
    for n in range(b):
        v = lp[n * K + k]
        if v > 0.0:
            v = sqrt(v)
            for j in range(D):
                zbuf[z * D + j] = v * (xbuf[n * D + j] - c_k[j])
            z = z + 1
    if z > 0:
        dsyrk(&CH_U, &CH_N, &D, &z, &one, zbuf, &D, &one, s2k, &D)


cdef inline void _full_quad_cholesky(
    int D, int K, int b, int k, const double* xbuf, const double* m_k, const double* u_k,
    double c_k, double* zbuf, double* lp,
) noexcept nogil:
    """lp[n, k] = c_k - 1/2 ||(x_n - m_k) U_k||^2 for the b rows (zbuf: (b, D) scratch)."""
    cdef int n, j
    cdef double s, one = 1.0
    for n in range(b):
        for j in range(D):
            zbuf[n * D + j] = xbuf[n * D + j] - m_k[j]
    dtrmm(&CH_L, &CH_L, &CH_N, &CH_N, &D, &b, &one, <double*>u_k, &D, zbuf, &D)
    for n in range(b):
        s = 0.0
        for j in range(D):
            s = s + zbuf[n * D + j] * zbuf[n * D + j]
        lp[n * K + k] = c_k - 0.5 * s


cdef void _full_stats_gemm(
    const _GaussPass* p, int b, const double* xbuf, const double* lp, double* gbuf,
    double* zbuf, double* nk, double* s1, double* s2,
) noexcept nogil:
    """N_k, S1_k and S2_k (centred at c_k = means[k]) of one chunk of 'full' (lp: the
    weighted responsibilities) from one GEMM: the chunk's sums of r_nk f_n with
    f_n = [1, x_n, lower(x_n x_n^T)] give N_k, S1_k and the second moment P_k about the shift,
    and S2_k += P_k - c_k S1_k^T - S1_k c_k^T + N_k c_k c_k^T, so the cancellation is that of
    one chunk about the shift: about log10(||c_k U_k||^2) digits, at most ~6 for the
    components not flagged far (their S2 takes the per-component SYRK of the centred rows)."""
    cdef int D = p.D, K = p.K, F = p.n_feat
    cdef int n, i, j, k, t, z
    cdef double one = 1.0, zero = 0.0, v, c_i
    cdef const double* x_n
    cdef const double* c_k
    cdef const double* q
    cdef double* f_n
    cdef double* s2k
    cdef double* pbuf = gbuf + <Py_ssize_t>b * F
    for n in range(b):
        f_n = gbuf + <Py_ssize_t>n * F
        x_n = xbuf + n * D
        f_n[0] = 1.0
        for j in range(D):
            f_n[1 + j] = x_n[j]
        t = 1 + D
        for i in range(D):
            for j in range(i + 1):
                f_n[t + j] = x_n[i] * x_n[j]
            t = t + i + 1
    # pbuf (K, F) row-major = lp^T (K, b) f (b, F); column-major pbuf^T = f^T lp
    dgemm(&CH_N, &CH_T, &F, &K, &b, &one, gbuf, &F, <double*>lp, &K, &zero, pbuf, &F)
    for k in range(K):
        q = pbuf + k * F
        nk[k] = nk[k] + q[0]
        for j in range(D):
            s1[k * D + j] = s1[k * D + j] + q[1 + j]
        c_k = p.means + k * D
        s2k = s2 + k * D * D
        if p.far_full[k]:
            _gathered_syrk(D, K, b, k, xbuf, c_k, lp, zbuf, s2k)
            continue
        t = 1 + D
        for i in range(D):
            c_i = c_k[i]
            for j in range(i + 1):
                s2k[i * D + j] = s2k[i * D + j] + (
                    ((q[t + j] - c_i * q[1 + j]) - q[1 + i] * c_k[j]) + q[0] * c_i * c_k[j])
            t = t + i + 1


cdef inline void _centred_s2(
    int cov_type, int D, int K, int b, const unsigned char* centred, const double* means,
    const double* xbuf, const double* lp, double* s2,
) noexcept nogil:
    """S2 of the centred components: sum_n r_nk (x_n - m_k)^2 (diag), ||.||^2 (spherical)."""
    cdef int n, j, k
    cdef double v, r, s
    cdef const double* m_k
    cdef const double* x_j
    cdef double* acc
    if cov_type == DIAG:
        # S2_kj += r_nk (x_nj - m_kj)^2, row by row (the loop over j vectorises; each sum in
        # row order); rows with r = 0 (most of them with hard counts) are skipped
        for k in range(K):
            if not centred[k]:
                continue
            m_k = means + k * D
            acc = s2 + k * D
            for n in range(b):
                r = lp[n * K + k]
                if r != 0.0:
                    x_j = xbuf + n * D
                    for j in range(D):
                        v = x_j[j] - m_k[j]
                        acc[j] = acc[j] + r * (v * v)
    else:
        for k in range(K):
            if not centred[k]:
                continue
            m_k = means + k * D
            for n in range(b):
                r = lp[n * K + k]
                if r != 0.0:
                    x_j = xbuf + n * D
                    s = 0.0
                    for j in range(D):
                        v = x_j[j] - m_k[j]
                        s = s + v * v
                    s2[k] = s2[k] + r * s


# The panel sweep of 'full' S2 (s2_panels): each component's S2 is cut into panels of
# PANEL_WIDTH rows (row-major lower triangle); a task is one (component, panel) pair and
# gathers that component's rows with r > 0 in batches of PANEL_BATCH rows.
cdef enum:
    PANEL_WIDTH = 256
    PANEL_BATCH = 512


def full_gemm_form(int K, int D):
    """Whether 'full' at K components and D features takes the GEMM form (without the panel
    sweep), and the squared distance from the shift beyond which a component does not."""
    return D <= FULL_GEMM_MAX_D and K * D <= FULL_GEMM_MAX_KD, FULL_FAR_FROM_SHIFT


def full_tile_form(int K, int D):
    """Whether a 'full' pass at K components and D features computing its own
    responsibilities (no draws, no panel sweep, no ``centred_full``) takes the fused tiles:
    every component centred. (A second pass with ``centred_full``, for a component whose S2
    ``full_gemm_cancelled`` flags, takes the per-component Cholesky / SYRK form.)"""
    return D <= FULL_TILE_MAX_D and K > 0


def full_given32_form(int K, int D):
    """Whether a 'full' pass of given responsibilities over float32 X with ``float32_work``
    (no panel sweep, no ``centred_full``) takes the float32 tiles (_full_given_group32)."""
    return D <= FULL_TILE_MAX_D and K > 0


def panel_layout(int D):
    """(panel width, rows per batch, number of panels) of the panel sweep at D features."""
    return PANEL_WIDTH, PANEL_BATCH, (D + PANEL_WIDTH - 1) // PANEL_WIDTH


cdef void _s2_panels(
    const floating* X, Py_ssize_t N, int D, int K, const double* shift, const double* means,
    const double* resp_w, double* s2, int n_threads,
) noexcept nogil:
    """S2_k += sum_n resp_w[n, k] (x_n - shift - m_k)(x_n - shift - m_k)^T (row-major lower
    triangle) for every k, in parallel over (component, panel) tasks.

    Task (k, J), J = [J0, J1) a panel of S2_k's rows, owns S2_k[J0:J1, 0:J1] (lower part). It
    walks over the rows in order, keeps those with resp_w[n, k] > 0 (at large D most rows
    belong to one component only: K times less work than every row for every component),
    writes w_n = sqrt(resp_w[n, k]) (x_n - shift - m_k)[0:J1] into a batch of PANEL_BATCH
    rows, and adds each full batch with one GEMM (columns 0:J0) and one SYRK (the diagonal
    block). The batches, GEMM and SYRK shapes depend on the data only, and each task writes
    its own part of S2: the result does not depend on the thread count or the schedule.
    """
    cdef int n_panels = (D + PANEL_WIDTH - 1) // PANEL_WIDTH
    cdef int n_tasks = K * n_panels
    cdef int t, k, J0, J1, P, b, j
    cdef Py_ssize_t n
    cdef double v
    cdef double* wbuf = NULL
    cdef double* row
    cdef double* s2k
    cdef const double* m_k
    cdef const floating* x_n
    cdef int batch = PANEL_BATCH
    with parallel(num_threads=n_threads):
        wbuf = <double*>malloc(PANEL_BATCH * (D if D > 0 else 1) * sizeof(double))
        # the widest panels (last rows of S2) first, so that the dynamic schedule ends with
        # the cheap ones; which thread runs a task does not change its result
        for t in prange(n_tasks, schedule='dynamic'):
            k = t % K
            J0 = (n_panels - 1 - t // K) * PANEL_WIDTH
            J1 = J0 + PANEL_WIDTH
            if J1 > D:
                J1 = D
            P = J1 - J0
            m_k = means + k * D
            s2k = s2 + <Py_ssize_t>k * D * D
            b = 0
            for n in range(N):
                v = resp_w[n * K + k]
                if v > 0.0:
                    v = sqrt(v)
                    row = wbuf + <Py_ssize_t>b * J1
                    x_n = X + n * D
                    for j in range(J1):
                        row[j] = v * ((<double>x_n[j] - shift[j]) - m_k[j])
                    b = b + 1
                    if b == batch:
                        _panel_update(wbuf, b, J0, J1, D, s2k)
                        b = 0
            if b > 0:
                _panel_update(wbuf, b, J0, J1, D, s2k)
        free(wbuf)


cdef inline void _panel_update(double* wbuf, int b, int J0, int J1, int D,
                               double* s2k) noexcept nogil:
    """S2_k[J0:J1, 0:J1] (row-major lower part) += W[:, J0:J1]^T W[:, 0:J1] for the batch W
    (b, J1) in wbuf. Column-major, W reads as (J1 x b) and S2_k as its transpose M, whose
    columns J0:J1 take the GEMM (rows 0:J0) and the SYRK ('U': the diagonal block)."""
    cdef int P = J1 - J0
    cdef double one = 1.0
    if J0 > 0:
        dgemm(&CH_N, &CH_T, &J0, &P, &b, &one, wbuf, &J1, wbuf + J0, &J1, &one,
              s2k + <Py_ssize_t>J0 * D, &D)
    dsyrk(&CH_U, &CH_N, &P, &b, &one, wbuf + J0, &J1, &one,
          s2k + <Py_ssize_t>J0 * D + J0, &D)


def gmm_pass(
    const floating[:, ::1] X,
    const double[::1] sample_weight,
    const double[::1] shift,
    const double[:, ::1] means,
    const double[::1] prec_chol,
    const double[:, ::1] aux,
    const double[::1] log_const,
    int covariance_type,
    const double[:, ::1] resp_in,
    double[:, ::1] nk_slots,
    double[:, ::1] s1_slots,
    double[:, ::1] s2_slots,
    double[::1] ll_slots,
    double[::1] ent_slots,
    floating[:, ::1] resp_out,
    floating[::1] log_prob_norm_out,
    bint compute_stats,
    int chunk_size,
    int n_threads,
    bint sample_z=False,
    unsigned long long seed=0,
    unsigned long long sweep=0,
    int[::1] z_out=None,
    unsigned long long row_offset=0,
    bint s2_panels=False,
    const unsigned char[::1] centred_full=None,
    bint float32_work=False,
):
    """One pass over X: log densities, responsibilities, bound terms and statistics.

    Parameters
    ----------
    X : (N, D) float32 or float64, C-contiguous
    sample_weight : (N,) float64, or empty for unit weights
    shift : (D,) float64, subtracted from every row (all other arrays use shifted coordinates)
    means : (K, D) float64, shifted centres c_k: full, diag, spherical: of S2_k and of the
        quadratic form (full: the means m_k; diag / spherical: m_k, or 0 for the GEMM form)
    prec_chol : float64, flat; full: (K, D, D) upper factors U_k, row-major; tied: (D, D);
        diag and spherical: unused (may be empty)
    aux : (K, n_aux) float64; tied: the a_k of the GEMM form (n_aux = D + 1); diag:
        [a_k, p_k^2] (n_aux = 2 D), spherical: [a_k, p_k^2] (n_aux = D + 1), the quadratic
        form being a_k . x + sum_j p_kj^2 (x_j - c_kj)^2 (a_k must be 0 where c_k != 0: the
        centred form ignores it); full: unused (may be (0, 0))
    log_const : (K,) float64, the c_k (including the folded ||.||^2 constants)
    covariance_type : 0 full, 1 tied, 2 diag, 3 spherical
    resp_in : (N, K) float64 responsibilities to use instead of computing them (for
        initialisation from a given partition), or an empty (0, 0) array
    nk_slots, s1_slots, s2_slots, ll_slots, ent_slots : per-group outputs (G, K), (G, K * D),
        (G, size of S2), (G,), (G,); overwritten. G = n_groups is their first dimension.
    resp_out : (N, K) responsibilities, or (0, 0) to skip
    log_prob_norm_out : (N,) log p(x_n), or (0,) to skip
    compute_stats : whether to accumulate N_k, S1, S2 (the bound terms and per-row outputs are
        computed whenever the responsibilities are; with ``resp_in`` given, only the statistics
        are, and ll_slots, ent_slots, resp_out, log_prob_norm_out are left untouched / zero)
    chunk_size : rows per chunk
    n_threads : OpenMP threads
    sample_z : draw z_n ~ Cat(r_n) and accumulate hard counts (Gibbs); ll_slots then hold the
        complete-data log-likelihood sum_n w_n log p(x_n, z_n), ent_slots stay zero, and
        resp_out (if given) receives the responsibilities the draw used. Not with resp_in.
    seed, sweep : key of the counter-based random stream (see the module docstring)
    z_out : (N,) int32 receiving the drawn z_n, or None
    row_offset : global index of X's first row, when X is a block of a larger data set: row n
        draws the uniform at row_offset + n, the very draw of the whole data's pass
    s2_panels : 'full' only: S2 in one slot (s2_slots of shape (1, K D^2), or (1, 0) without
        statistics), accumulated after the row pass by the panel sweep (``_s2_panels``: in
        parallel over (component, column panel) tasks, the rows with r > 0 only) instead of
        into per-group slots. For large K D^2, where per-group slots would not fit in memory.
    centred_full : 'full' only, (K,) uint8 or None: components (1) to take the Cholesky / SYRK
        form of x_n - c_k whatever their distance from the shift (the caller's second pass
        for a component whose new S2 turned out too narrow for the GEMM form's cancellation;
        see ``full_gemm_cancelled``)
    float32_work : float32 X, diag / spherical: run the fused tile in float32 (features, log
        rho, responsibilities and each chunk's statistics in float32, the sums over chunks and
        the bound terms in float64) when every component is within FAR_FROM_SHIFT_F32 of the
        shift; the per-row log densities then carry float32 rounding (see
        ``vbfast.emissions.gaussian.FLOAT32_BOUND_RTOL``). float32 X, 'full' / 'tied' taking
        the fused tiles: the same in float32 (_full_tile_group's float tile: tile, quadratic
        forms, log-sum-exp and each tile's N, S1, S2 in float32, added in float64); 'full'
        with ``resp_in``: the statistics tile alone in float32 (``full_given32_form``);
        diag / spherical with ``resp_in`` (every centre at the shift): the float32 tile's
        statistics of w r rounded to float32.
        Ignored otherwise.
    """
    cdef Py_ssize_t N = X.shape[0]
    cdef int D = <int>X.shape[1]
    cdef int K = <int>means.shape[0]
    cdef Py_ssize_t G = nk_slots.shape[0]
    cdef Py_ssize_t n_chunks = (N + chunk_size - 1) // chunk_size
    cdef Py_ssize_t per_group = (n_chunks + G - 1) // G
    cdef int n_aux = <int>aux.shape[1]
    cdef int width = D if D > n_aux else n_aux
    cdef int k, j
    cdef bint has_weights = sample_weight.shape[0] > 0
    cdef bint has_resp_in = resp_in.shape[0] > 0
    cdef bint has_resp_out = resp_out.shape[0] > 0
    cdef bint has_lpn_out = log_prob_norm_out.shape[0] > 0
    cdef Py_ssize_t s1_size = s1_slots.shape[1], s2_size = s2_slots.shape[1]
    cdef Py_ssize_t g, c, start, end
    cdef double* xbuf
    cdef double* zbuf
    cdef double* lp
    cdef double* sbuf
    cdef double* gbuf
    cdef double* tbuf = NULL
    cdef unsigned char* centred = NULL
    cdef Py_ssize_t gbuf_size = 1

    if N == 0:
        raise ValueError("gmm_pass needs at least one row")
    if G < 1 or s1_slots.shape[0] != G or ll_slots.shape[0] != G or ent_slots.shape[0] != G \
            or s2_slots.shape[0] != (1 if s2_panels else G):
        raise ValueError("slot arrays must share their first dimension (S2: one slot with "
                         "s2_panels)")
    if s2_panels and covariance_type != FULL:
        raise ValueError("s2_panels is for full covariances")
    if centred_full is not None and centred_full.shape[0] != K:
        raise ValueError("centred_full must have one entry per component")
    if means.shape[1] != D or log_const.shape[0] != K or shift.shape[0] != D:
        raise ValueError("parameter shapes do not match X")
    if s1_size != K * D or nk_slots.shape[1] != K:
        raise ValueError("statistics slots have the wrong shape")
    if covariance_type == FULL and (prec_chol.shape[0] != K * D * D or (
            s2_size != K * D * D and not (s2_panels and s2_size == 0 and not compute_stats))):
        raise ValueError("full covariance needs (K, D, D) factors and statistics")
    if covariance_type == TIED and prec_chol.shape[0] != D * D:
        raise ValueError("tied covariance needs a (D, D) factor")
    if covariance_type == DIAG and (n_aux != 2 * D or s2_size != K * D):
        raise ValueError("diag covariance needs aux of shape (K, 2D) and (K, D) statistics")
    if covariance_type == SPHERICAL and (n_aux != D + 1 or s2_size != K):
        raise ValueError("spherical covariance needs aux of shape (K, D+1) and (K,) statistics")
    if covariance_type == TIED and n_aux != D + 1:
        raise ValueError("tied covariance needs aux of shape (K, D+1)")
    if covariance_type != FULL and aux.shape[0] != K:
        raise ValueError("aux must have one row per component")
    if has_weights and sample_weight.shape[0] != N:
        raise ValueError("sample_weight must have one entry per row")
    if has_resp_in and (resp_in.shape[0] != N or resp_in.shape[1] != K):
        raise ValueError("resp_in must be (N, K)")
    if has_resp_out and (resp_out.shape[0] != N or resp_out.shape[1] != K):
        raise ValueError("resp_out must be (N, K)")
    if has_lpn_out and log_prob_norm_out.shape[0] != N:
        raise ValueError("log_prob_norm_out must be (N,)")
    if chunk_size < 1 or n_threads < 1:
        raise ValueError("chunk_size and n_threads must be positive")
    cdef bint has_z_out = z_out is not None and z_out.shape[0] > 0
    if sample_z and has_resp_in:
        raise ValueError("sample_z draws z from the pass's own responsibilities; resp_in must "
                         "be empty")
    if has_z_out and (z_out.shape[0] != N or not sample_z):
        raise ValueError("z_out must be (N,) and needs sample_z")

    # Empty memoryviews have no valid data pointer: absent optional arrays are NULL, and the
    # unused factor or aux, handed to BLAS calls that do not read it, points at a dummy.
    cdef double dummy = 0.0
    cdef _GaussPass p
    p.centred = NULL
    p.n_centred = 0
    if covariance_type == DIAG or covariance_type == SPHERICAL:
        # A component whose centre is the shift (means[k] = 0) takes the GEMM form, the
        # others the centred one; zbuf holds the features (n_aux), the transposed chunk (D)
        # and a row accumulator (1) per row.
        centred = <unsigned char*>malloc(K if K > 0 else 1)
        for k in range(K):
            centred[k] = 0
            for j in range(D):
                if means[k, j] != 0.0:
                    centred[k] = 1
            p.n_centred = p.n_centred + centred[k]
        p.centred = centred
        width = n_aux + D + 1
    # 'full' in GEMM form (see _GaussPass) for models whose per-chunk buffers stay small
    # (a rule on the model's size only); its arrays are set up here
    p.tied_tile = covariance_type == TIED and not has_resp_in and not sample_z \
        and D <= FULL_TILE_MAX_D and K > 0
    p.full_tile = (covariance_type == FULL and not s2_panels and not has_resp_in
                   and not sample_z and D <= FULL_TILE_MAX_D and K > 0
                   and centred_full is None) or p.tied_tile
    # float32 X asked to work in float32, statistics of given responsibilities: float32
    # tiles (any centres: every row is centred at its c_k in float32)
    p.full_given32 = False
    if floating is float:
        p.full_given32 = (float32_work and covariance_type == FULL and has_resp_in
                          and compute_stats and not s2_panels and not sample_z
                          and D <= FULL_TILE_MAX_D and K > 0 and centred_full is None)
    p.full_gemm = covariance_type == FULL and not s2_panels and D <= FULL_GEMM_MAX_D \
        and K * D <= FULL_GEMM_MAX_KD and not p.full_tile and not p.full_given32
    cdef int DP = (D + 3) // 4 * 4
    cdef int i
    cdef double v, dist2
    cdef double* u_pack = NULL
    if p.full_tile:
        u_pack = <double*>malloc(<Py_ssize_t>K * DP * DP * sizeof(double))
        if u_pack == NULL:
            raise MemoryError()
        vbf_gmm_full_pack_u(&prec_chol[0], D, 1 if p.tied_tile else K, u_pack)
    p.u_pack = u_pack
    cdef double* tied_mu = NULL
    if p.tied_tile:
        # mu_k = m_k U = -1/2 a_k[:D]; c_k back to log_const + 1/2 ||mu_k||^2 (the caller
        # folded -1/2 ||mu_k||^2 into it for the GEMM form)
        tied_mu = <double*>malloc(<Py_ssize_t>K * (D + 1) * sizeof(double))
        if tied_mu == NULL:
            free(u_pack)
            raise MemoryError()
        for k in range(K):
            v = 0.0
            for j in range(D):
                tied_mu[k * D + j] = -0.5 * aux[k, j]
                v = v + tied_mu[k * D + j] * tied_mu[k * D + j]
            tied_mu[K * D + k] = log_const[k] + 0.5 * v
    p.tied_mu = tied_mu
    # the 'full' / 'tied' tiles in float32: float32 X asked to work in float32, every
    # component within FULL_FAR_FROM_SHIFT_F32 of the shift in its own metric
    # (||m_k U_k||^2, tied ||m_k U||^2) and every factor entry finite in float32
    cdef float* means32 = NULL
    cdef float* u_pack32 = NULL
    cdef double far32_max = 0.0
    cdef Py_ssize_t n_u = <Py_ssize_t>(1 if p.tied_tile else K) * DP * DP, t32
    p.full_tile32 = False
    if floating is float:
        p.full_tile32 = p.full_tile and float32_work
    if p.full_tile32:
        for k in range(K):
            dist2 = 0.0
            for j in range(D):
                if p.tied_tile:
                    v = tied_mu[k * D + j]
                else:
                    v = 0.0
                    for i in range(j + 1):  # U_k upper: column j has rows 0..j
                        v = v + means[k, i] * prec_chol[k * D * D + i * D + j]
                dist2 = dist2 + v * v
            if not dist2 <= far32_max:  # (NaN: not within)
                far32_max = dist2
        for t32 in range(n_u):
            if not fabs(u_pack[t32]) <= 1e38:
                far32_max = INFINITY
        p.full_tile32 = far32_max <= FULL_FAR_FROM_SHIFT_F32
    if p.full_given32:
        means32 = <float*>malloc(<Py_ssize_t>K * D * sizeof(float))
        if means32 == NULL:
            free(u_pack)
            free(tied_mu)
            raise MemoryError()
        for k in range(K):
            for j in range(D):
                means32[k * D + j] = <float>means[k, j]
    if p.full_tile32:
        means32 = <float*>malloc(<Py_ssize_t>K * D * sizeof(float))
        u_pack32 = <float*>malloc(n_u * sizeof(float))
        if means32 == NULL or u_pack32 == NULL:
            free(means32)
            free(u_pack32)
            free(u_pack)
            free(tied_mu)
            raise MemoryError()
        for k in range(K):
            for j in range(D):
                means32[k * D + j] = <float>(tied_mu[k * D + j] if p.tied_tile else means[k, j])
        for t32 in range(n_u):
            u_pack32[t32] = <float>u_pack[t32]
    p.means32 = means32
    p.u_pack32 = u_pack32
    p.n_feat = 1 + D + D * (D + 1) // 2
    cdef double* u_cat = NULL
    cdef double* mu = NULL
    cdef unsigned char* far_full = NULL
    if p.full_gemm:
        u_cat = <double*>malloc(K * D * D * sizeof(double))
        mu = <double*>malloc(K * D * sizeof(double))
        far_full = <unsigned char*>malloc(K)
        if u_cat == NULL or mu == NULL or far_full == NULL:
            free(u_cat)
            free(mu)
            free(far_full)
            raise MemoryError()
        for k in range(K):
            dist2 = 0.0
            for j in range(D):
                v = 0.0
                for i in range(j + 1):  # U_k upper: column j has rows 0..j
                    u_cat[i * K * D + k * D + j] = prec_chol[k * D * D + i * D + j]
                    v = v + means[k, i] * prec_chol[k * D * D + i * D + j]
                for i in range(j + 1, D):
                    u_cat[i * K * D + k * D + j] = 0.0
                mu[k * D + j] = v
                dist2 = dist2 + v * v
            # the squared distance of m_k from the shift in the metric of its precision
            # (the digits the GEMM forms lose, see _full_stats_gemm): beyond the limit, or
            # not finite, the component keeps the Cholesky form. With given
            # responsibilities there is no precision (the factors are placeholders): a
            # component centred away from the shift is then taken as far, as the caller
            # centres only those (GaussianPass.centred_stats_from_resp).
            if has_resp_in:
                far_full[k] = 0
                for j in range(D):
                    if means[k, j] != 0.0:
                        far_full[k] = 1
            else:
                far_full[k] = not (dist2 <= FULL_FAR_FROM_SHIFT)
            if centred_full is not None and centred_full[k]:
                far_full[k] = 1
        gbuf_size = chunk_size * (K * D if K * D > p.n_feat else p.n_feat) + K * p.n_feat
    p.u_cat = u_cat
    p.mu = mu
    p.far_full = far_full
    # diag / spherical as fused tiles when every component takes the GEMM form and nothing
    # else (given responsibilities, draws) is asked: coef = [-1/2 a_k, c_k] (K, W)
    # (given responsibilities too: the tile's statistics of them, no densities)
    p.tile = (covariance_type == DIAG or covariance_type == SPHERICAL) \
        and p.n_centred == 0 and not sample_z and K > 0
    p.n_tile = n_aux + 1
    cdef double* coef = NULL
    if p.tile:
        coef = <double*>malloc(K * p.n_tile * sizeof(double))
        if coef == NULL:
            free(centred)
            free(u_cat)
            free(mu)
            free(far_full)
            raise MemoryError()
        for k in range(K):
            for j in range(n_aux):
                coef[k * p.n_tile + j] = -0.5 * aux[k, j]
            coef[k * p.n_tile + n_aux] = log_const[k]
    p.coef = coef
    cdef double* coef16 = NULL
    cdef int k_pad = (K + 15) // 16 * 16
    cdef Py_ssize_t ci
    if p.tile and K <= ESTEP_BLOCKS_MAX_K:
        coef16 = <double*>malloc(k_pad * p.n_tile * sizeof(double))
        if coef16 == NULL:
            free(centred)
            free(coef)
            raise MemoryError()
        for k in range(k_pad):
            for j in range(p.n_tile):
                # K <= 16: (W, 16); past it blocks of eight components (W, 8), one after
                # the other (a block's coefficients contiguous)
                ci = j * k_pad + k if K <= ESTEP_MAX_K else (
                    (k // 8) * p.n_tile * 8 + j * 8 + k % 8)
                coef16[ci] = coef[k * p.n_tile + j] if k < K else 0.0
                if k >= K and j == n_aux:
                    coef16[ci] = -INFINITY
    p.coef16 = coef16
    # the tile in float32: every component near enough to the shift for float32's digits
    # (sum_j m_kj^2 p_kj^2 from aux = [-2 m p^2, p^2]) and every coefficient finite in float32
    cdef float* coef32 = NULL
    cdef float* coef32T = NULL
    cdef double p2, dist2_max = 0.0
    p.tile32 = False
    if floating is float:
        # (given responsibilities too: their statistics about the shift in float32 tiles,
        # the first pass of GaussianPass.centred_stats_from_resp, which centres a component
        # beyond FAR_FROM_SHIFT_F32 at its mean by a second pass)
        p.tile32 = p.tile and float32_work
    if p.tile32:
        for k in range(K):
            dist2 = 0.0
            for j in range(D):
                p2 = aux[k, D + j] if covariance_type == DIAG else aux[k, D]
                if aux[k, j] != 0.0:
                    dist2 = dist2 + aux[k, j] * aux[k, j] / (4.0 * p2)
            if not dist2 <= dist2_max:  # (NaN: not within)
                dist2_max = dist2
            for j in range(p.n_tile):  # (c_k = -inf, a zero weight, is exact in float32)
                if not fabs(coef[k * p.n_tile + j]) <= 1e38 and not (
                        j == n_aux and coef[k * p.n_tile + j] == -INFINITY):
                    dist2_max = INFINITY
        p.tile32 = dist2_max <= FAR_FROM_SHIFT_F32
    if p.tile32:
        coef32 = <float*>malloc(K * p.n_tile * sizeof(float))
        if coef32 == NULL:
            free(centred)
            free(coef)
            free(coef16)
            raise MemoryError()
        for i in range(K * p.n_tile):
            coef32[i] = <float>coef[i]
    if p.tile32 and coef16 != NULL:
        coef32T = <float*>malloc(k_pad * p.n_tile * sizeof(float))
        if coef32T == NULL:
            free(centred)
            free(coef)
            free(coef16)
            free(coef32)
            raise MemoryError()
        for ci in range(k_pad * p.n_tile):
            coef32T[ci] = <float>coef16[ci]
    p.coef32 = coef32
    p.coef32T = coef32T
    p.D = D
    p.K = K
    p.cov_type = covariance_type
    p.weights = &sample_weight[0] if has_weights else NULL
    p.shift = &shift[0]
    p.means = &means[0, 0]
    p.prec_chol = &prec_chol[0] if prec_chol.shape[0] > 0 else &dummy
    p.aux = &aux[0, 0] if aux.shape[0] > 0 and n_aux > 0 else &dummy
    p.n_aux = n_aux if n_aux > 0 else 1
    p.log_const = &log_const[0]
    p.resp_in = &resp_in[0, 0] if has_resp_in else NULL
    p.compute_stats = compute_stats
    p.sample_z = sample_z
    p.stream = vbf_stream_key2(seed, sweep)
    p.row_offset = row_offset
    p.nk = &nk_slots[0, 0]
    p.s1 = &s1_slots[0, 0]
    p.s2 = &s2_slots[0, 0] if s2_size > 0 and not s2_panels else NULL
    p.s2_size = s2_size
    # the panel sweep's input: w_n r_nk of every row, written by the row pass
    cdef double* resp_w = NULL
    if s2_panels and compute_stats:
        resp_w = <double*>malloc(N * K * sizeof(double))
        if resp_w == NULL:
            raise MemoryError()
    p.resp_w = resp_w
    p.ll = &ll_slots[0]
    p.ent = &ent_slots[0]
    p.z_out = &z_out[0] if has_z_out else NULL
    cdef floating* resp_out_ptr = &resp_out[0, 0] if has_resp_out else NULL
    cdef floating* lpn_ptr = &log_prob_norm_out[0] if has_lpn_out else NULL

    memset(&nk_slots[0, 0], 0, G * K * sizeof(double))
    memset(&s1_slots[0, 0], 0, G * s1_size * sizeof(double))
    if s2_size > 0:
        memset(&s2_slots[0, 0], 0, s2_slots.shape[0] * s2_size * sizeof(double))
    memset(&ll_slots[0], 0, G * sizeof(double))
    memset(&ent_slots[0], 0, G * sizeof(double))

    # the diag / spherical tiles' lpT follows their (2, ld) doubles of per-row results in lp
    cdef int tile_ld = <int>((chunk_size + 15) // 16 * 16)
    if p.tile32:
        # (padded from 241 rows on: zbuf's 2 (chunk_size + 7) width floats still hold the
        # W (chunk_size + 31) features, lp the 2 ld doubles and K ld floats)
        tile_ld = _tile32_ld(chunk_size)
    with nogil, parallel(num_threads=n_threads):
        xbuf = <double*>malloc(chunk_size * D * sizeof(double))
        zbuf = <double*>malloc((chunk_size + 7) * width * sizeof(double))
        # (rounded up to eight rows: the tiles' component-major log rho, see _tile_group)
        lp = <double*>malloc((chunk_size + 15) * (K + 2) * sizeof(double))
        # (doubled: the float32 tile's per-chunk statistics follow its accumulator)
        sbuf = <double*>malloc((2 * K * (2 * D + 1) if K * D > 0 else 1) * sizeof(double))
        gbuf = <double*>malloc(gbuf_size * sizeof(double))
        # _full_tile_group's xT, xc, rx (DP, ld) and lpT (K + 2, ld) in doubles; (the float32
        # tiles' (3 DP + K, FULL_TILE_LD32) floats and two rows of doubles fit in as well)
        if p.full_tile or p.full_given32:
            tbuf = <double*>malloc(<Py_ssize_t>(3 * DP + K + 2) * FULL_TILE_LD
                                   * sizeof(double))
        # each free thread takes the next group (dynamic, chunksize 1): a thread that shares
        # its core (another process, BLAS threads still spinning after the caller's last
        # call) takes fewer groups instead of holding the pass up, and the groups past the
        # data's last chunk cost nothing; each group keeps its own slot, so the bits do not
        # depend on which thread took it
        for g in prange(G, schedule='dynamic', chunksize=1):
            if p.tile32:
                _tile_group(&p, <const float*>&X[0, 0], <float*>resp_out_ptr,
                            <float*>lpn_ptr, g, g * per_group,
                            min((g + 1) * per_group, n_chunks), chunk_size, N,
                            <float*>zbuf, <float*>(lp + 2 * tile_ld), lp, sbuf,
                            <float*>(sbuf + K * (2 * D + 1)))
            elif p.full_tile32:
                _full_tile_group(&p, <const float*>&X[0, 0], <float*>resp_out_ptr,
                                 <float*>lpn_ptr, g, min(g * per_group * chunk_size, N),
                                 min((g + 1) * per_group * chunk_size, N),
                                 <float*>tbuf, <float*>tbuf + DP * FULL_TILE_LD32,
                                 <float*>tbuf + 2 * DP * FULL_TILE_LD32,
                                 <float*>tbuf + 3 * DP * FULL_TILE_LD32,
                                 <double*>(<float*>tbuf + (3 * DP + K) * FULL_TILE_LD32),
                                 <double*>(<float*>tbuf + (3 * DP + K + 2) * FULL_TILE_LD32))
            elif p.full_given32:
                _full_given_group32(&p, &X[0, 0], g, min(g * per_group * chunk_size, N),
                                    min((g + 1) * per_group * chunk_size, N), <float*>tbuf,
                                    <float*>tbuf + DP * FULL_TILE_LD32,
                                    <float*>tbuf + 2 * DP * FULL_TILE_LD32,
                                    <float*>tbuf + 3 * DP * FULL_TILE_LD32)
            elif p.full_tile:
                _full_tile_group(&p, &X[0, 0], resp_out_ptr, lpn_ptr, g,
                                 min(g * per_group * chunk_size, N),
                                 min((g + 1) * per_group * chunk_size, N), tbuf,
                                 tbuf + DP * FULL_TILE_LD, tbuf + 2 * DP * FULL_TILE_LD,
                                 tbuf + 3 * DP * FULL_TILE_LD,
                                 tbuf + (3 * DP + K) * FULL_TILE_LD,
                                 tbuf + (3 * DP + K + 1) * FULL_TILE_LD)
            elif p.tile:
                _tile_group(&p, &X[0, 0], resp_out_ptr, lpn_ptr, g, g * per_group,
                            min((g + 1) * per_group, n_chunks), chunk_size, N, zbuf,
                            lp + 2 * tile_ld, lp, sbuf, <double*>NULL)
            else:
                for c in range(g * per_group, min((g + 1) * per_group, n_chunks)):
                    start = c * chunk_size
                    end = min(start + chunk_size, N)
                    _chunk(&p, &X[0, 0], resp_out_ptr, lpn_ptr, g, start, end, xbuf, zbuf,
                           lp, sbuf, gbuf)
        free(xbuf)
        free(zbuf)
        free(lp)
        free(sbuf)
        free(gbuf)
        if p.full_tile or p.full_given32:
            free(tbuf)
    free(centred)
    free(u_pack)
    free(tied_mu)
    free(means32)
    free(u_pack32)
    free(u_cat)
    free(mu)
    free(far_full)
    free(coef)
    free(coef16)
    free(coef32)
    free(coef32T)
    if resp_w != NULL:
        with nogil:
            _s2_panels(&X[0, 0], N, D, K, &shift[0], &means[0, 0], resp_w, &s2_slots[0, 0],
                       n_threads)
        free(resp_w)


def group_column_sums(const floating[:, ::1] X, const double[::1] sample_weight,
                      Py_ssize_t group_rows, double[:, ::1] out, int n_threads,
                      const double[::1] shift=None):
    """Per-group column sums sum_n w_n x_n in float64 (the fit's shift; weights empty: unit
    weights), groups of ``group_rows`` consecutive rows (the last one shorter); with
    ``shift`` (D,) the square sums sum_n w_n (x_n - shift)^2 instead (the default
    covariance prior's variances).

    out : (ceil(N / group_rows), D), overwritten; each group's sum is over its rows in row
    order (one float64 sum per column), whatever the thread count or the block of rows the
    group is passed in. Replaces one NumPy column sum per group (axis-0 reductions of a few
    columns, ~11 ms for 200,000 x 16 against ~1 ms here)."""
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1]
    cdef Py_ssize_t G = (N + group_rows - 1) // group_rows if group_rows > 0 else 0
    cdef bint has_weights = sample_weight.shape[0] > 0
    cdef Py_ssize_t g, start, end
    if group_rows < 1 or out.shape[0] != G or out.shape[1] != D or n_threads < 1:
        raise ValueError("out must be (ceil(N / group_rows), D), group_rows and n_threads "
                         "positive")
    if has_weights and sample_weight.shape[0] != N:
        raise ValueError("sample_weight must have one entry per row")
    if shift is not None and shift.shape[0] != D:
        raise ValueError("shift must have one entry per column")
    if N == 0 or D == 0:
        return
    cdef const double* sh = &shift[0] if shift is not None else NULL
    with nogil, parallel(num_threads=n_threads):
        for g in prange(G, schedule='dynamic', chunksize=1):
            start = g * group_rows
            end = min(start + group_rows, N)
            if floating is float and sh != NULL:
                vbf_gmm_square_sums_f32(&X[start, 0], end - start, <int>D,
                                        &sample_weight[start] if has_weights else NULL,
                                        sh, &out[g, 0])
            elif floating is float:
                vbf_gmm_column_sums_f32(&X[start, 0], end - start, <int>D,
                                        &sample_weight[start] if has_weights else NULL,
                                        sh, &out[g, 0])
            elif sh != NULL:
                vbf_gmm_square_sums_f64(&X[start, 0], end - start, <int>D,
                                        &sample_weight[start] if has_weights else NULL,
                                        sh, &out[g, 0])
            else:
                vbf_gmm_column_sums_f64(&X[start, 0], end - start, <int>D,
                                        &sample_weight[start] if has_weights else NULL,
                                        sh, &out[g, 0])


def weighted_gram(const floating[:, ::1] X, const double[::1] sample_weight,
                  const double[::1] shift, double[:, ::1] out_slots,
                  int chunk_size, int n_threads, bint float32_work=False):
    """Per-group sums of w_n (x_n - shift)(x_n - shift)^T, lower triangle (row-major) filled.

    out_slots : (G, D * D), overwritten; reduce over the first axis in order.
    float32_work : float32 X, D <= FULL_TILE_MAX_D: each group's rows as the float32 tiles of
        'full' (the statistics tile with one component centred at the shift and r_n = w_n:
        each tile's sums in float32 lanes, added in float64), not per-chunk DSYRKs of
        float64 rows (whose call overhead dominates at small D). Ignored otherwise.
    """
    cdef Py_ssize_t N = X.shape[0]
    cdef int D = <int>X.shape[1]
    cdef Py_ssize_t G = out_slots.shape[0]
    cdef Py_ssize_t n_chunks = (N + chunk_size - 1) // chunk_size
    cdef Py_ssize_t per_group = (n_chunks + G - 1) // G
    cdef bint has_weights = sample_weight.shape[0] > 0
    cdef Py_ssize_t g, c, start, end, n
    cdef int j, b
    cdef double one = 1.0, v
    cdef double* xbuf
    if out_slots.shape[1] != D * D or shift.shape[0] != D:
        raise ValueError("out_slots must be (G, D*D) and shift (D,)")
    if has_weights and sample_weight.shape[0] != N:
        raise ValueError("sample_weight must have one entry per row")
    if N == 0:
        raise ValueError("weighted_gram needs at least one row")
    memset(&out_slots[0, 0], 0, G * D * D * sizeof(double))
    if floating is float:
        if float32_work and D <= FULL_TILE_MAX_D:
            _gram_tiles32(&X[0, 0], N, D, &sample_weight[0] if has_weights else NULL,
                          &shift[0], &out_slots[0, 0], G, per_group * chunk_size, n_threads)
            return
    with nogil, parallel(num_threads=n_threads):
        xbuf = <double*>malloc(chunk_size * D * sizeof(double))
        for g in prange(G, schedule='dynamic', chunksize=1):  # (see gmm_pass)
            for c in range(g * per_group, min((g + 1) * per_group, n_chunks)):
                start = c * chunk_size
                end = min(start + chunk_size, N)
                b = <int>(end - start)
                for n in range(b):
                    v = sqrt(sample_weight[start + n]) if has_weights else 1.0
                    for j in range(D):
                        xbuf[n * D + j] = v * (<double>X[start + n, j] - shift[j])
                dsyrk(&CH_U, &CH_N, &D, &b, &one, xbuf, &D, &one, &out_slots[g, 0], &D)
        free(xbuf)


cdef void _gram_tiles32(
    const float* X, Py_ssize_t N, int D, const double* weights, const double* shift,
    double* out_slots, Py_ssize_t G, Py_ssize_t group_rows, int n_threads,
) noexcept nogil:
    """weighted_gram's float32 tiles: group g's rows [g group_rows, (g + 1) group_rows) in
    tiles of FULL_TILE_ROWS (_full_tile_fill), r_n = w_n rounded to float32, and
    vbf_gmm_full_stats_tile_32 with one component centred at 0 (the shift) adding
    sum_n w_n x_n x_n^T (lower triangle) into out_slots[g] (OUT, (G, D D)); its N and S1
    go to scratch. Each group keeps its slot, whichever thread takes it: the same bits for any
    thread count."""
    cdef int DP = (D + 3) // 4 * 4, ld = FULL_TILE_LD32, b, nr, n
    cdef Py_ssize_t g, start, end, row1
    cdef float* buf = NULL
    cdef float* xT = NULL
    cdef float* rT = NULL
    cdef float* centre = NULL
    cdef double* small = NULL
    with parallel(num_threads=n_threads):
        # xT, xc, rx (DP, ld), rT (1, ld), the centre (D); N and S1 (1 + D doubles)
        buf = <float*>malloc(((3 * DP + 1) * ld + D + 1) * sizeof(float))
        small = <double*>malloc((D + 1) * sizeof(double))
        xT = buf
        rT = buf + 3 * DP * ld
        centre = rT + ld
        memset(centre, 0, D * sizeof(float))
        for g in prange(G, schedule='dynamic', chunksize=1):
            start = g * group_rows
            row1 = min(start + group_rows, N)
            while start < row1:
                end = min(start + FULL_TILE_ROWS, row1)
                b = <int>(end - start)
                nr = (b + 63) // 64 * 64
                _full_tile_fill(X + start * D, b, nr, D, ld, shift, xT)
                for n in range(nr):
                    rT[n] = (<float>weights[start + n] if weights != NULL else 1.0) \
                        if n < b else 0.0
                vbf_gmm_full_stats_tile_32(xT, ld, nr, D, 1, centre, rT, xT + DP * ld,
                                           xT + 2 * DP * ld, small, small + 1,
                                           out_slots + g * D * D)
                start = end
        free(buf)
        free(small)
