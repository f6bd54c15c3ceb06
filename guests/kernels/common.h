/* Shared helpers for the Gridmint compute kernels (the .c files in guests/kernels).
 *
 * Every kernel is built twice -- natively and as wasm32-wasi -- and must print
 * the same bytes in both.  The helpers here are the pieces that make that
 * possible:
 *
 *   - kernel_scale():  parses the optional scale factor argv[1];
 *   - splitmix64():    a fixed pseudo-random generator (no rand(), no time);
 *   - hash_*():        a 64-bit fold over the bit patterns of the results;
 *   - kernel_finish(): prints "<name> <16 hex digits>\n" and exits.
 *
 * Floating point rules followed by all kernels: only + - * / and sqrt (all
 * correctly rounded by IEEE 754 on every target), no libm transcendental
 * functions, no long double, no fused multiply-add (contraction is switched
 * off below for clang; gcc must be given -ffp-contract=off, and baseline
 * x86-64 and wasm32 have no FMA instruction anyway), no NaNs (wasm does not
 * fix NaN payloads).  Integers come from <stdint.h> (wasm32 `long` is 32-bit)
 * and signed overflow is avoided by doing wrapping arithmetic in unsigned
 * types.
 */
#ifndef GRIDMINT_KERNELS_COMMON_H
#define GRIDMINT_KERNELS_COMMON_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__FAST_MATH__)
#error "kernels must not be built with -ffast-math: results would not be bit-identical"
#endif

#ifdef __clang__
/* Never fuse a*b+c into one FMA (it rounds once instead of twice). */
#pragma STDC FP_CONTRACT OFF
#endif

/* Largest accepted scale factor: keeps repetition counts far from overflow. */
#define KERNEL_MAX_SCALE 1000000u

/* Parses the optional argv[1] (a positive decimal integer, default 1).  On a
 * bad argument prints a usage line to stderr and exits with status 1. */
static inline uint32_t kernel_scale(int argc, char **argv, const char *name)
{
    if (argc < 2)
        return 1;
    uint32_t v = 0;
    const char *s = argv[1];
    int ok = argc == 2 && *s != '\0';
    for (; ok && *s; s++) {
        if (*s < '0' || *s > '9' || v > KERNEL_MAX_SCALE / 10)
            ok = 0;
        else
            v = v * 10 + (uint32_t)(*s - '0');
    }
    if (!ok || v == 0 || v > KERNEL_MAX_SCALE) {
        fprintf(stderr, "usage: %s [scale]  (scale: integer 1..%u, default 1)\n",
                name, KERNEL_MAX_SCALE);
        exit(1);
    }
    return v;
}

/* malloc that never returns NULL: exits with status 1 instead.  The memory is
 * zeroed so that nothing can depend on uninitialised bytes. */
static inline void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu x %zu bytes)\n", count, size);
        exit(1);
    }
    return p;
}

/* Stops with status 1 when a kernel's self-check fails. */
static inline _Noreturn void kernel_fail(const char *name, const char *what)
{
    fprintf(stderr, "%s: self-check failed: %s\n", name, what);
    exit(1);
}

/* ---- pseudo-random numbers ------------------------------------------- */

/* splitmix64 (Steele, Lea, Flood 2014): the state advances by a constant and
 * the output is a bijective mix of it. */
static inline uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform double in [0, 1): the top 53 bits, converted exactly. */
static inline double rand_unit(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform double in [-1, 1). */
static inline double rand_signed(uint64_t *state)
{
    return 2.0 * rand_unit(state) - 1.0;
}

/* Uniform integer in [0, n) for n > 0 (the tiny modulo bias is irrelevant). */
static inline uint32_t rand_below(uint64_t *state, uint32_t n)
{
    return (uint32_t)((splitmix64(state) >> 32) % n);
}

/* ---- result hashing -------------------------------------------------- */

/* The hash is an FNV-1a-style fold over 64-bit words: h = (h ^ w) * P, then
 * a shift-xor so high bits feed back into low ones.  Each step is a bijection
 * of h for a fixed word, so changing any single bit of any word changes the
 * final value.  kernel_finish() applies the splitmix64 finaliser. */
#define HASH_INIT UINT64_C(0xcbf29ce484222325)
#define HASH_PRIME UINT64_C(0x00000100000001b3)

static inline uint64_t hash_u64(uint64_t h, uint64_t w)
{
    h = (h ^ w) * HASH_PRIME;
    return h ^ (h >> 29);
}

/* Folds the bit pattern of a double (so -0.0 and 0.0 differ). */
static inline uint64_t hash_f64(uint64_t h, double d)
{
    uint64_t w;
    memcpy(&w, &d, sizeof w);
    return hash_u64(h, w);
}

static inline uint64_t hash_f64s(uint64_t h, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = hash_f64(h, v[i]);
    return h;
}

static inline uint64_t hash_u64s(uint64_t h, const uint64_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = hash_u64(h, v[i]);
    return h;
}

static inline uint64_t hash_u32s(uint64_t h, const uint32_t *v, size_t n)
{
    size_t i = 0;
    for (; i + 1 < n; i += 2)
        h = hash_u64(h, (uint64_t)v[i] | (uint64_t)v[i + 1] << 32);
    if (i < n)
        h = hash_u64(h, v[i]);
    return hash_u64(h, n);
}

/* Bytes, read as little-endian 64-bit words; the length is folded in last. */
static inline uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int b = 7; b >= 0; b--)
            w = w << 8 | p[i + (size_t)b];
        h = hash_u64(h, w);
    }
    uint64_t w = 0;
    for (size_t b = n; b > i; b--)
        w = w << 8 | p[b - 1];
    h = hash_u64(h, w);
    return hash_u64(h, (uint64_t)n);
}

/* Prints the result line "<name> <16 hex digits>\n" and returns the exit
 * status for main (1 if stdout could not be written). */
static inline int kernel_finish(const char *name, uint64_t h)
{
    h ^= h >> 30;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 27;
    h *= UINT64_C(0x94d049bb133111eb);
    h ^= h >> 31;
    printf("%s %016" PRIx64 "\n", name, h);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: cannot write stdout\n", name);
        return 1;
    }
    return 0;
}

#endif /* GRIDMINT_KERNELS_COMMON_H */
