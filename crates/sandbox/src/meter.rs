//! Fuel metering by a module rewrite, with the trip counts of simple loops charged once.
//!
//! Wasmtime's `consume_fuel` keeps a counter in a register and adds each basic block's cost to
//! it, checking it at every loop header and function entry; on the kernels of
//! `guests/kernels/` that costs about 1.25x (`gridmint bench --only kernels`), nearly all of it
//! in inner loops whose every iteration pays an add, a compare and a branch. This module does
//! the same metering as ordinary wasm instructions inserted before compilation — the counter a
//! local of each function, stored to a global at calls and exits, a host import (`gridmint`
//! `refuel`) called where it crosses zero — and adds one thing a compiler pass cannot easily do:
//! an innermost loop without calls or other exits whose exit is an induction variable reaching
//! a bound (`i += s; br_if (i != b)`, what C `for` loops become) has its trip count computed on
//! entry, `(b - i) / s`, and when the whole loop fits in the fuel left before the next check it
//! is charged once (for what every iteration runs; what runs inside the body's own blocks and
//! `if`s adds its cost as it runs) and run without checks. Otherwise it runs metered, iteration
//! by iteration, as anywhere else.
//!
//! The fuel is exactly what wasmtime's metering counts (its default cost table: 1 per operator
//! but `nop`, `drop`, `block`, `loop`, `unreachable`, `return`, `else` and `end`; 1 per byte or
//! element of bulk memory and table operations), at the same points: checks at function entry,
//! loop headers and after bulk operations (wasmtime skips the last for small constant
//! lengths, which changes where a run may stop, never a completed run's total). A hoisted loop
//! is charged only when no check inside it could have fired, and stores nothing a trap could
//! reveal, so charging it once changes no observable fuel.
//!
//! Used by [`crate::baseline`] to measure the lever; the sandbox itself still meters with
//! wasmtime's `consume_fuel`.

use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, EntityType, ExportKind, ExportSection, Function,
    GlobalSection, GlobalType, ImportSection, Instruction, SectionId, TypeSection, ValType,
};
use wasmparser::{Operator, Parser, Payload, TypeRef};

/// The module of the host function a metered module imports.
pub(crate) const IMPORT_MODULE: &str = "gridmint";
/// The host function called when the counter crosses zero: `[] -> []`. It reads and writes the
/// counter through the exported global (wasmtime's `out_of_gas`: refuel from the reserve, or
/// trap when none is left).
pub(crate) const REFUEL: &str = "refuel";
/// The exported `(mut i64)` global holding the counter as wasmtime keeps fuel: minus what is
/// left of the current slice, so that costs are added and zero or more means "check".
pub(crate) const FUEL_GLOBAL: &str = "gridmint:fuel";
/// The exported `(mut i32)` global the module sets to 1 right before it calls [`REFUEL`] (which
/// sets it back to 0), so that the host knows the call is the meter's own and charges nothing
/// for it (a host call costs [`crate::HOSTCALL_FUEL`]).
pub(crate) const REFUELING_GLOBAL: &str = "gridmint:refueling";
/// What a counted loop costs when its trip count is not what its exit test says: more than
/// any counter can hold below zero.
const NEVER_FITS: i64 = i64::MAX / 4;
/// Largest per-iteration cost of a loop charged once (its product with a 32-bit trip count
/// stays far from overflow).
const MAX_HOISTED_COST: i64 = 1 << 24;

/// How many loops a rewrite charged once, and how many loops it metered per iteration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Loops that run unmetered when their trip count fits.
    pub hoisted: u32,
    /// Loops metered at every iteration.
    pub metered: u32,
}

/// `wasm` (a valid module) metered by instructions; `hoist` charges simple counted loops once.
/// With `refuel`, a check that finds the counter at zero calls the host's refuel (the next slice,
/// the watchdog); without, it sets the refuel marker and traps (`unreachable`): the host then
/// puts all the fuel in one slice, and reads a trap with the marker set as out of fuel (a worker
/// process's runs, whose wall time the sandbox bounds from outside: `worker.rs`; and `gridmint
/// bench --only kernels`, `+htrap`). With `calls` (profile 5), the module charges
/// [`crate::HOSTCALL_FUEL`] itself for every call of an imported function: where it calls one by
/// its index, as the call's cost, with a check before it; through a table or a reference, it
/// marks the call (the marker at 2, cleared on entry to any of its own functions such a call can
/// reach and after the call) for the host to charge. Nothing else the module does is a host call
/// then (wasmtime's libcalls, such as `memory.grow` and bulk operations, enter the host without a
/// call and are not charged as one). `Err` for what the rewrite does not meter (legacy exception
/// handling, a name clash with its own import or export) and for a module wasmparser cannot read.
pub(crate) fn meter_with(
    wasm: &[u8],
    hoist: bool,
    refuel: bool,
    calls: bool,
) -> Result<(Vec<u8>, MeterStats), String> {
    let scan = Scan::of(wasm)?;
    let mut rewriter = Rewriter {
        scan,
        refuel,
        calls,
        hoist,
        next: 0,
        emitted: [false; 4],
        stats: MeterStats::default(),
    };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|e| match e {
            ReencodeError::UserError(e) => e,
            e => format!("cannot meter the module: {e:?}"),
        })?;
    rewriter.add_missing(&mut module, None);
    Ok((module.finish(), rewriter.stats))
}

