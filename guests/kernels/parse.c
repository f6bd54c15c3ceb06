/* parse: tokenizer, recursive-descent parser and interpreter for a tiny
 * expression language -- a branchy, integer-only workload.
 *
 * usage: parse [scale]         stdout: "parse <16 hex>\n"
 *
 * Each repetition generates about TEXT_BYTES of program text, one statement
 * per line, with random spacing and comment lines:
 *
 *     statement  := [ident "="] expr ";"      |   "#" comment
 *     expr       := binary expression over  | ^ & << >> + - * / %
 *                   (C's precedence, all left-associative)
 *     unary      := ("-" | "~") unary | primary
 *     primary    := decimal | 0xHEX | ident | ident "(" expr "," expr ")"
 *                 | "(" expr ")"
 *
 * then tokenizes, parses and evaluates it in one pass (precedence climbing).
 * Values are uint64 with wrapping arithmetic; x / 0 = 0, x % 0 = x, shifts
 * use the low 6 bits of the count; min, max and gcd are built in; variables
 * live in an open-addressing hash table and read as 0 until assigned.  The
 * hash covers every statement's value and the final variables.  Repetitions
 * = REPS * scale; memory does not grow.
 */
#include "common.h"

#define TEXT_BYTES (2u << 20)  /* program text per repetition: 2 MiB */
#define REPS 28                /* programs at scale 1 */
#define NNAMES 96              /* distinct variable names the generator uses */
#define MAX_NAME 12            /* longest identifier */
#define TABLE 256              /* symbol table slots (power of two > NNAMES) */
#define MAX_DEPTH 8            /* deepest generated expression */
#define SLACK 65536            /* room for the statement that crosses TEXT_BYTES */

/* ---- program generator ----------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    uint64_t seed;
} gen;

static void emit(gen *g, const char *s, size_t n)
{
    if (g->len + n > g->cap)
        kernel_fail("parse", "generated text overflowed its buffer");
    memcpy(g->buf + g->len, s, n);
    g->len += n;
}

static void emits(gen *g, const char *s) { emit(g, s, strlen(s)); }

/* Zero to two blanks (space or tab). */
static void space(gen *g)
{
    uint32_t r = rand_below(&g->seed, 8);
    if (r >= 5)
        emit(g, r == 7 ? "\t" : " ", 1);
    if (r == 6)
        emit(g, " ", 1);
}

static char names[NNAMES][MAX_NAME + 1];

static void make_names(uint64_t seed)
{
    static const char *const syll[] = {"ka", "lo", "mi", "nu", "pe", "ra", "si", "to",
                                       "x", "y", "z", "q", "an", "el", "or", "ux"};
    for (int i = 0; i < NNAMES; i++) {
        size_t n = 0;
        int parts = 1 + (int)rand_below(&seed, 4);
        for (int p = 0; p < parts; p++) {
            const char *s = syll[rand_below(&seed, 16)];
            memcpy(names[i] + n, s, strlen(s));
            n += strlen(s);
        }
        if (rand_below(&seed, 3) == 0)
            names[i][n++] = (char)('0' + rand_below(&seed, 10));
        names[i][n] = '\0';
    }
}

static void gen_expr(gen *g, int depth);

static void gen_primary(gen *g, int depth)
{
    char tmp[32];
    uint32_t r = rand_below(&g->seed, 10);
    if (r < 3) { /* decimal literal of 1 to 12 digits */
        int digits = 1 + (int)rand_below(&g->seed, 12);
        for (int i = 0; i < digits; i++)
            tmp[i] = (char)('0' + rand_below(&g->seed, 10));
        if (digits > 1 && tmp[0] == '0')
            tmp[0] = '7';
        emit(g, tmp, (size_t)digits);
    } else if (r < 4) { /* hex literal */
        snprintf(tmp, sizeof tmp, "0x%" PRIx64, splitmix64(&g->seed) >> rand_below(&g->seed, 64));
        emits(g, tmp);
    } else if (r < 8 || depth <= 0) { /* variable */
        emits(g, names[rand_below(&g->seed, NNAMES)]);
    } else { /* built-in call */
        static const char *const fns[] = {"min", "max", "gcd"};
        emits(g, fns[rand_below(&g->seed, 3)]);
        emits(g, "(");
        gen_expr(g, depth - 1);
        emits(g, ",");
        space(g);
        gen_expr(g, depth - 1);
        emits(g, ")");
    }
}

static void gen_expr(gen *g, int depth)
{
    static const char *const ops[] = {"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>",
                                      "+", "-", "*", "+", "^", "&"};
    uint32_t r = rand_below(&g->seed, 16);
    if (depth <= 0 || r < 4) {
        if (r == 0)
            emits(g, rand_below(&g->seed, 2) ? "-" : "~");
        gen_primary(g, depth);
        return;
    }
    const int paren = r < 8;
    if (paren)
        emits(g, "(");
    gen_expr(g, depth - 1);
    space(g);
    emits(g, ops[rand_below(&g->seed, 16)]);
    space(g);
    gen_expr(g, depth - 1);
    if (paren)
        emits(g, ")");
}

