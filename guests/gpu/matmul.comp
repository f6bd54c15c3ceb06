// C = A x B for n x n matrices of f32, row-major; `n` is dims.n. One invocation per element of C:
// `matmul.wgsl` in GLSL (naga's GLSL front end; entry point `main`).
#version 450

layout(local_size_x = 8, local_size_y = 8) in;

layout(std140, set = 0, binding = 0) uniform Dims { uint n; } dims;
layout(std430, set = 0, binding = 1) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 2) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 3) buffer C { float c[]; };

void main() {
    uint n = dims.n;
    uvec3 id = gl_GlobalInvocationID;
    if (id.x >= n || id.y >= n) {
        return;
    }
    float sum = 0.0;
    for (uint k = 0u; k < n; k++) {
        sum += a[id.y * n + k] * b[k * n + id.x];
    }
    c[id.y * n + id.x] = sum;
}
