/* Counter-based random streams: SplitMix64 (Steele, Lea & Flood 2014).

   Output i (0-based) of the stream with key k is mix(k + (i + 1) * golden): a pure function
   of (k, i), so any draw can be made independently of the others (by row, by thread, by
   chunk) and a stream is fixed by its key alone. Keys are built from (seed, ...) by mixing
   one component at a time, each with its own odd multiplier and offset, so nearby tuples give
   unrelated streams. The Gaussian pass keys a stream by (seed, sweep) and draws output
   ``row`` directly; the Gibbs LDA sweep keys one by (seed, chain, sweep, pair) and reads it
   in order. */
#ifndef VBFAST_VBF_RNG_H
#define VBFAST_VBF_RNG_H

#include <stdint.h>

#define VBF_GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL

static inline uint64_t vbf_mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* the key of (seed, a): the first two mixing rounds of every key */
static inline uint64_t vbf_stream_key2(uint64_t seed, uint64_t a) {
    return vbf_mix64(vbf_mix64(seed + VBF_GOLDEN_GAMMA) ^ (a * 0xD1B54A32D192ED03ULL + 1ULL));
}

/* the key of (seed, a, b, c): (seed, a)'s, extended by b then c */
static inline uint64_t vbf_stream_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t k = vbf_stream_key2(seed, a);
    k = vbf_mix64(k ^ (b * 0xAEF17502108EF2D9ULL + 2ULL));
    return vbf_mix64(k ^ (c * 0xDB4F0B9175AE2165ULL + 3ULL));
}

/* [0, 1) from the top 53 bits of an output */
static inline double vbf_unit53(uint64_t x) {
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

/* output i of stream ``key`` as a uniform, directly */
static inline double vbf_uniform_at(uint64_t key, uint64_t i) {
    return vbf_unit53(vbf_mix64(key + (i + 1) * VBF_GOLDEN_GAMMA));
}

/* the next output of a stream read in order; *state starts at the key */
static inline double vbf_uniform(uint64_t *state) {
    *state += VBF_GOLDEN_GAMMA;
    return vbf_unit53(vbf_mix64(*state));
}

#endif
