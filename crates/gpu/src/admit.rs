//! Admission of a compute shader: parsed by naga's front end for its language (WGSL, GLSL or
//! SPIR-V, told from the bytes: `front.rs`) and validated, held to Gridmint's rules (what a task
//! may bind, which atomics it may use), then metered (`meter.rs`) and validated again. The rules
//! and the meter see only naga's IR, so they are the same whatever the language.
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
use std::panic::{AssertUnwindSafe, catch_unwind};

use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use naga::{
    AddressSpace, AtomicFunction, Block, Expression, Function, GlobalVariable, Module, Scalar,
    ShaderStage, Statement, TypeInner,
};

use crate::GpuError;
use crate::front::{self, ShaderLanguage};
use crate::meter;

/// Stack of the thread a shader is admitted on: naga's front ends, its validator and the meter
/// recurse over the shader's nesting, which `front.rs` and [`MAX_NESTING`] bound; this holds
/// those bounds with room to spare (only what is used is ever touched).
const ADMIT_STACK: usize = 64 << 20;

/// The deepest a GLSL or SPIR-V shader's blocks may nest in naga's IR (a WGSL shader's are
/// bounded by naga's WGSL front end: 127 nested braces).
pub(crate) const MAX_NESTING: usize = 256;

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
    /// Whether every scalar in its type is an `f32` (`array<f32>`, `array<vec4<f32>>`, a struct
    /// of `f32` fields, `f32` matrices): its bytes are then `f32` values (and the padding its
    /// layout leaves between them). False if any integer, boolean, atomic or other scalar
    /// appears.
    pub floats_only: bool,
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
    /// BLAKE3 of the shader's bytes, the entry point's name and whether it is metered: the key of the
    /// device's pipeline cache.
    pub hash: [u8; 32],
    /// Whether the meter pass ran (always, but for [`crate::baseline`]'s shaders).
    pub(crate) metered: bool,
    /// Whether the shader has no floating-point type at all: its results are then the same bits
    /// on every conforming device, and its replicas may run on any (see `class.rs`).
    pub integer_only: bool,
    /// The language it was given in.
    pub language: ShaderLanguage,
}

/// naga's validation with no optional capability; the error as naga prints it against the
/// shader's text, or (SPIR-V, or a module the meter changed) with its causes.
fn validate(module: &Module, text: Option<(&str, ShaderLanguage)>) -> Result<ModuleInfo, String> {
    Validator::new(ValidationFlags::all(), Capabilities::empty())
        .validate(module)
        .map_err(|e| match text {
            Some((text, ShaderLanguage::Glsl)) => e.emit_to_string_with_path(text, "glsl"),
            Some((text, _)) => e.emit_to_string(text),
            None => {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                message
            }
        })
}

/// Parses, validates and meters the compute entry point `entry` of a shader given as text: WGSL,
/// or GLSL (see [`admit_bytes`]).
pub fn admit(source: &str, entry: &str) -> Result<Shader, GpuError> {
    admit_bytes(source.as_bytes(), entry)
}

/// Parses, validates and meters the compute entry point `entry` of a shader in WGSL, GLSL or
/// SPIR-V, the language told from the bytes ([`crate::language`]). A GLSL shader's entry point
/// is `main`. Everything naga's front ends refuse (or fail on: a panic is caught) is a
/// [`GpuError::Parse`].
pub fn admit_bytes(bytes: &[u8], entry: &str) -> Result<Shader, GpuError> {
    admit_with(bytes, entry, true)
}

/// [`admit_bytes`], metering the shader or not, on a thread of its own (see [`ADMIT_STACK`]).
pub(crate) fn admit_with(bytes: &[u8], entry: &str, meter: bool) -> Result<Shader, GpuError> {
    std::thread::scope(|scope| {
        let admission = std::thread::Builder::new()
            .name("gpu-admit".to_owned())
            .stack_size(ADMIT_STACK)
            .spawn_scoped(scope, || admit_here(bytes, entry, meter))
            .map_err(|e| GpuError::Device(format!("starting a thread to admit a shader: {e}")))?;
        admission.join().unwrap_or_else(|_| {
            Err(GpuError::Invalid(
                "admitting the shader failed (a panic in naga or in Gridmint's checks)".to_owned(),
            ))
        })
    })
}

/// [`admit_with`] on this thread.
fn admit_here(bytes: &[u8], entry: &str, meter: bool) -> Result<Shader, GpuError> {
    let language = front::language(bytes)?;
    let parsed = front::parse(bytes, language)?;
    // naga's validator panics on some modules that only the GLSL and SPIR-V front ends make
    // (a function that calls itself); the checks before it refuse those that are known.
    catch_unwind(AssertUnwindSafe(|| {
        check(parsed.module, parsed.text, language, bytes, entry, meter)
    }))
    .unwrap_or_else(|_| {
        Err(GpuError::Invalid(
            "naga's validation or Gridmint's checks failed on this shader".to_owned(),
        ))
    })
}

