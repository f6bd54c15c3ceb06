//! One GPU device and its pipeline cache: binds a task's buffers, dispatches its shader, reads
//! back its outputs and the meter.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::admit::{BindingKind, Shader};
use crate::meter::{FLAG_LOOP_CUT, FLAG_OUT_OF_FUEL, MAX_INVOCATION_FUEL, METER_BYTES};
use crate::{GpuError, GpuOutcome, GpuReport, GpuTask};

/// What a provider reports of its adapter: enough to tell devices that compute alike apart
/// (vendor, device, driver and backend) and to schedule by memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    /// The adapter's name (`llvmpipe (LLVM 15.0.6, 256 bits)` for Mesa's software driver).
    pub name: String,
    /// PCI vendor id (0x10005 for Mesa's software drivers).
    pub vendor: u32,
    /// PCI device id.
    pub device: u32,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// The driver's name.
    pub driver: String,
    /// The driver's version string.
    pub driver_info: String,
    /// `Vulkan`, `Metal` or `Dx12`.
    pub backend: String,
    /// Largest buffer the device takes, in bytes.
    pub max_buffer_bytes: u64,
    /// Most workgroup memory one workgroup may use, in bytes.
    pub max_workgroup_bytes: u32,
}

/// A compiled pipeline and the layouts of its two bind groups (the task's and the meter's).
struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    task_layout: wgpu::BindGroupLayout,
    /// `None` for a shader without metering ([`crate::baseline`]).
    meter_layout: Option<wgpu::BindGroupLayout>,
}

/// A GPU device, opened once and shared by the runs of a provider.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: Adapter,
    limits: wgpu::Limits,
    pipelines: Mutex<HashMap<[u8; 32], Arc<Pipeline>>>,
    /// Set when the device is lost (a driver reset after a watchdog timeout, a removed GPU):
    /// every later run fails, so its owner opens a new one ([`Gpu::is_lost`]).
    lost: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.adapter)
            .finish()
    }
}

fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Every adapter present on Vulkan, Metal or DX12, best first (a discrete GPU before an
/// integrated one, a software one last).
fn enumerate() -> Vec<wgpu::Adapter> {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(descriptor);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    adapters
}

fn describe(info: wgpu::AdapterInfo, limits: &wgpu::Limits) -> Adapter {
    Adapter {
        name: info.name,
        vendor: info.vendor,
        device: info.device,
        device_type: format!("{:?}", info.device_type),
        driver: info.driver,
        driver_info: info.driver_info,
        backend: format!("{:?}", info.backend),
        max_buffer_bytes: limits.max_buffer_size,
        max_workgroup_bytes: limits.max_compute_workgroup_storage_size,
    }
}

/// The adapters present, best first, without opening any (what a provider advertises).
pub fn adapters() -> Vec<Adapter> {
    enumerate()
        .into_iter()
        .map(|a| describe(a.get_info(), &a.limits()))
        .collect()
}

impl Adapter {
    /// Whether this is a GPU rather than a software rasterizer on the CPU (lavapipe, WARP).
    pub fn is_hardware(&self) -> bool {
        self.device_type != "Cpu"
    }
}

impl Gpu {
    /// Opens the best adapter present (a discrete GPU before an integrated one, a software one
    /// last) on Vulkan, Metal or DX12.
    pub fn open() -> Result<Gpu, GpuError> {
        let adapter = enumerate().into_iter().next().ok_or(GpuError::NoAdapter)?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gridmint"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(format!("cannot open {}: {e}", info.name)))?;
        // Errors are caught by error scopes around each run; one that escapes them must not
        // abort the provider (wgpu's default handler panics).
        device.on_uncaptured_error(Arc::new(|_error| {}));
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |_reason, _message| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Ok(Gpu {
            adapter: describe(info, &limits),
            device,
            queue,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            lost,
        })
    }

    /// Whether the device was lost (a driver reset, a removed GPU, [`Gpu::destroy`]): nothing
    /// runs on it any more; [`Gpu::open`] a new one.
    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Loses the device on purpose, as a driver reset would (for tests of what happens then).
    pub fn destroy(&self) {
        self.device.destroy();
        let _ = self.device.poll(wgpu::PollType::Poll);
    }

    /// The adapter this device runs on.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }

    fn pipeline(&self, shader: &Shader) -> Result<Arc<Pipeline>, GpuError> {
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| GpuError::Device("pipeline cache poisoned".to_owned()))?;
        if let Some(p) = cache.get(&shader.hash) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("task"),
                source: wgpu::ShaderSource::Naga(Cow::Owned(shader.module.clone())),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("task"),
                layout: None,
                module: &module,
                entry_point: Some(&shader.entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::InvalidTask(format!(
                "the device refused the shader: {error}"
            )));
        }
        let pipeline = Arc::new(Pipeline {
            task_layout: pipeline.get_bind_group_layout(0),
            meter_layout: shader
                .metered
                .then(|| pipeline.get_bind_group_layout(crate::meter::METER_GROUP)),
            pipeline,
        });
        cache.insert(shader.hash, pipeline.clone());
        Ok(pipeline)
    }

    /// Checks `task` against `shader` and this device; returns the number of invocations.
    fn check(&self, shader: &Shader, task: &GpuTask) -> Result<u64, GpuError> {
        let invalid = |m: String| Err(GpuError::InvalidTask(m));
        let mut declared: Vec<u32> = task.buffers.iter().map(|b| b.binding).collect();
        declared.sort_unstable();
        let wanted: Vec<u32> = shader.bindings.iter().map(|b| b.binding).collect();
        if declared != wanted {
            return invalid(format!(
                "the task binds {declared:?} but the entry point uses bindings {wanted:?} of \
                 @group(0), each once"
            ));
        }
        let mut total = 0u64;
        for buffer in &task.buffers {
            let Some(b) = shader.bindings.iter().find(|b| b.binding == buffer.binding) else {
                return invalid(format!("binding {} is not used", buffer.binding));
            };
            let len = buffer.bytes.len() as u64;
            let max = match b.kind {
                BindingKind::Uniform => self.limits.max_uniform_buffer_binding_size,
                _ => self.limits.max_storage_buffer_binding_size,
            }
            .min(self.limits.max_buffer_size);
            if !len.is_multiple_of(4) || len < b.min_bytes.max(4) || len > max {
                return invalid(format!(
                    "buffer {} has {len} bytes: it needs a multiple of 4 from {} to {max}",
                    buffer.binding,
                    b.min_bytes.max(4)
                ));
            }
            if buffer.output && b.kind != BindingKind::ReadWrite {
                return invalid(format!(
                    "buffer {} is an output but the shader cannot write it",
                    buffer.binding
                ));
            }
            total = total.saturating_add(len);
        }
        if total > task.max_bytes {
            return invalid(format!(
                "the buffers take {total} bytes, more than the task's {}",
                task.max_bytes
            ));
        }
        let [x, y, z] = shader.workgroup_size;
        let l = &self.limits;
        if x > l.max_compute_workgroup_size_x
            || y > l.max_compute_workgroup_size_y
            || z > l.max_compute_workgroup_size_z
            || u64::from(x) * u64::from(y) * u64::from(z)
                > u64::from(l.max_compute_invocations_per_workgroup)
        {
            return invalid(format!(
                "workgroup size {x}x{y}x{z} exceeds this device's limits ({}x{}x{}, {} in all)",
                l.max_compute_workgroup_size_x,
                l.max_compute_workgroup_size_y,
                l.max_compute_workgroup_size_z,
                l.max_compute_invocations_per_workgroup
            ));
        }
        // wgpu does not hold a shader given as naga IR to this limit (lavapipe ran a 4 MiB
        // workgroup array against its 32 KiB): the sandbox does.
        if shader.workgroup_bytes > u64::from(l.max_compute_workgroup_storage_size) {
            return invalid(format!(
                "the shader uses {} bytes of workgroup memory; this device gives {}",
                shader.workgroup_bytes, l.max_compute_workgroup_storage_size
            ));
        }
        let max = l.max_compute_workgroups_per_dimension;
        if task.workgroups.iter().any(|&n| n == 0 || n > max) {
            return invalid(format!(
                "dispatch {:?}: each dimension must be from 1 to {max}",
                task.workgroups
            ));
        }
        let groups: u64 = task.workgroups.iter().map(|&n| u64::from(n)).product();
        Ok(groups * u64::from(x) * u64::from(y) * u64::from(z))
    }

    /// A buffer holding `bytes`, written through the queue: unlike wgpu's `create_buffer_init`
    /// (which maps it at creation, and panics when the device is lost meanwhile), a failure
    /// here is an error the run's error scope reports.
    fn filled(&self, bytes: &[u8], usage: wgpu::BufferUsages, label: Option<&str>) -> wgpu::Buffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label,
            size: bytes.len() as u64,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buffer, 0, bytes);
        buffer
    }

    /// Runs `task` with `shader`. A shader's failure is the report's outcome; `Err` means the
    /// task was not run (or the device failed).
    pub fn run(&self, shader: &Shader, task: &GpuTask) -> Result<GpuReport, GpuError> {
        let invocations = self.check(shader, task)?;
        if self.is_lost() {
            return Err(GpuError::Device("the device was lost".into()));
        }
        let share = (task.fuel / invocations).min(u64::from(MAX_INVOCATION_FUEL));
        let share = u32::try_from(share).unwrap_or(MAX_INVOCATION_FUEL);
        let pipeline = self.pipeline(shader)?;

        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut buffers = Vec::with_capacity(task.buffers.len());
        for b in &task.buffers {
            let kind = shader
                .bindings
                .iter()
                .find(|s| s.binding == b.binding)
                .map(|s| s.kind);
            let usage = if kind == Some(BindingKind::Uniform) {
                wgpu::BufferUsages::UNIFORM
            } else {
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC
            };
            let buffer = self.filled(&b.bytes, usage, None);
            buffers.push((b, buffer));
        }
        let mut meter = [0u8; METER_BYTES as usize];
        meter[..4].copy_from_slice(&share.to_le_bytes());
        let meter = self.filled(
            &meter,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            Some("meter"),
        );
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .map(|(b, buffer)| wgpu::BindGroupEntry {
                binding: b.binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        let task_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.task_layout,
            entries: &entries,
        });
        let meter_group = pipeline.meter_layout.as_ref().map(|layout| {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout,
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: meter.as_entire_binding(),
                }],
            })
        });

        // Read back the meter and the outputs through one mappable buffer.
        let outputs: Vec<_> = buffers.iter().filter(|(b, _)| b.output).collect();
        let readback_len = METER_BYTES
            + outputs
                .iter()
                .map(|(b, _)| b.bytes.len() as u64)
                .sum::<u64>();
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: readback_len,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &task_group, &[]);
            if let Some(group) = &meter_group {
                pass.set_bind_group(crate::meter::METER_GROUP, group, &[]);
            }
            let [x, y, z] = task.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
        encoder.copy_buffer_to_buffer(&meter, 0, &readback, 0, METER_BYTES);
        let mut offset = METER_BYTES;
        for (b, buffer) in &outputs {
            let len = b.bytes.len() as u64;
            encoder.copy_buffer_to_buffer(buffer, 0, &readback, offset, len);
            offset += len;
        }
        let index = self.queue.submit([encoder.finish()]);
        let slice = readback.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let waited = self.device.poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(task.timeout),
        });
        if let Some(error) = pollster::block_on(oom.pop()) {
            return Err(GpuError::Device(format!("out of device memory: {error}")));
        }
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device(error.to_string()));
        }
        match waited {
            Ok(_) => {}
            Err(wgpu::PollError::Timeout) => {
                return Ok(GpuReport {
                    outcome: GpuOutcome::TimedOut,
                    fuel: 0,
                    outputs: Vec::new(),
                });
            }
            Err(e) => return Err(GpuError::Device(e.to_string())),
        }
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Device(format!("readback failed: {e}"))),
            Err(_) => return Err(GpuError::Device("readback never completed".to_owned())),
        }
        let data = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Device(format!("readback failed: {e:?}")))?;
        let word = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let fuel = u64::from(word(4)) | (u64::from(word(8)) << 32);
        let flags = word(12);
        let outcome = if flags & FLAG_LOOP_CUT != 0 {
            GpuOutcome::LoopCutShort
        } else if flags & FLAG_OUT_OF_FUEL != 0 {
            GpuOutcome::OutOfFuel
        } else {
            GpuOutcome::Completed
        };
        let mut at = METER_BYTES as usize;
        let mut out = Vec::with_capacity(outputs.len());
        for (b, _) in &outputs {
            let len = b.bytes.len();
            out.push((b.binding, data[at..at + len].to_vec()));
            at += len;
        }
        out.sort_by_key(|(binding, _)| *binding);
        Ok(GpuReport {
            outcome,
            fuel,
            outputs: out,
        })
    }
}