/// What the rewrite must know before it starts.
struct Scan {
    /// Types the module defines (the refuel type is appended after them).
    types: u32,
    /// Functions the module imports (the refuel import comes after them).
    imported_funcs: u32,
    /// Globals, imported and defined (the counter comes after them).
    globals: u32,
    /// Parameters of each defined function, in code-section order.
    params: Vec<u32>,
    /// Whether each memory (imported, then defined) has 64-bit addresses.
    memory64: Vec<bool>,
    /// Whether each table has 64-bit indices.
    table64: Vec<bool>,
    /// Functions a call through a table or a reference may reach: those in element segments or
    /// named by `ref.func`.
    escaped: std::collections::HashSet<u32>,
    /// Whether some function tail-calls through a table or a reference (which leaves the
    /// host-call marker set when the callee is an import).
    tail_indirect: bool,
}

impl Scan {
    fn of(wasm: &[u8]) -> Result<Scan, String> {
        let params = crate::canon::defined_function_params(wasm)?;
        let mut scan = Scan {
            types: 0,
            imported_funcs: 0,
            globals: 0,
            params,
            memory64: Vec::new(),
            table64: Vec::new(),
            escaped: Default::default(),
            tail_indirect: false,
        };
        let err = |e: wasmparser::BinaryReaderError| format!("cannot read the module: {e}");
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.map_err(err)? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        let n = group.map_err(err)?.into_types().count();
                        scan.types += u32::try_from(n).map_err(|e| e.to_string())?;
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(err)?;
                        if import.module == IMPORT_MODULE {
                            return Err(format!(
                                "imports from `{IMPORT_MODULE}` are the fuel rewrite's own"
                            ));
                        }
                        match import.ty {
                            TypeRef::Func(_) | TypeRef::FuncExact(_) => scan.imported_funcs += 1,
                            TypeRef::Global(_) => scan.globals += 1,
                            TypeRef::Memory(m) => scan.memory64.push(m.memory64),
                            TypeRef::Table(t) => scan.table64.push(t.table64),
                            _ => {}
                        }
                    }
                }
                Payload::GlobalSection(reader) => {
                    scan.globals += reader.count();
                    for global in reader {
                        scan.escape_in(global.map_err(err)?.init_expr.get_operators_reader())?;
                    }
                }
                Payload::ElementSection(reader) => {
                    for element in reader {
                        match element.map_err(err)?.items {
                            wasmparser::ElementItems::Functions(functions) => {
                                for function in functions {
                                    scan.escaped.insert(function.map_err(err)?);
                                }
                            }
                            wasmparser::ElementItems::Expressions(_, exprs) => {
                                for expr in exprs {
                                    scan.escape_in(expr.map_err(err)?.get_operators_reader())?;
                                }
                            }
                        }
                    }
                }
                Payload::CodeSectionEntry(body) => {
                    let mut reader = body.get_operators_reader().map_err(err)?;
                    while !reader.eof() {
                        match reader.read().map_err(err)? {
                            Operator::RefFunc { function_index } => {
                                scan.escaped.insert(function_index);
                            }
                            Operator::ReturnCallIndirect { .. }
                            | Operator::ReturnCallRef { .. } => {
                                scan.tail_indirect = true;
                            }
                            _ => {}
                        }
                    }
                }
                Payload::MemorySection(reader) => {
                    for memory in reader {
                        scan.memory64.push(memory.map_err(err)?.memory64);
                    }
                }
                Payload::TableSection(reader) => {
                    for table in reader {
                        scan.table64.push(table.map_err(err)?.ty.table64);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let name = export.map_err(err)?.name;
                        if name == FUEL_GLOBAL || name == REFUELING_GLOBAL {
                            return Err(format!("the export `{name}` is the fuel rewrite's"));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(scan)
    }

    /// Functions named by `ref.func` in a constant expression.
    fn escape_in(&mut self, mut reader: wasmparser::OperatorsReader<'_>) -> Result<(), String> {
        while !reader.eof() {
            if let Operator::RefFunc { function_index } = reader
                .read()
                .map_err(|e| format!("cannot read the module: {e}"))?
            {
                self.escaped.insert(function_index);
            }
        }
        Ok(())
    }

    /// The refuel import's index (the first after the module's own imports).
    fn refuel(&self) -> u32 {
        self.imported_funcs
    }

    /// Whether the length operand of bulk operation `op` is an `i64` (64-bit memories and
    /// tables; a copy between a 64-bit and a 32-bit one takes an `i32`).
    fn wide_length(&self, op: &Operator<'_>) -> bool {
        let memory = |i: &u32| self.memory64.get(*i as usize).copied().unwrap_or(false);
        let table = |i: &u32| self.table64.get(*i as usize).copied().unwrap_or(false);
        match op {
            Operator::MemoryCopy { dst_mem, src_mem } => memory(dst_mem) && memory(src_mem),
            Operator::MemoryFill { mem } => memory(mem),
            Operator::TableCopy {
                dst_table,
                src_table,
            } => table(dst_table) && table(src_table),
            Operator::TableFill { table: t } | Operator::TableGrow { table: t } => table(t),
            _ => false,
        }
    }
}

/// The sections the rewrite adds to (type, import, global, export), in module order.
const ADDED: [SectionId; 4] = [
    SectionId::Type,
    SectionId::Import,
    SectionId::Global,
    SectionId::Export,
];

/// A section's place in a module (`SectionId`s are not in module order).
fn rank(id: SectionId) -> u8 {
    match id {
        SectionId::Custom => 0,
        SectionId::Type => 1,
        SectionId::Import => 2,
        SectionId::Function => 3,
        SectionId::Table => 4,
        SectionId::Memory => 5,
        SectionId::Tag => 6,
        SectionId::Global => 7,
        SectionId::Export => 8,
        SectionId::Start => 9,
        SectionId::Element => 10,
        SectionId::DataCount => 11,
        SectionId::Code => 12,
        SectionId::Data => 13,
    }
}

struct Rewriter {
    scan: Scan,
    /// Checks call the host's refuel (else they trap).
    refuel: bool,
    /// Host calls are charged by the module ([`meter_with`]).
    calls: bool,
    hoist: bool,
    /// The defined function whose body comes next.
    next: usize,
    /// Which of [`ADDED`] have been written.
    emitted: [bool; 4],
    stats: MeterStats,
}

impl Rewriter {
    fn append_type(&self, types: &mut TypeSection) {
        types.ty().function([], []);
    }

    fn append_import(&self, imports: &mut ImportSection) {
        imports.import(IMPORT_MODULE, REFUEL, EntityType::Function(self.scan.types));
    }

    fn append_global(&self, globals: &mut GlobalSection) {
        globals.global(
            GlobalType {
                val_type: ValType::I64,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i64_const(0),
        );
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(0),
        );
    }

    fn append_export(&self, exports: &mut ExportSection) {
        exports.export(FUEL_GLOBAL, ExportKind::Global, self.scan.globals);
        exports.export(REFUELING_GLOBAL, ExportKind::Global, self.scan.globals + 1);
    }

    /// Writes, as sections of their own, the added entries whose section the module lacks and
    /// whose place comes before `before` (`None`: the end).
    fn add_missing(&mut self, module: &mut wasm_encoder::Module, before: Option<SectionId>) {
        let limit = before.map_or(u8::MAX, rank);
        for (i, id) in ADDED.into_iter().enumerate() {
            if self.emitted[i] || rank(id) >= limit {
                continue;
            }
            self.emitted[i] = true;
            match id {
                SectionId::Type => {
                    let mut s = TypeSection::new();
                    self.append_type(&mut s);
                    module.section(&s);
                }
                SectionId::Import => {
                    let mut s = ImportSection::new();
                    self.append_import(&mut s);
                    module.section(&s);
                }
                SectionId::Global => {
                    let mut s = GlobalSection::new();
                    self.append_global(&mut s);
                    module.section(&s);
                }
                _ => {
                    let mut s = ExportSection::new();
                    self.append_export(&mut s);
                    module.section(&s);
                }
            }
        }
    }

    fn mark(&mut self, id: SectionId) {
        if let Some(i) = ADDED.iter().position(|a| *a == id) {
            self.emitted[i] = true;
        }
    }
}

impl Reencode for Rewriter {
    type Error = String;

    fn function_index(&mut self, func: u32) -> Result<u32, ReencodeError<String>> {
        Ok(if func >= self.scan.imported_funcs {
            func + 1
        } else {
            func
        })
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), ReencodeError<String>> {
        self.add_missing(module, before);
        Ok(())
    }

    fn parse_type_section(
        &mut self,
        types: &mut TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), ReencodeError<String>> {
        wasm_encoder::reencode::utils::parse_type_section(self, types, section)?;
        self.append_type(types);
        self.mark(SectionId::Type);
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), ReencodeError<String>> {
        wasm_encoder::reencode::utils::parse_import_section(self, imports, section)?;
        self.append_import(imports);
        self.mark(SectionId::Import);
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), ReencodeError<String>> {
        wasm_encoder::reencode::utils::parse_global_section(self, globals, section)?;
        self.append_global(globals);
        self.mark(SectionId::Global);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), ReencodeError<String>> {
        wasm_encoder::reencode::utils::parse_export_section(self, exports, section)?;
        self.append_export(exports);
        self.mark(SectionId::Export);
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), ReencodeError<String>> {
        let params = self.scan.params.get(self.next).copied();
        let index = self.scan.imported_funcs + u32::try_from(self.next).unwrap_or(u32::MAX);
        self.next += 1;
        let (mut locals, count) = crate::canon::body_locals(self, params, &func)?;
        let scratch = Scratch {
            fuel: count,
            len: count + 1,
            charged: count + 2,
            len64: count + 3,
        };
        locals.push((1, ValType::I64));
        locals.push((1, ValType::I32));
        locals.push((1, ValType::I64));
        locals.push((1, ValType::I64));

        let mut reader = func.get_operators_reader()?;
        let mut ops = Vec::new();
        while !reader.eof() {
            ops.push(reader.read()?);
        }
        let mut body = Body {
            out: Vec::new(),
            // Wasmtime charges every function 1 on entry, even an empty one.
            acc: 1,
            depth: 0,
            scratch,
            global: self.scan.globals,
            refuel: self.scan.refuel(),
            // An exception lands after the end of the block its handler names, where the
            // counter must be read back from the global: keep the global up to date.
            sync: ops.iter().any(|op| matches!(op, Operator::TryTable { .. })),
            trap: !self.refuel,
        };
        body.out.push(Instruction::GlobalGet(body.global));
        body.out.push(Instruction::LocalSet(scratch.fuel));
        if self.calls && self.scan.escaped.contains(&index) {
            // Reached, maybe, by a call the host would charge: this one is the module's own.
            body.mark(0);
        }
        body.check();
        self.emit(&mut body, &ops, self.hoist)?;

        let mut f = Function::new(locals);
        for instruction in &body.out {
            f.instruction(instruction);
        }
        code.function(&f);
        Ok(())
    }
}

/// The locals a metered body adds after its own.
#[derive(Clone, Copy)]
struct Scratch {
    /// The counter (wasmtime's `fuel_var`).
    fuel: u32,
    /// A bulk operation's length, or a loop's distance to its bound.
    len: u32,
    /// The counter after a hoisted loop's charge.
    charged: u32,
    /// A bulk operation's length on a 64-bit memory or table.
    len64: u32,
}

/// One body being written.
struct Body<'a> {
    out: Vec<Instruction<'a>>,
    /// Cost of the operators since the counter was last added to.
    acc: i64,
    /// Blocks open in the guest's code (0: the function's own).
    depth: u32,
    scratch: Scratch,
    global: u32,
    refuel: u32,
    /// The function handles exceptions: every addition to the counter is stored to the global
    /// at once, and the counter is read back after every `end`.
    sync: bool,
    /// Checks trap instead of calling refuel ([`meter_with`]).
    trap: bool,
}

