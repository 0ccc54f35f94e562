//! Where named templates come from (docs/templates.md "The template library"):
//! the [`Loader`] trait with a folder loader and a map loader, template-name
//! normalisation, and the engine's `Library`: loader + snippets + a thread-safe
//! cache of compiled templates.

use crate::builtins::Registry;
use crate::compile::{self, ir::Program};
use crate::error::{Error, ErrorKind};
use crate::syntax;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// File name endings a folder loader serves (other files are not templates).
pub const TEMPLATE_EXTENSIONS: [&str; 6] = ["twig", "flexie", "html", "txt", "xml", "json"];

/// A source of named templates. Names given to [`Loader::load`] are already
/// normalised by [`normalize_name`] (relative, `/`-separated, no `.` or `..`).
pub trait Loader: Send + Sync {
    /// The source of `name`, or `None` when the loader has no such template.
    fn load(&self, name: &str) -> Result<Option<String>, Error>;
    /// Every name the loader can serve (for "did you mean" hints and `check`).
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

fn name_error(name: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("invalid template name `{}`: {why}", name.escape_debug()),
    )
}

/// Normalises a template name: `\` and repeated `/` become one `/`, `.` segments go,
/// `..` removes the previous segment. Refused: NUL, absolute paths (`/x`, `C:…`),
/// a `..` that would leave the library's root, and the empty name.
pub fn normalize_name(name: &str) -> Result<String, Error> {
    if name.contains('\0') {
        return Err(name_error(name, "it contains a NUL byte"));
    }
    let unified = name.replace('\\', "/");
    let b = unified.as_bytes();
    if unified.starts_with('/') || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':') {
        return Err(name_error(name, "absolute paths are not template names"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in unified.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(name_error(name, "`..` leaves the template folder"));
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err(name_error(name, "it is empty"));
    }
    Ok(parts.join("/"))
}

/// Whether a file name ends in one of [`TEMPLATE_EXTENSIONS`].
pub fn is_template_file(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| TEMPLATE_EXTENSIONS.contains(&ext))
}

/// Whether the last segment of a name has no extension at all (`layout`, Twig's
/// habit): such files load by name but are not listed (nor checked) as templates.
fn is_extensionless(name: &str) -> bool {
    !name.rsplit('/').next().unwrap_or(name).contains('.')
}

/// Templates read from a folder (as Twig's `FilesystemLoader`): a file's name is its
/// path relative to the folder with `/`. Only files ending in [`TEMPLATE_EXTENSIONS`]
/// (or with no extension at all, loaded by name only) are served, and never a file
/// whose real path (after symlinks) is outside the folder.
#[derive(Clone, Debug)]
pub struct FolderLoader {
    root: PathBuf,
}

impl FolderLoader {
    /// A loader for `root`, which must be an existing folder.
    pub fn new(root: impl AsRef<Path>) -> Result<FolderLoader, Error> {
        let root = root.as_ref();
        let canon = std::fs::canonicalize(root).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("template folder {}: {e}", root.display()),
            )
        })?;
        if !canon.is_dir() {
            return Err(Error::new(
                ErrorKind::Io,
                format!("template folder {} is not a folder", root.display()),
            ));
        }
        Ok(FolderLoader { root: canon })
    }

    /// The folder (canonicalised) that names are resolved in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn walk(&self, dir: &Path, prefix: &str, out: &mut Vec<String>, depth: usize) {
        if depth > 32 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in rd.flatten() {
            let Ok(fname) = entry.file_name().into_string() else {
                continue;
            };
            let rel = if prefix.is_empty() {
                fname.clone()
            } else {
                format!("{prefix}/{fname}")
            };
            let path = entry.path();
            if path.is_dir() {
                self.walk(&path, &rel, out, depth + 1);
            } else if is_template_file(&fname) {
                out.push(rel);
            }
        }
    }
}