/// Refuses a module whose functions call themselves or a function after them (naga's validator
/// would index past what it has validated and panic): recursion is not allowed.
fn check_calls(module: &Module) -> Result<(), GpuError> {
    let functions = module.functions.len();
    let bodies = module
        .functions
        .iter()
        .map(|(h, f)| (f, h.index(), f.name.as_deref()))
        .chain(
            module
                .entry_points
                .iter()
                .map(|ep| (&ep.function, functions, Some(ep.name.as_str()))),
        );
    for (function, limit, name) in bodies {
        let mut stack = vec![&function.body];
        while let Some(block) = stack.pop() {
            for statement in block.iter() {
                if let Statement::Call { function, .. } = statement
                    && function.index() >= limit
                {
                    return Err(GpuError::Invalid(format!(
                        "function `{}` calls itself or a function declared after it: recursion                          is not allowed",
                        name.unwrap_or("?")
                    )));
                }
                stack.extend(nested(statement));
            }
        }
    }
    Ok(())
}

/// The blocks nested directly in `statement`.
fn nested(statement: &Statement) -> Vec<&Block> {
    match statement {
        Statement::Block(b) => vec![b],
        Statement::If { accept, reject, .. } => vec![accept, reject],
        Statement::Switch { cases, .. } => cases.iter().map(|c| &c.body).collect(),
        Statement::Loop {
            body, continuing, ..
        } => vec![body, continuing],
        _ => Vec::new(),
    }
}

/// Refuses a module whose blocks nest more than [`MAX_NESTING`] deep (counted without
/// recursion).
fn check_nesting(module: &Module) -> Result<(), GpuError> {
    let functions = module
        .functions
        .iter()
        .map(|(_, f)| f)
        .chain(module.entry_points.iter().map(|ep| &ep.function));
    for function in functions {
        let mut stack = vec![(&function.body, 1usize)];
        while let Some((block, depth)) = stack.pop() {
            if depth > MAX_NESTING {
                return Err(GpuError::Refused(format!(
                    "blocks nested more than {MAX_NESTING} deep (`if`, loops, `switch`)"
                )));
            }
            for statement in block.iter() {
                stack.extend(nested(statement).into_iter().map(|b| (b, depth + 1)));
            }
        }
    }
    Ok(())
}

/// For each type of the arena, by index, whether every scalar in it is an `f32` (types refer only
/// to types before them: one pass in order).
fn floats_only_types(module: &Module) -> Vec<bool> {
    let mut floats: Vec<bool> = Vec::with_capacity(module.types.len());
    for (_, ty) in module.types.iter() {
        let of = |h: naga::Handle<naga::Type>| floats.get(h.index()).copied().unwrap_or(false);
        let value = match ty.inner {
            TypeInner::Scalar(s)
            | TypeInner::Vector { scalar: s, .. }
            | TypeInner::Matrix { scalar: s, .. } => s == Scalar::F32,
            TypeInner::Array { base, .. } => of(base),
            TypeInner::Struct { ref members, .. } => {
                !members.is_empty() && members.iter().all(|m| of(m.ty))
            }
            _ => false,
        };
        floats.push(value);
    }
    floats
}

