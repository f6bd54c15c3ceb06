/* Reduce step: assembles mandel tiles into one PNG image.
 *
 * usage: png <width> <height>
 *
 * Reads part-00000, part-00001, ... from the current directory, in order,
 * stopping at the first name that cannot be opened (at least part-00000 must
 * exist).  Each part is a tile in mandel's format: "GMT1", little-endian u32
 * x0, y0, w, h, then exactly w*h*3 bytes of RGB.  Tiles are pasted into a
 * black width x height canvas (later parts overwrite earlier ones where they
 * overlap) and the canvas is written to stdout as an 8-bit RGB PNG.
 *
 * The zlib stream uses only STORED deflate blocks, so no compression library
 * is needed; crc32 and adler32 are implemented here.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM 65536u
#define MAX_CANVAS_BYTES ((uint64_t)1 << 30)
#define IDAT_MAX (1u << 20)

_Noreturn static void die(const char *msg)
{
    fprintf(stderr, "png: %s\n", msg);
    exit(1);
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32be(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* ---- checksums ---- */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

/* Running CRC: start with crc32_update(0, ...) and chain the result. */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t adler32(const unsigned char *p, size_t n)
{
    uint32_t a = 1, b = 0;
    while (n > 0) {
        size_t k = n < 5552 ? n : 5552; /* largest run without uint32 overflow */
        n -= k;
        while (k--) {
            a += *p++;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    return b << 16 | a;
}

/* ---- output ---- */

static void out(const void *p, size_t n)
{
    if (fwrite(p, 1, n, stdout) != n)
        die("write error on stdout");
}

static void chunk(const char type[4], const unsigned char *data, uint32_t len)
{
    unsigned char hdr[8], tail[4];
    put_u32be(hdr, len);
    memcpy(hdr + 4, type, 4);
    uint32_t crc = crc32_update(0, hdr + 4, 4);
    crc = crc32_update(crc, data, len);
    put_u32be(tail, crc);
    out(hdr, 8);
    if (len)
        out(data, len);
    out(tail, 4);
}

/* The zlib stream is buffered and emitted as IDAT chunks of up to IDAT_MAX. */
static unsigned char *idat;
static uint32_t idat_len;

static void idat_put(const unsigned char *p, size_t n)
{
    while (n > 0) {
        size_t room = IDAT_MAX - idat_len;
        size_t k = n < room ? n : room;
        memcpy(idat + idat_len, p, k);
        idat_len += (uint32_t)k;
        p += k;
        n -= k;
        if (idat_len == IDAT_MAX) {
            chunk("IDAT", idat, idat_len);
            idat_len = 0;
        }
    }
}

static void idat_flush(void)
{
    if (idat_len > 0) {
        chunk("IDAT", idat, idat_len);
        idat_len = 0;
    }
}

/* ---- input ---- */

static void read_tile(FILE *f, const char *name, unsigned char *canvas, uint32_t width,
                      uint32_t height, size_t stride)
{
    unsigned char hdr[20];
    if (fread(hdr, 1, sizeof hdr, f) != sizeof hdr) {
        fprintf(stderr, "png: %s: truncated header\n", name);
        exit(1);
    }
    if (memcmp(hdr, "GMT1", 4) != 0) {
        fprintf(stderr, "png: %s: bad magic (not a GMT1 tile)\n", name);
        exit(1);
    }
    uint32_t x0 = get_u32le(hdr + 4), y0 = get_u32le(hdr + 8);
    uint32_t w = get_u32le(hdr + 12), h = get_u32le(hdr + 16);
    if (w == 0 || h == 0 || x0 >= width || y0 >= height || w > width - x0 || h > height - y0) {
        fprintf(stderr, "png: %s: tile %ux%u at (%u,%u) is empty or outside the %ux%u image\n",
                name, w, h, x0, y0, width, height);
        exit(1);
    }
    for (uint32_t y = 0; y < h; y++) {
        unsigned char *dst = canvas + (size_t)(y0 + y) * stride + 1 + (size_t)x0 * 3;
        if (fread(dst, 3, w, f) != w) {
            fprintf(stderr, "png: %s: truncated pixel data\n", name);
            exit(1);
        }
    }
    if (fgetc(f) != EOF) {
        fprintf(stderr, "png: %s: trailing bytes after pixel data\n", name);
        exit(1);
    }
    if (ferror(f)) {
        fprintf(stderr, "png: %s: read error\n", name);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    uint32_t width, height;
    if (argc != 3) {
        fprintf(stderr, "usage: png <width> <height>\n");
        return 1;
    }
    if (parse_u32(argv[1], MAX_DIM, &width) || width == 0 ||
        parse_u32(argv[2], MAX_DIM, &height) || height == 0)
        die("width and height must be integers in 1..65536");

    /* The canvas holds the PNG scanlines directly: one filter byte (0, "None")
     * followed by width*3 bytes of RGB per row, so it is the raw zlib payload. */
    size_t stride = 1 + (size_t)width * 3;
    uint64_t total = (uint64_t)stride * height;
    if (total > MAX_CANVAS_BYTES)
        die("image too large");
    unsigned char *canvas = calloc((size_t)total, 1);
    idat = malloc(IDAT_MAX);
    if (canvas == NULL || idat == NULL)
        die("out of memory");

    unsigned parts = 0;
    for (; parts < 100000; parts++) {
        char name[16];
        snprintf(name, sizeof name, "part-%05u", parts);
        FILE *f = fopen(name, "rb");
        if (f == NULL)
            break;
        read_tile(f, name, canvas, width, height, stride);
        fclose(f);
    }
    if (parts == 0)
        die("no input: part-00000 not found");

    crc_init();
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    out(sig, sizeof sig);

    unsigned char ihdr[13];
    put_u32be(ihdr, width);
    put_u32be(ihdr + 4, height);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type: truecolour RGB */
    ihdr[10] = 0; /* compression: deflate */
    ihdr[11] = 0; /* filter method 0 */
    ihdr[12] = 0; /* no interlace */
    chunk("IHDR", ihdr, sizeof ihdr);

    /* zlib header: CM=8 (deflate), CINFO=7 (32K window), no dict, FLEVEL=0;
     * 0x7801 is divisible by 31 as required. */
    static const unsigned char zhdr[2] = {0x78, 0x01};
    idat_put(zhdr, 2);
    size_t remaining = (size_t)total, pos = 0;
    do {
        size_t len = remaining < 65535 ? remaining : 65535;
        int final = len == remaining;
        unsigned char bh[5];
        bh[0] = (unsigned char)final; /* BFINAL, BTYPE=00 (stored) */
        bh[1] = (unsigned char)len;
        bh[2] = (unsigned char)(len >> 8);
        bh[3] = (unsigned char)~len;
        bh[4] = (unsigned char)(~len >> 8);
        idat_put(bh, 5);
        idat_put(canvas + pos, len);
        pos += len;
        remaining -= len;
    } while (remaining > 0);
    unsigned char ztail[4];
    put_u32be(ztail, adler32(canvas, (size_t)total));
    idat_put(ztail, 4);
    idat_flush();

    chunk("IEND", NULL, 0);
    if (fflush(stdout) != 0)
        die("write error on stdout");
    free(idat);
    free(canvas);
    return 0;
}
