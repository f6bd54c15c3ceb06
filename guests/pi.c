/* Monte Carlo estimate of pi.
 *
 * usage: pi <samples> <seed>      (both unsigned 64-bit decimal)
 * stdout: "<hits> <samples>\n"
 *
 * A splitmix64 generator seeded with <seed> yields, per sample, two doubles
 * in [0,1) built from the top 53 bits of consecutive outputs; a sample is a
 * hit when x*x + y*y <= 1.0.  pi ~= 4 * hits / samples.  The result depends
 * only on the arguments, so independent tasks with distinct seeds can be
 * summed by the caller.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double unit(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0); /* 2^-53 */
}

int main(int argc, char **argv)
{
    uint64_t samples, seed;
    if (argc != 3) {
        fprintf(stderr, "usage: pi <samples> <seed>\n");
        return 1;
    }
    if (parse_u64(argv[1], &samples) != 0) {
        fprintf(stderr, "pi: invalid sample count '%s'\n", argv[1]);
        return 1;
    }
    if (parse_u64(argv[2], &seed) != 0) {
        fprintf(stderr, "pi: invalid seed '%s'\n", argv[2]);
        return 1;
    }

    uint64_t state = seed, hits = 0;
    for (uint64_t i = 0; i < samples; i++) {
        double x = unit(&state);
        double y = unit(&state);
        if (x * x + y * y <= 1.0)
            hits++;
    }

    if (printf("%" PRIu64 " %" PRIu64 "\n", hits, samples) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "pi: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
