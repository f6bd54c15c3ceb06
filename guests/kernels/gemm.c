/* gemm: dense double-precision matrix multiply-accumulate.
 *
 * usage: gemm [scale]          stdout: "gemm <16 hex>\n"
 *
 * A and B are N x N matrices of uniform values in [-1, 1).  Each repetition
 * computes C += A * B (C starts at zero), so after R repetitions C holds R
 * accumulated products.  R = REPS * scale; memory does not grow with scale.
 * The loops run in i-k-j order over cache-sized blocks of k and j; every
 * element of C still receives its products in increasing k order, so the
 * result does not depend on vectorisation.  The hash covers all of C.
 */
#include "common.h"

#define N 512      /* matrix order: 3 matrices of 2 MiB */
#define REPS 32    /* repetitions at scale 1 */
#define KB 128     /* block of k (rows of B kept hot) */
#define JB 256     /* block of j (columns of C and B) */

static void gemm_acc(const double *a, const double *b, double *c)
{
    for (int kk = 0; kk < N; kk += KB)
        for (int jj = 0; jj < N; jj += JB)
            for (int i = 0; i < N; i++) {
                double *ci = c + (size_t)i * N;
                for (int k = kk; k < kk + KB; k++) {
                    const double aik = a[(size_t)i * N + k];
                    const double *bk = b + (size_t)k * N;
                    for (int j = jj; j < jj + JB; j++)
                        ci[j] += aik * bk[j];
                }
            }
}

int main(int argc, char **argv)
{
    const uint32_t reps = REPS * kernel_scale(argc, argv, "gemm");
    double *a = xcalloc((size_t)N * N, sizeof *a);
    double *b = xcalloc((size_t)N * N, sizeof *b);
    double *c = xcalloc((size_t)N * N, sizeof *c);

    uint64_t seed = UINT64_C(0x67656d6d);
    for (size_t i = 0; i < (size_t)N * N; i++) {
        a[i] = rand_signed(&seed);
        b[i] = rand_signed(&seed);
    }
    for (uint32_t r = 0; r < reps; r++)
        gemm_acc(a, b, c);

    uint64_t h = hash_f64s(HASH_INIT, c, (size_t)N * N);
    free(a);
    free(b);
    free(c);
    return kernel_finish("gemm", h);
}