impl Body<'_> {
    /// Adds the pending cost to the counter.
    fn flush(&mut self) {
        let added = self.acc != 0;
        self.add();
        if added && self.sync {
            self.save();
        }
    }

    /// Adds the pending cost to the counter, without storing it.
    fn add(&mut self) {
        if self.acc != 0 {
            let fuel = self.scratch.fuel;
            self.out.extend([
                Instruction::LocalGet(fuel),
                Instruction::I64Const(self.acc),
                Instruction::I64Add,
                Instruction::LocalSet(fuel),
            ]);
            self.acc = 0;
        }
    }

    /// Stores the counter where the host and other functions see it.
    fn save(&mut self) {
        self.out.push(Instruction::LocalGet(self.scratch.fuel));
        self.out.push(Instruction::GlobalSet(self.global));
    }

    /// In a function that handles exceptions, stores a counter changed otherwise than by
    /// [`Body::flush`].
    fn synced(&mut self) {
        if self.sync {
            self.save();
        }
    }

    /// Sets the marker (1: a call of refuel, or a check that traps; 2: a call through a table
    /// or a reference, which the host charges when it reaches an import; 0: neither).
    fn mark(&mut self, value: i32) {
        self.out.extend([
            Instruction::I32Const(value),
            Instruction::GlobalSet(self.global + 1),
        ]);
    }

    /// Reads the counter back after something else may have changed it.
    fn reload(&mut self) {
        self.out.push(Instruction::GlobalGet(self.global));
        self.out.push(Instruction::LocalSet(self.scratch.fuel));
    }

    /// Wasmtime's `fuel_check`: past zero, the host refuels or traps.
    fn check(&mut self) {
        self.flush();
        self.out.extend([
            Instruction::LocalGet(self.scratch.fuel),
            Instruction::I64Const(0),
            Instruction::I64GeS,
            Instruction::If(BlockType::Empty),
        ]);
        self.refuel_call();
        self.out.push(Instruction::End);
    }

    /// Stores the counter, calls the host's refuel (marked as such) and reads the counter back.
    fn refuel_call(&mut self) {
        self.save();
        // The marker tells the host that the call (or the trap) is the meter's own.
        self.mark(1);
        if self.trap {
            self.out.push(Instruction::Unreachable);
            return;
        }
        self.out.push(Instruction::Call(self.refuel));
        self.reload();
    }
}