/// Validates `module` (parsed from `bytes`), holds it to the network's rules and meters it.
fn check(
    module: Module,
    text: Option<&str>,
    language: ShaderLanguage,
    bytes: &[u8],
    entry: &str,
    meter: bool,
) -> Result<Shader, GpuError> {
    check_calls(&module)?;
    if language != ShaderLanguage::Wgsl {
        check_nesting(&module)?;
    }
    let info = validate(&module, text.map(|t| (t, language))).map_err(GpuError::Invalid)?;
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
    if !module.overrides.is_empty()
        || module.entry_points[index]
            .workgroup_size_overrides
            .is_some()
    {
        return Err(GpuError::Refused(
            "pipeline-overridable constants (`override`, specialization constants) are not \
             supported"
                .to_owned(),
        ));
    }

    let used = info.get_entry_point(index);
    let floats = floats_only_types(&module);
    let mut bindings = Vec::new();
    let mut workgroup_bytes = 4u64;
    for (handle, global) in module.global_variables.iter() {
        if used[handle].is_empty() {
            continue;
        }
        // A GLSL block's instance may have no name: its block's.
        let name = global
            .name
            .as_deref()
            .or(module.types[global.ty].name.as_deref())
            .unwrap_or("?");
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
            return Err(GpuError::Refused(format!("buffer `{name}` has no binding")));
        };
        if binding.group != 0 {
            return Err(GpuError::Refused(format!(
                "`{name}` is in @group({}) (GLSL: set = {}): a task's buffers are in @group(0)",
                binding.group, binding.group
            )));
        }
        let min_bytes = u64::from(module.types[global.ty].inner.size(module.to_ctx()));
        bindings.push(ShaderBinding {
            binding: binding.binding,
            kind,
            min_bytes,
            floats_only: floats.get(global.ty.index()).copied().unwrap_or(false),
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
        validate(&metered, None).map_err(|e| {
            GpuError::Invalid(format!(
                "the metered shader does not validate (a bug in Gridmint's metering): {e}"
            ))
        })?;
    }

    let mut hasher = blake3::Hasher::new();
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
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
        language,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each binding's `floats_only`, by binding number, of a shader that uses them all.
    fn floats_only(declarations: &str, uses: &str) -> Vec<(u32, bool)> {
        let source = format!("{declarations}\n@compute @workgroup_size(1) fn main() {{ {uses} }}");
        let shader = admit(&source, "main").unwrap_or_else(|e| panic!("{source}: {e}"));
        shader
            .bindings
            .iter()
            .map(|b| (b.binding, b.floats_only))
            .collect()
    }

    #[test]
    fn floats_only_is_true_exactly_when_every_scalar_is_an_f32() {
        let bindings = floats_only(
            "struct S { a: f32, b: array<f32> }
             struct T { a: f32, n: u32 }
             struct M { m: mat4x4<f32>, v: vec3<f32> }
             @group(0) @binding(0) var<storage, read_write> f: array<f32>;
             @group(0) @binding(1) var<storage, read> v: array<vec4<f32>>;
             @group(0) @binding(2) var<storage, read> s: S;
             @group(0) @binding(3) var<storage, read> m: M;
             @group(0) @binding(4) var<uniform> one: vec2<f32>;
             @group(0) @binding(5) var<storage, read> u: array<u32>;
             @group(0) @binding(6) var<storage, read> t: T;
             @group(0) @binding(7) var<storage, read_write> a: array<atomic<u32>>;
             @group(0) @binding(8) var<storage, read> i: array<vec2<i32>>;
             @group(0) @binding(9) var<uniform> n: u32;",
            "f[0] = v[0].x + s.a + s.b[0] + m.m[0][0] + m.v.x + one.x + f32(u[0]) + t.a \
             + f32(t.n) + f32(i[0].x) + f32(n); atomicAdd(&a[0], 1u);",
        );
        assert_eq!(
            bindings,
            [
                (0, true),
                (1, true),
                (2, true),
                (3, true),
                (4, true),
                (5, false),
                (6, false),
                (7, false),
                (8, false),
                (9, false),
            ]
        );
    }

    #[test]
    fn the_language_is_told_from_the_bytes() {
        use ShaderLanguage::*;
        let magic = [0x03, 0x02, 0x23, 0x07];
        let cases: &[(&[u8], Option<ShaderLanguage>)] = &[
            (b"#version 450\nvoid main() {}", Some(Glsl)),
            (
                b"  \n\t// a comment\n/* another\n */ #version 450",
                Some(Glsl),
            ),
            (b"# version 450", Some(Glsl)),
            (b"#versions", Some(Wgsl)),
            (b"/* unterminated #version", Some(Wgsl)),
            (b"x #version 450", Some(Wgsl)),
            (b"@compute @workgroup_size(1) fn main() {}", Some(Wgsl)),
            (b"", Some(Wgsl)),
            (&[0xff, 0xfe], Some(Wgsl)),
            (&magic, Some(SpirV)),
            (&[0x03, 0x02, 0x23, 0x07, 0, 0, 0, 0], Some(SpirV)),
            (&[0x03, 0x02, 0x23, 0x07, 0], None),
            (&[0x07, 0x23, 0x02, 0x03, 0, 0, 0, 0], None),
            (&[0x03, 0x02, 0x23], Some(Wgsl)),
        ];
        for &(bytes, want) in cases {
            assert_eq!(crate::language(bytes).ok(), want, "{bytes:?}");
        }
    }

    #[test]
    fn the_glsl_nesting_count_bounds_brackets_expressions_and_else_chains() {
        let ok = |s: &str| front::check_glsl(s).is_ok();
        assert!(ok("void main() { x = ((((1)))); }"));
        assert!(ok(&format!("{};", "(".repeat(500))));
        assert!(!ok(&format!("{};", "(".repeat(600))));
        assert!(!ok(&format!("{};", "{".repeat(400))));
        // Tokens since the last `;`: expression chains and swizzles nest without brackets.
        assert!(!ok(&format!("x = 1{};", " + 1".repeat(600))));
        assert!(!ok(&format!("x = v{};", ".x".repeat(600))));
        assert!(ok(&"x = 1 + 1;\n".repeat(2000)));
        // Statements that nest across a `;`, in one block, until it closes.
        assert!(!ok(&format!("{{ {} }}", "if (a) x; else ".repeat(600))));
        assert!(!ok(&format!("{{ {} x; }}", "for (;;) ".repeat(1100))));
        assert!(ok(&"{ if (a) { x; } else { y; } }\n".repeat(2000)));
        // Only #version, #extension and #pragma, at the start of a line.
        assert!(ok(
            "#version 450\n#extension GL_EXT_foo : enable\n#pragma x\n"
        ));
        assert!(!ok("#version 450\n#define X 1\n"));
        assert!(!ok("#version 450\n  #  if 1\n#endif\n"));
        assert!(!ok("x = 1; #version 450\n"));
        assert!(ok("// #define X\n/* #define Y */ x;"));
    }
}
