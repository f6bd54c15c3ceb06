/* A small SAT solver (DPLL with unit propagation) that answers the way real
 * solvers do (the SAT competition's convention, followed by MiniSat, Kissat,
 * CaDiCaL...): with its exit status as well as its output.
 *
 *   sat <file.cnf>
 *
 * Reads a DIMACS CNF file ("p cnf VARS CLAUSES", then clauses of non-zero
 * literals each ended by 0; lines starting with "c" are comments) and prints
 *   s SATISFIABLE\nv <literals of a model> 0\n   exit status 10
 *   s UNSATISFIABLE\n                           exit status 20
 * Errors (no file, malformed input, too large) go to stderr with status 1.
 *
 * Deterministic: variables are decided lowest first, true before false, so the
 * model printed is the same everywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VARS 4096
#define MAX_LITS (1 << 20)

static int nvars, nclauses;
static int *lits;      /* every clause's literals, each clause ended by 0 */
static int *starts;    /* where clause i starts in lits */
static signed char value[MAX_VARS + 1]; /* 0 unassigned, 1 true, -1 false */
static int trail[MAX_VARS + 1];
static int trail_len;

static int lit_value(int lit) {
    int v = value[abs(lit)];
    return lit > 0 ? v : -v;
}

static void assign(int lit) {
    value[abs(lit)] = lit > 0 ? 1 : -1;
    trail[trail_len++] = abs(lit);
}

static void undo(int to) {
    while (trail_len > to) value[trail[--trail_len]] = 0;
}

/* Assigns every unit clause's literal until none is left; 0 on a conflict. */
static int propagate(void) {
    for (;;) {
        int changed = 0;
        for (int c = 0; c < nclauses; c++) {
            int unassigned = 0, last = 0, satisfied = 0;
            for (int *l = lits + starts[c]; *l; l++) {
                int v = lit_value(*l);
                if (v > 0) { satisfied = 1; break; }
                if (v == 0) { unassigned++; last = *l; }
            }
            if (satisfied) continue;
            if (unassigned == 0) return 0;
            if (unassigned == 1) { assign(last); changed = 1; }
        }
        if (!changed) return 1;
    }
}

static int solve(void) {
    int mark = trail_len;
    if (!propagate()) { undo(mark); return 0; }
    int var = 0;
    for (int v = 1; v <= nvars; v++) {
        if (!value[v]) { var = v; break; }
    }
    if (!var) return 1;
    int at = trail_len;
    assign(var);
    if (solve()) return 1;
    undo(at);
    assign(-var);
    if (solve()) return 1;
    undo(mark);
    return 0;
}

static int fail(const char *why) {
    fprintf(stderr, "sat: %s\n", why);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) return fail("usage: sat <file.cnf>");
    FILE *f = fopen(argv[1], "r");
    if (!f) return fail("cannot open the input file");
    char line[4096];
    int header = 0;
    while (!header && fgets(line, sizeof line, f)) {
        if (line[0] == 'c' || line[0] == '\n') continue;
        if (sscanf(line, "p cnf %d %d", &nvars, &nclauses) != 2) return fail("expected \"p cnf VARS CLAUSES\"");
        header = 1;
    }
    if (!header) return fail("no \"p cnf\" line");
    if (nvars < 0 || nvars > MAX_VARS || nclauses < 0 || nclauses > MAX_LITS) return fail("too large");
    lits = malloc(sizeof(int) * MAX_LITS);
    starts = malloc(sizeof(int) * (size_t)(nclauses + 1));
    if (!lits || !starts) return fail("out of memory");
    int n = 0, c = 0, lit;
    starts[0] = 0;
    while (c < nclauses && fscanf(f, "%d", &lit) == 1) {
        if (n >= MAX_LITS - 1) return fail("too large");
        if (abs(lit) > nvars) return fail("literal out of range");
        lits[n++] = lit;
        if (lit == 0) starts[++c] = n;
    }
    if (c != nclauses) return fail("fewer clauses than the header says");
    fclose(f);

    if (!solve()) {
        printf("s UNSATISFIABLE\n");
        return 20;
    }
    printf("s SATISFIABLE\nv");
    for (int v = 1; v <= nvars; v++) printf(" %d", value[v] >= 0 ? v : -v);
    printf(" 0\n");
    return 10;
}