/// Wasmtime's default cost of an operator.
fn cost(op: &Operator<'_>) -> i64 {
    use Operator as O;
    match op {
        O::Nop
        | O::Drop
        | O::Block { .. }
        | O::Loop { .. }
        | O::Unreachable
        | O::Return
        | O::Else
        | O::End => 0,
        _ => 1,
    }
}

/// Whether the rewrite treats `op` as plain code: no control flow, no call, no exit, no bulk
/// operation (what a hoisted loop's body may hold).
fn plain(op: &Operator<'_>) -> bool {
    use Operator as O;
    !matches!(
        op,
        O::Unreachable
            | O::Return
            | O::Call { .. }
            | O::CallIndirect { .. }
            | O::CallRef { .. }
            | O::ReturnCall { .. }
            | O::ReturnCallIndirect { .. }
            | O::ReturnCallRef { .. }
            | O::Throw { .. }
            | O::ThrowRef
            | O::Rethrow { .. }
            | O::Try { .. }
            | O::Catch { .. }
            | O::CatchAll
            | O::Delegate { .. }
            | O::TryTable { .. }
            | O::Block { .. }
            | O::Loop { .. }
            | O::If { .. }
            | O::Else
            | O::End
            | O::Br { .. }
            | O::BrIf { .. }
            | O::BrTable { .. }
            | O::BrOnNull { .. }
            | O::BrOnNonNull { .. }
            | O::BrOnCast { .. }
            | O::BrOnCastFail { .. }
            | O::MemoryGrow { .. }
            | O::MemoryCopy { .. }
            | O::MemoryFill { .. }
            | O::MemoryInit { .. }
            | O::TableCopy { .. }
            | O::TableFill { .. }
            | O::TableInit { .. }
            | O::TableGrow { .. }
    )
}

