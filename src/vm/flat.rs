//! The flattened body of a resolved `extends` chain (issue 13, benches/README.md "Inheritance,
//! sixth round"): the base's body with the final definition of every block spliced in where
//! its tag is, built once beside the [`ResolvedChain`] and run by later renders of the child
//! instead of looking each block up in the table and entering a frame for it.
//!
//! Each spliced body still runs as its own template: a `Switch` before its nodes sets
//! the running program (error locations, `_self`, local macros), the frame kind (slot names),
//! the running block (`parent()`, `block()`) and the nesting depth as entering the block would.
//! A block runs in the enclosing frame's slots (no frame of its own) only when that cannot be
//! seen: its body is text, prints of context values and nested block tags (it has no slot,
//! loop, arrow function or call), and nothing in the enclosing frame before it can have set a
//! variable (so the block would have seen the enclosing context unchanged). Any other block
//! gets a frame of its own ([`Flat::Frame`]) as `Vm::render_entry` gives it. Block tags and
//! `parent()` calls nested in other statements run through the block table, as before.
//! Adjacent text of the spliced bodies is merged (a size error still names the template whose
//! text crossed the limit), and so is the text at the start and the end of a block with a frame
//! (written outside the frame). The depth limit is checked once, before the flattened body runs:
//! a render that could pass it renders block by block, so its error is unchanged. A render of a
//! child that only extends runs its flattened chain straight from `render`
//! ([`Vm::run_chain_at_top`]; benches/README.md "Inheritance, seventh round").
//!
//! [`ResolvedChain`]: crate::compile::ir::ResolvedChain

use super::{Frame, Prog, Vm};
use crate::compile::ir::{
    BlockAt, BlockTable, Expr, Flat, FlatChain, FlatFrame, FlatText, Node, Piece, Program,
    ResolvedChain, Switch, Text,
};
use crate::error::Error;
use crate::syntax::ast::Span;
use crate::value::Value;
use std::sync::Arc;

#[cfg(test)]
thread_local! {
    /// How many flattened bodies this thread ran (tests check which path a render took).
    pub(crate) static RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// How many of them `render` ran at once from its fresh VM (`Vm::run_chain_at_top`).
    pub(crate) static AT_TOP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// How many merged texts (`Flat::Text` steps) this thread's flattened bodies wrote.
    pub(crate) static TEXTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Deepest nesting of inlined blocks; deeper block tags render through the block table.
const MAX_NEST: usize = 32;
/// Most nodes a flattened body may copy (each `parent()` copies a body: a chain of them could
/// grow exponentially); a larger chain is not flattened.
const MAX_ITEMS: usize = 4096;

/// Where the VM is at a point of a flattened body (see [`Switch`]).
#[derive(Clone, Copy, PartialEq, Eq)]
struct At {
    level: usize,
    block: Option<usize>,
    cur: Option<(usize, usize)>,
    nest: usize,
}

/// The steps of one frame's body being built.
struct Seq {
    items: Vec<Flat>,
    /// The state the VM is in after `items`.
    at: At,
    /// A statement of this frame may have set a variable: a block after it gets its own frame.
    dirty: bool,
}

struct Builder<'c> {
    levels: &'c [Arc<Program>],
    table: &'c BlockTable,
    entries: &'c [Vec<u32>],
    items: usize,
    nest: usize,
    slots: usize,
}

/// The flattened body of the chain `levels` (child first) with block table `table` and each
/// level's block entries `entries` (see [`crate::compile::ir::ResolvedChain`]).
pub(crate) fn flatten(
    levels: &[Arc<Program>],
    table: &BlockTable,
    entries: &[Vec<u32>],
) -> Option<FlatChain> {
    let base = levels.len().checked_sub(1)?;
    let mut b = Builder {
        levels,
        table,
        entries,
        items: 0,
        nest: 0,
        slots: 0,
    };
    let at = At {
        level: base,
        block: None,
        cur: None,
        nest: 0,
    };
    let mut seq = Seq {
        items: Vec::new(),
        at,
        dirty: false,
    };
    b.body(&mut seq, at, &levels[base].body)?;
    Some(FlatChain {
        body: seq.items,
        nest: b.nest,
        slots: b.slots,
    })
}

