/* triad: STREAM-style memory-bandwidth kernel (copy, scale, add, triad).
 *
 * usage: triad [scale]         stdout: "triad <16 hex>\n"
 *
 * Three arrays a, b, c of NELEM doubles (32 MiB each, 96 MiB in all: larger
 * than the caches of a typical core's share); a starts with uniform values
 * in [1, 2).  Each repetition runs the four STREAM loops
 *     copy  c[i] = a[i+1]      scale b = S * c
 *     add   c = a + b          triad a = b + S * c
 * Together they set a[i] to (S + S^2) a[i+1] + S a[i] (indices wrap), and
 * S = sqrt(2) - 1 makes the weights sum to 1: a moving weighted average, so
 * the values stay within about [1, 2] however many repetitions run, yet keep
 * changing (with the copy reading a[i] instead of a[i+1] the map would be a
 * plain multiplication by 1 that rounding turns into a fixed point, and more
 * repetitions would not change the result).  Repetitions = REPS * scale;
 * memory does not grow.  The hash covers all three arrays.
 */
#include "common.h"

#define NELEM (1u << 22)  /* elements per array */
#define REPS 64           /* STREAM rounds at scale 1 */
#define S 0.41421356237309504880  /* sqrt(2) - 1 */

int main(int argc, char **argv)
{
    const uint32_t reps = REPS * kernel_scale(argc, argv, "triad");
    double *a = xcalloc(NELEM, sizeof *a);
    double *b = xcalloc(NELEM, sizeof *b);
    double *c = xcalloc(NELEM, sizeof *c);

    uint64_t seed = UINT64_C(0x747269616421);
    for (uint32_t i = 0; i < NELEM; i++) {
        a[i] = 1.0 + rand_unit(&seed);
    }

    for (uint32_t r = 0; r < reps; r++) {
        for (uint32_t i = 0; i < NELEM - 1; i++)
            c[i] = a[i + 1];
        c[NELEM - 1] = a[0];
        for (uint32_t i = 0; i < NELEM; i++)
            b[i] = S * c[i];
        for (uint32_t i = 0; i < NELEM; i++)
            c[i] = a[i] + b[i];
        for (uint32_t i = 0; i < NELEM; i++)
            a[i] = b[i] + S * c[i];
    }

    uint64_t h = hash_f64s(HASH_INIT, a, NELEM);
    h = hash_f64s(h, b, NELEM);
    h = hash_f64s(h, c, NELEM);
    free(a);
    free(b);
    free(c);
    return kernel_finish("triad", h);
}