/// An innermost loop `ops[start..=end]` that exits when an `i32` induction local, stepped by a
/// constant, reaches a bound.
struct Counted {
    end: usize,
    induction: u32,
    /// The step, as added each iteration (never 0).
    step: i32,
    bound: Bound,
    /// Fuel of what every iteration runs: the body's own operators, outside its nested blocks.
    top: i64,
    /// Fuel of one iteration that runs every operator of the body (no path costs more).
    max: i64,
    /// The body has blocks, `if`s and branches of its own, metered inline as they run.
    nested: bool,
}

#[derive(Clone, Copy)]
enum Bound {
    Const(i32),
    Local(u32),
}

/// `ops[start]` as a [`Counted`] loop, if it is one: `loop (empty)`, then a body that never
/// writes the induction local or the bound's — [`plain`] operators and, if `nested`, blocks,
/// `if`s and branches that stay inside them — then
/// `local.get i; i32.const s; i32.add; local.tee i; [<bound>; i32.ne;] br_if 0; end` (the
/// bound may come before the increment, the constant before the local).
fn counted(ops: &[Operator<'_>], start: usize, nested: bool) -> Option<Counted> {
    use Operator as O;
    if !matches!(
        ops.get(start)?,
        O::Loop {
            blockty: wasmparser::BlockType::Empty
        }
    ) {
        return None;
    }
    // The body, up to the `br_if 0; end` that close it: plain operators and (if `nested`)
    // blocks, `if`s and branches to those blocks (never to the loop, never out of it).
    let mut end = start + 1;
    let (mut depth, mut top, mut max) = (0u32, 0i64, 0i64);
    loop {
        let op = ops.get(end)?;
        let within = |target: u32| target < depth;
        match op {
            O::BrIf { relative_depth: 0 } if depth == 0 => break,
            O::Block { .. } | O::If { .. } if nested => {}
            O::Else if depth > 0 => {}
            O::End if depth > 0 => {}
            O::Br { relative_depth } | O::BrIf { relative_depth } if within(*relative_depth) => {}
            O::BrTable { targets } => {
                if !within(targets.default()) {
                    return None;
                }
                for target in targets.targets() {
                    if !within(target.ok()?) {
                        return None;
                    }
                }
            }
            op if plain(op) => {}
            _ => return None,
        }
        max += cost(op);
        if depth == 0 {
            top += cost(op);
        }
        match op {
            O::Block { .. } | O::If { .. } => depth += 1,
            O::End => depth -= 1,
            _ => {}
        }
        end += 1;
    }
    if !matches!(ops.get(end + 1)?, O::End) {
        return None;
    }
    let brif = end;
    // The `br_if` itself.
    top += 1;
    max += 1;
    let end = end + 1;
    let bound_of = |op: &Operator<'_>| match op {
        O::I32Const { value } => Some(Bound::Const(*value)),
        O::LocalGet { local_index } => Some(Bound::Local(*local_index)),
        _ => None,
    };
    // The exit test: `i != 0` (the tee itself), or `i != b` with `b` pushed after the
    // increment or before it.
    let (bound, tee) = match &ops[start + 1..brif] {
        [.., O::LocalTee { .. }] => (Bound::Const(0), brif - 1),
        [.., O::LocalTee { .. }, b, O::I32Ne] => (bound_of(b)?, brif - 3),
        [.., b, _, _, _, O::LocalTee { .. }, O::I32Ne] => (bound_of(b)?, brif - 2),
        _ => return None,
    };
    let O::LocalTee {
        local_index: induction,
    } = ops[tee]
    else {
        return None;
    };
    // The increment, `i + s` or `s + i`.
    let step = match ops.get(tee.checked_sub(3)?..tee)? {
        [
            O::LocalGet { local_index },
            O::I32Const { value },
            O::I32Add,
        ]
        | [
            O::I32Const { value },
            O::LocalGet { local_index },
            O::I32Add,
        ] if *local_index == induction => *value,
        _ => return None,
    };
    if step == 0 || tee - 3 <= start {
        return None;
    }
    if let Bound::Local(b) = bound
        && b == induction
    {
        return None;
    }
    // Nothing before the increment writes the induction local or the bound's.
    let writes = |local: u32| {
        ops[start + 1..tee - 3].iter().any(|op| {
            matches!(op, O::LocalSet { local_index } | O::LocalTee { local_index }
                if *local_index == local)
        })
    };
    if writes(induction) || matches!(bound, Bound::Local(b) if writes(b)) {
        return None;
    }
    if max > MAX_HOISTED_COST {
        return None;
    }
    Some(Counted {
        end,
        induction,
        step,
        bound,
        top,
        max,
        nested: top != max || ops[start + 1..brif].iter().any(|op| !plain(op)),
    })
}