impl Builder<'_> {
    fn count(&mut self) -> Option<()> {
        self.items += 1;
        (self.items <= MAX_ITEMS).then_some(())
    }

    fn to(&self, at: At) -> Switch {
        Switch {
            program: self.levels[at.level].clone(),
            block: at.block,
            cur: at.cur,
            nest: at.nest,
        }
    }

    /// Makes the VM be at `at` after `seq` (a switch, unless it is there already).
    fn switch(&self, seq: &mut Seq, at: At) {
        if seq.at != at {
            seq.items.push(Flat::Switch(self.to(at)));
            seq.at = at;
        }
    }

    /// Appends text of the template at `level`; `print`: printed by `{{ parent() }}` there.
    fn text(&self, seq: &mut Seq, t: &Text, level: usize, print: Option<(Span, Arc<Program>)>) {
        let from = self.levels[level].clone();
        let fuel = match print {
            Some(_) => 1 + t.as_str().len() as u64 / super::cost::BYTES_PER_UNIT,
            None => 0,
        };
        if let Some(Flat::Text(prev)) = seq.items.last_mut() {
            prev.text.append(t);
            prev.fuel += fuel;
            let end = prev.text.as_str().len();
            prev.pieces.push(Piece { end, from, print });
        } else {
            let end = t.as_str().len();
            seq.items.push(Flat::Text(Box::new(FlatText {
                text: t.clone(),
                pieces: vec![Piece { end, from, print }],
                fuel,
            })));
        }
    }

    fn run(&self, seq: &mut Seq, at: At, n: &Node) {
        if seq.at != at {
            seq.items
                .push(Flat::Run(Some(self.to(at)), vec![n.clone()]));
            seq.at = at;
        } else if let Some(Flat::Run(_, v)) = seq.items.last_mut() {
            v.push(n.clone());
        } else {
            seq.items.push(Flat::Run(None, vec![n.clone()]));
        }
        if assigns(std::slice::from_ref(n)) {
            seq.dirty = true;
        }
    }

    /// Appends the top-level statements `nodes` of the body running at `at`.
    fn body(&mut self, seq: &mut Seq, at: At, nodes: &[Node]) -> Option<()> {
        let prog = &self.levels[at.level];
        for n in nodes {
            self.count()?;
            match n {
                Node::Text(t) => self.text(seq, t, at.level, None),
                Node::BlockRef(name, own, _) => {
                    // (as `Vm::render_block_ref`: the tag and its definition share the name)
                    let entry = prog
                        .blocks
                        .get(*own as usize)
                        .filter(|b| Arc::ptr_eq(&b.name, name))
                        .and_then(|_| self.entries.get(at.level)?.get(*own as usize))
                        .map(|&e| e as usize);
                    let done = match entry {
                        Some(e) => self.block(seq, at, e, 0)?,
                        None => false,
                    };
                    if !done {
                        self.run(seq, at, n);
                    }
                }
                Node::Print(Expr::Parent(_), _, span) => {
                    let done = match at.cur {
                        Some((e, l)) => self.parent(seq, at, e, l + 1, *span)?,
                        None => false,
                    };
                    if !done {
                        self.run(seq, at, n);
                    }
                }
                _ => self.run(seq, at, n),
            }
        }
        Some(())
    }

    /// The definition at `level` of table entry `entry`, when it is a level's block.
    fn definition(&self, entry: usize, level: usize) -> Option<(usize, usize)> {
        match self.table.get_index(entry)?.1.get(level)? {
            BlockAt::Level(l, i) => {
                let _ = self.levels.get(*l)?.blocks.get(*i)?;
                Some((*l, *i))
            }
            BlockAt::Used(..) => None,
        }
    }

    /// Splices the definition at `level` of entry `entry` after `seq` (running at `outer`);
    /// `Some(false)`: left to the block table (a `use`d block, or nested too deeply).
    fn block(&mut self, seq: &mut Seq, outer: At, entry: usize, level: usize) -> Option<bool> {
        let levels = self.levels;
        let Some((l, i)) = self.definition(entry, level) else {
            return Some(false);
        };
        let nest = outer.nest + 1;
        if nest > MAX_NEST {
            return Some(false);
        }
        self.nest = self.nest.max(nest);
        let def = &levels[l].blocks[i];
        let at = At {
            level: l,
            block: Some(i),
            cur: Some((entry, level)),
            nest,
        };
        if !seq.dirty && def.slots == 0 && def.body.iter().all(light) {
            // no frame: it could not tell the enclosing one from its own
            self.body(seq, at, &def.body)?;
        } else {
            let shared = !seq.dirty;
            if !shared {
                // (its context is made of the enclosing frame's variables)
                self.switch(seq, outer);
            }
            let mut inner = Seq {
                items: Vec::new(),
                at,
                dirty: false,
            };
            self.body(&mut inner, at, &def.body)?;
            if shared {
                self.slots = self.slots.max(def.slots);
            }
            // Text at the start or the end of the block is written outside its frame, merged
            // with the text around it: entering and leaving a frame writes nothing and cannot
            // fail, and a text's checks (size, and the fuel of the `parent()` prints merged in
            // it) name the template of each piece, not the running one (`flat_text_slowly`).
            let mut body = inner.items;
            if let Some(Flat::Text(_)) = body.first() {
                if let Flat::Text(t) = body.remove(0) {
                    push_text(seq, *t);
                }
            }
            let tail = match body.last() {
                Some(Flat::Text(_)) => body.pop(),
                _ => None,
            };
            seq.items.push(Flat::Frame(Box::new(FlatFrame {
                program: levels[l].clone(),
                idx: i,
                cur: (entry, level),
                nest,
                shared,
                body,
            })));
            if let Some(Flat::Text(t)) = tail {
                push_text(seq, *t);
            }
            // (the frame leaves the VM where it found it: `seq.at` is unchanged)
        }
        Some(true)
    }

    /// `{{ parent() }}` at `outer`: the definition at `level` of entry `entry`.
    fn parent(
        &mut self,
        seq: &mut Seq,
        outer: At,
        entry: usize,
        level: usize,
        span: Span,
    ) -> Option<bool> {
        let levels = self.levels;
        let Some((l, i)) = self.definition(entry, level) else {
            return Some(false);
        };
        if outer.nest + 1 > MAX_NEST {
            return Some(false);
        }
        let body = &levels[l].blocks[i].body;
        let texts: Option<Vec<&Text>> = body
            .iter()
            .map(|n| match n {
                Node::Text(t) => Some(t),
                _ => None,
            })
            .collect();
        if let Some(texts) = texts {
            self.nest = self.nest.max(outer.nest + 1);
            let mut text = Text::new(&Arc::from(""), 0..0);
            for (k, t) in texts.into_iter().enumerate() {
                if k == 0 {
                    text = t.clone();
                } else {
                    text.append(t);
                }
            }
            let print = Some((span, levels[outer.level].clone()));
            self.text(seq, &text, l, print);
            return Some(true);
        }
        self.switch(seq, outer);
        let mut inner = Seq {
            items: Vec::new(),
            at: outer,
            dirty: seq.dirty,
        };
        if !self.block(&mut inner, outer, entry, level)? {
            return Some(false);
        }
        self.switch(&mut inner, outer);
        seq.items.push(Flat::Parent(span, inner.items));
        Some(true)
    }
}

