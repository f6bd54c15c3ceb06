/* Word count, map step.
 *
 * usage: wc_map <input file name>
 *
 * A word is a maximal run of ASCII letters [A-Za-z], lowercased; every other
 * byte is a separator.  stdout: one "word\tcount\n" line per distinct word,
 * sorted by word in byte order.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *word;
    size_t len;
    uint64_t count;
    uint64_t hash;
};

static struct entry *table;
static size_t cap, used;

_Noreturn static void die(const char *msg)
{
    fprintf(stderr, "wc_map: %s\n", msg);
    exit(1);
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */
    while (n--) {
        h ^= (unsigned char)*p++;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static void grow(void)
{
    size_t ncap = cap ? cap * 2 : 1024;
    struct entry *nt = calloc(ncap, sizeof *nt);
    if (nt == NULL)
        die("out of memory");
    for (size_t i = 0; i < cap; i++) {
        if (table[i].word == NULL)
            continue;
        size_t j = (size_t)table[i].hash & (ncap - 1);
        while (nt[j].word != NULL)
            j = (j + 1) & (ncap - 1);
        nt[j] = table[i];
    }
    free(table);
    table = nt;
    cap = ncap;
}

static void add(const char *word, size_t len)
{
    if ((used + 1) * 4 > cap * 3)
        grow();
    uint64_t h = hash_bytes(word, len);
    size_t j = (size_t)h & (cap - 1);
    while (table[j].word != NULL) {
        if (table[j].hash == h && table[j].len == len &&
            memcmp(table[j].word, word, len) == 0) {
            table[j].count++;
            return;
        }
        j = (j + 1) & (cap - 1);
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        die("out of memory");
    memcpy(copy, word, len);
    copy[len] = '\0';
    table[j].word = copy;
    table[j].len = len;
    table[j].count = 1;
    table[j].hash = h;
    used++;
}

static int by_word(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->word, ((const struct entry *)b)->word);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: wc_map <input file name>\n");
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        fprintf(stderr, "wc_map: cannot open '%s'\n", argv[1]);
        return 1;
    }

    static unsigned char buf[1 << 16];
    char *word = NULL;
    size_t wlen = 0, wcap = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < n; i++) {
            unsigned c = buf[i];
            if (c >= 'A' && c <= 'Z')
                c += 'a' - 'A';
            if (c >= 'a' && c <= 'z') {
                if (wlen == wcap) {
                    wcap = wcap ? wcap * 2 : 64;
                    word = realloc(word, wcap);
                    if (word == NULL)
                        die("out of memory");
                }
                word[wlen++] = (char)c;
            } else if (wlen > 0) {
                add(word, wlen);
                wlen = 0;
            }
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "wc_map: read error on '%s'\n", argv[1]);
        return 1;
    }
    fclose(f);
    if (wlen > 0)
        add(word, wlen);
    free(word);

    /* Compact the table in place and sort. */
    size_t k = 0;
    for (size_t i = 0; i < cap; i++)
        if (table[i].word != NULL)
            table[k++] = table[i];
    if (k > 0)
        qsort(table, k, sizeof *table, by_word);

    for (size_t i = 0; i < k; i++)
        if (printf("%s\t%" PRIu64 "\n", table[i].word, table[i].count) < 0)
            die("write error on stdout");
    if (fflush(stdout) != 0)
        die("write error on stdout");
    return 0;
}
