/* nw: Needleman-Wunsch global alignment of DNA sequences (integer DP).
 *
 * usage: nw [scale]            stdout: "nw <16 hex>\n"
 *
 * Each repetition generates a random sequence a over ACGT of length L and a
 * relative b of it (about 10% substitutions, 5% insertions, 5% deletions,
 * cut or padded to length L), then fills the (L+1) x (L+1) score matrix
 *     H[i][j] = max(H[i-1][j-1] + s(a_i, b_j), H[i-1][j] + GAP, H[i][j-1] + GAP)
 * keeping two rows of scores (int32) and the full matrix of 2-bit choices
 * (one byte per cell), then traces back one optimal alignment (ties prefer
 * diagonal, then up, then left).  The hash covers the final score row, the
 * alignment's edit string (M/X/I/D per column) and its score, for every
 * repetition.  Repetitions = REPS * scale; memory does not grow.
 */
#include "common.h"

#define L 4096        /* sequence length: 16 MiB choice matrix */
#define REPS 16       /* alignments at scale 1 */
#define MATCH 2
#define MISMATCH (-1)
#define GAP (-2)

enum { FROM_DIAG = 0, FROM_UP = 1, FROM_LEFT = 2 };

static void make_pair(uint8_t *a, uint8_t *b, uint64_t seed)
{
    for (int i = 0; i < L; i++)
        a[i] = (uint8_t)rand_below(&seed, 4);
    int j = 0;
    for (int i = 0; i < L && j < L; i++) {
        uint32_t r = rand_below(&seed, 100);
        if (r < 5)
            continue;                               /* deletion */
        if (r < 10)
            b[j++] = (uint8_t)rand_below(&seed, 4); /* insertion */
        if (j < L)
            b[j++] = r < 20 ? (uint8_t)((a[i] + 1 + rand_below(&seed, 3)) & 3) /* substitution */
                            : a[i];
    }
    while (j < L)
        b[j++] = (uint8_t)rand_below(&seed, 4);
}

/* Fills the choice matrix dir ((L+1) x (L+1)) using the two score rows
 * row0 and row1; returns the one that ends up holding the last row H[L][*]. */
static const int32_t *fill(const uint8_t *a, const uint8_t *b, uint8_t *dir,
                           int32_t *row0, int32_t *row1)
{
    int32_t *prev = row0, *cur = row1;
    for (int j = 0; j <= L; j++) {
        prev[j] = GAP * j;
        dir[j] = FROM_LEFT;
    }
    for (int i = 1; i <= L; i++) {
        uint8_t *d = dir + (size_t)i * (L + 1);
        const uint8_t ai = a[i - 1];
        cur[0] = GAP * i;
        d[0] = FROM_UP;
        for (int j = 1; j <= L; j++) {
            int32_t best = prev[j - 1] + (ai == b[j - 1] ? MATCH : MISMATCH);
            uint8_t how = FROM_DIAG;
            int32_t up = prev[j] + GAP;
            if (up > best) {
                best = up;
                how = FROM_UP;
            }
            int32_t left = cur[j - 1] + GAP;
            if (left > best) {
                best = left;
                how = FROM_LEFT;
            }
            cur[j] = best;
            d[j] = how;
        }
        int32_t *t = prev;
        prev = cur;
        cur = t;
    }
    return prev; /* swapped after the last row */
}

int main(int argc, char **argv)
{
    const uint32_t reps = REPS * kernel_scale(argc, argv, "nw");
    uint8_t *a = xcalloc(L, 1), *b = xcalloc(L, 1);
    uint8_t *dir = xcalloc((size_t)(L + 1) * (L + 1), 1);
    int32_t *row0 = xcalloc(L + 1, sizeof *row0), *row1 = xcalloc(L + 1, sizeof *row1);
    char *edits = xcalloc(2 * L, 1);
    uint64_t h = HASH_INIT;

    for (uint32_t r = 0; r < reps; r++) {
        make_pair(a, b, UINT64_C(0x6e77) + r);
        const int32_t *last = fill(a, b, dir, row0, row1);
        const int32_t score = last[L];

        /* Trace back from (L, L) to (0, 0); the edit string comes out
         * reversed, which is fine for hashing.  Re-score it as a check. */
        size_t n = 0;
        int32_t rescore = 0;
        int i = L, j = L;
        while (i > 0 || j > 0) {
            switch (dir[(size_t)i * (L + 1) + j]) {
            case FROM_DIAG:
                i--, j--;
                edits[n++] = a[i] == b[j] ? 'M' : 'X';
                rescore += a[i] == b[j] ? MATCH : MISMATCH;
                break;
            case FROM_UP:
                i--;
                edits[n++] = 'D';
                rescore += GAP;
                break;
            default:
                j--;
                edits[n++] = 'I';
                rescore += GAP;
                break;
            }
        }
        if (rescore != score)
            kernel_fail("nw", "traceback does not reproduce the score");

        for (int k = 0; k <= L; k++)
            h = hash_u64(h, (uint32_t)last[k]);
        h = hash_bytes(h, edits, n);
        h = hash_u64(h, (uint32_t)score);
    }

    free(a);
    free(b);
    free(dir);
    free(row0);
    free(row1);
    free(edits);
    return kernel_finish("nw", h);
}