/// Appends merged text `t` after `seq` (merged with text that ends it).
fn push_text(seq: &mut Seq, t: FlatText) {
    if let Some(Flat::Text(prev)) = seq.items.last_mut() {
        let shift = prev.text.as_str().len();
        prev.text.append(&t.text);
        prev.fuel += t.fuel;
        prev.pieces.extend(t.pieces.into_iter().map(|p| Piece {
            end: p.end + shift,
            ..p
        }));
    } else {
        seq.items.push(Flat::Text(Box::new(t)));
    }
}

/// Whether a statement of a block's body runs the same in the enclosing frame's slots: text,
/// a print of context values (`parent()` included) or a block tag.
fn light(n: &Node) -> bool {
    match n {
        Node::Text(_) | Node::BlockRef(..) => true,
        Node::Print(Expr::Parent(_), _, _) => true,
        Node::Print(e, _, _) => light_expr(e),
        _ => false,
    }
}

/// An expression that reads no slot, loop or frame and calls nothing.
fn light_expr(e: &Expr) -> bool {
    match e {
        Expr::Const(_) | Expr::Ctx(..) => true,
        Expr::Attr(b, ..) | Expr::Not(b) | Expr::Neg(b, _) | Expr::Pos(b, _) => light_expr(b),
        Expr::Item(a, b, ..)
        | Expr::And(a, b)
        | Expr::Or(a, b)
        | Expr::Bin(_, a, b, _)
        | Expr::Elvis(a, b)
        | Expr::Coalesce(a, b) => light_expr(a) && light_expr(b),
        Expr::Cond(a, b, c) => {
            light_expr(a) && light_expr(b) && c.as_deref().is_none_or(light_expr)
        }
        Expr::Interp(v, _) | Expr::List(v) => v.iter().all(light_expr),
        Expr::Map(v) => v.iter().all(|(k, x)| light_expr(k) && light_expr(x)),
        _ => false,
    }
}

