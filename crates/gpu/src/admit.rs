//! Admission of a compute shader: parsed and validated by naga, held to Gridmint's rules (what a
//! task may bind, which atomics it may use), then metered (`meter.rs`) and validated again.
//!
//! The rules keep an honest run's output a function of its inputs on one kind of device:
//!
//! - only buffers of bind group 0 (storage, read-only or read-write, and uniform), each declared
//!   by the task; no textures, samplers, immediates or pipeline-overridable constants;
//! - naga's validation with no optional capability: no subgroup operations (their results
//!   depend on the device's subgroup size), no 64-bit or float atomics, no `f16`/`f64`;
//! - atomics only where the order in which invocations ran cannot show: `atomicAdd`, `Sub`,
//!   `And`, `Or`, `Xor`, `Min` and `Max` whose result is not used, one kind to a variable (`Add`
//!   and `Sub` count as one): the final value is then the same in any order, which it is not
//!   for an `atomicAdd` and an `atomicMax` on the same place; `atomicLoad` and `atomicStore` only
//!   on workgroup memory (storage atomics are written by every workgroup at once; a workgroup's
//!   own are read after a barrier); no `atomicExchange` or `atomicCompareExchangeWeak`.
//!
//! What no static rule catches — plain stores of different values to one place by different
//! invocations — makes the replicas of a task disagree, as any other nondeterministic program does.

use std::collections::HashMap;

use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use naga::{
    AddressSpace, AtomicFunction, Expression, Function, GlobalVariable, Module, ShaderStage,
    Statement, TypeInner,
};

use crate::GpuError;
use crate::meter;

/// How a binding of group 0 is declared in the shader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKind {
    /// `var<storage, read>`.
    ReadOnly,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `var<uniform>`.
    Uniform,
}

/// A buffer the entry point uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShaderBinding {
    /// `@binding(n)` in `@group(0)`.
    pub binding: u32,
    /// How it is declared.
    pub kind: BindingKind,
    /// The least size in bytes its type allows (one element of a runtime-sized array).
    pub min_bytes: u64,
}

/// An admitted, metered shader, ready for [`crate::Gpu::run`].
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "device"), allow(dead_code))]
pub struct Shader {
    pub(crate) module: Module,
    pub(crate) entry: String,
    /// `@workgroup_size`.
    pub workgroup_size: [u32; 3],
    /// Bytes of workgroup memory the entry point uses (the meter's flag included).
    pub workgroup_bytes: u64,
    /// The buffers the entry point uses, by binding number.
    pub bindings: Vec<ShaderBinding>,
    /// BLAKE3 of the source, the entry point's name and whether it is metered: the key of the
    /// device's pipeline cache.
    pub hash: [u8; 32],
    /// Whether the meter pass ran (always, but for [`crate::baseline`]'s shaders).
    pub(crate) metered: bool,
    /// Whether the shader has no floating-point type at all: its results are then the same bits
    /// on every conforming device, and its replicas may run on any (see `class.rs`).
    pub integer_only: bool,
}

/// naga's validation with no optional capability; the error as naga prints it against `source`.
fn validate(module: &Module, source: &str) -> Result<ModuleInfo, String> {
    Validator::new(ValidationFlags::all(), Capabilities::empty())
        .validate(module)
        .map_err(|e| e.emit_to_string(source))
}

/// Parses, validates and meters `source`'s compute entry point `entry`.
pub fn admit(source: &str, entry: &str) -> Result<Shader, GpuError> {
    admit_with(source, entry, true)
}

