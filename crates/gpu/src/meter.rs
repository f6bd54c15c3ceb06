//! Deterministic fuel for compute shaders: a pass over the shader's naga IR, run after the shader
//! is admitted and before wgpu sees it.
//!
//! Every invocation counts its own work in a private `u32`: each block, on entry, adds a static
//! cost (its statements plus the expressions it evaluates, nested blocks charging themselves), so
//! the count depends only on the path the invocation took. Loops are where work is unbounded; the
//! check that bounds them is folded into the loop's own exit (`break if`, evaluated at the end of
//! each iteration: `count > limit` or the loop's own condition), which costs a compare, not a
//! return path. A loop that stops on fuel leaves the code after it to run once more, which ends at
//! the next loop's check; WGSL has no recursion, so what runs past the limit is bounded by the
//! shader's size. At every exit of the entry point the count is added to a meter buffer (64 bits,
//! as a `u32` sum plus the carries, which add up alike in any order) and an invocation past its
//! limit sets the meter's out-of-fuel flag.
//!
//! A loop that contains a barrier must be left by every invocation of a workgroup together (an
//! early exit before `workgroupBarrier` is undefined behaviour on real GPUs): there an invocation
//! past its limit raises a workgroup flag and the loop's exit reads it with
//! `workgroupUniformLoad`, so the whole workgroup leaves at the same iteration.
//!
//! Drivers may cut loops short on their own (Mesa's lavapipe stops loops after about 65,535
//! iterations, returning wrong results with no error): every legitimate way out of a loop (a
//! `break`, its `break if`) sets a private flag, and after the loop an invocation that finds it
//! unset sets the meter's cut-short flag, which makes the run fail as the device's fault.

use std::collections::HashSet;

use naga::{
    AddressSpace, AtomicFunction, BinaryOperator, Block, Expression, Function, GlobalVariable,
    Handle, Literal, Module, Scalar, Span, Statement, StorageAccess, StructMember, Type, TypeInner,
    UnaryOperator,
};

/// The bind group of the meter buffer; a task's own buffers are in group 0.
pub(crate) const METER_GROUP: u32 = 1;
/// Size of the meter buffer: `limit`, `fuel_lo`, `fuel_hi`, `flags`, each a `u32`.
pub(crate) const METER_BYTES: u64 = 16;
/// The meter's flag set when an invocation ran past its limit.
pub(crate) const FLAG_OUT_OF_FUEL: u32 = 1;
/// The meter's flag set when a loop ended without taking one of its exits (the driver cut it).
pub(crate) const FLAG_LOOP_CUT: u32 = 2;
/// The most fuel one invocation may be given: a count past it still fits a `u32` with room for
/// what runs after the limit is reached.
pub const MAX_INVOCATION_FUEL: u32 = 1 << 31;

/// The globals the pass adds, and the types it needs.
struct Meter {
    fuel: Handle<GlobalVariable>,
    limit: Handle<GlobalVariable>,
    exited: Handle<GlobalVariable>,
    stop: Handle<GlobalVariable>,
    meter: Handle<GlobalVariable>,
    u32_ty: Handle<Type>,
    /// Functions that contain a barrier, directly or through a call.
    barriers: HashSet<Handle<Function>>,
}

