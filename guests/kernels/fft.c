/* fft: iterative radix-2 complex FFT in double precision.
 *
 * usage: fft [scale]           stdout: "fft <16 hex>\n"
 *
 * Each repetition generates NFFT = 2^20 random complex samples (uniform in
 * [-1, 1)), computes the forward DFT X_k = sum_n x_n e^(-2 pi i k n / NFFT)
 * with a bit-reversal permutation followed by log2(NFFT) butterfly passes,
 * then the inverse transform (scaled by 1/NFFT, a power of two, so exactly),
 * and checks that the round trip returns the input to within 1e-12.  The hash
 * covers the spectrum and the round-trip result of every repetition.
 * Repetitions = REPS * scale; memory does not grow.
 *
 * The twiddle factors e^(-2 pi i k / NFFT) come from kernel_sincos() below --
 * octant reduction in exact integer arithmetic plus Taylor polynomials --
 * built only from + - * /, so they are the same bits on every IEEE-754
 * target (libm's sin/cos differ between glibc and wasi-libc).
 */
#include "common.h"

#define LOG2N 20
#define NFFT (1u << LOG2N)  /* points: 16 MiB of samples, 8 MiB of twiddles */
#define REPS 6              /* forward + inverse transforms at scale 1 */

/* A complex signal in split form: real and imaginary parts in separate
 * arrays.  (Interleaved re/im pairs would let gcc 12 match its complex
 * multiply pattern and emit vfmaddsub -- a fused multiply-add -- under
 * -mfma even with -ffp-contract=off, changing the result.) */
typedef struct {
    double *re, *im;
} signal;

/* pi/4, correctly rounded to double. */
#define QUARTER_PI 0.78539816339744830962

/* sin(x) and cos(x) for 0 <= x <= pi/4 by their Taylor series in Horner
 * form, summed up to x^19 and x^18; the first omitted terms are below
 * 1e-20, far under half an ulp of the result. */
static double taylor_sin(double x)
{
    const double x2 = x * x;
    double s = 1.0;
    for (int k = 19; k >= 3; k -= 2) /* 1 - x^2/(2*3) (1 - x^2/(4*5) (...)) */
        s = 1.0 - x2 / (double)((k - 1) * k) * s;
    return x * s;
}

static double taylor_cos(double x)
{
    const double x2 = x * x;
    double c = 1.0;
    for (int k = 18; k >= 2; k -= 2) /* 1 - x^2/(1*2) (1 - x^2/(3*4) (...)) */
        c = 1.0 - x2 / (double)((k - 1) * k) * c;
    return c;
}

/* cos and sin of 2 pi k / n, for n a power of two >= 8 and any k.  The turn
 * is split into eighths in integer arithmetic, so the polynomial only sees
 * angles in [0, pi/4]; the symmetries of sine and cosine give the rest. */
static void kernel_sincos(uint32_t k, uint32_t n, double *c, double *s)
{
    k &= n - 1;
    const uint64_t eighths = (uint64_t)k * 8;     /* angle in units of pi/4 / n */
    const uint32_t octant = (uint32_t)(eighths / n);
    uint32_t rem = (uint32_t)(eighths % n);       /* angle within the octant */
    /* Odd octants are measured back from the next multiple of pi/2, so the
     * angle handed to the polynomials is always in [0, pi/4]. */
    const int odd = octant & 1;
    if (odd)
        rem = n - rem;
    const double x = QUARTER_PI * ((double)rem / (double)n); /* n: power of two */
    /* Negation is written 0.0 - v so that exact zeros stay +0.0. */
    const double cx = taylor_cos(x);
    const double sx = odd ? 0.0 - taylor_sin(x) : taylor_sin(x); /* quadrant*pi/2 - x */
    /* Rotate by quadrant * pi/2, quadrant = ceil(octant / 2) for odd octants. */
    const uint32_t quadrant = ((octant + (uint32_t)odd) / 2) & 3;
    switch (quadrant) {
    case 0: *c = cx;        *s = sx;        break;
    case 1: *c = 0.0 - sx;  *s = cx;        break;
    case 2: *c = 0.0 - cx;  *s = 0.0 - sx;  break;
    default: *c = sx;       *s = 0.0 - cx;  break;
    }
}

