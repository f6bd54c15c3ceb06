//! A shader's language, told from its bytes, and its parsing into naga IR by naga's front end
//! for that language. Everything after parsing (validation, the network's rules, metering) sees
//! only the IR, whatever the language.
//!
//! The language is a pure function of the bytes, so every validator and provider decides alike:
//!
//! - SPIR-V: the bytes start with the magic number `0x07230203` as a little-endian word (`03 02
//!   23 07`); they must then be whole 4-byte words. A big-endian module is refused.
//! - GLSL: the first token after whitespace and comments is `#version` (naga reads versions 440,
//!   450 and 460); compiled as a compute shader, whose entry point is `main`.
//! - WGSL: anything else, which must be UTF-8.
//!
//! naga's GLSL and SPIR-V front ends recurse without a limit (a GLSL expression nested a few
//! thousand deep overflows the stack, which aborts the process: no `catch_unwind` stops that),
//! and its GLSL preprocessor expands macros without a bound. So before naga sees them:
//!
//! - a GLSL shader may use no preprocessor directive but `#version`, `#extension` and `#pragma`
//!   (no `#define`, `#if`, `#include`), and no line continuation;
//! - a GLSL shader's nesting, over-counted from its tokens (see [`check_glsl`]), is bounded;
//! - a SPIR-V function's structured branches (whose nesting naga's SPIR-V front end follows by
//!   recursion) are bounded in number;
//!
//! and admission runs on a thread of its own with a large stack (`admit.rs`). A panic in a front
//! end is caught and reported as a parse error.

use std::panic::{AssertUnwindSafe, catch_unwind};

use naga::{Module, ShaderStage};

use crate::GpuError;

/// The language of a shader, as [`language`] tells it from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShaderLanguage {
    /// WGSL text (anything that is neither of the others).
    Wgsl,
    /// GLSL text: its first token is `#version`.
    Glsl,
    /// A SPIR-V binary module, in little-endian words.
    SpirV,
}

impl ShaderLanguage {
    /// The language's usual name.
    pub fn name(self) -> &'static str {
        match self {
            ShaderLanguage::Wgsl => "WGSL",
            ShaderLanguage::Glsl => "GLSL",
            ShaderLanguage::SpirV => "SPIR-V",
        }
    }
}

impl std::fmt::Display for ShaderLanguage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// SPIR-V's magic number, the module's first word.
const SPIRV_MAGIC: u32 = 0x0723_0203;

/// The most a GLSL shader may nest, as [`check_glsl`] counts it.
pub(crate) const GLSL_MAX_NESTING: u32 = 1024;
/// Weight of an open `{` in [`check_glsl`]'s count (a block costs naga about twice what a
/// parenthesis does).
const GLSL_BRACE: u32 = 2;

/// The most structured branches (`OpSelectionMerge`, `OpLoopMerge`, `OpBranchConditional`,
/// `OpSwitch`) one SPIR-V function may have: naga's SPIR-V front end nests no deeper than that.
pub(crate) const SPIRV_MAX_BRANCHES: u32 = 4096;

/// The language of `bytes`: a pure function of them (see the module's documentation). `Err` for
/// a SPIR-V module that is big-endian or not a whole number of words.
pub fn language(bytes: &[u8]) -> Result<ShaderLanguage, GpuError> {
    if let Some(&[a, b, c, d]) = bytes.first_chunk::<4>() {
        if u32::from_le_bytes([a, b, c, d]) == SPIRV_MAGIC {
            if !bytes.len().is_multiple_of(4) {
                return Err(GpuError::Parse(format!(
                    "SPIR-V of {} bytes: a module is a whole number of 4-byte words",
                    bytes.len()
                )));
            }
            return Ok(ShaderLanguage::SpirV);
        }
        if u32::from_be_bytes([a, b, c, d]) == SPIRV_MAGIC {
            return Err(GpuError::Parse(
                "big-endian SPIR-V: give the module as little-endian words (it starts with the \
                 bytes 03 02 23 07)"
                    .to_owned(),
            ));
        }
    }
    Ok(if starts_with_version(bytes) {
        ShaderLanguage::Glsl
    } else {
        ShaderLanguage::Wgsl
    })
}