impl Loader for FolderLoader {
    fn load(&self, name: &str) -> Result<Option<String>, Error> {
        if !is_template_file(name) && !is_extensionless(name) {
            return Ok(None);
        }
        let path = self.root.join(name);
        let real = match std::fs::canonicalize(&path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("cannot read template `{name}`: {e}"),
                ))
            }
        };
        if !real.starts_with(&self.root) || !real.is_file() {
            return Ok(None);
        }
        std::fs::read_to_string(&real)
            .map(Some)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read template `{name}`: {e}")))
    }
    fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&self.root, "", &mut out, 0);
        out.sort();
        out
    }
}

/// Templates held in memory (as Twig's `ArrayLoader`), keyed by normalised name.
#[derive(Clone, Debug, Default)]
pub struct MapLoader {
    map: BTreeMap<String, String>,
}

impl MapLoader {
    /// An empty map loader.
    pub fn new() -> MapLoader {
        MapLoader::default()
    }
    /// Adds (or replaces) a template; the name is normalised (an invalid name is an error).
    pub fn insert(&mut self, name: &str, source: impl Into<String>) -> Result<(), Error> {
        self.map.insert(normalize_name(name)?, source.into());
        Ok(())
    }
    /// Builds a loader from `(name, source)` pairs.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<MapLoader, Error> {
        let mut m = MapLoader::new();
        for (n, s) in pairs {
            m.insert(n, s)?;
        }
        Ok(m)
    }
}

impl Loader for MapLoader {
    fn load(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self.map.get(name).cloned())
    }
    fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
}

/// Everything a render may load by name: snippets, the loader and the cache of
/// compiled templates, with what compiling needs (builtins, strictness, depth).
pub(crate) struct Library {
    /// Unique among the libraries of this process (a reload builds a new library): what a
    /// template's remembered parent is checked against (`ParentLink` in src/compile/ir.rs).
    pub id: u64,
    pub registry: Registry,
    pub strict: bool,
    pub max_depth: usize,
    pub snippets: HashMap<Arc<str>, Arc<Program>>,
    pub loader: Option<Arc<dyn Loader>>,
    cache: RwLock<HashMap<Arc<str>, Arc<Program>>>,
    /// The `extends` chains resolved for templates of this library (`ResolvedChain` in
    /// src/compile/ir.rs; the templates link to them weakly).
    pub chains: std::sync::Mutex<Vec<Arc<crate::compile::ir::ResolvedChain>>>,
}

impl Library {
    pub fn new(
        registry: Registry,
        strict: bool,
        max_depth: usize,
        snippets: HashMap<Arc<str>, Arc<Program>>,
        loader: Option<Arc<dyn Loader>>,
    ) -> Library {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Library {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            registry,
            strict,
            max_depth,
            snippets,
            loader,
            cache: RwLock::new(HashMap::new()),
            chains: Default::default(),
        }
    }

    /// Parses and compiles `source`; `chain` holds the templates whose compilation is
    /// in progress (an `import`/`use` cycle is an error naming it).
    pub fn compile(&self, name: &str, source: &str, chain: &[Arc<str>]) -> Result<Program, Error> {
        let parsed = syntax::parse_template(name, source, self.max_depth)?;
        let env = compile::Env {
            registry: &self.registry,
            library: self,
            chain,
            strict: self.strict,
        };
        compile::compile_template(&env, name, source, &parsed)
    }