/// Instruments `module` in place; `entry` is the index of the entry point that will run. The
/// module must have been validated; the caller validates it again afterwards.
pub(crate) fn instrument(module: &mut Module, entry: usize) {
    let span = Span::UNDEFINED;
    let u32_ty = module.types.insert(
        Type {
            name: None,
            inner: TypeInner::Scalar(Scalar::U32),
        },
        span,
    );
    let bool_ty = module.types.insert(
        Type {
            name: None,
            inner: TypeInner::Scalar(Scalar::BOOL),
        },
        span,
    );
    let atomic_ty = module.types.insert(
        Type {
            name: None,
            inner: TypeInner::Atomic(Scalar::U32),
        },
        span,
    );
    let member = |name: &str, ty, offset| StructMember {
        name: Some(name.to_owned()),
        ty,
        binding: None,
        offset,
    };
    let meter_ty = module.types.insert(
        Type {
            name: Some("GridmintMeter".to_owned()),
            inner: TypeInner::Struct {
                members: vec![
                    member("limit", u32_ty, 0),
                    member("fuel_lo", atomic_ty, 4),
                    member("fuel_hi", atomic_ty, 8),
                    member("flags", atomic_ty, 12),
                ],
                span: METER_BYTES as u32,
            },
        },
        span,
    );
    let mut global = |name: &str, space, ty, binding| {
        module.global_variables.append(
            GlobalVariable {
                name: Some(name.to_owned()),
                space,
                binding,
                ty,
                init: None,
                memory_decorations: Default::default(),
            },
            span,
        )
    };
    let fuel = global("gridmint_fuel", AddressSpace::Private, u32_ty, None);
    let limit = global("gridmint_limit", AddressSpace::Private, u32_ty, None);
    let exited = global("gridmint_exited", AddressSpace::Private, bool_ty, None);
    let stop = global("gridmint_stop", AddressSpace::WorkGroup, u32_ty, None);
    let meter = global(
        "gridmint_meter",
        AddressSpace::Storage {
            access: StorageAccess::LOAD | StorageAccess::STORE,
        },
        meter_ty,
        Some(naga::ResourceBinding {
            group: METER_GROUP,
            binding: 0,
        }),
    );

    // Functions may only call functions before them in the arena: one pass in order finds every
    // function that reaches a barrier.
    let mut barriers = HashSet::new();
    for (handle, function) in module.functions.iter() {
        if has_barrier(&function.body, &barriers) {
            barriers.insert(handle);
        }
    }
    let meter = Meter {
        fuel,
        limit,
        exited,
        stop,
        meter,
        u32_ty,
        barriers,
    };

    for (_, function) in module.functions.iter_mut() {
        let mut cx = Cx::new(function, &meter);
        let body = std::mem::take(&mut cx.function.body);
        let body = cx.block(body, false);
        cx.function.body = body;
    }
    let function = &mut module.entry_points[entry].function;
    let mut cx = Cx::new(function, &meter);
    let body = std::mem::take(&mut cx.function.body);
    let mut body = cx.block(body, true);
    // Prologue: the invocation's limit, from the meter buffer.
    let mut prologue = Vec::new();
    let limit_ptr = cx.emit(&mut prologue, |e| e.access(e.g_meter, 0));
    let limit_value = cx.emit(&mut prologue, |e| e.load(limit_ptr));
    prologue.push(Statement::Store {
        pointer: cx.g_limit,
        value: limit_value,
    });
    if !ends_in_return(&body) {
        let flush = cx.flush();
        body.extend_block(flush);
    }
    let mut whole = Block::from_vec(prologue);
    whole.extend_block(body);
    cx.function.body = whole;
}

fn ends_in_return(block: &Block) -> bool {
    matches!(block.last(), Some(Statement::Return { .. }))
}

/// Whether `block` reaches a barrier (including by a call to a function in `barriers`).
fn has_barrier(block: &Block, barriers: &HashSet<Handle<Function>>) -> bool {
    block.iter().any(|statement| match statement {
        Statement::ControlBarrier(_) | Statement::WorkGroupUniformLoad { .. } => true,
        Statement::Call { function, .. } => barriers.contains(function),
        Statement::Block(b) => has_barrier(b, barriers),
        Statement::If { accept, reject, .. } => {
            has_barrier(accept, barriers) || has_barrier(reject, barriers)
        }
        Statement::Switch { cases, .. } => cases.iter().any(|c| has_barrier(&c.body, barriers)),
        Statement::Loop {
            body, continuing, ..
        } => has_barrier(body, barriers) || has_barrier(continuing, barriers),
        _ => false,
    })
}

