/* Hostile guest: allocates memory forever, touching every page, so it runs
 * into the sandbox memory limit.  When an allocation fails it retries with
 * smaller chunks (down to 4 KiB) and then keeps retrying forever instead of
 * exiting cleanly.  Chunks are kept on a list reachable from a volatile
 * global so the compiler cannot drop the allocations. */
#include <stdlib.h>

#define CHUNK (1u << 20)
#define PAGE 4096u

static void *volatile head;

int main(void)
{
    size_t size = CHUNK;
    for (;;) {
        volatile char *p = malloc(size);
        if (p == NULL) {
            if (size > PAGE)
                size /= 2;
            continue;
        }
        for (size_t off = 0; off < size; off += PAGE)
            p[off] = (char)(off >> 12 | 1);
        *(void *volatile *)p = head;
        head = (void *)p;
    }
}
