/* A WASI *reactor* rather than a command: built with -mexec-model=reactor, it
 * exports `_initialize` (which runs its constructors) and `run` instead of
 * `_start`, as packaged library-style builds do. A job runs it with
 * `entry = "run"`: the sandbox calls `_initialize`, then `run`, whose int
 * result is the exit status.
 *
 *   run: prints "initialized <n>, arg <first argument>\n" and returns 0, or 3
 *        if the constructor did not run (`_initialize` was skipped). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

static int initialized;

__attribute__((constructor)) static void init(void) { initialized += 1; }

__attribute__((export_name("run"))) int run(void) {
    /* A reactor has no main(argc, argv): ask WASI for the arguments. */
    __wasi_size_t argc = 0, size = 0;
    if (__wasi_args_sizes_get(&argc, &size) != 0) return 1;
    char **argv = calloc(argc + 1, sizeof(char *));
    char *buf = malloc(size + 1);
    if (!argv || !buf || __wasi_args_get((uint8_t **)argv, (uint8_t *)buf) != 0) return 1;
    printf("initialized %d, arg %s\n", initialized, argc > 1 ? argv[1] : "-");
    fflush(stdout);
    return initialized == 1 ? 0 : 3;
}
