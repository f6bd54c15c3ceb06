/* Hostile guest: writes 1 MiB blocks to "out.txt" forever.  If the file can't
 * be created or a write fails it reports that on stderr and exits 1. */
#include <stdio.h>
#include <string.h>

static char block[1 << 20];

int main(void)
{
    FILE *f = fopen("out.txt", "w");
    if (f == NULL) {
        fprintf(stderr, "diskbomb: cannot create out.txt\n");
        return 1;
    }
    memset(block, 'x', sizeof block);
    for (;;) {
        if (fwrite(block, 1, sizeof block, f) != sizeof block || fflush(f) != 0) {
            fprintf(stderr, "diskbomb: write to out.txt failed\n");
            return 1;
        }
    }
}