/* Fills g->buf with statements until it holds at least TEXT_BYTES. */
static void gen_program(gen *g)
{
    g->len = 0;
    while (g->len < TEXT_BYTES) {
        uint32_t r = rand_below(&g->seed, 20);
        if (r == 0) {
            emits(g, "# comment: ");
            emits(g, names[rand_below(&g->seed, NNAMES)]);
            emits(g, " = 1 + (2;\n"); /* nonsense that only a comment may hold */
            continue;
        }
        if (r < 14) {
            emits(g, names[rand_below(&g->seed, NNAMES)]);
            space(g);
            emits(g, "=");
            space(g);
        }
        gen_expr(g, 1 + (int)rand_below(&g->seed, MAX_DEPTH));
        space(g);
        emits(g, ";\n");
    }
}

/* ---- interpreter ----------------------------------------------------- */

enum tok { T_END, T_NUM, T_IDENT, T_OP, T_LPAREN, T_RPAREN, T_COMMA, T_SEMI, T_ASSIGN };
enum op { OP_OR, OP_XOR, OP_AND, OP_SHL, OP_SHR, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_NOT };

typedef struct {
    const char *p, *end;
    enum tok kind;
    enum op op;         /* for T_OP */
    uint64_t num;       /* for T_NUM */
    const char *ident;  /* for T_IDENT: start and length */
    size_t ident_len;
    int depth;
} lexer;

typedef struct {
    char name[MAX_NAME + 1];
    uint64_t value;
    int used;
} slot;

static slot table[TABLE];

static _Noreturn void fail(const char *what) { kernel_fail("parse", what); }

