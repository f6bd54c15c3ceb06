/* Renders one tile of a Mandelbrot image.
 *
 * usage: mandel <width> <height> <x0> <y0> <w> <h> [max_iter=256]
 *
 * The full <width> x <height> image shows the region of the complex plane
 * centred on (-0.75, 0), 3.0 units wide, with the height scaled by the
 * aspect ratio (square pixels).  Only the tile with top-left pixel (x0, y0)
 * and size w x h is computed.
 *
 * stdout (binary): "GMT1", then little-endian u32 x0, y0, w, h, then w*h*3
 * bytes of RGB, row-major.
 *
 * Colouring uses the continuous ("smooth") escape count fed to a cosine
 * palette; points inside the set are black.  Only IEEE double arithmetic and
 * the C library's log/cos/sqrt are used, so a given binary always produces
 * identical bytes for identical arguments.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_DIM 65536u
#define MAX_ITER 1000000u

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static void put_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static unsigned char channel(double v)
{
    if (v <= 0.0)
        return 0;
    if (v >= 1.0)
        return 255;
    return (unsigned char)(v * 255.0 + 0.5);
}

static void colour(double cr, double ci, uint32_t max_iter, unsigned char *rgb)
{
    /* Skip the main cardioid and the period-2 bulb: they never escape. */
    double q = (cr - 0.25) * (cr - 0.25) + ci * ci;
    if (q * (q + (cr - 0.25)) <= 0.25 * ci * ci ||
        (cr + 1.0) * (cr + 1.0) + ci * ci <= 0.0625) {
        rgb[0] = rgb[1] = rgb[2] = 0;
        return;
    }

    double zr = 0.0, zi = 0.0, zr2 = 0.0, zi2 = 0.0;
    uint32_t n = 0;
    /* Large bailout radius (256) keeps the smooth count continuous. */
    while (n < max_iter && zr2 + zi2 <= 65536.0) {
        zi = 2.0 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
        zr2 = zr * zr;
        zi2 = zi * zi;
        n++;
    }
    if (n >= max_iter) {
        rgb[0] = rgb[1] = rgb[2] = 0;
        return;
    }

    /* Continuous escape count: n + 1 - log2(log|z|). */
    double mu = (double)n + 1.0 - log(0.5 * log(zr2 + zi2)) / log(2.0);
    if (mu < 0.0)
        mu = 0.0;
    double t = sqrt(mu) * 0.18;
    const double two_pi = 6.283185307179586;
    /* Cosine palette a + b*cos(2*pi*(t + d)): deep blue -> gold -> white. */
    rgb[0] = channel(0.5 + 0.5 * cos(two_pi * (t + 0.00)));
    rgb[1] = channel(0.5 + 0.5 * cos(two_pi * (t + 0.10)));
    rgb[2] = channel(0.5 + 0.5 * cos(two_pi * (t + 0.20)));
}

int main(int argc, char **argv)
{
    uint32_t width, height, x0, y0, w, h, max_iter = 256;
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: mandel <width> <height> <x0> <y0> <w> <h> [max_iter=256]\n");
        return 1;
    }
    if (parse_u32(argv[1], MAX_DIM, &width) || width == 0 ||
        parse_u32(argv[2], MAX_DIM, &height) || height == 0) {
        fprintf(stderr, "mandel: width and height must be integers in 1..%u\n", MAX_DIM);
        return 1;
    }
    if (parse_u32(argv[3], MAX_DIM, &x0) || parse_u32(argv[4], MAX_DIM, &y0) ||
        parse_u32(argv[5], MAX_DIM, &w) || parse_u32(argv[6], MAX_DIM, &h)) {
        fprintf(stderr, "mandel: invalid tile geometry\n");
        return 1;
    }
    if (w == 0 || h == 0 || x0 + w > width || y0 + h > height) {
        fprintf(stderr, "mandel: tile %ux%u at (%u,%u) is empty or outside the %ux%u image\n",
                w, h, x0, y0, width, height);
        return 1;
    }
    if (argc == 8 && (parse_u32(argv[7], MAX_ITER, &max_iter) || max_iter == 0)) {
        fprintf(stderr, "mandel: max_iter must be an integer in 1..%u\n", MAX_ITER);
        return 1;
    }

    unsigned char header[20];
    header[0] = 'G'; header[1] = 'M'; header[2] = 'T'; header[3] = '1';
    put_u32le(header + 4, x0);
    put_u32le(header + 8, y0);
    put_u32le(header + 12, w);
    put_u32le(header + 16, h);

    unsigned char *row = malloc((size_t)w * 3);
    if (row == NULL) {
        fprintf(stderr, "mandel: out of memory\n");
        return 1;
    }
    if (fwrite(header, 1, sizeof header, stdout) != sizeof header)
        goto write_error;

    const double scale = 3.0 / (double)width;
    for (uint32_t y = 0; y < h; y++) {
        /* Imaginary axis points up. */
        double ci = -(((double)(y0 + y) + 0.5) - 0.5 * (double)height) * scale;
        for (uint32_t x = 0; x < w; x++) {
            double cr = -0.75 + (((double)(x0 + x) + 0.5) - 0.5 * (double)width) * scale;
            colour(cr, ci, max_iter, row + (size_t)x * 3);
        }
        if (fwrite(row, 3, w, stdout) != w)
            goto write_error;
    }
    if (fflush(stdout) != 0)
        goto write_error;
    free(row);
    return 0;

write_error:
    fprintf(stderr, "mandel: write error on stdout\n");
    return 1;
}
