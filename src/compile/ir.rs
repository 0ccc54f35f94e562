//! The executable form of a template: expressions and nodes with names resolved to
//! slots, builtins resolved to function pointers and constants folded. The VM
//! (src/vm) walks this tree; nothing here is looked up by name at render time except
//! render-context keys and snippet names.

use crate::builtins::BuiltinFn;
pub(crate) use crate::escape::Strategy;
use crate::syntax::ast::{BinOp, Span};
use crate::value::Value;
use regex::Regex;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

/// Fields of `loop` read directly from the loop state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopField {
    Index,
    Index0,
    RevIndex,
    RevIndex0,
    First,
    Last,
    Length,
}

impl LoopField {
    pub fn from_name(n: &str) -> Option<LoopField> {
        Some(match n {
            "index" => LoopField::Index,
            "index0" => LoopField::Index0,
            "revindex" => LoopField::RevIndex,
            "revindex0" => LoopField::RevIndex0,
            "first" => LoopField::First,
            "last" => LoopField::Last,
            "length" => LoopField::Length,
            _ => return None,
        })
    }
}

/// A resolved builtin call: the function and its name (for messages).
#[derive(Clone)]
pub struct Call {
    pub func: BuiltinFn,
    pub args: Vec<Expr>,
    pub span: Span,
    /// From this argument on, a given argument that is missing (undefined) is
    /// passed as `null`, as Twig does (1 for filters and tests: the piped value stays).
    pub null_from: usize,
}

/// Where a called macro lives.
#[derive(Clone)]
pub enum MacroRef {
    /// A macro of the program currently executing.
    Local(usize),
    /// A macro of an imported snippet.
    Imported(Arc<Program>, usize),
}

/// An arrow function: parameter slots and body, evaluated in the defining frame.
pub struct Arrow {
    pub params: Vec<u32>,
    pub body: Expr,
}

/// A compiled expression.
#[derive(Clone)]
pub enum Expr {
    Const(Value),
    /// A render-context key (never set by the template). `strict` errors when missing.
    Ctx(Arc<str>, Span, bool),
    /// A template variable: its slot, then the render context by name.
    Slot(u32, Arc<str>, Span, bool),
    LoopField(u32, LoopField),
    /// `loop` as a value (a map is built).
    LoopValue(u32),
    Attr(Box<Expr>, Arc<str>, Span, bool),
    Item(Box<Expr>, Box<Expr>, Span, bool),
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>, Span),
    Not(Box<Expr>),
    Neg(Box<Expr>, Span),
    Pos(Box<Expr>, Span),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>, Span),
    /// `x matches "/literal/"` with the pattern compiled at compile time.
    MatchesConst(Box<Expr>, Arc<Regex>),
    Cond(Box<Expr>, Box<Expr>, Option<Box<Expr>>),
    Elvis(Box<Expr>, Box<Expr>),
    Coalesce(Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Interp(Vec<Expr>, Span),
    /// A builtin function or filter (`args[0]` is the piped value for filters).
    Call(Box<Call>),
    /// A test; `bool` = negated.
    Test(Box<Call>, bool),
    /// `x is [not] defined` (the operand is evaluated leniently).
    Defined(Box<Expr>, bool),
    MacroCall(MacroRef, Vec<Expr>, Span),
    Arrow(Arc<Arrow>),
    /// `include(template, variables, with_context, ignore_missing)`.
    Include(Box<IncludeCall>),
    /// `source(name, ignore_missing)`.
    Source(Box<Expr>, Option<Box<Expr>>, Span),
    /// `block(name)` / `block(name, template)`.
    BlockCall(Box<Expr>, Option<Box<Expr>>, Span),
    /// `block(name[, template]) is [not] defined`.
    BlockDefined(Box<Expr>, Option<Box<Expr>>, bool, Span),
    /// `parent()` inside a block.
    Parent(Span),
    /// Its operand, evaluated after a stack probe: the compiler wraps every 8th level of a
    /// deeply nested expression in one (src/compile/mod.rs `Cx::expr_mode`), so evaluating an
    /// expression nested to the depth limit fits a small thread stack and shallow ones pay
    /// nothing.
    Deep(Box<Expr>),
}

/// An `include` tag or function: template name(s) and what it sees.
#[derive(Clone)]
pub struct IncludeCall {
    pub name: Expr,
    pub with: Option<Expr>,
    /// `false` = `only` / `with_context: false`.
    pub with_context: Expr,
    pub ignore_missing: Expr,
    pub span: Span,
}

