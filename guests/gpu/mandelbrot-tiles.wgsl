// Tiles of the Mandelbrot set for the reduce step `guests/png.wasm`, which assembles them into a
// PNG: each task renders one tile of a larger image in png.wasm's tile format — "GMT1", then x0,
// y0, w, h as little-endian u32 (`header`), then w*h pixels of RGB, row by row (`rgb`). `view`:
// the complex coordinate of the whole image's top-left pixel, the step between pixels, the
// tile's place and size (w a multiple of 4), the iteration limit. One invocation per 4 pixels of
// a row: 12 bytes, 3 whole words, so no two invocations write one word.
struct View {
    left: f32,
    top: f32,
    step: f32,
    x0: u32,
    y0: u32,
    w: u32,
    h: u32,
    max_iter: u32,
}
@group(0) @binding(0) var<storage, read> view: View;
@group(0) @binding(1) var<storage, read_write> header: array<u32, 5>;
@group(0) @binding(2) var<storage, read_write> rgb: array<u32>;

// The colour of pixel (x, y) of the whole image as 0x00BBGGRR (black inside the set).
fn colour(x: u32, y: u32) -> u32 {
    let cr = view.left + f32(x) * view.step;
    let ci = view.top - f32(y) * view.step;
    var zr = 0.0;
    var zi = 0.0;
    var n = 0u;
    loop {
        if (n >= view.max_iter || zr * zr + zi * zi > 4.0) {
            break;
        }
        let t = zr * zr - zi * zi + cr;
        zi = 2.0 * zr * zi + ci;
        zr = t;
        n++;
    }
    if (n >= view.max_iter) {
        return 0u;
    }
    let r = (n * 9u) % 256u;
    let g = (n * 5u + 64u) % 256u;
    let b = 255u - (n * 3u) % 256u;
    return r | (g << 8u) | (b << 16u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x == 0u && id.y == 0u) {
        header[0] = 0x31544d47u; // "GMT1"
        header[1] = view.x0;
        header[2] = view.y0;
        header[3] = view.w;
        header[4] = view.h;
    }
    let groups = view.w / 4u;
    if (id.x >= groups || id.y >= view.h) {
        return;
    }
    let x = view.x0 + id.x * 4u;
    let y = view.y0 + id.y;
    let p0 = colour(x, y);
    let p1 = colour(x + 1u, y);
    let p2 = colour(x + 2u, y);
    let p3 = colour(x + 3u, y);
    // Bytes r0 g0 b0 r1 | g1 b1 r2 g2 | b2 r3 g3 b3.
    let base = (id.y * groups + id.x) * 3u;
    rgb[base] = (p0 & 0xffffffu) | ((p1 & 0xffu) << 24u);
    rgb[base + 1u] = ((p1 >> 8u) & 0xffffu) | ((p2 & 0xffffu) << 16u);
    rgb[base + 2u] = ((p2 >> 16u) & 0xffu) | ((p3 & 0xffffffu) << 8u);
}
