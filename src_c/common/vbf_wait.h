/* Waiting inside one OpenMP parallel region for a counter that another thread of the region
   advances (the work-claiming workers of the HMM long-sequence pass and the LDA Gibbs sweep):
   spin a little with the pause hint, then nap 20 us at a time, which frees the core when the
   machine is busier than its cores (libgomp's spinning barriers do not).
   VBF_HAVE_WAIT is defined where these are available (GCC/Clang on Unix). */
#ifndef VBF_WAIT_H
#define VBF_WAIT_H

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__unix__) || defined(__APPLE__))
#define VBF_HAVE_WAIT 1
#include <time.h>

/* one round of waiting: the first 2000 rounds a pause, then a 20 us nap */
static inline void vbf_wait_round(int *spins) {
    if (*spins < 2000) {
        (*spins)++;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        struct timespec ts = {0, 20000};  /* (plus the timer's slack) */
        nanosleep(&ts, NULL);
    }
}

/* until *counter >= target (an int or long long counter, read with acquire ordering) */
#define VBF_WAIT_AT_LEAST(counter, target)                                  \
    do {                                                                    \
        int vbf_spins_ = 0;                                                 \
        while (__atomic_load_n((counter), __ATOMIC_ACQUIRE) < (target))     \
            vbf_wait_round(&vbf_spins_);                                    \
    } while (0)
#endif

#endif