/// Output escaping of a print node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Esc {
    /// Follow the render's option.
    Auto,
    Off,
    On(Strategy),
}

/// A `with` block: the variables (a map expression), `only`, the body and the span an error
/// about the variables points at.
#[derive(Clone)]
pub struct With {
    pub vars: Option<Expr>,
    pub only: bool,
    pub body: Vec<Node>,
    pub span: Span,
}

/// A `for` loop.
#[derive(Clone)]
pub struct For {
    pub key: Option<u32>,
    pub value: u32,
    pub iter: Expr,
    pub body: Vec<Node>,
    pub else_body: Vec<Node>,
    /// Slots assigned in the body: reset after the loop unless defined before it.
    pub assigned: Vec<(u32, Arc<str>)>,
    pub level: u32,
    pub span: Span,
}

/// Template text: a byte range of a shared string, the program's source (or, for text merged
/// across a comment, a string of its own). Sharing the source costs a reference-count bump per
/// text node where a copy would cost an allocation.
#[derive(Clone)]
pub struct Text {
    src: Arc<str>,
    start: u32,
    end: u32,
}

impl Text {
    /// `src[range]` (an empty text when the range is not one of `src`).
    pub fn new(src: &Arc<str>, range: std::ops::Range<usize>) -> Text {
        let ok = src.get(range.clone()).is_some();
        Text {
            src: src.clone(),
            start: if ok { range.start as u32 } else { 0 },
            end: if ok { range.end as u32 } else { 0 },
        }
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        self.src
            .get(self.start as usize..self.end as usize)
            .unwrap_or("")
    }
    /// This text followed by `next`: the range widened when `next` follows it in the same
    /// string, else a new string.
    pub fn append(&mut self, next: &Text) {
        if Arc::ptr_eq(&self.src, &next.src) && self.end == next.start {
            self.end = next.end;
        } else {
            let joined = format!("{}{}", self.as_str(), next.as_str());
            let len = joined.len();
            *self = Text::new(&Arc::from(joined), 0..len);
        }
    }
}

/// A compiled statement. Kept at 64 bytes (the large, rare statements are boxed): the
/// compiler writes every node into its block's vector and the VM walks them. (`Clone`: the
/// flattened body of a resolved chain holds copies of its levels' nodes, src/vm/flat.rs.)
#[derive(Clone)]
pub enum Node {
    Text(Text),
    /// A plain group of nodes (an `autoescape` block after compilation).
    Block(Vec<Node>),
    Print(Expr, Esc, Span),
    Set(Vec<(u32, Expr)>, Span),
    SetBlock(u32, Vec<Node>),
    If(Vec<(Expr, Vec<Node>)>, Vec<Node>, Span),
    For(Box<For>),
    Break,
    Continue,
    /// `{% with %}` (boxed: large and rare, it would make every node larger).
    With(Box<With>),
    /// Filters applied to the captured body (each `Call` has a placeholder `args[0]`).
    Apply(Vec<Call>, Vec<Node>),
    Do(Expr, Span),
    Include(Box<IncludeCall>),
    /// `{% extends expr %}`: the parent template, rendered after the body.
    Extends(Expr, Span),
    /// Renders the block of that name (the most derived definition); the index of the
    /// template's own definition of it (in `Program::blocks`).
    BlockRef(Arc<str>, u32, Span),
    /// `{% embed %}`: an anonymous child template, included.
    Embed(Arc<Program>, Box<IncludeCall>),
}

/// Block definitions, most derived first: (template, index of the block there).
pub type BlockChain = Vec<(Arc<Program>, usize)>;

/// Where a block definition lives while a template instance renders: in the template at
/// `level` of the `extends` chain (0 = the template rendered, 1 = its parent, …), or in a
/// template brought in by `use`.
#[derive(Clone)]
pub enum BlockAt {
    Level(usize, usize),
    Used(Arc<Program>, usize),
}

/// The blocks a template instance can render: for each name, the definitions from the most
/// derived template to the base (`parent()` walks down the list). Ordered by first insertion,
/// so an entry keeps its index when a table is extended: the VM names the running block by
/// that index (no name to clone or hash again for `parent()`).
pub type BlockTable = indexmap::IndexMap<Arc<str>, Vec<BlockAt>, BuildHasherDefault<NameHasher>>;