/// The static cost of a block: its statements and the expressions it evaluates, not counting
/// nested blocks (they charge themselves when they run).
fn cost(block: &Block) -> u32 {
    let mut cost = 0u32;
    for statement in block.iter() {
        cost = cost.saturating_add(1);
        if let Statement::Emit(range) = statement {
            let n = u32::try_from(range.clone().count()).unwrap_or(u32::MAX);
            cost = cost.saturating_add(n);
        }
    }
    cost
}

/// Appends expressions to a function's arena.
struct Exprs<'a> {
    arena: &'a mut naga::Arena<Expression>,
    g_meter: Handle<Expression>,
}

impl Exprs<'_> {
    fn add(&mut self, e: Expression) -> Handle<Expression> {
        self.arena.append(e, Span::UNDEFINED)
    }
    fn load(&mut self, pointer: Handle<Expression>) -> Handle<Expression> {
        self.add(Expression::Load { pointer })
    }
    fn access(&mut self, base: Handle<Expression>, index: u32) -> Handle<Expression> {
        self.add(Expression::AccessIndex { base, index })
    }
    fn binary(
        &mut self,
        op: BinaryOperator,
        left: Handle<Expression>,
        right: Handle<Expression>,
    ) -> Handle<Expression> {
        self.add(Expression::Binary { op, left, right })
    }
}

/// The pass over one function.
struct Cx<'a> {
    function: &'a mut Function,
    meter: &'a Meter,
    g_fuel: Handle<Expression>,
    g_limit: Handle<Expression>,
    g_exited: Handle<Expression>,
    g_stop: Handle<Expression>,
    g_meter: Handle<Expression>,
    lit_true: Handle<Expression>,
    lit_false: Handle<Expression>,
    lit_zero: Handle<Expression>,
    lit_one: Handle<Expression>,
    lit_out_of_fuel: Handle<Expression>,
    lit_loop_cut: Handle<Expression>,
}

