/* Hostile guest: writes 1 MiB blocks to stdout forever.  If a write fails
 * (e.g. the host closed or capped the stream) it reports that on stderr and
 * exits 1. */
#include <stdio.h>
#include <string.h>

static char block[1 << 20];

int main(void)
{
    memset(block, 'x', sizeof block);
    for (size_t i = 0; i < sizeof block; i += 64)
        block[i] = '\n';
    for (;;) {
        if (fwrite(block, 1, sizeof block, stdout) != sizeof block || fflush(stdout) != 0) {
            fprintf(stderr, "bigout: write to stdout failed\n");
            return 1;
        }
    }
}
