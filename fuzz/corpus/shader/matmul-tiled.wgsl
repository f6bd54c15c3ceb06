// C = A x B for n x n matrices of f32, row-major, in 16x16 tiles through workgroup memory: the
// usual GPU matrix product, whose loop over tiles holds two barriers (so the meter leaves it with
// the whole workgroup at once). `dims.n` is n; one invocation per element of C.
struct Dims { n: u32 }
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
    let n = dims.n;
    var sum = 0.0;
    let tiles = (n + 15u) / 16u;
    for (var t = 0u; t < tiles; t++) {
        let ak = t * 16u + l.x;
        let bk = t * 16u + l.y;
        ta[l.y][l.x] = select(0.0, a[id.y * n + ak], id.y < n && ak < n);
        tb[l.y][l.x] = select(0.0, b[bk * n + id.x], bk < n && id.x < n);
        workgroupBarrier();
        for (var k = 0u; k < 16u; k++) {
            sum += ta[l.y][k] * tb[k][l.x];
        }
        workgroupBarrier();
    }
    if (id.x < n && id.y < n) {
        c[id.y * n + id.x] = sum;
    }
}
