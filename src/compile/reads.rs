//! Which attributes of one render-context variable a compiled template reads: the listener
//! builds only those parts of `__data` for a `data`/`html`/`redirect` answer
//! (src/listener/request.rs, docs/listener.md "Performance").
//!
//! The answer is conservative: `None` ("it may read anything") unless every mention of the
//! variable is the start of a chain of constant attribute names (`root.a.b`), in a template
//! with no macros, blocks, `use`, `extends`, includes, embeds, arrow functions or `source()`,
//! any of which could reach the variable in ways not followed here. Builtins never see the
//! render context, so an argument is read only as the value it evaluates to.

use super::ir::{Expr, Node, Program};
use std::sync::Arc;

/// The constant attribute paths of `root` read by `program` (each at least one name long), or
/// `None` when `root` may be read otherwise (see the module documentation).
#[cfg_attr(not(feature = "listener"), allow(dead_code))]
pub fn attr_paths(program: &Program, root: &str) -> Option<Vec<Vec<Arc<str>>>> {
    if !program.macros.is_empty()
        || !program.blocks.is_empty()
        || !program.traits.is_empty()
        || program.parent_name.is_some()
    {
        return None;
    }
    let mut w = Walker {
        root,
        paths: Vec::new(),
    };
    w.nodes(&program.body)?;
    Some(w.paths)
}

struct Walker<'r> {
    root: &'r str,
    paths: Vec<Vec<Arc<str>>>,
}

impl Walker<'_> {
    fn nodes(&mut self, nodes: &[Node]) -> Option<()> {
        nodes.iter().try_for_each(|n| self.node(n))
    }

    fn node(&mut self, n: &Node) -> Option<()> {
        match n {
            Node::Text(_) | Node::Break | Node::Continue => Some(()),
            Node::Block(b) | Node::SetBlock(_, b) => self.nodes(b),
            Node::Print(e, _, _) | Node::Do(e, _) => self.expr(e),
            Node::Set(targets, _) => targets.iter().try_for_each(|(_, e)| self.expr(e)),
            Node::If(branches, else_body, _) => {
                for (cond, body) in branches {
                    self.expr(cond)?;
                    self.nodes(body)?;
                }
                self.nodes(else_body)
            }
            Node::For(f) => {
                self.expr(&f.iter)?;
                self.nodes(&f.body)?;
                self.nodes(&f.else_body)
            }
            Node::With(w) => {
                if let Some(v) = &w.vars {
                    self.expr(v)?;
                }
                self.nodes(&w.body)
            }
            Node::Apply(calls, body) => {
                for c in calls {
                    c.args.iter().try_for_each(|a| self.expr(a))?;
                }
                self.nodes(body)
            }
            Node::Include(_) | Node::Extends(..) | Node::BlockRef(..) | Node::Embed(..) => None,
        }
    }

    /// `Some(path)` when `e` is `root.a.b…` (the names after `root`).
    fn path<'e>(&self, e: &'e Expr) -> Option<Vec<&'e Arc<str>>> {
        match e {
            Expr::Ctx(name, _, _) | Expr::Slot(_, name, _, _) if **name == *self.root => {
                Some(Vec::new())
            }
            Expr::Attr(base, name, _, _) => {
                let mut p = self.path(base)?;
                p.push(name);
                Some(p)
            }
            _ => None,
        }
    }

    fn expr(&mut self, e: &Expr) -> Option<()> {
        match e {
            Expr::Const(_) | Expr::LoopField(..) | Expr::LoopValue(_) => Some(()),
            Expr::Ctx(name, _, _) | Expr::Slot(_, name, _, _) => {
                // The variable itself, not through a constant attribute.
                (**name != *self.root).then_some(())
            }
            Expr::Attr(base, _, _, _) => match self.path(e) {
                Some(p) => {
                    self.paths.push(p.into_iter().cloned().collect());
                    Some(())
                }
                None => self.expr(base),
            },
            Expr::Item(base, key, _, _) => {
                self.expr(base)?;
                self.expr(key)
            }
            Expr::Slice(base, start, len, _) => {
                self.expr(base)?;
                if let Some(s) = start {
                    self.expr(s)?;
                }
                if let Some(l) = len {
                    self.expr(l)?;
                }
                Some(())
            }
            Expr::Not(a) | Expr::Neg(a, _) | Expr::Pos(a, _) | Expr::MatchesConst(a, _) => {
                self.expr(a)
            }
            Expr::Defined(a, _) | Expr::Deep(a) => self.expr(a),
            Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::Bin(_, a, b, _)
            | Expr::Elvis(a, b)
            | Expr::Coalesce(a, b) => {
                self.expr(a)?;
                self.expr(b)
            }
            Expr::Cond(a, b, c) => {
                self.expr(a)?;
                self.expr(b)?;
                match c {
                    Some(c) => self.expr(c),
                    None => Some(()),
                }
            }
            Expr::List(items) | Expr::Interp(items, _) => {
                items.iter().try_for_each(|i| self.expr(i))
            }
            Expr::Map(pairs) => pairs.iter().try_for_each(|(k, v)| {
                self.expr(k)?;
                self.expr(v)
            }),
            Expr::Call(c) | Expr::Test(c, _) => c.args.iter().try_for_each(|a| self.expr(a)),
            Expr::MacroCall(..)
            | Expr::Arrow(_)
            | Expr::Include(_)
            | Expr::Source(..)
            | Expr::BlockCall(..)
            | Expr::BlockDefined(..)
            | Expr::Parent(_) => None,
        }
    }
}
