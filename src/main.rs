//! The `flexscript` command line (README.md "Command line"): thin, no logic of its own.
//! Exit codes: 0 success, 1 template/runtime/input errors, 2 usage errors (clap).

use clap::{Parser, Subcommand, ValueEnum};
use flexscript::listener::cli;
use flexscript::{Engine, Error, ErrorKind, Escape, FolderLoader, RenderOptions, Value};
use std::io::Read;
use std::process::ExitCode;

/// The binary's allocator (docs/architecture.md, "Allocator"): the listener allocates and frees
/// small request, value and journal buffers across threads, where mimalloc is markedly cheaper
/// than glibc's malloc. The library sets no allocator; an embedder keeps its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flexscript",
    version,
    about = "Flexie Scripting templates and endpoint listener"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum AutoEscape {
    Html,
    None,
}

#[derive(Subcommand)]
enum Command {
    /// Render a template with a JSON context; prints the output exactly.
    Render {
        /// Template file (`-` = stdin).
        #[arg(required_unless_present = "expr", conflicts_with = "expr")]
        file: Option<String>,
        /// The template given inline.
        #[arg(short = 'e', long = "expr", value_name = "TEXT")]
        expr: Option<String>,
        /// JSON object whose keys become top-level variables.
        #[arg(long, value_name = "CTX.json")]
        context: Option<String>,
        #[arg(long, value_enum, default_value = "none")]
        autoescape: AutoEscape,
        /// A missing variable, key or index is an error.
        #[arg(long)]
        strict: bool,
        /// JSON record store for find*/query (docs/catalogue.md "Host-backed functions").
        #[arg(long, value_name = "FILE")]
        records: Option<String>,
        /// Template library folder for extends/include/import/embed/use (docs/templates.md).
        #[arg(long, value_name = "DIR")]
        templates: Option<String>,
        /// Shared store for memoryGet/incrementAndGet: `memory` (the default, empty) or
        /// `sqlite:PATH` (a state file; not while a server owns it).
        #[arg(long, value_name = "VALUE")]
        state: Option<String>,
    },
    /// Check templates (and `.toml` listener configurations); diagnostics on stderr.
    /// With `--templates DIR`, every template in DIR is compiled too.
    Check {
        /// Template library folder: each of its templates is checked.
        #[arg(long, value_name = "DIR")]
        templates: Option<String>,
        #[arg(required_unless_present = "templates")]
        files: Vec<String>,
    },
    /// Run test cases (`*.cases.toml`) against a listener configuration (docs/testing.md).
    Test {
        config: String,
        /// Case files or folders (default: every `*.cases.toml` under `tests/` beside CONFIG).
        cases: Vec<String>,
        /// Write or rewrite snapshots.
        #[arg(long)]
        update: bool,
        /// Run only cases whose name contains TEXT.
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// Write JUnit XML to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<String>,
        /// Cases run at once (default: the number of cores).
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
    },
    /// Run the listener.
    Serve {
        /// The endpoints file (TOML).
        config: String,
        /// Listen address, overriding `[server] addr` (`127.0.0.1:0` picks a free port).
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// Reload when the configuration file or a file under `[server] templates` changes.
        #[arg(long)]
        watch: bool,
        /// State backend, overriding `[server] state`: `memory`, `sqlite:PATH` or `redis://HOST:PORT/DB`.
        #[arg(long, value_name = "VALUE")]
        state: Option<String>,
    },
    /// Read and retry the runs kept by the state backend (with or without a running server).
    Runs {
        #[command(subcommand)]
        action: RunsCommand,
    },
    /// Print a fresh `[[endpoint]]` stanza.
    NewEndpoint { name: String },
    /// Print a signed JWT for calling an endpoint.
    Token {
        #[arg(long)]
        key: String,
        #[arg(long)]
        secret: String,
        #[arg(long, default_value = "HS256")]
        alg: String,
        #[arg(long, default_value_t = 300)]
        ttl: u64,
        #[arg(long)]
        data: Option<String>,
    },
}

/// Where `flexscript runs` finds the runs.
#[derive(clap::Args)]
struct RunsSource {
    /// The listener configuration (its `[server] state` names the backend).
    #[arg(long, value_name = "FILE")]
    config: String,
    /// State backend, overriding `[server] state`: `sqlite:PATH` or `redis://HOST:PORT/DB`.
    #[arg(long, value_name = "VALUE")]
    state: Option<String>,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List runs, newest first.
    List {
        #[command(flatten)]
        source: RunsSource,
        /// Only the runs of this endpoint (its name).
        #[arg(long)]
        endpoint: Option<String>,
        /// Only runs in this status (queued, running, waiting, succeeded, failed, interrupted).
        #[arg(long)]
        status: Option<String>,
        /// At most this many runs (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The cursor printed after a full page: the next (older) page.
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
        /// Print the page as JSON (as `GET /runs` answers).
        #[arg(long)]
        json: bool,
    },
    /// Print one run's whole record as JSON.
    Show {
        id: String,
        #[command(flatten)]
        source: RunsSource,
    },
    /// Queue a failed or interrupted run again.
    Retry {
        id: String,
        #[command(flatten)]
        source: RunsSource,
        /// `failed`: from its failed step (finished steps keep their results); `start`: from
        /// the first step.
        #[arg(long, default_value = "failed", value_name = "failed|start")]
        from: String,
    },
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{what}: {e}")).with_source(e)
}

fn read_source(path: &str) -> Result<String, Error> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| io_error("cannot read stdin", e))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| io_error(&format!("cannot read {path}"), e))
    }
}

