/* cholesky: Cholesky factorisation and triangular solves in double precision.
 *
 * usage: cholesky [scale]      stdout: "cholesky <16 hex>\n"
 *
 * Each repetition builds a fresh symmetric, strictly diagonally dominant (so
 * positive definite) N x N matrix A -- off-diagonal entries uniform in
 * [-1, 1), diagonal N + 1 -- factors A = L * L^T (row-oriented, inner
 * products in increasing index order, one sqrt per row), then solves
 * A x = b by forward and back substitution.  The residual |A x - b| is checked
 * (exit 1 if it is not tiny).  The hash covers L's lower triangle and x of
 * every repetition.  Repetitions = REPS * scale; memory does not grow.
 */
#include <math.h>

#include "common.h"

#define N 1000    /* matrix order: 2 matrices of 7.6 MiB */
#define REPS 10   /* factorisations at scale 1 */

/* Fills the lower triangle of the symmetric matrix a and the vector b. */
static void make_system(double *a, double *b, uint64_t seed)
{
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < i; j++) {
            double v = rand_signed(&seed);
            a[(size_t)i * N + j] = v;
            a[(size_t)j * N + i] = v;
        }
        a[(size_t)i * N + i] = (double)(N + 1);
        b[i] = rand_signed(&seed);
    }
}

/* Overwrites the lower triangle of l (a copy of A) with L; the strictly upper
 * triangle is left as it was and never read. */
static void factor(double *l)
{
    for (int i = 0; i < N; i++) {
        double *li = l + (size_t)i * N;
        for (int j = 0; j <= i; j++) {
            const double *lj = l + (size_t)j * N;
            double s = li[j];
            for (int k = 0; k < j; k++)
                s -= li[k] * lj[k];
            if (j < i)
                li[j] = s / lj[j];
            else if (s > 0.0)
                li[i] = sqrt(s);
            else
                kernel_fail("cholesky", "matrix not positive definite");
        }
    }
}

/* Solves L L^T x = b; x may not alias b. */
static void solve(const double *l, const double *b, double *x)
{
    for (int i = 0; i < N; i++) { /* L y = b (y stored in x) */
        double s = b[i];
        for (int k = 0; k < i; k++)
            s -= l[(size_t)i * N + k] * x[k];
        x[i] = s / l[(size_t)i * N + i];
    }
    for (int i = N - 1; i >= 0; i--) { /* L^T x = y */
        double s = x[i];
        for (int k = i + 1; k < N; k++)
            s -= l[(size_t)k * N + i] * x[k];
        x[i] = s / l[(size_t)i * N + i];
    }
}

int main(int argc, char **argv)
{
    const uint32_t reps = REPS * kernel_scale(argc, argv, "cholesky");
    double *a = xcalloc((size_t)N * N, sizeof *a);
    double *l = xcalloc((size_t)N * N, sizeof *l);
    double *b = xcalloc(N, sizeof *b);
    double *x = xcalloc(N, sizeof *x);
    uint64_t h = HASH_INIT;

    for (uint32_t r = 0; r < reps; r++) {
        make_system(a, b, UINT64_C(0x63686f6c) + r);
        memcpy(l, a, (size_t)N * N * sizeof *l);
        factor(l);
        solve(l, b, x);

        /* Self-check: max |A x - b| must be at rounding-error level. */
        double worst = 0.0;
        for (int i = 0; i < N; i++) {
            double s = -b[i];
            for (int k = 0; k < N; k++)
                s += a[(size_t)i * N + k] * x[k];
            double e = s < 0.0 ? -s : s;
            if (e > worst)
                worst = e;
        }
        if (!(worst < 1e-9))
            kernel_fail("cholesky", "residual too large");

        for (int i = 0; i < N; i++)
            h = hash_f64s(h, l + (size_t)i * N, (size_t)i + 1);
        h = hash_f64s(h, x, N);
    }

    free(a);
    free(l);
    free(b);
    free(x);
    return kernel_finish("cholesky", h);
}
