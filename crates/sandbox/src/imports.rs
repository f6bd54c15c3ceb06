//! Which imports a module may have: the functions of WASI preview 1 with their own types, and
//! the socket functions that some runtimes add to `wasi_snapshot_preview1` (WasmEdge's
//! `sock_open`, `sock_connect`, `sock_getaddrinfo`, …, and its two-argument `sock_accept`).
//!
//! A guest has no network, so a socket function of any other shape is linked to a stub that
//! answers `ENOSYS` (52) every time — deterministic, and what such a program sees on a host
//! that does not offer sockets. It must take integers and return one `i32` (an errno), as every
//! WASI preview-1 function does. Anything else (an unknown name, a WASI function with a type
//! that is not its own) is refused at admission ([`check`]) with what is wrong.

use std::collections::HashMap;
use std::sync::LazyLock;
use wasmtime::{Engine, FuncType, Linker, Store, Val};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

/// The module every import comes from.
pub const WASI_P1: &str = "wasi_snapshot_preview1";

/// WASI's `ENOSYS`: "function not supported".
const ENOSYS: i32 = 52;

/// A function type written as its parameter and result types' names (`"i32"`, `"i64"`), which
/// wasmtime's and wasmparser's types print alike.
pub(crate) type Signature = (Vec<String>, Vec<String>);

/// Every function of WASI preview 1 as wasmtime-wasi provides it, by name.
static WASI_P1_FUNCTIONS: LazyLock<HashMap<String, Signature>> = LazyLock::new(|| {
    let engine = Engine::default();
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    let mut table = HashMap::new();
    if wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |cx| cx).is_err() {
        return table;
    }
    let mut store = Store::new(&engine, WasiCtxBuilder::new().build_p1());
    let defined: Vec<(String, String, wasmtime::Extern)> = linker
        .iter(&mut store)
        .map(|(module, name, ext)| (module.to_string(), name.to_string(), ext))
        .collect();
    for (module, name, ext) in defined {
        if module != WASI_P1 {
            continue;
        }
        if let wasmtime::Extern::Func(f) = ext {
            table.insert(name, signature(&f.ty(&store)));
        }
    }
    table
});

pub(crate) fn signature(ty: &FuncType) -> Signature {
    (
        ty.params().map(|t| t.to_string()).collect(),
        ty.results().map(|t| t.to_string()).collect(),
    )
}

fn show((params, results): &Signature) -> String {
    format!("[{}] -> [{}]", params.join(" "), results.join(" "))
}

/// How an import of `name` with type `ty` from [`WASI_P1`] is linked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// WASI preview 1's own function.
    Wasi,
    /// A socket function WASI preview 1 lacks (or has with another type): a stub answering
    /// `ENOSYS`.
    Stub,
}

/// How import `name` of type `ty` is linked, or why it cannot be.
pub(crate) fn check(name: &str, ty: &Signature) -> Result<Link, String> {
    let known = WASI_P1_FUNCTIONS.get(name);
    if known == Some(ty) {
        return Ok(Link::Wasi);
    }
    let integers = ty.0.iter().all(|t| t == "i32" || t == "i64");
    if name.starts_with("sock_") && integers && ty.1 == ["i32"] {
        return Ok(Link::Stub);
    }
    Err(match known {
        Some(own) => format!(
            "imports `{name}` from `{WASI_P1}` as {}; WASI preview 1's is {}",
            show(ty),
            show(own)
        ),
        None => format!("imports `{name}` from `{WASI_P1}`, which WASI preview 1 does not have"),
    })
}

/// A linker for `module`: `base` itself when every import is WASI preview 1's own function,
/// otherwise a copy of it with the socket stubs `module` needs. `Err` names an import that is
/// neither (admission refuses such modules first: [`check`]).
pub(crate) fn linker_for<T: 'static>(
    base: &Linker<T>,
    module: &wasmtime::Module,
    profile: crate::Profile,
) -> Result<Option<Linker<T>>, String> {
    let mut stubs = Vec::new();
    for import in module.imports() {
        // What the fuel rewrite adds (a guest's own import from there was refused by it).
        if profile.meters_itself()
            && import.module() == crate::meter::IMPORT_MODULE
            && import.name() == crate::meter::REFUEL
        {
            continue;
        }
        if import.module() != WASI_P1 {
            return Err(format!(
                "imports `{}` from module `{}`: only `{WASI_P1}` (WASI preview 1) is provided",
                import.name(),
                import.module()
            ));
        }
        let wasmtime::ExternType::Func(ty) = import.ty() else {
            return Err(format!(
                "imports `{}` as something other than a function",
                import.name()
            ));
        };
        if check(import.name(), &signature(&ty))? == Link::Stub {
            stubs.push((import.name().to_string(), ty));
        }
    }
    if stubs.is_empty() {
        return Ok(None);
    }
    let mut linker = base.clone();
    linker.allow_shadowing(true);
    for (name, ty) in stubs {
        linker
            .func_new(WASI_P1, &name, ty, |_, _, results| {
                if let Some(r) = results.first_mut() {
                    *r = Val::I32(ENOSYS);
                }
                Ok(())
            })
            .map_err(|e| format!("cannot link a stub for `{name}`: {e}"))?;
    }
    Ok(Some(linker))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(params: &[&str], results: &[&str]) -> Signature {
        (
            params.iter().map(|s| s.to_string()).collect(),
            results.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn wasi_functions_link_as_themselves_and_socket_extensions_as_stubs() {
        assert!(WASI_P1_FUNCTIONS.len() >= 45, "{}", WASI_P1_FUNCTIONS.len());
        let table: &[(&str, Signature, Result<Link, &str>)] = &[
            ("fd_write", sig(&["i32"; 4], &["i32"]), Ok(Link::Wasi)),
            ("proc_exit", sig(&["i32"], &[]), Ok(Link::Wasi)),
            ("sock_accept", sig(&["i32"; 3], &["i32"]), Ok(Link::Wasi)),
            // WasmEdge's older two-argument accept, and its extensions.
            ("sock_accept", sig(&["i32"; 2], &["i32"]), Ok(Link::Stub)),
            ("sock_open", sig(&["i32"; 3], &["i32"]), Ok(Link::Stub)),
            (
                "sock_getaddrinfo",
                sig(&["i32"; 8], &["i32"]),
                Ok(Link::Stub),
            ),
            ("sock_open", sig(&["f32"], &["i32"]), Err("does not have")),
            ("sock_open", sig(&["i32"], &[]), Err("does not have")),
            (
                "fd_write",
                sig(&["i32"; 3], &["i32"]),
                Err("WASI preview 1's is [i32 i32 i32 i32] -> [i32]"),
            ),
            (
                "fd_frobnicate",
                sig(&["i32"], &["i32"]),
                Err("does not have"),
            ),
        ];
        for (name, ty, want) in table {
            match (check(name, ty), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{name} {ty:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{name}: {got}"),
                (got, want) => panic!("{name} {ty:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