/* Reads the next token into lx. */
static void next(lexer *lx)
{
    for (;;) {
        while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n'))
            lx->p++;
        if (lx->p < lx->end && *lx->p == '#') {
            while (lx->p < lx->end && *lx->p != '\n')
                lx->p++;
            continue;
        }
        break;
    }
    if (lx->p == lx->end) {
        lx->kind = T_END;
        return;
    }
    const char c = *lx->p;
    if (c >= '0' && c <= '9') {
        uint64_t v = 0;
        if (c == '0' && lx->end - lx->p > 2 && lx->p[1] == 'x') {
            lx->p += 2;
            for (;; lx->p++) {
                const char d = lx->p < lx->end ? *lx->p : '\0';
                if (d >= '0' && d <= '9')
                    v = v << 4 | (uint64_t)(d - '0');
                else if (d >= 'a' && d <= 'f')
                    v = v << 4 | (uint64_t)(d - 'a' + 10);
                else
                    break;
            }
        } else {
            for (; lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9'; lx->p++)
                v = v * 10 + (uint64_t)(*lx->p - '0');
        }
        lx->kind = T_NUM;
        lx->num = v;
        return;
    }
    if ((c >= 'a' && c <= 'z') || c == '_') {
        lx->ident = lx->p;
        while (lx->p < lx->end && ((*lx->p >= 'a' && *lx->p <= 'z') || *lx->p == '_' ||
                                   (*lx->p >= '0' && *lx->p <= '9')))
            lx->p++;
        lx->ident_len = (size_t)(lx->p - lx->ident);
        if (lx->ident_len > MAX_NAME)
            fail("identifier too long");
        lx->kind = T_IDENT;
        return;
    }
    lx->p++;
    lx->kind = T_OP;
    switch (c) {
    case '|': lx->op = OP_OR; break;
    case '^': lx->op = OP_XOR; break;
    case '&': lx->op = OP_AND; break;
    case '+': lx->op = OP_ADD; break;
    case '-': lx->op = OP_SUB; break;
    case '*': lx->op = OP_MUL; break;
    case '/': lx->op = OP_DIV; break;
    case '%': lx->op = OP_MOD; break;
    case '~': lx->op = OP_NOT; break;
    case '<':
    case '>':
        if (lx->p == lx->end || *lx->p != c)
            fail("expected << or >>");
        lx->p++;
        lx->op = c == '<' ? OP_SHL : OP_SHR;
        break;
    case '(': lx->kind = T_LPAREN; break;
    case ')': lx->kind = T_RPAREN; break;
    case ',': lx->kind = T_COMMA; break;
    case ';': lx->kind = T_SEMI; break;
    case '=': lx->kind = T_ASSIGN; break;
    default: fail("unexpected character");
    }
}

static void expect(lexer *lx, enum tok kind, const char *what)
{
    if (lx->kind != kind)
        fail(what);
    next(lx);
}

/* The table slot of a name, created empty if absent. */
static slot *lookup(const char *name, size_t len)
{
    uint64_t h = HASH_INIT;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * HASH_PRIME;
    for (uint32_t i = (uint32_t)(h >> 40) & (TABLE - 1);; i = (i + 1) & (TABLE - 1)) {
        slot *s = &table[i];
        if (!s->used) {
            s->used = 1;
            memcpy(s->name, name, len);
            s->name[len] = '\0';
            return s;
        }
        if (strlen(s->name) == len && memcmp(s->name, name, len) == 0)
            return s;
    }
}

/* Binding power of a binary operator (higher binds tighter), 0 if none. */
static int precedence(const lexer *lx)
{
    if (lx->kind != T_OP)
        return 0;
    switch (lx->op) {
    case OP_OR: return 1;
    case OP_XOR: return 2;
    case OP_AND: return 3;
    case OP_SHL: case OP_SHR: return 4;
    case OP_ADD: case OP_SUB: return 5;
    case OP_MUL: case OP_DIV: case OP_MOD: return 6;
    default: return 0;
    }
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static uint64_t apply(enum op op, uint64_t a, uint64_t b)
{
    switch (op) {
    case OP_OR: return a | b;
    case OP_XOR: return a ^ b;
    case OP_AND: return a & b;
    case OP_SHL: return a << (b & 63);
    case OP_SHR: return a >> (b & 63);
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return b == 0 ? 0 : a / b;
    case OP_MOD: return b == 0 ? a : a % b;
    default: fail("not a binary operator"); return 0;
    }
}

static uint64_t parse_expr(lexer *lx, int min_prec);

static uint64_t parse_unary(lexer *lx)
{
    if (++lx->depth > 200)
        fail("expression nested too deeply");
    uint64_t v = 0;
    if (lx->kind == T_OP && (lx->op == OP_SUB || lx->op == OP_NOT)) {
        const enum op op = lx->op;
        next(lx);
        v = parse_unary(lx);
        v = op == OP_SUB ? 0 - v : ~v;
    } else if (lx->kind == T_NUM) {
        v = lx->num;
        next(lx);
    } else if (lx->kind == T_LPAREN) {
        next(lx);
        v = parse_expr(lx, 1);
        expect(lx, T_RPAREN, "expected )");
    } else if (lx->kind == T_IDENT) {
        const char *name = lx->ident;
        const size_t len = lx->ident_len;
        next(lx);
        if (lx->kind == T_LPAREN) { /* built-in call */
            next(lx);
            const uint64_t a = parse_expr(lx, 1);
            expect(lx, T_COMMA, "expected ,");
            const uint64_t b = parse_expr(lx, 1);
            expect(lx, T_RPAREN, "expected ) after arguments");
            if (len == 3 && memcmp(name, "min", 3) == 0)
                v = a < b ? a : b;
            else if (len == 3 && memcmp(name, "max", 3) == 0)
                v = a > b ? a : b;
            else if (len == 3 && memcmp(name, "gcd", 3) == 0)
                v = gcd(a, b);
            else
                fail("unknown function");
        } else {
            v = lookup(name, len)->value;
        }
    } else {
        fail("expected an operand");
    }
    lx->depth--;
    return v;
}

/* Precedence climbing: operators binding at least min_prec. */
static uint64_t parse_expr(lexer *lx, int min_prec)
{
    uint64_t lhs = parse_unary(lx);
    for (int prec; (prec = precedence(lx)) >= min_prec;) {
        const enum op op = lx->op;
        next(lx);
        const uint64_t rhs = parse_expr(lx, prec + 1);
        lhs = apply(op, lhs, rhs);
    }
    return lhs;
}

/* Runs a whole program, folding each statement's value into h. */
static uint64_t run(const char *text, size_t len, uint64_t h)
{
    lexer lx = {.p = text, .end = text + len};
    next(&lx);
    while (lx.kind != T_END) {
        slot *target = NULL;
        if (lx.kind == T_IDENT) { /* assignment or an expression starting with a name */
            const lexer save = lx;
            const char *name = lx.ident;
            const size_t nlen = lx.ident_len;
            next(&lx);
            if (lx.kind == T_ASSIGN) {
                next(&lx);
                target = lookup(name, nlen);
            } else {
                lx = save;
            }
        }
        const uint64_t v = parse_expr(&lx, 1);
        expect(&lx, T_SEMI, "expected ;");
        if (target != NULL)
            target->value = v;
        h = hash_u64(h, v);
    }
    return h;
}

int main(int argc, char **argv)
{
    const uint32_t reps = REPS * kernel_scale(argc, argv, "parse");
    gen g = {.cap = TEXT_BYTES + SLACK, .seed = UINT64_C(0x7061727365)};
    g.buf = xcalloc(g.cap, 1);
    make_names(g.seed ^ UINT64_C(0x6e616d6573));
    uint64_t h = HASH_INIT;

    for (uint32_t r = 0; r < reps; r++) {
        gen_program(&g);
        h = run(g.buf, g.len, h);
        h = hash_u64(h, g.len);
    }
    for (int i = 0; i < TABLE; i++) {
        if (table[i].used) {
            h = hash_bytes(h, table[i].name, strlen(table[i].name));
            h = hash_u64(h, table[i].value);
        }
    }

    free(g.buf);
    return kernel_finish("parse", h);
}