impl<'a> Cx<'a> {
    fn new(function: &'a mut Function, meter: &'a Meter) -> Cx<'a> {
        // Expressions that need no `Emit` (globals, literals), made once per function.
        let mut add = |e| function.expressions.append(e, Span::UNDEFINED);
        let g_fuel = add(Expression::GlobalVariable(meter.fuel));
        let g_limit = add(Expression::GlobalVariable(meter.limit));
        let g_exited = add(Expression::GlobalVariable(meter.exited));
        let g_stop = add(Expression::GlobalVariable(meter.stop));
        let g_meter = add(Expression::GlobalVariable(meter.meter));
        let lit_true = add(Expression::Literal(Literal::Bool(true)));
        let lit_false = add(Expression::Literal(Literal::Bool(false)));
        let lit_zero = add(Expression::Literal(Literal::U32(0)));
        let lit_one = add(Expression::Literal(Literal::U32(1)));
        let lit_out_of_fuel = add(Expression::Literal(Literal::U32(FLAG_OUT_OF_FUEL)));
        let lit_loop_cut = add(Expression::Literal(Literal::U32(FLAG_LOOP_CUT)));
        Cx {
            function,
            meter,
            g_fuel,
            g_limit,
            g_exited,
            g_stop,
            g_meter,
            lit_true,
            lit_false,
            lit_zero,
            lit_one,
            lit_out_of_fuel,
            lit_loop_cut,
        }
    }

    /// Runs `f` to append expressions that need an `Emit`, and pushes the `Emit` covering them.
    fn emit(
        &mut self,
        out: &mut Vec<Statement>,
        f: impl FnOnce(&mut Exprs<'_>) -> Handle<Expression>,
    ) -> Handle<Expression> {
        let start = self.function.expressions.len();
        let mut exprs = Exprs {
            arena: &mut self.function.expressions,
            g_meter: self.g_meter,
        };
        let result = f(&mut exprs);
        out.push(Statement::Emit(self.function.expressions.range_from(start)));
        result
    }

    /// `fuel += cost`.
    fn charge(&mut self, out: &mut Vec<Statement>, cost: u32) {
        let amount = self
            .function
            .expressions
            .append(Expression::Literal(Literal::U32(cost)), Span::UNDEFINED);
        let fuel = self.g_fuel;
        let sum = self.emit(out, |e| {
            let now = e.load(fuel);
            e.binary(BinaryOperator::Add, now, amount)
        });
        out.push(Statement::Store {
            pointer: fuel,
            value: sum,
        });
    }

    /// `atomicOr(&meter.flags, flag)`.
    fn raise(&mut self, flag: Handle<Expression>) -> Block {
        let mut out = Vec::new();
        let pointer = self.emit(&mut out, |e| e.access(e.g_meter, 3));
        out.push(Statement::Atomic {
            pointer,
            fun: AtomicFunction::InclusiveOr,
            value: flag,
            result: None,
        });
        Block::from_vec(out)
    }

    /// Adds the invocation's count to the meter and flags it if it ran past its limit.
    fn flush(&mut self) -> Block {
        let mut out = Vec::new();
        let fuel = self.g_fuel;
        let limit = self.g_limit;
        let count = self.emit(&mut out, |e| e.load(fuel));
        let lo = self.emit(&mut out, |e| e.access(e.g_meter, 1));
        let old = self.function.expressions.append(
            Expression::AtomicResult {
                ty: self.meter.u32_ty,
                comparison: false,
            },
            Span::UNDEFINED,
        );
        out.push(Statement::Atomic {
            pointer: lo,
            fun: AtomicFunction::Add,
            value: count,
            result: Some(old),
        });
        // The sum of `u32` counts wrapped iff the new low word is below the old one; the number of
        // carries is the same in any order of the additions.
        let wrapped = self.emit(&mut out, |e| {
            let new = e.binary(BinaryOperator::Add, old, count);
            e.binary(BinaryOperator::Less, new, old)
        });
        let mut carry = Vec::new();
        let hi = self.emit(&mut carry, |e| e.access(e.g_meter, 2));
        carry.push(Statement::Atomic {
            pointer: hi,
            fun: AtomicFunction::Add,
            value: self.lit_one,
            result: None,
        });
        out.push(Statement::If {
            condition: wrapped,
            accept: Block::from_vec(carry),
            reject: Block::new(),
        });
        let over = self.emit(&mut out, |e| {
            let limit = e.load(limit);
            e.binary(BinaryOperator::Greater, count, limit)
        });
        let flag = self.lit_out_of_fuel;
        out.push(Statement::If {
            condition: over,
            accept: self.raise(flag),
            reject: Block::new(),
        });
        Block::from_vec(out)
    }

    /// Instruments a block: charges its cost on entry, bounds its loops, and (in the entry
    /// point) flushes the count before every `return`.
    fn block(&mut self, block: Block, entry: bool) -> Block {
        let mut out = Vec::new();
        let cost = cost(&block);
        if cost > 0 {
            self.charge(&mut out, cost);
        }
        let mut instrumented = Block::with_capacity(out.len());
        for statement in out {
            instrumented.push(statement, Span::UNDEFINED);
        }
        // Statements keep their spans (error messages point into the source); added ones get none.
        for (statement, span) in block.span_into_iter() {
            let mut produced = Vec::new();
            self.statement(statement, entry, &mut produced);
            for statement in produced {
                instrumented.push(statement, span);
            }
        }
        instrumented
    }

    fn statement(&mut self, statement: Statement, entry: bool, out: &mut Vec<Statement>) {
        match statement {
            Statement::Block(b) => out.push(Statement::Block(self.block(b, entry))),
            Statement::If {
                condition,
                accept,
                reject,
            } => {
                let accept = self.block(accept, entry);
                let reject = self.block(reject, entry);
                out.push(Statement::If {
                    condition,
                    accept,
                    reject,
                });
            }
            Statement::Switch { selector, cases } => {
                let cases = cases
                    .into_iter()
                    .map(|mut case| {
                        case.body = self.block(case.body, entry);
                        case
                    })
                    .collect();
                out.push(Statement::Switch { selector, cases });
            }
            Statement::Loop {
                body,
                continuing,
                break_if,
            } => self.lp(body, continuing, break_if, entry, out),
            Statement::Return { value } if entry => {
                let mut block = self.flush();
                block.push(Statement::Return { value }, Span::UNDEFINED);
                out.push(Statement::Block(block));
            }
            other => out.push(other),
        }
    }

    /// A loop: its body and continuing block instrumented, every `break` of it marked as a
    /// legitimate exit, the fuel check folded into its `break if`, and a check after it that it
    /// was left by one of its exits.
    fn lp(
        &mut self,
        body: Block,
        continuing: Block,
        break_if: Option<Handle<Expression>>,
        entry: bool,
        out: &mut Vec<Statement>,
    ) {
        let uniform = has_barrier(&body, &self.meter.barriers)
            || has_barrier(&continuing, &self.meter.barriers);
        let body = self.block(body, entry);
        let body = self.mark_breaks(body);
        let mut tail = Vec::new();
        let fuel = self.g_fuel;
        let limit = self.g_limit;
        let over = self.emit(&mut tail, |e| {
            let fuel = e.load(fuel);
            let limit = e.load(limit);
            e.binary(BinaryOperator::Greater, fuel, limit)
        });
        let stop = if uniform {
            // One invocation past its limit stops the whole workgroup at this iteration.
            let raise = vec![Statement::Store {
                pointer: self.g_stop,
                value: self.lit_one,
            }];
            tail.push(Statement::If {
                condition: over,
                accept: Block::from_vec(raise),
                reject: Block::new(),
            });
            let seen = self.function.expressions.append(
                Expression::WorkGroupUniformLoadResult {
                    ty: self.meter.u32_ty,
                },
                Span::UNDEFINED,
            );
            tail.push(Statement::WorkGroupUniformLoad {
                pointer: self.g_stop,
                result: seen,
            });
            let zero = self.lit_zero;
            self.emit(&mut tail, |e| {
                e.binary(BinaryOperator::NotEqual, seen, zero)
            })
        } else {
            over
        };
        let exit = match break_if {
            Some(own) => self.emit(&mut tail, |e| {
                e.binary(BinaryOperator::LogicalOr, own, stop)
            }),
            None => stop,
        };
        tail.push(Statement::Store {
            pointer: self.g_exited,
            value: exit,
        });
        let mut continuing = self.block(continuing, entry);
        for statement in tail {
            continuing.push(statement, Span::UNDEFINED);
        }
        out.push(Statement::Loop {
            body,
            continuing,
            break_if: Some(exit),
        });
        // After the loop: it must have been left by an exit.
        let exited = self.g_exited;
        let cut = self.emit(out, |e| {
            let exited = e.load(exited);
            e.add(Expression::Unary {
                op: UnaryOperator::LogicalNot,
                expr: exited,
            })
        });
        let flag = self.lit_loop_cut;
        let accept = self.raise(flag);
        out.push(Statement::If {
            condition: cut,
            accept,
            reject: Block::new(),
        });
        out.push(Statement::Store {
            pointer: self.g_exited,
            value: self.lit_false,
        });
    }

    /// Every `break` that leaves this loop (not one of a nested loop or switch) first records
    /// that the loop was left by an exit.
    fn mark_breaks(&mut self, block: Block) -> Block {
        let mut out = Block::with_capacity(block.len());
        for (statement, span) in block.span_into_iter() {
            let statement = match statement {
                Statement::Break => {
                    let mut b = Block::new();
                    b.push(
                        Statement::Store {
                            pointer: self.g_exited,
                            value: self.lit_true,
                        },
                        Span::UNDEFINED,
                    );
                    b.push(Statement::Break, span);
                    Statement::Block(b)
                }
                Statement::Block(b) => Statement::Block(self.mark_breaks(b)),
                Statement::If {
                    condition,
                    accept,
                    reject,
                } => Statement::If {
                    condition,
                    accept: self.mark_breaks(accept),
                    reject: self.mark_breaks(reject),
                },
                // A `break` inside a nested loop or switch leaves that one.
                other => other,
            };
            out.push(statement, span);
        }
        out
    }
}
