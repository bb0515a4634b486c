/* Run-time choice between SIMD builds of one kernel.

   A kernel NAME is written once as NAME_body (VBF_INLINE, so that it is compiled into each
   caller with the caller's target) and VBF_DISPATCH makes NAME from it: on x86-64 with
   GCC/Clang, NAME_body compiled for ISA (e.g. "avx2" or "avx2,fma") and for the baseline,
   NAME calling the first when COND holds (a CPU feature test: one load and a bit test once
   the run-time CPU model is initialised, cheap enough to do per call). Elsewhere NAME is
   NAME_body. Whether the two builds give the same bits depends on ISA: with "fma" the
   compiler fuses multiply-adds and results differ in the last bits; without, every vector
   operation is the same lane-wise IEEE operation in both. */
#ifndef VBFAST_VBF_DISPATCH_H
#define VBFAST_VBF_DISPATCH_H

#if defined(__GNUC__) && defined(__x86_64__)
#define VBF_HAVE_DISPATCH 1
#define VBF_INLINE static inline __attribute__((always_inline))
#else
#define VBF_INLINE static inline
#endif

/* 1 when the running CPU has FEATURE (a __builtin_cpu_supports name), 0 where there is no
   run-time dispatch */
#ifdef VBF_HAVE_DISPATCH
#define VBF_CPU_HAS(feature) (__builtin_cpu_supports(feature) ? 1 : 0)
#else
#define VBF_CPU_HAS(feature) 0
#endif

static inline int vbf_cpu_avx2(void) { return VBF_CPU_HAS("avx2"); }

static inline int vbf_cpu_avx2_fma(void) { return VBF_CPU_HAS("avx2") && VBF_CPU_HAS("fma"); }

/* void NAME params, running NAME_body args (args: the parameter names of params) */
#ifdef VBF_HAVE_DISPATCH
#define VBF_DISPATCH(name, isa, cond, params, args)                                     \
    __attribute__((target(isa))) static void name##_simd params { name##_body args; }  \
    static void name params                                                               \
    {                                                                                     \
        if (cond) {                                                                       \
            name##_simd args;                                                             \
            return;                                                                       \
        }                                                                                 \
        name##_body args;                                                                 \
    }
#else
#define VBF_DISPATCH(name, isa, cond, params, args) static void name params { name##_body args; }
#endif

#endif