/// Whether the first token of `bytes` after whitespace and comments is `#version` (`#`, spaces or
/// tabs, `version`, as GLSL's preprocessor reads it).
fn starts_with_version(bytes: &[u8]) -> bool {
    let mut i = 0;
    loop {
        match bytes.get(i..) {
            Some([b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, ..]) => i += 1,
            Some([b'/', b'/', ..]) => match bytes[i..].iter().position(|&c| c == b'\n') {
                Some(n) => i += n,
                None => return false,
            },
            Some([b'/', b'*', ..]) => match find(&bytes[i + 2..], b"*/") {
                Some(n) => i += 2 + n + 2,
                None => return false,
            },
            Some([b'#', ..]) => {
                let mut j = i + 1;
                while let Some(b' ' | b'\t') = bytes.get(j) {
                    j += 1;
                }
                let rest = &bytes[j..];
                return rest.starts_with(b"version")
                    && !rest
                        .get(7)
                        .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
            }
            _ => return false,
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A parsed shader: its IR, and its text where it has one (for naga's error messages).
pub(crate) struct Parsed<'a> {
    pub module: Module,
    pub text: Option<&'a str>,
}

/// Parses `bytes` in `language` (as [`language`] told it).
pub(crate) fn parse(bytes: &[u8], language: ShaderLanguage) -> Result<Parsed<'_>, GpuError> {
    let text = match language {
        ShaderLanguage::SpirV => None,
        _ => Some(std::str::from_utf8(bytes).map_err(|e| {
            GpuError::Parse(format!(
                "the shader is neither SPIR-V nor UTF-8 text (WGSL or GLSL): {e}"
            ))
        })?),
    };
    match language {
        ShaderLanguage::Glsl => check_glsl(text.unwrap_or_default())?,
        ShaderLanguage::SpirV => check_spirv(bytes)?,
        ShaderLanguage::Wgsl => {}
    }
    let parsed = catch_unwind(AssertUnwindSafe(|| match (language, text) {
        (ShaderLanguage::SpirV, _) => {
            let options = naga::front::spv::Options {
                adjust_coordinate_space: false,
                strict_capabilities: true,
                block_ctx_dump_prefix: None,
            };
            naga::front::spv::parse_u8_slice(bytes, &options).map_err(|e| format!("SPIR-V: {e}"))
        }
        (ShaderLanguage::Glsl, Some(text)) => naga::front::glsl::Frontend::default()
            .parse(
                &naga::front::glsl::Options::from(ShaderStage::Compute),
                text,
            )
            .map_err(|e| e.emit_to_string(text)),
        (_, text) => {
            let text = text.unwrap_or_default();
            naga::front::wgsl::parse_str(text).map_err(|e| e.emit_to_string(text))
        }
    }));
    match parsed {
        Ok(Ok(module)) => Ok(Parsed { module, text }),
        Ok(Err(message)) => Err(GpuError::Parse(message)),
        Err(_) => Err(GpuError::Parse(format!(
            "naga's {language} front end failed on this shader"
        ))),
    }
}

/// Refuses what naga's GLSL front end cannot be given safely: preprocessor directives but
/// `#version`, `#extension` and `#pragma` (macros expand without a bound), line continuations
/// (which would make this scan read the text otherwise than the preprocessor), and nesting past
/// [`GLSL_MAX_NESTING`].
///
/// The nesting is over-counted, so that it bounds naga's recursion (which takes at least one
/// token per level): at every token, the open brackets (`{` counting [`GLSL_BRACE`]), plus the
/// tokens since the last `;` (an expression's, a statement's header's), plus the `if`, `else`,
/// `for`, `while`, `do` and `switch` seen in the open blocks (statements that nest without
/// braces across a `;`: `else if` chains, `for (;;) for (;;) x;`).
pub(crate) fn check_glsl(text: &str) -> Result<(), GpuError> {
    let refuse = |m: String| Err(GpuError::Refused(m));
    let b = text.as_bytes();
    // Open brackets: each one's weight and the keywords counted inside it.
    let mut open: Vec<(u32, u32)> = Vec::new();
    // The open brackets' weights, the keywords counted in them (and outside any), the tokens
    // since the last `;`.
    let (mut weight, mut keywords, mut since) = (0u32, 0u32, 0u32);
    let mut line_start = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | 0x0b | 0x0c => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Unterminated: the rest is a comment to naga too (which then fails).
                i = find(&b[i + 2..], b"*/").map_or(b.len(), |n| i + 2 + n + 2);
                continue;
            }
            b'\\' => return refuse("GLSL line continuations (`\\`) are not supported".into()),
            b'#' => {
                if !line_start {
                    return refuse(
                        "GLSL: `#` is allowed only to begin a #version, #extension or #pragma \
                         line"
                            .into(),
                    );
                }
                let mut j = i + 1;
                while let Some(b' ' | b'\t') = b.get(j) {
                    j += 1;
                }
                let end = b[j..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                    .map_or(b.len(), |n| j + n);
                let name = &text[j..end];
                if !matches!(name, "version" | "extension" | "pragma") {
                    return refuse(format!(
                        "GLSL preprocessor directive `#{name}`: a shader may use only #version, \
                         #extension and #pragma (no macros, no conditional compilation)"
                    ));
                }
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n);
                continue;
            }
            _ => {}
        }
        line_start = false;
        since = since.saturating_add(1);
        if c.is_ascii_alphabetic() || c == b'_' {
            let end = b[i..]
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                .map_or(b.len(), |n| i + n);
            if matches!(
                &text[i..end],
                "if" | "else" | "for" | "while" | "do" | "switch"
            ) {
                keywords = keywords.saturating_add(1);
                if let Some((_, k)) = open.last_mut() {
                    *k += 1;
                }
            }
            i = end;
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            // A number, split at each `.` (over-counted: `1.5` is two tokens), so that no `.`
            // of a member or swizzle chain is ever inside a token.
            i = b[i + 1..]
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                .map_or(b.len(), |n| i + 1 + n);
        } else {
            match c {
                b'(' | b'[' | b'{' => {
                    let w = if c == b'{' { GLSL_BRACE } else { 1 };
                    weight = weight.saturating_add(w);
                    open.push((w, 0));
                }
                b')' | b']' | b'}' => {
                    if let Some((w, k)) = open.pop() {
                        weight -= w;
                        keywords -= k;
                    }
                }
                b';' => since = 0,
                _ => {}
            }
            // One token per character (multi-character operators are over-counted), a
            // character outside ASCII whole.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
        let nesting = weight.saturating_add(since).saturating_add(keywords);
        if nesting > GLSL_MAX_NESTING {
            let line = text[..i].matches('\n').count() + 1;
            return refuse(format!(
                "GLSL nesting too deep at line {line}: over {GLSL_MAX_NESTING} (counted as open \
                 brackets, tokens since the last `;`, and if/else/for/while/do/switch in the \
                 open blocks)"
            ));
        }
    }
    Ok(())
}

