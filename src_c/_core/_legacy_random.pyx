# cython: language_level=3
"""NumPy's legacy ``RandomState`` draws in C, bit for bit (``src_c/common/vbf_mt19937.h``).

:func:`gamma_fill` fills an array with ``RandomState.gamma(shape, scale, size)``'s numbers
from the MT19937 state that ``RandomState.get_state()`` returns, and gives back the state
those draws leave, so ``set_state`` continues the stream as NumPy's own call would. NumPy's
draws go through a function pointer per word and per double (~75 ns a Gamma(100) draw);
here the words are tempered 624 at a time and the loop is inlined.
"""
from libc.stdint cimport uint32_t


cdef extern from "vbf_mt19937.h" nogil:
    ctypedef struct vbf_legacy_state:
        int pos
        int has_gauss
        double gauss
    void vbf_legacy_open(vbf_legacy_state* s, uint32_t* key, int pos, int has_gauss,
                         double gauss) noexcept nogil
    void vbf_legacy_gamma_fill(vbf_legacy_state* s, double shape, double scale,
                               double* out, Py_ssize_t n) noexcept nogil


def gamma_fill(uint32_t[::1] key, int pos, bint has_gauss, double gauss, double shape,
               double scale, double[::1] out):
    """out (n,) = ``scale`` times standard Gamma(``shape``) draws, NumPy's legacy algorithm
    (``RandomState.gamma``), from the MT19937 state ``key`` (624,) uint32 (advanced in
    place), ``pos`` (the next word's index, 0..624) and the cached Gaussian (``has_gauss``,
    ``gauss``). ``shape`` and ``scale`` are checked by the caller (not negative).

    Returns ``(pos, has_gauss, gauss)``, the rest of the state after the draws."""
    cdef vbf_legacy_state state
    if key.shape[0] != 624 or not 0 <= pos <= 624:
        raise ValueError("an MT19937 state is 624 words and a position in [0, 624]")
    with nogil:
        vbf_legacy_open(&state, &key[0], pos, has_gauss, gauss)
        if out.shape[0] > 0:
            vbf_legacy_gamma_fill(&state, shape, scale, &out[0], out.shape[0])
    return state.pos, bool(state.has_gauss), state.gauss