impl Rewriter {
    /// Writes `ops` metered into `body`; `hoist` lets counted loops be charged once.
    fn emit<'a>(
        &mut self,
        body: &mut Body<'a>,
        ops: &[Operator<'a>],
        hoist: bool,
    ) -> Result<(), ReencodeError<String>> {
        use Operator as O;
        let mut i = 0;
        while i < ops.len() {
            let op = &ops[i];
            if matches!(op, O::Loop { .. }) {
                // A function that handles exceptions stores every addition: only straight-line
                // loops run unmetered there.
                if hoist && let Some(counted) = counted(ops, i, !body.sync) {
                    body.flush();
                    self.emit_counted(body, &ops[i..=counted.end], &counted)?;
                    body.synced();
                    self.stats.hoisted += 1;
                    i = counted.end + 1;
                    continue;
                }
                if hoist || !self.hoist {
                    self.stats.metered += 1;
                }
            }
            body.acc += cost(op);
            let instruction = self.instruction(op.clone())?;
            match op {
                O::Try { .. }
                | O::Catch { .. }
                | O::CatchAll
                | O::Delegate { .. }
                | O::Rethrow { .. } => {
                    return Err(ReencodeError::UserError(
                        "the fuel rewrite does not meter legacy exception handling (`try`)".into(),
                    ));
                }
                O::TryTable { .. } => {
                    body.out.push(instruction);
                    body.depth += 1;
                }
                O::Call { function_index } | O::ReturnCall { function_index }
                    if self.calls && *function_index < self.scan.imported_funcs =>
                {
                    // A host call, charged here, with a check before the host runs.
                    body.acc += crate::HOSTCALL_FUEL as i64;
                    body.check();
                    body.save();
                    body.out.push(instruction);
                    if matches!(op, O::Call { .. }) {
                        body.reload();
                    }
                }
                O::Unreachable
                | O::Return
                | O::ReturnCall { .. }
                | O::Throw { .. }
                | O::ThrowRef => {
                    body.flush();
                    body.save();
                    body.out.push(instruction);
                }
                O::ReturnCallIndirect { .. } | O::ReturnCallRef { .. } => {
                    body.flush();
                    body.save();
                    if self.calls {
                        body.mark(2);
                    }
                    body.out.push(instruction);
                }
                O::CallIndirect { .. } | O::CallRef { .. } if self.calls => {
                    body.flush();
                    body.save();
                    body.mark(2);
                    body.out.push(instruction);
                    body.mark(0);
                    body.reload();
                }
                O::Call { .. } if self.calls && self.scan.tail_indirect => {
                    // The callee may leave the marker set by a tail call to an import.
                    body.flush();
                    body.save();
                    body.out.push(instruction);
                    body.mark(0);
                    body.reload();
                }
                O::Call { .. } | O::CallIndirect { .. } | O::CallRef { .. } => {
                    body.flush();
                    body.save();
                    body.out.push(instruction);
                    body.reload();
                }
                O::Loop { .. } => {
                    body.flush();
                    body.out.push(instruction);
                    body.depth += 1;
                    body.check();
                }
                O::If { .. } => {
                    body.flush();
                    body.out.push(instruction);
                    body.depth += 1;
                }
                O::Block { .. } => {
                    body.out.push(instruction);
                    body.depth += 1;
                }
                O::Else => {
                    body.flush();
                    body.out.push(instruction);
                }
                O::End => {
                    body.flush();
                    if body.depth == 0 {
                        body.save();
                        body.out.push(instruction);
                    } else {
                        body.depth -= 1;
                        body.out.push(instruction);
                        if body.sync {
                            body.reload();
                        }
                    }
                }
                O::Br { relative_depth }
                | O::BrIf { relative_depth }
                | O::BrOnNull { relative_depth }
                | O::BrOnNonNull { relative_depth }
                | O::BrOnCast { relative_depth, .. }
                | O::BrOnCastFail { relative_depth, .. } => {
                    body.flush();
                    // A branch to the function's own block leaves the function.
                    if *relative_depth == body.depth {
                        body.save();
                    }
                    body.out.push(instruction);
                }
                O::BrTable { targets } => {
                    body.flush();
                    let mut exits = targets.default() == body.depth;
                    for target in targets.targets() {
                        exits |= target? == body.depth;
                    }
                    if exits {
                        body.save();
                    }
                    body.out.push(instruction);
                }
                O::MemoryGrow { .. } => body.check_then(instruction),
                O::MemoryCopy { .. }
                | O::MemoryFill { .. }
                | O::MemoryInit { .. }
                | O::TableCopy { .. }
                | O::TableFill { .. }
                | O::TableInit { .. }
                | O::TableGrow { .. } => {
                    // The length is on top of the stack: 1 per unit (at most `i64::MAX`, as
                    // wasmtime clamps it), then a check.
                    let fuel = body.scratch.fuel;
                    if self.scan.wide_length(op) {
                        let len = body.scratch.len64;
                        body.out.push(Instruction::LocalTee(len));
                        body.flush();
                        body.out.extend([
                            Instruction::LocalGet(fuel),
                            Instruction::I64Const(i64::MAX),
                            Instruction::LocalGet(len),
                            Instruction::LocalGet(len),
                            Instruction::I64Const(i64::MAX),
                            Instruction::I64GtU,
                            Instruction::Select,
                            Instruction::I64Add,
                            Instruction::LocalSet(fuel),
                        ]);
                    } else {
                        let len = body.scratch.len;
                        body.out.push(Instruction::LocalTee(len));
                        body.flush();
                        body.out.extend([
                            Instruction::LocalGet(fuel),
                            Instruction::LocalGet(len),
                            Instruction::I64ExtendI32U,
                            Instruction::I64Add,
                            Instruction::LocalSet(fuel),
                        ]);
                    }
                    body.synced();
                    body.check_then(instruction);
                }
                _ => body.out.push(instruction),
            }
            i += 1;
        }
        Ok(())
    }

