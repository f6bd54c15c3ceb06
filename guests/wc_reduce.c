/* Word count, reduce step.
 *
 * usage: wc_reduce          (arguments, if any, are ignored)
 *
 * Reads part-00000, part-00001, ... from the current directory, in order,
 * stopping at the first name that cannot be opened (at least part-00000 must
 * exist).  Each part holds "word\tcount\n" lines as written by wc_map (any
 * order; a word may repeat).  Counts are summed per word.  stdout: one
 * "word\tcount\n" line per distinct word, sorted by count descending, then by
 * word ascending (byte order).
 */
#define _POSIX_C_SOURCE 200809L
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
    fprintf(stderr, "wc_reduce: %s\n", msg);
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

static void add(const char *word, size_t len, uint64_t count)
{
    if ((used + 1) * 4 > cap * 3)
        grow();
    uint64_t h = hash_bytes(word, len);
    size_t j = (size_t)h & (cap - 1);
    while (table[j].word != NULL) {
        if (table[j].hash == h && table[j].len == len && memcmp(table[j].word, word, len) == 0) {
            if (table[j].count > UINT64_MAX - count)
                die("count overflow");
            table[j].count += count;
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
    table[j].count = count;
    table[j].hash = h;
    used++;
}

static int by_count_then_word(const void *pa, const void *pb)
{
    const struct entry *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return strcmp(a->word, b->word);
}

_Noreturn static void bad_line(const char *name, unsigned long lineno, const char *why)
{
    fprintf(stderr, "wc_reduce: %s:%lu: %s\n", name, lineno, why);
    exit(1);
}

static void read_part(FILE *f, const char *name)
{
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    unsigned long lineno = 0;
    while ((n = getline(&line, &lcap, f)) > 0) {
        lineno++;
        size_t len = (size_t)n;
        if (line[len - 1] != '\n')
            bad_line(name, lineno, "missing newline (truncated input?)");
        len--;
        if (memchr(line, '\0', len) != NULL)
            bad_line(name, lineno, "NUL byte in line");
        char *tab = memchr(line, '\t', len);
        if (tab == NULL || tab == line)
            bad_line(name, lineno, "expected 'word<TAB>count'");
        size_t wlen = (size_t)(tab - line);
        const char *p = tab + 1, *end = line + len;
        if (p == end)
            bad_line(name, lineno, "missing count");
        uint64_t count = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                bad_line(name, lineno, "count is not a decimal integer");
            unsigned d = (unsigned)(*p - '0');
            if (count > (UINT64_MAX - d) / 10)
                bad_line(name, lineno, "count overflow");
            count = count * 10 + d;
        }
        add(line, wlen, count);
    }
    if (ferror(f)) {
        fprintf(stderr, "wc_reduce: %s: read error\n", name);
        exit(1);
    }
    free(line);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    unsigned parts = 0;
    for (; parts < 100000; parts++) {
        char name[16];
        snprintf(name, sizeof name, "part-%05u", parts);
        FILE *f = fopen(name, "rb");
        if (f == NULL)
            break;
        read_part(f, name);
        fclose(f);
    }
    if (parts == 0)
        die("no input: part-00000 not found");

    size_t k = 0;
    for (size_t i = 0; i < cap; i++)
        if (table[i].word != NULL)
            table[k++] = table[i];
    if (k > 0)
        qsort(table, k, sizeof *table, by_count_then_word);

    for (size_t i = 0; i < k; i++)
        if (printf("%s\t%" PRIu64 "\n", table[i].word, table[i].count) < 0)
            die("write error on stdout");
    if (fflush(stdout) != 0)
        die("write error on stdout");
    return 0;
}