fn read_context(path: Option<&str>) -> Result<Value, Error> {
    let Some(path) = path else {
        return Ok(Value::empty_map());
    };
    let text = read_source(path)?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid JSON context in {path}: {e}"),
        )
        .with_source(e)
    })?;
    if !json.is_object() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "context must be a JSON object",
        ));
    }
    Ok(Value::from(json))
}

/// An engine with the template folder `dir` as its library.
fn library_engine(dir: Option<&str>) -> Result<(Engine, Option<FolderLoader>), Error> {
    let mut engine = Engine::new();
    let Some(dir) = dir else {
        return Ok((engine, None));
    };
    let loader = FolderLoader::new(dir)?;
    engine.set_loader(loader.clone());
    Ok((engine, Some(loader)))
}

/// The library name of `file` when it lies inside the loader's folder.
fn name_in(loader: Option<&FolderLoader>, file: &str) -> Option<String> {
    let root = loader?.root();
    let real = std::fs::canonicalize(file).ok()?;
    let rel = real.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

#[allow(clippy::too_many_arguments)]
fn render(
    file: Option<String>,
    expr: Option<String>,
    context: Option<String>,
    autoescape: AutoEscape,
    strict: bool,
    records: Option<String>,
    templates: Option<String>,
    state: Option<String>,
) -> Result<String, Error> {
    let ctx = read_context(context.as_deref())?;
    let (mut engine, loader) = library_engine(templates.as_deref())?;
    engine.set_strict(strict);
    if let Some(path) = records {
        engine.set_records(std::sync::Arc::new(
            flexscript::host::JsonRecords::from_file(&path)?,
        ));
    }
    // A one-off render gets an empty in-memory shared store unless told otherwise; the
    // backend (and its file lock) lives until the render is done.
    let spec = flexscript::state::StateSpec::parse(
        state.as_deref().unwrap_or("memory"),
        std::path::Path::new("."),
    )
    .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("--state: {e}")))?;
    let backend = spec
        .open(flexscript::state::Durability::Normal)
        .map_err(|e| Error::new(ErrorKind::Io, e))?;
    engine.set_store(backend.store());
    let in_library = file.as_deref().and_then(|f| name_in(loader.as_ref(), f));
    let tpl = match (expr, file, in_library) {
        (Some(e), _, _) => engine.compile("-e", &e)?,
        (None, Some(_), Some(name)) => engine.get_template(&name)?,
        (None, Some(f), None) => engine.compile(&f, &read_source(&f)?)?,
        (None, None, _) => return Err(Error::new(ErrorKind::Io, "render: no template given")),
    };
    tpl.render_value(
        &ctx,
        RenderOptions::default().with_escape(match autoescape {
            AutoEscape::Html => Escape::Html,
            AutoEscape::None => Escape::None,
        }),
    )
}

fn check(templates: Option<&str>, files: &[String]) -> bool {
    let (engine, loader) = match library_engine(templates) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return false;
        }
    };
    let mut ok = true;
    if loader.is_some() {
        for name in engine.template_names() {
            if let Err(e) = engine.get_template(&name) {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    for f in files {
        if f.ends_with(".toml") {
            ok &= cli::check(std::path::Path::new(f));
            continue;
        }
        let result = match name_in(loader.as_ref(), f) {
            Some(name) => engine.get_template(&name).map(|_| ()),
            None => read_source(f).and_then(|src| engine.compile(f, &src).map(|_| ())),
        };
        if let Err(e) = result {
            eprintln!("{e}");
            ok = false;
        }
    }
    ok
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Render {
            file,
            expr,
            context,
            autoescape,
            strict,
            records,
            templates,
            state,
        } => match render(
            file, expr, context, autoescape, strict, records, templates, state,
        ) {
            Ok(out) => {
                use std::io::Write;
                let mut stdout = std::io::stdout();
                if stdout
                    .write_all(out.as_bytes())
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    return ExitCode::from(1);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Command::Check { templates, files } => {
            if check(templates.as_deref(), &files) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Test {
            config,
            cases,
            update,
            filter,
            junit,
            jobs,
        } => ExitCode::from(flexscript::listener::testing::run(
            &flexscript::listener::testing::Args {
                config: config.into(),
                cases: cases.into_iter().map(Into::into).collect(),
                update,
                filter,
                junit: junit.map(Into::into),
                jobs: jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            },
        )),
        Command::Serve {
            config,
            addr,
            watch,
            state,
        } => ExitCode::from(cli::serve(
            std::path::Path::new(&config),
            addr.as_deref(),
            watch,
            state.as_deref(),
        )),
        Command::Runs { action } => {
            let (source, action) = match action {
                RunsCommand::List {
                    source,
                    endpoint,
                    status,
                    limit,
                    before,
                    json,
                } => (
                    source,
                    cli::RunsAction::List {
                        endpoint,
                        status,
                        limit,
                        before,
                        json,
                    },
                ),
                RunsCommand::Show { id, source } => (source, cli::RunsAction::Show { id }),
                RunsCommand::Retry { id, source, from } => {
                    (source, cli::RunsAction::Retry { id, from })
                }
            };
            ExitCode::from(cli::runs(
                std::path::Path::new(&source.config),
                source.state.as_deref(),
                action,
            ))
        }
        Command::NewEndpoint { name } => {
            print!("{}", cli::new_endpoint(&name));
            ExitCode::SUCCESS
        }
        Command::Token {
            key,
            secret,
            alg,
            ttl,
            data,
        } => match cli::token(&key, &secret, &alg, ttl, data.as_deref()) {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
    }
}