/// Whether `nodes` may set a variable of their frame.
fn assigns(nodes: &[Node]) -> bool {
    nodes.iter().any(|n| match n {
        Node::Set(..) | Node::SetBlock(..) => true,
        Node::Block(b) | Node::Apply(_, b) => assigns(b),
        Node::If(branches, else_body, _) => {
            branches.iter().any(|(_, b)| assigns(b)) || assigns(else_body)
        }
        Node::For(f) => assigns(&f.body) || assigns(&f.else_body),
        Node::With(w) => assigns(&w.body),
        _ => false,
    })
}

impl<'a> Vm<'a> {
    /// Whether `flat` can run here: every block it enters stays within the depth limit, and no
    /// block is running (it starts as the base's body does).
    pub(super) fn flat_fits(&self, flat: &FlatChain) -> bool {
        self.cur_block.is_none() && self.depth + flat.nest <= self.shared.limits.max_depth
    }

    /// Whether `render` can run `program`'s resolved chain `rc` flattened at once, from the
    /// fresh VM it made for `program`: the child's body is only its `extends` and every block
    /// of the flattened body stays within the depth limit. This is the case in which
    /// `exec_template` → `render_resolved` → `run_flat_shared` would run it (the child set no
    /// variable, no block is running, the depth starts at 0).
    pub(super) fn flat_at_top(&self, program: &Program, rc: &ResolvedChain) -> bool {
        match &rc.flat {
            Some(f) => {
                self.depth == 0
                    && super::only_extends(program).is_some()
                    && rc.levels.len() - 1 + f.nest <= self.shared.limits.max_depth
            }
            None => false,
        }
    }

