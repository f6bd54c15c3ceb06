/* floyd: Floyd-Warshall all-pairs shortest paths on a random weighted
 * directed graph (integer).
 *
 * usage: floyd [scale]         stdout: "floyd <16 hex>\n"
 *
 * Each repetition builds a graph on V vertices: a ring i -> i+1 (so every
 * vertex reaches every other) plus each other arc with probability 1/8,
 * weights uniform in [1, 1000].  The distance matrix (uint32, "no arc" =
 * INF) is relaxed with d[i][j] = min(d[i][j], d[i][k] + d[k][j]) for
 * k = 0 .. V-1; INF + INF cannot overflow a uint32.  The successor matrix is
 * maintained too, and one path per repetition is walked to check that its
 * length equals the distance.  The hash covers the distance and successor
 * matrices of every repetition.  Repetitions = REPS * scale; memory does not
 * grow.
 */
#include "common.h"

#define V 640              /* vertices: two matrices of 1.6 MiB */
#define REPS 8             /* graphs at scale 1 */
#define INF 0x3fffffffu    /* "no path"; INF + INF < 2^32 */
#define MAXW 1000u

static void make_graph(uint32_t *d, uint32_t *w, uint16_t *next, uint64_t seed)
{
    for (uint32_t i = 0; i < V; i++)
        for (uint32_t j = 0; j < V; j++) {
            uint32_t x = INF;
            const uint64_t r = splitmix64(&seed);
            if (i == j)
                x = 0;
            else if (j == (i + 1) % V || (r & 7) == 0)
                x = 1 + (uint32_t)((r >> 32) % MAXW);
            d[i * V + j] = w[i * V + j] = x;
            next[i * V + j] = (uint16_t)j;
        }
}

static void floyd_warshall(uint32_t *d, uint16_t *next)
{
    for (uint32_t k = 0; k < V; k++) {
        const uint32_t *dk = d + k * V;
        for (uint32_t i = 0; i < V; i++) {
            uint32_t *di = d + i * V;
            uint16_t *ni = next + i * V;
            const uint32_t dik = di[k];
            if (dik == INF)
                continue;
            const uint16_t nik = ni[k];
            for (uint32_t j = 0; j < V; j++) {
                const uint32_t via = dik + dk[j];
                if (via < di[j]) {
                    di[j] = via;
                    ni[j] = nik;
                }
            }
        }
    }
}

int main(int argc, char **argv)
{
    const uint32_t reps = REPS * kernel_scale(argc, argv, "floyd");
    uint32_t *d = xcalloc((size_t)V * V, sizeof *d);
    uint32_t *w = xcalloc((size_t)V * V, sizeof *w);
    uint16_t *next = xcalloc((size_t)V * V, sizeof *next);
    uint64_t h = HASH_INIT;

    for (uint32_t r = 0; r < reps; r++) {
        uint64_t seed = UINT64_C(0x666c6f7964) + r;
        make_graph(d, w, next, seed);
        floyd_warshall(d, next);

        /* Self-check: walk the path between two vertices via the successor
         * matrix, adding up the original arc weights. */
        const uint32_t from = rand_below(&seed, V), to = (from + V / 2) % V;
        uint32_t len = 0, steps = 0;
        for (uint32_t at = from; at != to; at = next[at * V + to]) {
            len += w[at * V + next[at * V + to]];
            if (++steps > V)
                kernel_fail("floyd", "successor matrix has a cycle");
        }
        if (len != d[from * V + to])
            kernel_fail("floyd", "path length differs from the distance");

        h = hash_u32s(h, d, (size_t)V * V);
        for (uint32_t i = 0; i < V * V; i += 4)
            h = hash_u64(h, (uint64_t)next[i] | (uint64_t)next[i + 1] << 16 |
                                (uint64_t)next[i + 2] << 32 | (uint64_t)next[i + 3] << 48);
    }

    free(d);
    free(w);
    free(next);
    return kernel_finish("floyd", h);
}
