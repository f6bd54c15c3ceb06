//! Shaders without metering, for benchmarks only (`gridmint bench --only gpu`: what the meter
//! costs next to the same shader through plain wgpu). Nothing a network runs comes from here.

use crate::{GpuError, Shader};

/// [`crate::admit`] without the meter pass: the same checks, the shader as written. Its runs
/// report no fuel, and an endless loop runs until the task's timeout (or the driver stops it).
pub fn admit_unmetered(source: &str, entry: &str) -> Result<Shader, GpuError> {
    crate::admit::admit_with(source.as_bytes(), entry, false)
}
