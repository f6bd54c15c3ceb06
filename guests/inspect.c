/* Sandbox probe for tests: reports what the guest can see.
 *
 * usage: inspect [args...]
 * stdout, one item per line, in this order:
 *   arg[I]=VALUE          for each argv entry (I from 0)
 *   env KEY=VALUE         for each environment variable, in the order given
 *   file NAME SIZE        for each entry of directory "/" except . and ..,
 *                         sorted by name (byte order); SIZE is st_size, or -1
 *                         if stat fails.  "dir /: error" if "/" can't be opened
 *   stdin N               number of bytes read from stdin until EOF
 *   time T                time(NULL)
 *   rand X                8 bytes from getentropy() as 16 hex digits
 *                         ("rand error" if getentropy fails)
 *   open /etc/passwd: ok|denied
 *   open ../secret: ok|denied
 *   write out.txt: ok|denied   only if WRITE_OUT is set: its value is
 *                              written to "out.txt" (fopen "w")
 */
#define _DEFAULT_SOURCE
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_root(void)
{
    DIR *d = opendir("/");
    if (d == NULL) {
        printf("dir /: error\n");
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = realloc(names, cap * sizeof *names);
            if (names == NULL) {
                fprintf(stderr, "inspect: out of memory\n");
                exit(1);
            }
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL) {
            fprintf(stderr, "inspect: out of memory\n");
            exit(1);
        }
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        char *path = malloc(len + 2);
        if (path == NULL) {
            fprintf(stderr, "inspect: out of memory\n");
            exit(1);
        }
        path[0] = '/';
        memcpy(path + 1, names[i], len + 1);
        struct stat st;
        long long size = stat(path, &st) == 0 ? (long long)st.st_size : -1;
        printf("file %s %lld\n", names[i], size);
        free(path);
        free(names[i]);
    }
    free(names);
}

static const char *try_open(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return "denied";
    fclose(f);
    return "ok";
}

int main(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        printf("arg[%d]=%s\n", i, argv[i]);
    for (char **e = environ; e != NULL && *e != NULL; e++)
        printf("env %s\n", *e);

    list_root();

    static char buf[1 << 16];
    unsigned long long total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        total += n;
    printf("stdin %llu\n", total);

    printf("time %lld\n", (long long)time(NULL));

    unsigned char r[8];
    if (getentropy(r, sizeof r) == 0) {
        printf("rand ");
        for (size_t i = 0; i < sizeof r; i++)
            printf("%02x", r[i]);
        printf("\n");
    } else {
        printf("rand error\n");
    }

    printf("open /etc/passwd: %s\n", try_open("/etc/passwd"));
    printf("open ../secret: %s\n", try_open("../secret"));

    const char *w = getenv("WRITE_OUT");
    if (w != NULL) {
        FILE *f = fopen("out.txt", "w");
        int ok = f != NULL && fputs(w, f) >= 0;
        if (f != NULL && fclose(f) != 0)
            ok = 0;
        printf("write out.txt: %s\n", ok ? "ok" : "denied");
    }

    if (fflush(stdout) != 0) {
        fprintf(stderr, "inspect: write error on stdout\n");
        return 1;
    }
    return 0;
}