/// [`admit`], metering the shader or not.
pub(crate) fn admit_with(source: &str, entry: &str, meter: bool) -> Result<Shader, GpuError> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| GpuError::Parse(e.emit_to_string(source)))?;
    let info = validate(&module, source).map_err(GpuError::Invalid)?;
    let Some(index) = module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry && ep.stage == ShaderStage::Compute)
    else {
        let names: Vec<&str> = module
            .entry_points
            .iter()
            .filter(|ep| ep.stage == ShaderStage::Compute)
            .map(|ep| ep.name.as_str())
            .collect();
        return Err(GpuError::Refused(format!(
            "no compute entry point `{entry}` (the shader has: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    if !module.overrides.is_empty() {
        return Err(GpuError::Refused(
            "pipeline-overridable constants (`override`) are not supported".to_owned(),
        ));
    }

    let used = info.get_entry_point(index);
    let mut bindings = Vec::new();
    let mut workgroup_bytes = 4u64;
    for (handle, global) in module.global_variables.iter() {
        if used[handle].is_empty() {
            continue;
        }
        let name = global.name.as_deref().unwrap_or("?");
        let kind = match global.space {
            AddressSpace::Storage { access } if access.contains(naga::StorageAccess::STORE) => {
                BindingKind::ReadWrite
            }
            AddressSpace::Storage { .. } => BindingKind::ReadOnly,
            AddressSpace::Uniform => BindingKind::Uniform,
            AddressSpace::WorkGroup => {
                let size = module.types[global.ty].inner.size(module.to_ctx());
                workgroup_bytes = workgroup_bytes.saturating_add(u64::from(size));
                continue;
            }
            AddressSpace::Private | AddressSpace::Function => continue,
            other => {
                return Err(GpuError::Refused(format!(
                    "`{name}` is in address space {other:?}: a task binds only storage and \
                     uniform buffers"
                )));
            }
        };
        let Some(binding) = &global.binding else {
            continue;
        };
        if binding.group != 0 {
            return Err(GpuError::Refused(format!(
                "`{name}` is in @group({}): a task's buffers are in @group(0)",
                binding.group
            )));
        }
        let min_bytes = u64::from(module.types[global.ty].inner.size(module.to_ctx()));
        bindings.push(ShaderBinding {
            binding: binding.binding,
            kind,
            min_bytes,
        });
    }
    bindings.sort_by_key(|b| b.binding);

    let mut kinds = HashMap::new();
    for (handle, function) in module.functions.iter() {
        check_atomics(&module, function, &info[handle], &mut kinds)?;
    }
    check_atomics(
        &module,
        &module.entry_points[index].function,
        used,
        &mut kinds,
    )?;

    let mut metered = module.clone();
    if meter {
        meter::instrument(&mut metered, index);
        validate(&metered, "").map_err(|e| {
            GpuError::Invalid(format!(
                "the metered shader does not validate (a bug in Gridmint's metering): {e}"
            ))
        })?;
    }

    let mut hasher = blake3::Hasher::new();
    hasher.update(&(source.len() as u64).to_le_bytes());
    hasher.update(source.as_bytes());
    hasher.update(entry.as_bytes());
    hasher.update(&[u8::from(meter)]);
    // Types in the arena (variables, members) and the type of every expression: a float may
    // live only in an expression (`u32(f32(x) * 0.5)`).
    let mut integer_only = !module.types.iter().any(|(_, ty)| is_float(&ty.inner));
    let functions = module
        .functions
        .iter()
        .map(|(h, f)| (f, &info[h]))
        .chain(std::iter::once((
            &module.entry_points[index].function,
            used,
        )));
    for (function, finfo) in functions {
        if function
            .expressions
            .iter()
            .any(|(h, _)| is_float(finfo[h].ty.inner_with(&module.types)))
        {
            integer_only = false;
        }
    }
    Ok(Shader {
        workgroup_bytes,
        integer_only,
        metered: meter,
        workgroup_size: module.entry_points[index].workgroup_size,
        module: metered,
        entry: entry.to_owned(),
        bindings,
        hash: *hasher.finalize().as_bytes(),
    })
}

/// Whether values of type `inner` are floats (scalars, vectors or matrices of them).
fn is_float(inner: &TypeInner) -> bool {
    let scalar = match *inner {
        TypeInner::Scalar(s) | TypeInner::Vector { scalar: s, .. } | TypeInner::Atomic(s) => s,
        TypeInner::Matrix { .. } => return true,
        TypeInner::ValuePointer { scalar, .. } => scalar,
        _ => return false,
    };
    matches!(
        scalar.kind,
        naga::ScalarKind::Float | naga::ScalarKind::AbstractFloat
    )
}

/// The address space of the atomic `pointer` points to, if it points to an atomic.
fn atomic_space(
    module: &Module,
    info: &naga::valid::FunctionInfo,
    pointer: naga::Handle<Expression>,
) -> Option<AddressSpace> {
    match *info[pointer].ty.inner_with(&module.types) {
        TypeInner::Pointer { base, space } => {
            matches!(module.types[base].inner, TypeInner::Atomic(_)).then_some(space)
        }
        _ => None,
    }
}

/// The variable an atomic operation's pointer points into; `None` when it comes from a function
/// argument.
fn root(
    function: &Function,
    mut pointer: naga::Handle<Expression>,
) -> Option<naga::Handle<GlobalVariable>> {
    loop {
        match function.expressions[pointer] {
            Expression::Access { base, .. } | Expression::AccessIndex { base, .. } => {
                pointer = base
            }
            Expression::GlobalVariable(global) => return Some(global),
            _ => return None,
        }
    }
}

/// The kind of an order-free atomic operation: operations of one kind commute.
fn kind(fun: &AtomicFunction) -> &'static str {
    match fun {
        AtomicFunction::Add | AtomicFunction::Subtract => "atomicAdd/atomicSub",
        AtomicFunction::And => "atomicAnd",
        AtomicFunction::InclusiveOr => "atomicOr",
        AtomicFunction::ExclusiveOr => "atomicXor",
        AtomicFunction::Min => "atomicMin",
        AtomicFunction::Max => "atomicMax",
        AtomicFunction::Exchange { .. } => "atomicExchange",
    }
}

/// Checks one function's atomics; `kinds` holds the kind of operation seen on each variable.
fn check_atomics(
    module: &Module,
    function: &Function,
    info: &naga::valid::FunctionInfo,
    kinds: &mut HashMap<Option<naga::Handle<GlobalVariable>>, &'static str>,
) -> Result<(), GpuError> {
    let refuse = |what: &str| {
        Err(GpuError::Refused(format!(
            "{what}: its result depends on the order in which invocations ran"
        )))
    };
    for (_, expression) in function.expressions.iter() {
        if let Expression::Load { pointer } = *expression
            && let Some(space) = atomic_space(module, info, pointer)
            && space != AddressSpace::WorkGroup
        {
            return refuse("`atomicLoad` of a storage atomic");
        }
    }
    let mut stack = vec![&function.body];
    while let Some(block) = stack.pop() {
        for statement in block.iter() {
            match statement {
                Statement::Atomic {
                    fun: naga::AtomicFunction::Exchange { compare },
                    ..
                } => {
                    return refuse(if compare.is_some() {
                        "`atomicCompareExchangeWeak`"
                    } else {
                        "`atomicExchange`"
                    });
                }
                Statement::Atomic {
                    result: Some(result),
                    ..
                } if info[*result].ref_count > 0 => {
                    return refuse("an atomic operation whose returned value is used");
                }
                Statement::Atomic { pointer, fun, .. } => {
                    let root = root(function, *pointer);
                    let this = kind(fun);
                    // A pointer of unknown origin may alias any variable.
                    let clash = kinds.iter().find(|&(r, k)| {
                        *k != this && (root.is_none() || r.is_none() || *r == root)
                    });
                    if let Some((r, k)) = clash {
                        let name = r
                            .or(root)
                            .and_then(|g| module.global_variables[g].name.clone())
                            .unwrap_or_else(|| "a pointer argument".to_owned());
                        return refuse(&format!("{k} and {this} on `{name}`"));
                    }
                    kinds.insert(root, this);
                }
                Statement::Store { pointer, .. } => {
                    if let Some(space) = atomic_space(module, info, *pointer)
                        && space != AddressSpace::WorkGroup
                    {
                        return refuse("`atomicStore` to a storage atomic");
                    }
                }
                Statement::Block(b) => stack.push(b),
                Statement::If { accept, reject, .. } => {
                    stack.push(accept);
                    stack.push(reject);
                }
                Statement::Switch { cases, .. } => stack.extend(cases.iter().map(|c| &c.body)),
                Statement::Loop {
                    body, continuing, ..
                } => {
                    stack.push(body);
                    stack.push(continuing);
                }
                _ => {}
            }
        }
    }
    Ok(())
}