    /// Writes a counted loop (`ops`, from its `loop` to its `end`) as: if its trip count is
    /// what its exit test says and its cost fits before the next check, charge it and run it
    /// unmetered; else run it metered.
    fn emit_counted<'a>(
        &mut self,
        body: &mut Body<'a>,
        ops: &[Operator<'a>],
        counted: &Counted,
    ) -> Result<(), ReencodeError<String>> {
        let Scratch {
            fuel,
            len,
            charged,
            len64,
        } = body.scratch;
        let bound = match counted.bound {
            Bound::Const(b) => Instruction::I32Const(b),
            Bound::Local(b) => Instruction::LocalGet(b),
        };
        let x = Instruction::LocalGet(counted.induction);
        // The distance to travel, in the step's direction (mod 2^32).
        if counted.step > 0 {
            body.out.extend([bound, x, Instruction::I32Sub]);
        } else {
            body.out.extend([x, bound, Instruction::I32Sub]);
        }
        let step = counted.step.unsigned_abs();
        let step_const = Instruction::I32Const(step as i32);
        body.out.push(Instruction::LocalSet(len));
        // Reached in exactly distance/step iterations when the step divides a nonzero
        // distance: the costliest run of that many (else a cost that never fits).
        body.out.extend([
            Instruction::LocalGet(len),
            step_const.clone(),
            Instruction::I32DivU,
            Instruction::I64ExtendI32U,
            Instruction::I64Const(counted.max),
            Instruction::I64Mul,
            Instruction::I64Const(NEVER_FITS),
            Instruction::LocalGet(len),
            Instruction::I32Const(0),
            Instruction::I32Ne,
            Instruction::LocalGet(len),
            step_const,
            Instruction::I32RemU,
            Instruction::I32Eqz,
            Instruction::I32And,
            Instruction::Select,
            Instruction::LocalSet(len64),
        ]);
        body.out.extend([
            // Where the counter stays below zero, no check inside would fire: charge it and run
            // the copy without checks.
            Instruction::LocalGet(fuel),
            Instruction::LocalGet(len64),
            Instruction::I64Add,
            Instruction::LocalTee(charged),
            Instruction::I64Const(0),
            Instruction::I64LtS,
            Instruction::If(BlockType::Empty),
        ]);
        if counted.nested {
            // Charge what every iteration runs; the nested blocks add their own as they run.
            body.out.extend([
                Instruction::LocalGet(fuel),
                Instruction::LocalGet(len),
                Instruction::I32Const(step as i32),
                Instruction::I32DivU,
                Instruction::I64ExtendI32U,
                Instruction::I64Const(counted.top),
                Instruction::I64Mul,
                Instruction::I64Add,
                Instruction::LocalSet(fuel),
            ]);
            self.emit_unchecked(body, ops)?;
        } else {
            body.out
                .extend([Instruction::LocalGet(charged), Instruction::LocalSet(fuel)]);
            for op in ops {
                let instruction = self.instruction(op.clone())?;
                body.out.push(instruction);
            }
        }
        body.out.push(Instruction::Else);
        let depth = body.depth;
        self.emit(body, ops, false)?;
        debug_assert_eq!(body.depth, depth);
        body.out.push(Instruction::End);
        Ok(())
    }
}