/// A fast hasher for the short block names of a [`BlockTable`] (FxHash's mixing step): the
/// names come from templates, and a table holds a few dozen at most, so the flooding
/// resistance of the default hasher buys nothing here while costing a hash per block render.
#[derive(Default)]
pub struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        // The tail (all of a name up to 7 bytes) as one zero-padded word: one multiply
        // instead of one per byte (`str` hashing writes a 0xff terminator after it).
        // (assembled byte by byte: a copy of a variable length is a call to `memmove`)
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let w = rest
                .iter()
                .enumerate()
                .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Block tables the VM built for this template, kept so that later renders reuse them
/// instead of rebuilding them for every level of an `extends` chain (src/vm/mod.rs).
#[derive(Default)]
pub struct BlockMemo {
    /// The table of this template alone.
    pub own: std::sync::OnceLock<Arc<BlockTable>>,
    /// `((child chain's table, level of this template), that table plus this template's
    /// blocks)`. Only tables made of `Level` entries are kept (they hold no `Program`, so the
    /// memo creates no reference cycle); the entry keeps the key table alive, so its address
    /// identifies it.
    pub extended: std::sync::Mutex<Vec<ExtendedTable>>,
    /// The parent that this template's constant `extends` resolved to in one library (set on
    /// the first render): later renders from that library skip the lookup.
    pub parent: std::sync::OnceLock<ParentLink>,
    /// This template's whole `extends` chain as resolved in one library (set on the first
    /// render when every level is constant and the levels between this template and the base
    /// do nothing but extend): later renders from that library render the base at once.
    pub chain: std::sync::OnceLock<ChainLink>,
}

/// A whole `extends` chain resolved once (see [`BlockMemo::chain`]): the templates from the
/// child (level 0) to the base, and the block table of the instance. Held by the library
/// that resolved it ([`crate::loader::Library`]), so that it lives as long as that library
/// and no longer, and so that no template holds its own chain (a base may import macros
/// from its child: a template holding its chain could then keep itself alive).
pub struct ResolvedChain {
    pub levels: Arc<Vec<Arc<Program>>>,
    pub table: Arc<BlockTable>,
    /// For each level, for each of its own blocks (by index in `Program::blocks`), the index
    /// of its name's entry in `table`: a `{% block %}` tag of a level renders that entry
    /// without hashing the name.
    pub entries: Vec<Vec<u32>>,
    /// The base's body with the final block bodies spliced in (src/vm/flat.rs), built with
    /// the chain; `None` when the chain's blocks nest too deeply or too much to flatten.
    pub flat: Option<FlatChain>,
}

/// The flattened body of a resolved chain (built and run by src/vm/flat.rs, which explains it).
pub struct FlatChain {
    pub body: Vec<Flat>,
    /// The deepest nesting of inlined blocks (the render checks it against the depth limit).
    pub nest: usize,
    /// The most slots a block run in the enclosing frame's slots needs (the render sizes the
    /// first frame's slots for it once).
    pub slots: usize,
}

/// One step of a flattened body.
pub enum Flat {
    /// Text of one or more templates, and of `{{ parent() }}` prints whose definition is only
    /// text (see [`FlatText`]).
    Text(Box<FlatText>),
    /// What follows runs as the switch says.
    Switch(Switch),
    /// Nodes run as they are, after the switch if any (else where the last switch left).
    Run(Option<Switch>, Vec<Node>),
    /// A block in a frame of its own, or in the enclosing frame's slots (see [`FlatFrame`]).
    Frame(Box<FlatFrame>),
    /// `{{ parent() }}` whose definition is spliced in `body` (which ends in the state it
    /// started in).
    Parent(Span, Vec<Flat>),
}

/// What follows runs as the frame of `program`'s block `block` (or of its top level), in
/// block `cur` (entry and level in the chain's table), `nest` blocks deep.
pub struct Switch {
    pub program: Arc<Program>,
    /// The block (by index in `Program::blocks`) whose frame this is; `None`: the template's.
    pub block: Option<usize>,
    pub cur: Option<(usize, usize)>,
    pub nest: usize,
}

/// Merged text: each piece's end in `text` and the template it comes from (a size error names
/// it, as the unmerged text node would); a piece printed by `{{ parent() }}` also has the
/// print's span and template, and costs the print's fuel (`fuel`: the total). When the fuel
/// and the output size allow the whole text, it is written at once; else the pieces are
/// replayed one by one with the checks of the statements they come from.
pub struct FlatText {
    pub text: Text,
    pub pieces: Vec<Piece>,
    pub fuel: u64,
}