static uint64_t hash_signal(uint64_t h, signal v)
{
    for (uint32_t i = 0; i < NFFT; i++) {
        h = hash_f64(h, v.re[i]);
        h = hash_f64(h, v.im[i]);
    }
    return h;
}

/* In-place transform of v; w holds e^(-2 pi i k / NFFT) for k < NFFT/2.
 * inverse != 0 uses the conjugate twiddles (no scaling here). */
static void fft(signal v, signal w, int inverse)
{
    double *restrict re = v.re, *restrict im = v.im;
    /* Bit-reversal permutation. */
    for (uint32_t i = 1, j = 0; i < NFFT; i++) {
        uint32_t bit = NFFT >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j |= bit;
        if (i < j) {
            double t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    /* Butterflies: blocks of size len, twiddle stride NFFT / len. */
    for (uint32_t len = 2; len <= NFFT; len <<= 1) {
        const uint32_t half = len >> 1, stride = NFFT / len;
        for (uint32_t start = 0; start < NFFT; start += len) {
            for (uint32_t k = 0; k < half; k++) {
                const double wr = w.re[k * stride];
                const double wi = inverse ? -w.im[k * stride] : w.im[k * stride];
                const uint32_t p = start + k, q = p + half;
                const double tr = re[q] * wr - im[q] * wi;
                const double ti = re[q] * wi + im[q] * wr;
                re[q] = re[p] - tr;
                im[q] = im[p] - ti;
                re[p] = re[p] + tr;
                im[p] = im[p] + ti;
            }
        }
    }
}

static signal new_signal(uint32_t n)
{
    return (signal){xcalloc(n, sizeof(double)), xcalloc(n, sizeof(double))};
}

static void free_signal(signal v)
{
    free(v.re);
    free(v.im);
}

int main(int argc, char **argv)
{
    const uint32_t reps = REPS * kernel_scale(argc, argv, "fft");
    signal x = new_signal(NFFT), v = new_signal(NFFT), w = new_signal(NFFT / 2);

    for (uint32_t k = 0; k < NFFT / 2; k++) {
        double c, s;
        kernel_sincos(k, NFFT, &c, &s);
        w.re[k] = c;
        w.im[k] = 0.0 - s;
    }

    /* Self-check of the twiddles: cos^2 + sin^2 = 1 and e^(-i pi/2) = -i. */
    for (uint32_t k = 0; k < NFFT / 2; k += 4097) {
        const double one = w.re[k] * w.re[k] + w.im[k] * w.im[k];
        if (!(one > 1.0 - 1e-15 && one < 1.0 + 1e-15))
            kernel_fail("fft", "twiddle factor off the unit circle");
    }
    if (w.re[NFFT / 4] != 0.0 || w.im[NFFT / 4] != -1.0)
        kernel_fail("fft", "twiddle factor at pi/2");

    uint64_t h = HASH_INIT;
    for (uint32_t r = 0; r < reps; r++) {
        uint64_t seed = UINT64_C(0x666674) + r;
        for (uint32_t i = 0; i < NFFT; i++) {
            x.re[i] = rand_signed(&seed);
            x.im[i] = rand_signed(&seed);
        }
        memcpy(v.re, x.re, NFFT * sizeof(double));
        memcpy(v.im, x.im, NFFT * sizeof(double));
        fft(v, w, 0);
        h = hash_signal(h, v);

        fft(v, w, 1);
        const double scale = 1.0 / (double)NFFT;
        double worst = 0.0;
        for (uint32_t i = 0; i < NFFT; i++) {
            v.re[i] *= scale;
            v.im[i] *= scale;
            double dr = v.re[i] - x.re[i], di = v.im[i] - x.im[i];
            dr = dr < 0.0 ? -dr : dr;
            di = di < 0.0 ? -di : di;
            if (dr > worst)
                worst = dr;
            if (di > worst)
                worst = di;
        }
        if (!(worst < 1e-12))
            kernel_fail("fft", "inverse transform does not return the input");
        h = hash_signal(h, v);
    }

    free_signal(x);
    free_signal(v);
    free_signal(w);
    return kernel_finish("fft", h);
}