    /// The compiled template `name` (a snippet, or from the loader, compiled once and
    /// cached), `None` when it does not exist.
    pub fn get(&self, name: &str, chain: &[Arc<str>]) -> Result<Option<Arc<Program>>, Error> {
        if let Some(p) = self.snippets.get(name) {
            return Ok(Some(p.clone()));
        }
        let Some(loader) = &self.loader else {
            return Ok(None);
        };
        // A name already in normal form (the usual case) is found without normalising it
        // again: the cache's keys are normal names.
        // (`C:x` is refused by `normalize_name` even when `./C:x` was cached as `C:x`)
        if name.as_bytes().get(1) != Some(&b':') {
            if let Some(p) = self.cache.read().ok().and_then(|c| c.get(name).cloned()) {
                return Ok(Some(p));
            }
        }
        let key = normalize_name(name)?;
        if let Some(p) = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(key.as_str()).cloned())
        {
            return Ok(Some(p));
        }
        if chain.len() > self.max_depth || chain.iter().any(|c| **c == *key) {
            let mut names: Vec<&str> = chain.iter().map(|c| &**c).collect();
            names.push(&key);
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "templates import each other in a cycle: {}",
                    names.join(" → ")
                ),
            ));
        }
        let Some(source) = loader.load(&key)? else {
            return Ok(None);
        };
        let p = Arc::new(self.compile(&key, &source, chain)?);
        if let Ok(mut c) = self.cache.write() {
            c.entry(Arc::from(key.as_str()))
                .or_insert_with(|| p.clone());
        }
        Ok(Some(p))
    }

    /// Whether `p` is one of this library's templates (a snippet or a cached template; nothing
    /// is loaded).
    pub fn holds(&self, p: &Arc<Program>) -> bool {
        if let Some(s) = self.snippets.get(&p.name) {
            return Arc::ptr_eq(s, p);
        }
        self.cache
            .read()
            .ok()
            .and_then(|c| c.get(&p.name).map(|q| Arc::ptr_eq(q, p)))
            .unwrap_or(false)
    }

    /// The raw source of `name` (for `source()`), `None` when it does not exist.
    pub fn source(&self, name: &str) -> Result<Option<String>, Error> {
        if let Some(p) = self.snippets.get(name) {
            return Ok(Some(p.source.to_string()));
        }
        match &self.loader {
            Some(l) => l.load(&normalize_name(name)?),
            None => Ok(None),
        }
    }

    /// Every template name (snippets and the loader's), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.snippets.keys().map(|k| k.to_string()).collect();
        if let Some(l) = &self.loader {
            v.extend(l.names());
        }
        v.sort();
        v.dedup();
        v
    }

    /// "template `x` not found", with a did-you-mean over the library when close.
    pub fn missing(&self, name: &str) -> Error {
        let mut e = Error::new(
            ErrorKind::UnknownName,
            format!("template `{}` not found", name.escape_debug()),
        );
        let names = self.names();
        if let Some(s) = compile::closest(name, names.iter().map(|s| s.as_str())) {
            e = e.with_hint(format!("did you mean `{s}`?"));
        } else if self.loader.is_none() && self.snippets.is_empty() {
            e = e.with_hint("no template library is configured (a folder or snippets)");
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_confined() {
        assert_eq!(normalize_name("a//b/./c.twig").unwrap(), "a/b/c.twig");
        assert_eq!(normalize_name("a\\b.twig").unwrap(), "a/b.twig");
        assert_eq!(normalize_name("a/../b.twig").unwrap(), "b.twig");
        for bad in [
            "../x.twig",
            "a/../../x",
            "/etc/passwd",
            "C:/x",
            "a\0b",
            "",
            "./",
        ] {
            assert!(normalize_name(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn folder_loader_serves_only_templates_inside() {
        let dir = std::env::temp_dir().join(format!("flexlib-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.twig"), "A").unwrap();
        std::fs::write(dir.join("secret.toml"), "S").unwrap();
        let l = FolderLoader::new(&dir).unwrap();
        assert_eq!(l.load("sub/a.twig").unwrap().as_deref(), Some("A"));
        assert_eq!(l.load("secret.toml").unwrap(), None);
        std::fs::write(dir.join("layout"), "L").unwrap();
        assert_eq!(l.load("layout").unwrap().as_deref(), Some("L"));
        assert_eq!(l.load("nope.twig").unwrap(), None);
        assert_eq!(l.names(), vec!["sub/a.twig".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