/// A piece of a [`FlatText`]: where it ends, its template, and the `{{ parent() }}` print
/// (span, template) that printed it, if one did.
pub struct Piece {
    pub end: usize,
    pub from: Arc<Program>,
    pub print: Option<(Span, Arc<Program>)>,
}

/// Block `idx` of `program` (entry and level `cur`), with a frame of its own, or, when
/// `shared`, in the slots of the enclosing frame: it uses its own slot numbers there, which
/// are all undefined when it starts (nothing in the enclosing frame before it set a variable)
/// and reset when it ends, so it sees and leaves what a fresh frame would. The rest of a frame
/// (program, frame kind, loop base, frame id) is set as the VM's `with_frame` sets it.
pub struct FlatFrame {
    pub program: Arc<Program>,
    pub idx: usize,
    pub cur: (usize, usize),
    pub nest: usize,
    pub shared: bool,
    pub body: Vec<Flat>,
}

/// A template's link to its [`ResolvedChain`]: used only while the library that resolved it
/// (`library`: its id) is the one rendering, so a reload never sees it.
pub struct ChainLink {
    pub library: u64,
    pub chain: std::sync::Weak<ResolvedChain>,
}

/// A resolved constant parent (see [`BlockMemo::parent`]). It is used only while the library
/// that resolved it is the one rendering (`library`: its [`crate::loader::Library::id`]), so a
/// reload (a new library) never sees it; `Weak`, so that templates extending each other in a
/// cycle do not keep each other alive.
pub struct ParentLink {
    pub library: u64,
    pub name: Arc<str>,
    pub program: std::sync::Weak<Program>,
}

/// `((child chain's table, level of the parent), the table with the parent's blocks added)`.
pub type ExtendedTable = ((Arc<BlockTable>, usize), Arc<BlockTable>);

/// A compiled block definition (its own frame, like a macro).
pub struct BlockDef {
    pub name: Arc<str>,
    pub slots: usize,
    pub slot_names: Arc<Vec<Arc<str>>>,
    pub body: Vec<Node>,
}

/// A compiled macro.
pub struct MacroDef {
    pub name: Arc<str>,
    pub params: Vec<Arc<str>>,
    pub defaults: Vec<Option<Expr>>,
    /// Slot of `varargs` (extra positional arguments).
    pub varargs: u32,
    pub slots: usize,
    pub slot_names: Arc<Vec<Arc<str>>>,
    pub body: Vec<Node>,
}

/// A compiled template or snippet.
pub struct Program {
    pub name: Arc<str>,
    pub source: Arc<str>,
    pub body: Vec<Node>,
    pub slots: usize,
    /// Name of each slot (for `with`, includes and the loop scope rule).
    pub slot_names: Arc<Vec<Arc<str>>>,
    pub macros: Vec<MacroDef>,
    pub macro_index: HashMap<Arc<str>, usize>,
    /// Blocks defined in this template, by name.
    pub blocks: Vec<BlockDef>,
    pub block_index: HashMap<Arc<str>, usize>,
    /// Blocks brought in by `use`, one entry per name (the last `use` wins): the
    /// definition and, after it, what its `parent()` reaches in its own template.
    pub traits: Vec<(Arc<str>, BlockChain)>,
    /// The parent when `extends` names a constant template (for `block(name, tpl)`).
    pub parent_name: Option<Arc<str>>,
    /// Size of the last output, to allocate the next one at once.
    pub size_hint: std::sync::atomic::AtomicUsize,
    /// Block tables built by the VM for this template (filled while rendering).
    pub block_memo: BlockMemo,
}

impl Program {
    /// A program with nothing in it.
    pub fn empty(name: &str, source: &str) -> Program {
        Program {
            name: Arc::from(name),
            source: Arc::from(source),
            body: Vec::new(),
            slots: 0,
            slot_names: Arc::new(Vec::new()),
            macros: Vec::new(),
            macro_index: HashMap::new(),
            blocks: Vec::new(),
            block_index: HashMap::new(),
            traits: Vec::new(),
            parent_name: None,
            size_hint: Default::default(),
            block_memo: BlockMemo::default(),
        }
    }
}

const _: () = assert!(std::mem::size_of::<Node>() == 64);
