//! Determinism classes: which devices give the same bits for a float shader.
//!
//! GPUs do not round alike: transcendental functions are approximations of each vendor's and
//! driver's own, and compilers fuse a multiply and an add where they please (on Mesa's lavapipe,
//! 16 of 19,200 pixels of `guests/gpu/mandelbrot.wgsl` differ from the same `f32` code on the
//! CPU). So a float shader's replicas agree only within a class: the same adapter vendor, device,
//! driver and driver version, and backend ([`Adapter::class`]). A shader with no float type at all
//! ([`crate::Shader::integer_only`]) gives the same bits everywhere and needs no class.
//!
//! A provider cannot simply claim a class: [`fingerprint`] runs a float shader on inputs drawn
//! from a challenge (a verifier's random number) through the functions where devices differ —
//! `a * b + c`, division, square roots, `exp`, `log`, `pow`, `sin`, `cos`, `tanh` — and hashes
//! the bits. Devices of one class give the same fingerprint for every challenge; a device that
//! is not of the class it claims gives another one as soon as one of its roundings differs,
//! and cannot prepare for a challenge it has not seen.

use crate::{Adapter, Gpu, GpuError, GpuOutcome, GpuTask, TaskBuffer};
use std::time::Duration;

/// Inputs per fingerprint (each goes through every function).
const SAMPLES: u32 = 4096;

const SHADER: &str = r#"
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let v = x[id.x];
    let a = v.x;
    let b = v.y;
    let c = v.z;
    let d = abs(v.w) + 1e-3;
    let i = id.x * 3u;
    y[i] = vec4(a * b + c, a / d, sqrt(d), inverseSqrt(d));
    y[i + 1u] = vec4(exp(a), log(d), pow(d, b), sin(a * 7.0));
    y[i + 2u] = vec4(cos(b * 3.0), tanh(c), atan2(a, d), fract(a * b * 100.0));
}
"#;

impl Adapter {
    /// The adapter's determinism class: vendor, device, driver, driver version and backend.
    pub fn class(&self) -> String {
        format!(
            "{:04x}:{:04x} {} {} {}",
            self.vendor, self.device, self.driver, self.driver_info, self.backend
        )
    }
}

/// Inputs from `challenge` (SplitMix64): three factors in about [-8, 8) and a fourth term.
fn inputs(challenge: u64) -> Vec<u8> {
    let mut state = challenge;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..SAMPLES * 4)
        .flat_map(|_| {
            let bits = next();
            let unit = (bits >> 40) as f32 / (1u64 << 24) as f32;
            (unit * 16.0 - 8.0).to_le_bytes()
        })
        .collect()
}

/// The fingerprint of `gpu`'s float arithmetic for `challenge`: BLAKE3 of the challenge and
/// the bits of every result.
pub fn fingerprint(gpu: &Gpu, challenge: u64) -> Result<[u8; 32], GpuError> {
    let shader = crate::admit(SHADER, "main")?;
    let task = GpuTask {
        workgroups: [SAMPLES / 64, 1, 1],
        buffers: vec![
            TaskBuffer {
                binding: 0,
                bytes: inputs(challenge),
                output: false,
            },
            TaskBuffer {
                binding: 1,
                bytes: vec![0; (SAMPLES * 3 * 16) as usize],
                output: true,
            },
        ],
        fuel: u64::MAX,
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(60),
    };
    let report = gpu.run(&shader, &task)?;
    if report.outcome != GpuOutcome::Completed {
        return Err(GpuError::Device(format!(
            "the fingerprint shader ended {:?}",
            report.outcome
        )));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(&challenge.to_le_bytes());
    for (_, bytes) in &report.outputs {
        hasher.update(bytes);
    }
    Ok(*hasher.finalize().as_bytes())
}
