//! Admission: whether the sandbox will run a module, decided where a job is submitted without
//! compiling it. The same engine configuration as [`crate::Sandbox`] validates it (so admission
//! and providers agree on which WebAssembly features a module may use), and the checks
//! [`crate::Sandbox::prepare`] makes of its shape follow: a `_start: [] -> []` export and
//! function imports from `wasi_snapshot_preview1` only.

use std::sync::OnceLock;

use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType};
use wasmtime::{Engine, Module};

/// Why the sandbox would refuse `wasm` as a WASI command, in words for the job's owner; `Ok` if
/// it runs it.
pub fn admit(wasm: &[u8]) -> Result<(), String> {
    admit_entry(wasm, None)
}

/// [`admit`] for a job that runs export `entry` instead of `_start` (after `_initialize`, if
/// the module exports it), as [`crate::TaskRun::entry`] does.
pub fn admit_entry(wasm: &[u8], entry: Option<&str>) -> Result<(), String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    let engine = ENGINE
        .get_or_init(|| {
            Engine::new(&crate::sandbox::engine_config(crate::Profile::LATEST))
                .map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| format!("the sandbox cannot be configured here: {e}"))?;
    Module::validate(engine, wasm).map_err(|e| explain(&format!("{e:#}")))?;
    if let Some(why) = refused(wasm) {
        return Err(why);
    }
    shape(wasm, entry)
}

/// Why a valid module is refused for what it declares rather than what it does: a shared
/// memory (threads could change a run between hosts). `None` for a module the sandbox runs.
pub(crate) fn refused(wasm: &[u8]) -> Option<String> {
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(Payload::MemorySection(reader)) = payload else {
            continue;
        };
        if reader.into_iter().flatten().any(|memory| memory.shared) {
            return Some(
                "declares a shared memory: shared memories (the threads proposal) are refused, \
                 since threads make runs differ between hosts and honest providers must agree \
                 bit for bit (atomic instructions on an ordinary memory are allowed)"
                    .into(),
            );
        }
    }
    None
}

/// A validation error, with the reason a feature is refused where it is one Gridmint refuses
/// on purpose.
fn explain(error: &str) -> String {
    let lower = error.to_ascii_lowercase();
    let why = if lower.contains("thread") || lower.contains("shared") {
        Some(
            "shared memories (the threads proposal) are refused: threads make runs differ \
             between hosts, and honest providers must agree bit for bit",
        )
    } else if lower.contains("relaxed simd") || lower.contains("relaxed_simd") {
        Some("relaxed SIMD is refused: its results differ between CPUs")
    } else if lower.contains("garbage collection")
        || lower.contains("gc proposal")
        || lower.contains("gc feature")
    {
        Some("the garbage-collection proposal is not supported by this network's sandbox")
    } else {
        None
    };
    match why {
        Some(why) => format!("{error} ({why})"),
        None => error.to_string(),
    }
}

/// The module's shape as [`crate::Sandbox::run`] requires it (`wasm` is valid): function
/// imports from WASI preview 1 only; `_start` (or `entry`) a function of type `[] -> []` (an
/// entry may also return an `i32`, its exit status); `_initialize`, where an entry is run after
/// it, of type `[] -> []`.
fn shape(wasm: &[u8], entry: Option<&str>) -> Result<(), String> {
    let mut types: Vec<(usize, Vec<ValType>)> = Vec::new();
    let mut signatures: Vec<crate::imports::Signature> = Vec::new();
    let mut funcs: Vec<u32> = Vec::new();
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| e.to_string())? {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    let ty = ty.map_err(|e| e.to_string())?;
                    types.push((ty.params().len(), ty.results().to_vec()));
                    signatures.push((
                        ty.params().iter().map(|t| t.to_string()).collect(),
                        ty.results().iter().map(|t| t.to_string()).collect(),
                    ));
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    if import.module != "wasi_snapshot_preview1" {
                        return Err(format!(
                            "imports `{}` from module `{}`: only `wasi_snapshot_preview1` (WASI preview 1) is provided",
                            import.name, import.module
                        ));
                    }
                    match import.ty {
                        TypeRef::Func(ty) => {
                            let signature = signatures
                                .get(ty as usize)
                                .ok_or("an import's type index is out of range")?;
                            crate::imports::check(import.name, signature)?;
                            funcs.push(ty);
                        }
                        _ => {
                            return Err(format!(
                                "imports `{}` as something other than a function: WASI preview 1 provides only functions",
                                import.name
                            ));
                        }
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    funcs.push(ty.map_err(|e| e.to_string())?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    exports.push((export.name.to_string(), export.kind, export.index));
                }
            }
            _ => {}
        }
    }
    // The type of exported function `name`: `None` if there is no such export, `Some(None)` if
    // it is not a function.
    let type_of = |name: &str| {
        exports
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, kind, index)| {
                (*kind == ExternalKind::Func)
                    .then(|| {
                        funcs
                            .get(*index as usize)
                            .and_then(|ty| types.get(*ty as usize))
                    })
                    .flatten()
            })
    };
    let plain = |ty: &(usize, Vec<ValType>)| ty.0 == 0 && ty.1.is_empty();
    match type_of("_start") {
        Some(Some(ty)) if plain(ty) => {}
        Some(_) => return Err("export `_start` is not a function of type [] -> []".into()),
        None if entry.is_none() => {
            return Err(
                "module does not export `_start` (a WASI command's entry point; a module that \
                 is not a command needs the job's `entry`)"
                    .into(),
            );
        }
        None => {}
    }
    let Some(name) = entry else {
        return Ok(());
    };
    match type_of(name) {
        Some(Some(ty)) if plain(ty) || (ty.0 == 0 && ty.1 == [ValType::I32]) => {}
        Some(_) => {
            return Err(format!(
                "export `{name}` (the job's entry) is not a function of type [] -> [] or [] -> [i32]"
            ));
        }
        None => {
            return Err(format!(
                "module does not export the function `{name}` (the job's entry)"
            ));
        }
    }
    match type_of("_initialize") {
        Some(Some(ty)) if !plain(ty) => {
            Err("export `_initialize` is not a function of type [] -> []".into())
        }
        Some(None) => Err("export `_initialize` is not a function".into()),
        _ => Ok(()),
    }
}