impl Rewriter {
    /// Writes a counted loop's unmetered copy (`ops`, from its `loop` to its `end`) whose body
    /// has blocks of its own: the body's own operators are charged already; those inside its
    /// blocks are added where wasmtime's metering adds them (no check, no store: none is due).
    fn emit_unchecked<'a>(
        &mut self,
        body: &mut Body<'a>,
        ops: &[Operator<'a>],
    ) -> Result<(), ReencodeError<String>> {
        use Operator as O;
        let last = ops.len() - 1;
        let mut depth = 0u32;
        for (k, op) in ops.iter().enumerate() {
            let instruction = self.instruction(op.clone())?;
            if k == 0 || k == last {
                body.out.push(instruction);
                continue;
            }
            if depth > 0 {
                body.acc += cost(op);
            }
            match op {
                O::Block { .. } => depth += 1,
                O::If { .. } => {
                    body.add();
                    depth += 1;
                }
                O::Else | O::Br { .. } | O::BrIf { .. } | O::BrTable { .. } => body.add(),
                O::End => {
                    body.add();
                    depth -= 1;
                }
                _ => {}
            }
            body.out.push(instruction);
        }
        debug_assert_eq!(body.acc, 0);
        Ok(())
    }
}

impl<'a> Body<'a> {
    /// A check, then `instruction`.
    fn check_then(&mut self, instruction: Instruction<'a>) {
        self.check();
        self.out.push(instruction);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed guest validates once metered, with and without hoisting, and every
    /// kernel has loops charged once.
    #[test]
    fn every_committed_guest_validates_once_metered() {
        let engine = wasmtime::Engine::default();
        for (path, wasm) in crate::canon::tests::committed_guests() {
            for hoist in [false, true] {
                let (metered, stats) = meter_with(&wasm, hoist, true, false)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                wasmtime::Module::validate(&engine, &metered)
                    .unwrap_or_else(|e| panic!("{} (hoist {hoist}): {e:#}", path.display()));
                let kernel = path.parent().is_some_and(|d| d.ends_with("kernels"));
                if hoist && kernel {
                    assert!(stats.hoisted >= 5, "{}: {stats:?}", path.display());
                }
            }
        }
    }
}
