// Acquire/release operations on 64-bit words that live in memory shared between processes (mapped
// shared-memory segments), where Swift's own atomics cannot be placed. Header-only: every function inlines.
#ifndef TANDEM_ATOMICS_H
#define TANDEM_ATOMICS_H

#include <stdint.h>

/// Loads `*word` with acquire ordering: memory written before the matching release store is visible after.
static inline uint64_t tandem_load_acquire(const uint64_t *word) {
    return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/// Stores `value` into `*word` with release ordering: every earlier write is visible to an acquiring reader.
static inline void tandem_store_release(uint64_t *word, uint64_t value) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
}

/// Tells the core this is a spin-wait loop (x86 `pause`, ARM `yield`).
static inline void tandem_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
