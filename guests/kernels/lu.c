/* lu: LU factorisation with partial pivoting in double precision.
 *
 * usage: lu [scale]            stdout: "lu <16 hex>\n"
 *
 * Each repetition builds a fresh N x N matrix A of uniform values in [-1, 1)
 * (a general, non-symmetric matrix), factors P A = L U in place with the
 * right-looking (k-i-j) Doolittle algorithm -- the pivot is the first entry of
 * largest magnitude in the column -- and solves A x = b.  The residual
 * |A x - b| relative to |A| |x| is checked (exit 1 if it is not small).  The
 * hash covers the packed L\U factors, the pivot order and x of every
 * repetition.  Repetitions = REPS * scale; memory does not grow.
 */
#include "common.h"

#define N 800     /* matrix order: 2 matrices of 4.9 MiB */
#define REPS 12   /* factorisations at scale 1 */

static double absd(double v) { return v < 0.0 ? -v : v; }

/* Factors a in place; perm[i] is the original row now in row i. */
static void factor(double *a, uint32_t *perm)
{
    for (int i = 0; i < N; i++)
        perm[i] = (uint32_t)i;
    for (int k = 0; k < N; k++) {
        int p = k;
        double best = absd(a[(size_t)k * N + k]);
        for (int i = k + 1; i < N; i++) {
            double v = absd(a[(size_t)i * N + k]);
            if (v > best) {
                best = v;
                p = i;
            }
        }
        if (best == 0.0)
            kernel_fail("lu", "singular matrix");
        if (p != k) {
            double *rk = a + (size_t)k * N, *rp = a + (size_t)p * N;
            for (int j = 0; j < N; j++) {
                double t = rk[j];
                rk[j] = rp[j];
                rp[j] = t;
            }
            uint32_t t = perm[k];
            perm[k] = perm[p];
            perm[p] = t;
        }
        const double *rk = a + (size_t)k * N;
        const double pivot = rk[k];
        for (int i = k + 1; i < N; i++) {
            double *ri = a + (size_t)i * N;
            const double m = ri[k] / pivot;
            ri[k] = m;
            for (int j = k + 1; j < N; j++)
                ri[j] -= m * rk[j];
        }
    }
}

/* Solves L U x = P b. */
static void solve(const double *lu, const uint32_t *perm, const double *b, double *x)
{
    for (int i = 0; i < N; i++) {
        double s = b[perm[i]];
        for (int k = 0; k < i; k++)
            s -= lu[(size_t)i * N + k] * x[k];
        x[i] = s;
    }
    for (int i = N - 1; i >= 0; i--) {
        double s = x[i];
        for (int k = i + 1; k < N; k++)
            s -= lu[(size_t)i * N + k] * x[k];
        x[i] = s / lu[(size_t)i * N + i];
    }
}

int main(int argc, char **argv)
{
    const uint32_t reps = REPS * kernel_scale(argc, argv, "lu");
    double *a = xcalloc((size_t)N * N, sizeof *a);
    double *lu = xcalloc((size_t)N * N, sizeof *lu);
    double *b = xcalloc(N, sizeof *b);
    double *x = xcalloc(N, sizeof *x);
    uint32_t *perm = xcalloc(N, sizeof *perm);
    uint64_t h = HASH_INIT;

    for (uint32_t r = 0; r < reps; r++) {
        uint64_t seed = UINT64_C(0x6c75) + r;
        for (size_t i = 0; i < (size_t)N * N; i++)
            a[i] = rand_signed(&seed);
        for (int i = 0; i < N; i++)
            b[i] = rand_signed(&seed);
        memcpy(lu, a, (size_t)N * N * sizeof *lu);
        factor(lu, perm);
        solve(lu, perm, b, x);

        /* Self-check: backward error max|Ax-b| / (max|A| * max|x| * N). */
        double worst = 0.0, xmax = 0.0;
        for (int i = 0; i < N; i++) {
            double s = -b[i];
            for (int k = 0; k < N; k++)
                s += a[(size_t)i * N + k] * x[k];
            if (absd(s) > worst)
                worst = absd(s);
            if (absd(x[i]) > xmax)
                xmax = absd(x[i]);
        }
        if (!(worst < 1e-10 * xmax * N))
            kernel_fail("lu", "residual too large");

        h = hash_f64s(h, lu, (size_t)N * N);
        h = hash_u32s(h, perm, N);
        h = hash_f64s(h, x, N);
    }

    free(a);
    free(lu);
    free(b);
    free(x);
    free(perm);
    return kernel_finish("lu", h);
}
