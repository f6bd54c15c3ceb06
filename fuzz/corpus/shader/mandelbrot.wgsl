// A tile of the Mandelbrot set as RGBA pixels (one u32 per pixel, red in the low byte), for a
// job that renders an image tile by tile and assembles the tiles into a PNG. `view`: the complex
// coordinate of the whole image's top-left pixel, the step between pixels, the whole image's
// width, the tile's first row and its height, and the iteration limit. One invocation per pixel.
struct View {
    left: f32,
    top: f32,
    step: f32,
    width: u32,
    first_row: u32,
    rows: u32,
    max_iter: u32,
}
@group(0) @binding(0) var<storage, read> view: View;
@group(0) @binding(1) var<storage, read_write> pixels: array<u32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= view.width || id.y >= view.rows) {
        return;
    }
    let cr = view.left + f32(id.x) * view.step;
    let ci = view.top - f32(view.first_row + id.y) * view.step;
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
    var rgba = 0xff000000u;
    if (n < view.max_iter) {
        let r = (n * 9u) % 256u;
        let g = (n * 5u + 64u) % 256u;
        let b = 255u - (n * 3u) % 256u;
        rgba = rgba | r | (g << 8u) | (b << 16u);
    }
    pixels[id.y * view.width + id.x] = rgba;
}