/// Refuses a SPIR-V module with a function of more than [`SPIRV_MAX_BRANCHES`] structured
/// branches. A malformed instruction stream is left to naga to report.
pub(crate) fn check_spirv(bytes: &[u8]) -> Result<(), GpuError> {
    const OP_FUNCTION: u32 = 54;
    const OP_LOOP_MERGE: u32 = 246;
    const OP_SELECTION_MERGE: u32 = 247;
    const OP_BRANCH_CONDITIONAL: u32 = 250;
    const OP_SWITCH: u32 = 251;
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    let mut i = 5; // the header
    let mut branches = 0u32;
    while let Some(&word) = words.get(i) {
        let count = (word >> 16) as usize;
        if count == 0 {
            break;
        }
        match word & 0xffff {
            OP_FUNCTION => branches = 0,
            OP_LOOP_MERGE | OP_SELECTION_MERGE | OP_BRANCH_CONDITIONAL | OP_SWITCH => {
                branches += 1;
                if branches > SPIRV_MAX_BRANCHES {
                    return Err(GpuError::Refused(format!(
                        "a SPIR-V function has more than {SPIRV_MAX_BRANCHES} structured \
                         branches"
                    )));
                }
            }
            _ => {}
        }
        i += count;
    }
    Ok(())
}
