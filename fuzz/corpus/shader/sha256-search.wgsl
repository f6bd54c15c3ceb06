// A hash search, as proof-of-work miners run it: SHA-256 of a 48-byte header followed by a 4-byte
// nonce (big-endian), for `search.per_invocation` consecutive nonces per invocation from
// `search.start`. A nonce whose hash, read as a big-endian number, begins with a 32-bit word below
// `search.bound` (the target) is found: `count` counts them, `mins[0]` keeps the least such nonce and
// `mins[1]` the least first word of any hash tried (both start at 0xffffffff). Integer only, and
// only order-free atomics: the same bytes on every device.
struct Search {
    header: array<u32, 12>,
    start: u32,
    per_invocation: u32,
    bound: u32,
}
@group(0) @binding(0) var<storage, read> search: Search;
@group(0) @binding(1) var<storage, read_write> mins: array<atomic<u32>, 2>;
@group(0) @binding(2) var<storage, read_write> count: atomic<u32>;

const K = array<u32, 64>(
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
);

fn rotr(x: u32, n: u32) -> u32 {
    return (x >> n) | (x << (32u - n));
}

// The first word of SHA-256 of the one-block message `header || nonce`.
fn first_word(nonce: u32) -> u32 {
    var w: array<u32, 64>;
    for (var i = 0u; i < 12u; i++) {
        w[i] = search.header[i];
    }
    w[12] = nonce;
    w[13] = 0x80000000u;
    w[14] = 0u;
    w[15] = 52u * 8u;
    for (var i = 16u; i < 64u; i++) {
        let s0 = rotr(w[i - 15u], 7u) ^ rotr(w[i - 15u], 18u) ^ (w[i - 15u] >> 3u);
        let s1 = rotr(w[i - 2u], 17u) ^ rotr(w[i - 2u], 19u) ^ (w[i - 2u] >> 10u);
        w[i] = w[i - 16u] + s0 + w[i - 7u] + s1;
    }
    var a = 0x6a09e667u;
    var b = 0xbb67ae85u;
    var c = 0x3c6ef372u;
    var d = 0xa54ff53au;
    var e = 0x510e527fu;
    var f = 0x9b05688cu;
    var g = 0x1f83d9abu;
    var h = 0x5be0cd19u;
    for (var i = 0u; i < 64u; i++) {
        let s1 = rotr(e, 6u) ^ rotr(e, 11u) ^ rotr(e, 25u);
        let ch = (e & f) ^ (~e & g);
        let t1 = h + s1 + ch + K[i] + w[i];
        let s0 = rotr(a, 2u) ^ rotr(a, 13u) ^ rotr(a, 22u);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    return 0x6a09e667u + a;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let first = search.start + id.x * search.per_invocation;
    var best = 0xffffffffu;
    for (var i = 0u; i < search.per_invocation; i++) {
        let nonce = first + i;
        let word = first_word(nonce);
        best = min(best, word);
        if (word < search.bound) {
            atomicAdd(&count, 1u);
            atomicMin(&mins[0], nonce);
        }
    }
    atomicMin(&mins[1], best);
}