    /// Runs the flattened body of `rc` from the fresh VM of a render of its child (see
    /// [`Vm::flat_at_top`]), setting what `render_resolved` and `run_flat_shared` set: the
    /// instance, the depth and names of the levels above the child, the base's program and
    /// frame. Nothing is restored: the render ends with it.
    pub(super) fn run_chain_at_top(&mut self, rc: &'a ResolvedChain) -> Result<(), Error> {
        let (Some(flat), Some(base)) = (&rc.flat, rc.levels.last()) else {
            return Ok(());
        };
        let above = &rc.levels[1..];
        self.chain
            .extend(above.iter().map(|p| super::Name::Pinned(&p.name)));
        self.depth = above.len();
        self.inst = super::Instance::Chain(rc);
        self.program = Prog::Pinned(base);
        self.frame = Frame::Template;
        self.scope.loop_base = self.scope.loops.len();
        self.frame_id = self.next_frame;
        self.next_frame += 1;
        #[cfg(test)]
        AT_TOP.with(|n| n.set(n.get() + 1));
        self.run_flat(flat)
    }

    /// Runs the flattened body `flat` as the base's body in the running frame's slots (the
    /// child's, none of them set: the base sees the child's context), with the rest of the
    /// base's frame set as `Vm::with_frame` sets it.
    pub(super) fn run_flat_shared(
        &mut self,
        base: Prog<'a>,
        flat: &'a FlatChain,
    ) -> Result<(), Error> {
        let n = base.slots.max(flat.slots);
        if self.scope.slots.len() < n {
            self.scope.slots.resize(n, Value::Undefined);
        }
        let saved_prog = std::mem::replace(&mut self.program, base);
        let saved_kind = std::mem::replace(&mut self.frame, Frame::Template);
        let loops = self.scope.loops.len();
        let saved_base = std::mem::replace(&mut self.scope.loop_base, loops);
        let saved_id = std::mem::replace(&mut self.frame_id, self.next_frame);
        self.next_frame += 1;
        let r = self.run_flat(flat);
        self.scope
            .slots
            .iter_mut()
            .for_each(|s| *s = Value::Undefined);
        self.scope.loops.truncate(loops);
        self.scope.loop_base = saved_base;
        self.frame_id = saved_id;
        self.frame = saved_kind;
        self.program = saved_prog;
        r
    }

    /// Runs the flattened body `flat` in the base's frame (instead of the base's body).
    pub(super) fn run_flat(&mut self, flat: &'a FlatChain) -> Result<(), Error> {
        #[cfg(test)]
        RUNS.with(|n| n.set(n.get() + 1));
        let depth = self.depth;
        let r = self.exec_flat(&flat.body, depth);
        self.depth = depth;
        self.cur_block = None;
        r
    }

