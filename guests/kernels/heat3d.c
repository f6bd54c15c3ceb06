/* heat3d: explicit 3-D heat equation, seven-point stencil, double precision.
 *
 * usage: heat3d [scale]        stdout: "heat3d <16 hex>\n"
 *
 * An (N+2)^3 grid with a fixed (Dirichlet) border: the z = 0 face is hot
 * (1.0), the other faces cold (0.0).  The interior starts as uniform noise
 * in [0, 0.5) plus a few hot cubes.  Each time step computes
 *     u' = u + ALPHA * ((x- + x+) + (y- + y+) + (z- + z+) - 6 u)
 * with ALPHA = 1/8 (stable: <= 1/6), reading one grid and writing the other.
 * Steps = STEPS * scale; memory does not grow.  The hash covers the whole
 * final grid.
 */
#include "common.h"

#define N 128         /* interior points per side: two grids of 17 MiB */
#define STEPS 600     /* time steps at scale 1 */
#define W (N + 2)     /* points per side, with the border */
#define ALPHA 0.125

#define AT(x, y, z) (((size_t)(z) * W + (size_t)(y)) * W + (size_t)(x))

static void step(const double *restrict in, double *restrict out)
{
    for (int z = 1; z <= N; z++)
        for (int y = 1; y <= N; y++) {
            const double *c = in + AT(0, y, z);
            const double *ym = in + AT(0, y - 1, z), *yp = in + AT(0, y + 1, z);
            const double *zm = in + AT(0, y, z - 1), *zp = in + AT(0, y, z + 1);
            double *o = out + AT(0, y, z);
            for (int x = 1; x <= N; x++) {
                const double lap = (c[x - 1] + c[x + 1]) + (ym[x] + yp[x]) + (zm[x] + zp[x])
                                   - 6.0 * c[x];
                o[x] = c[x] + ALPHA * lap;
            }
        }
}

int main(int argc, char **argv)
{
    const uint32_t steps = STEPS * kernel_scale(argc, argv, "heat3d");
    const size_t cells = (size_t)W * W * W;
    double *a = xcalloc(cells, sizeof *a);
    double *b = xcalloc(cells, sizeof *b);

    uint64_t seed = UINT64_C(0x68656174);
    for (int y = 0; y < W; y++) /* hot face z = 0 */
        for (int x = 0; x < W; x++)
            a[AT(x, y, 0)] = 1.0;
    for (int z = 1; z <= N; z++)
        for (int y = 1; y <= N; y++)
            for (int x = 1; x <= N; x++)
                a[AT(x, y, z)] = 0.5 * rand_unit(&seed);
    for (int k = 0; k < 8; k++) { /* hot cubes of side 8 */
        int x0 = 1 + (int)rand_below(&seed, N - 8);
        int y0 = 1 + (int)rand_below(&seed, N - 8);
        int z0 = 1 + (int)rand_below(&seed, N - 8);
        double t = 2.0 + 8.0 * rand_unit(&seed);
        for (int z = z0; z < z0 + 8; z++)
            for (int y = y0; y < y0 + 8; y++)
                for (int x = x0; x < x0 + 8; x++)
                    a[AT(x, y, z)] = t;
    }
    memcpy(b, a, cells * sizeof *b); /* same border in both grids */

    for (uint32_t s = 0; s < steps; s++) {
        step(a, b);
        double *t = a;
        a = b;
        b = t;
    }

    uint64_t h = hash_f64s(HASH_INIT, a, cells);
    free(a);
    free(b);
    return kernel_finish("heat3d", h);
}
