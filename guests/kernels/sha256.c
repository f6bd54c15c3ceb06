/* sha256: chained SHA-256 over a large generated buffer.
 *
 * usage: sha256 [scale]        stdout: "sha256 <16 hex>\n"
 *
 * A BUFSIZE-byte buffer of pseudo-random bytes is hashed ROUNDS times; before
 * each round the previous round's 32-byte digest is written over the first
 * 32 bytes of the buffer, so every round depends on the one before.  Rounds
 * = ROUNDS * scale; memory does not grow.  The implementation (FIPS 180-4)
 * is checked against the standard test vectors first.  The printed hash is a
 * fold of the final 32-byte digest.
 */
#include "common.h"

#define BUFSIZE (1u << 20)  /* 1 MiB buffer */
#define ROUNDS 300          /* hashed buffers at scale 1 */

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return x >> n | x << (32 - n); }

/* Processes one 64-byte block. */
static void compress(uint32_t st[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
    uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
    for (int t = 0; t < 64; t++) {
        const uint32_t sum1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        const uint32_t ch = (e & f) ^ (~e & g);
        const uint32_t sum0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        const uint32_t t1 = h + sum1 + ch + K[t] + w[t];
        const uint32_t t2 = sum0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    st[0] += a; st[1] += b; st[2] += c; st[3] += d;
    st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

/* SHA-256 of msg[0, len) into out[32]. */
static void sha256(const uint8_t *msg, size_t len, uint8_t out[32])
{
    uint32_t st[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t done = 0;
    for (; len - done >= 64; done += 64)
        compress(st, msg + done);
    /* Padding: 0x80, zeros, then the bit length as a big-endian u64. */
    uint8_t tail[128] = {0};
    const size_t rest = len - done;
    memcpy(tail, msg + done, rest);
    tail[rest] = 0x80;
    const size_t tail_len = rest < 56 ? 64 : 128;
    const uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tail_len - 1 - (size_t)i] = (uint8_t)(bits >> (8 * i));
    compress(st, tail);
    if (tail_len == 128)
        compress(st, tail + 64);
    for (int i = 0; i < 8; i++)
        for (int b = 0; b < 4; b++)
            out[4 * i + b] = (uint8_t)(st[i] >> (24 - 8 * b));
}

/* Checks sha256(msg) against a digest given in hex. */
static void expect(const char *msg, const char *hex)
{
    uint8_t d[32];
    char got[65];
    sha256((const uint8_t *)msg, strlen(msg), d);
    for (int i = 0; i < 32; i++)
        snprintf(got + 2 * i, 3, "%02x", d[i]);
    if (strcmp(got, hex) != 0)
        kernel_fail("sha256", "test vector");
}

int main(int argc, char **argv)
{
    const uint32_t rounds = ROUNDS * kernel_scale(argc, argv, "sha256");

    /* FIPS 180-4 / NIST example vectors (one block, two blocks, empty). */
    expect("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
           "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    expect("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    uint8_t *buf = xcalloc(BUFSIZE, 1);
    uint64_t seed = UINT64_C(0x736861323536);
    for (uint32_t i = 0; i < BUFSIZE; i += 8) {
        const uint64_t r = splitmix64(&seed);
        for (int b = 0; b < 8; b++)
            buf[i + (uint32_t)b] = (uint8_t)(r >> (8 * b));
    }
    uint8_t digest[32] = {0};
    for (uint32_t r = 0; r < rounds; r++) {
        memcpy(buf, digest, sizeof digest);
        sha256(buf, BUFSIZE, digest);
    }

    const uint64_t h = hash_bytes(HASH_INIT, digest, sizeof digest);
    free(buf);
    return kernel_finish("sha256", h);
}
