// Inference of a two-layer perceptron over 28x28 images (MNIST's shape): 784 inputs, 64 hidden
// units (ReLU), 10 outputs. One workgroup per image: each of its 64 invocations computes one
// hidden unit, then (after a barrier) the first 10 compute the logits from workgroup memory and
// the first writes the class (the index of the largest logit, the lowest index on ties).
//
// `weights` (f32, row-major): w1[64][784], b1[64], w2[10][64], b2[10]. `images`: f32 [n][784].
// Outputs: `logits` f32 [n][10], `classes` u32 [n].
@group(0) @binding(0) var<storage, read> weights: array<f32>;
@group(0) @binding(1) var<storage, read> images: array<f32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> classes: array<u32>;

const INPUTS = 784u;
const HIDDEN = 64u;
const OUTPUTS = 10u;
const B1 = HIDDEN * INPUTS;
const W2 = B1 + HIDDEN;
const B2 = W2 + OUTPUTS * HIDDEN;

var<workgroup> hidden: array<f32, 64>;
var<workgroup> out: array<f32, 10>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) j: u32, @builtin(workgroup_id) image: vec3<u32>) {
    let x = image.x * INPUTS;
    var sum = weights[B1 + j];
    for (var i = 0u; i < INPUTS; i++) {
        sum += weights[j * INPUTS + i] * images[x + i];
    }
    hidden[j] = max(sum, 0.0);
    workgroupBarrier();
    if (j < OUTPUTS) {
        var logit = weights[B2 + j];
        for (var h = 0u; h < HIDDEN; h++) {
            logit += weights[W2 + j * HIDDEN + h] * hidden[h];
        }
        out[j] = logit;
        logits[image.x * OUTPUTS + j] = logit;
    }
    workgroupBarrier();
    if (j == 0u) {
        var best = 0u;
        for (var c = 1u; c < OUTPUTS; c++) {
            if (out[c] > out[best]) {
                best = c;
            }
        }
        classes[image.x] = best;
    }
}
