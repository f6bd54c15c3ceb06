/* sort: bottom-up merge sort of pseudo-random 64-bit keys.
 *
 * usage: sort [scale]          stdout: "sort <16 hex>\n"
 *
 * Each repetition generates NKEYS uint64 keys -- a mix of full-range values,
 * values from a small range (many duplicates) and short ascending runs -- and
 * sorts them ascending: insertion sort on blocks of RUN keys, then merge
 * passes of doubling width between two buffers.  The merge is branchy
 * (compare, then take from the left or the right run).  A self-check
 * verifies the order and that the sum and xor of the keys are unchanged.
 * The hash covers the whole sorted array of every repetition.  Repetitions =
 * REPS * scale; memory does not grow.
 */
#include "common.h"

#define NKEYS (1u << 21)  /* keys: two buffers of 16 MiB */
#define REPS 6            /* sorts at scale 1 */
#define RUN 32            /* insertion-sorted block length */

static void generate(uint64_t *v, uint64_t seed)
{
    uint64_t run = 0;
    for (uint32_t i = 0; i < NKEYS; i++) {
        const uint64_t r = splitmix64(&seed);
        switch (r & 7) {
        case 0: /* a small range: many equal keys */
            v[i] = (r >> 8) % 1000;
            break;
        case 1: /* continue an ascending run */
            v[i] = run += (r >> 40) & 0xff;
            break;
        default:
            v[i] = r;
            break;
        }
    }
}

static void insertion_sort(uint64_t *v, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        const uint64_t key = v[i];
        uint32_t j = i;
        for (; j > 0 && v[j - 1] > key; j--)
            v[j] = v[j - 1];
        v[j] = key;
    }
}

/* Merges the sorted runs src[lo, mid) and src[mid, hi) into dst[lo, hi). */
static void merge(const uint64_t *src, uint64_t *dst, uint32_t lo, uint32_t mid, uint32_t hi)
{
    uint32_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi) {
        if (src[j] < src[i])
            dst[k++] = src[j++];
        else
            dst[k++] = src[i++];
    }
    while (i < mid)
        dst[k++] = src[i++];
    while (j < hi)
        dst[k++] = src[j++];
}

/* Sorts v using tmp (same size); returns the buffer that holds the result. */
static uint64_t *merge_sort(uint64_t *v, uint64_t *tmp)
{
    for (uint32_t lo = 0; lo < NKEYS; lo += RUN)
        insertion_sort(v + lo, NKEYS - lo < RUN ? NKEYS - lo : RUN);
    uint64_t *src = v, *dst = tmp;
    for (uint32_t width = RUN; width < NKEYS; width *= 2) {
        for (uint32_t lo = 0; lo < NKEYS; lo += 2 * width) {
            const uint32_t mid = NKEYS - lo < width ? NKEYS : lo + width;
            const uint32_t hi = NKEYS - lo < 2 * width ? NKEYS : lo + 2 * width;
            merge(src, dst, lo, mid, hi);
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

int main(int argc, char **argv)
{
    const uint32_t reps = REPS * kernel_scale(argc, argv, "sort");
    uint64_t *v = xcalloc(NKEYS, sizeof *v);
    uint64_t *tmp = xcalloc(NKEYS, sizeof *tmp);
    uint64_t h = HASH_INIT;

    for (uint32_t r = 0; r < reps; r++) {
        generate(v, UINT64_C(0x736f7274) + r);
        uint64_t sum = 0, xr = 0;
        for (uint32_t i = 0; i < NKEYS; i++) {
            sum += v[i];
            xr ^= v[i];
        }
        const uint64_t *sorted = merge_sort(v, tmp);
        for (uint32_t i = 0; i < NKEYS; i++) {
            sum -= sorted[i];
            xr ^= sorted[i];
            if (i > 0 && sorted[i - 1] > sorted[i])
                kernel_fail("sort", "output out of order");
        }
        if (sum != 0 || xr != 0)
            kernel_fail("sort", "output is not a permutation of the input");
        h = hash_u64s(h, sorted, NKEYS);
    }

    free(v);
    free(tmp);
    return kernel_finish("sort", h);
}
