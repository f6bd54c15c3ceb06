/* jacobi2d: 2-D five-point Jacobi stencil in double precision.
 *
 * usage: jacobi2d [scale]      stdout: "jacobi2d <16 hex>\n"
 *
 * An (N+2) x (N+2) grid: the border is a fixed boundary (values from a
 * smooth-ish pattern built from random corner values), the interior starts
 * with uniform values in [0, 1).  Each sweep replaces every interior point by
 * 0.2 * (centre + north + south + west + east), summed in that order, reading
 * the old grid and writing the other one (the two grids are swapped after
 * each sweep).  Sweeps = STEPS * scale; memory does not grow.  The hash
 * covers the whole final grid, border included.
 */
#include "common.h"

#define N 1024     /* interior points per side: two grids of 8 MiB */
#define STEPS 1600 /* sweeps at scale 1 */
#define W (N + 2)  /* row stride, with the border */

static void sweep(const double *restrict in, double *restrict out)
{
    for (int i = 1; i <= N; i++) {
        const double *up = in + (size_t)(i - 1) * W;
        const double *mid = in + (size_t)i * W;
        const double *down = in + (size_t)(i + 1) * W;
        double *o = out + (size_t)i * W;
        for (int j = 1; j <= N; j++)
            o[j] = 0.2 * ((((mid[j] + up[j]) + down[j]) + mid[j - 1]) + mid[j + 1]);
    }
}

int main(int argc, char **argv)
{
    const uint32_t steps = STEPS * kernel_scale(argc, argv, "jacobi2d");
    double *a = xcalloc((size_t)W * W, sizeof *a);
    double *b = xcalloc((size_t)W * W, sizeof *b);

    uint64_t seed = UINT64_C(0x6a61636f6269);
    /* Boundary: each side interpolates linearly between two random values,
     * with a little noise. */
    double side[4][2];
    for (int s = 0; s < 4; s++)
        for (int e = 0; e < 2; e++)
            side[s][e] = 4.0 * rand_unit(&seed);
    for (int t = 0; t < W; t++) {
        const double f = (double)t / (double)(W - 1);
        double v[4];
        for (int s = 0; s < 4; s++)
            v[s] = side[s][0] + (side[s][1] - side[s][0]) * f + 0.01 * rand_signed(&seed);
        a[t] = v[0];                            /* top row */
        a[(size_t)(W - 1) * W + t] = v[1];      /* bottom row */
        a[(size_t)t * W] = v[2];                /* left column */
        a[(size_t)t * W + (W - 1)] = v[3];      /* right column */
    }
    for (int i = 1; i <= N; i++)
        for (int j = 1; j <= N; j++)
            a[(size_t)i * W + j] = rand_unit(&seed);
    memcpy(b, a, (size_t)W * W * sizeof *b); /* same border in both grids */

    for (uint32_t s = 0; s < steps; s++) {
        sweep(a, b);
        double *t = a;
        a = b;
        b = t;
    }

    uint64_t h = hash_f64s(HASH_INIT, a, (size_t)W * W);
    free(a);
    free(b);
    return kernel_finish("jacobi2d", h);
}