    /// Runs `items`; `d0`: the depth the flattened body started at.
    fn exec_flat(&mut self, items: &'a [Flat], d0: usize) -> Result<(), Error> {
        for it in items {
            match it {
                Flat::Text(t) => {
                    #[cfg(test)]
                    TEXTS.with(|n| n.set(n.get() + 1));
                    let text = t.text.as_str();
                    if self.fuel >= t.fuel
                        && self.out.len() + text.len() <= self.shared.limits.max_output
                    {
                        self.out.push_str(text);
                        self.fuel -= t.fuel;
                    } else {
                        self.flat_text_slowly(t)?;
                    }
                }
                Flat::Switch(to) => self.switch_to(to, d0),
                Flat::Run(to, nodes) => {
                    if let Some(to) = to {
                        self.switch_to(to, d0);
                    }
                    self.exec(nodes)?;
                }
                Flat::Frame(f) => self.flat_frame(f, d0)?,
                Flat::Parent(span, body) => {
                    self.burn(*span)?;
                    let before = self.out.len();
                    self.exec_flat(body, d0)?;
                    self.parent_printed(before, *span)?;
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn switch_to(&mut self, to: &'a Switch, d0: usize) {
        self.program = Prog::Pinned(&to.program);
        self.frame = match to.block {
            Some(i) => Frame::Block(i),
            None => Frame::Template,
        };
        self.cur_block = to.cur;
        self.depth = d0 + to.nest;
    }

    /// Writes `t` piece by piece with the checks of the statements it comes from (a text
    /// node: the output size; a `{{ parent() }}` print: its fuel, then the size): the error
    /// that stops it is the one the unmerged statements would raise.
    #[cold]
    fn flat_text_slowly(&mut self, t: &FlatText) -> Result<(), Error> {
        let max = self.shared.limits.max_output;
        let at =
            |e: Error, p: &Program, span: Span| e.with_location(&p.name, &p.source, span.range());
        let mut start = 0;
        for p in &t.pieces {
            let part = t.text.as_str().get(start..p.end).unwrap_or("");
            start = p.end;
            if let Some((span, by)) = &p.print {
                if self.fuel == 0 {
                    return Err(at(self.fuel_error(), by, *span));
                }
                self.fuel -= 1;
            }
            self.out.push_str(part);
            if self.out.len() > max {
                return Err(at(self.size_error(), &p.from, Span::default()));
            }
            if let Some((span, by)) = &p.print {
                let units = part.len() as u64 / super::cost::BYTES_PER_UNIT;
                if units > 0 {
                    if self.fuel < units {
                        self.fuel = 0;
                        return Err(at(self.fuel_error(), by, *span));
                    }
                    self.fuel -= units;
                }
            }
        }
        Ok(())
    }

    /// A block in a frame of its own, as `Vm::render_entry` enters it, or in the enclosing
    /// frame's slots (see [`FlatFrame`]).
    fn flat_frame(&mut self, f: &'a FlatFrame, d0: usize) -> Result<(), Error> {
        let Some(def) = f.program.blocks.get(f.idx) else {
            return Ok(());
        };
        if f.shared {
            return self.flat_shared(f, def.slots, d0);
        }
        let depth = self.depth;
        self.depth += 1;
        let vars = self.inherited_ctx();
        let saved_cur = self.cur_block.replace(f.cur);
        let run = |vm: &mut Self| {
            let slots = vm.new_slots(def.slots);
            vm.with_frame(
                Some(Prog::Pinned(&f.program)),
                Frame::Block(f.idx),
                slots,
                vars,
                |vm| vm.exec_flat(&f.body, d0),
            )
        };
        // (the stack probe of `render_entry`: every eighth level)
        let r = if self.depth % 8 == 0 {
            crate::stack::guard(|| run(self))
        } else {
            run(self)
        };
        self.cur_block = saved_cur;
        self.depth = depth;
        r
    }

    /// A block in the enclosing frame's slots (see [`FlatFrame`]).
    fn flat_shared(&mut self, f: &'a FlatFrame, n: usize, d0: usize) -> Result<(), Error> {
        if self.scope.slots.len() < n {
            self.scope.slots.resize(n, Value::Undefined);
        }
        let depth = std::mem::replace(&mut self.depth, d0 + f.nest);
        let saved_cur = self.cur_block.replace(f.cur);
        let saved_prog = std::mem::replace(&mut self.program, Prog::Pinned(&f.program));
        let saved_kind = std::mem::replace(&mut self.frame, Frame::Block(f.idx));
        let loops = self.scope.loops.len();
        let saved_base = std::mem::replace(&mut self.scope.loop_base, loops);
        let saved_id = std::mem::replace(&mut self.frame_id, self.next_frame);
        self.next_frame += 1;
        let r = if self.depth % 8 == 0 {
            crate::stack::guard(|| self.exec_flat(&f.body, d0))
        } else {
            self.exec_flat(&f.body, d0)
        };
        for s in self.scope.slots.iter_mut().take(n) {
            *s = Value::Undefined;
        }
        self.scope.loops.truncate(loops);
        self.scope.loop_base = saved_base;
        self.frame_id = saved_id;
        self.frame = saved_kind;
        self.program = saved_prog;
        self.cur_block = saved_cur;
        self.depth = depth;
        r
    }
}
