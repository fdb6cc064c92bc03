//! `candor`: the command line. `serve` runs the HTTP API, `scan` analyses
//! files in-process, `info` prints the analyzer setup, `eval` / `calibrate`
//! / `eval-doc` measure and calibrate detectors.

mod args;
mod audiodev;
mod bulk;
mod eval;
mod identityeval;
mod imageembed;
mod rows;
mod scan;
mod textdev;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use candor_detectors::Analyzer;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{AnalyzerArgs, Cli, Command, LogArgs, LogFormat};

/// Exit status for usage and setup errors (clap uses 2 for usage errors too).
const EXIT_USAGE: u8 = 2;

/// Build the analyzer. THE one place that constructs it: when the analyzer
/// loads models, this becomes e.g.
/// `Analyzer::load(args.analyzer_config(), engine_config)?`.
fn build_analyzer(args: &AnalyzerArgs) -> anyhow::Result<Arc<Analyzer>> {
    tracing::debug!(
        device = args.device.as_str(),
        candor_home = %args.candor_home.display(),
        "building analyzer"
    );
    if args.no_models {
        return Ok(Arc::new(Analyzer::new(args.analyzer_config())));
    }
    let engine = args.engine_config();
    if !engine.manifest.is_file() {
        anyhow::bail!(
            "model manifest {} not found: run from the repository root, set \
             CANDOR_MANIFEST, or pass --no-models to run without models",
            engine.manifest.display()
        );
    }
    let analyzer = Analyzer::load(args.analyzer_config(), engine)
        .context("cannot load models (run scripts/setup.sh)")?;
    Ok(Arc::new(analyzer))
}

fn init_tracing(log: &LogArgs, default_level: &str) {
    let filter = match &log.log_level {
        Some(l) => EnvFilter::try_new(l).unwrap_or_else(|e| {
            eprintln!("candor: invalid log level `{l}` ({e}); using `{default_level}`");
            EnvFilter::new(default_level)
        }),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log collectors get plain text.
        .with_ansi(std::io::stderr().is_terminal());
    let res = match log.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = res {
        eprintln!("candor: cannot set up logging: {e}");
    }
}

fn main() -> ExitCode {
    // Before any thread exists: ONNX Runtime reads this when it loads.
    candor_engine::backend::onnx::disable_telemetry();
    let cli = Cli::parse();
    // Decoder crates log recoverable oddities of the input (junk bytes before
    // a header, an encrypted PDF) at `warn`; Candor reports those itself, in
    // the result's warnings or the problem detail, so keep them quiet.
    let default_level = match cli.command {
        Command::Serve(_) | Command::Worker(_) => {
            "info,symphonia_core=error,symphonia=error,lopdf=error"
        }
        _ => "warn,symphonia_core=error,symphonia=error,lopdf=error",
    };
    init_tracing(&cli.log, default_level);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("candor: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => match serve(*args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "serve failed");
                    eprintln!("candor: {e:#}");
                    ExitCode::FAILURE
                }
            },
            Command::Scan(args) => scan::run(args).await,
            Command::Bulk(args) => bulk::run(args).await,
            Command::Worker(args) => bulk::worker(*args).await,
            Command::Eval(args) => eval::run_eval(*args).await,
            Command::Calibrate(args) => eval::run_calibrate(*args).await,
            Command::EvalDoc(args) => eval::run_eval_doc(args),
            Command::TextFeatures(args) => textdev::run_features(*args).await,
            Command::AudioFeatures(args) => audiodev::run_features(*args).await,
            Command::ImageEmbed(args) => imageembed::run(*args).await,
            Command::IdentityEval(args) => identityeval::run(*args).await,
            Command::Info(args) => match build_analyzer(&args.analyzer) {
                Ok(a) => match serde_json::to_string_pretty(&a.info()) {
                    Ok(s) => {
                        println!("{s}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("candor: {e}");
                        ExitCode::FAILURE
                    }
                },
                Err(e) => {
                    eprintln!("candor: {e:#}");
                    ExitCode::from(EXIT_USAGE)
                }
            },
        }
    })
}

async fn serve(args: args::ServeArgs) -> anyhow::Result<()> {
    let config = args.server_config()?;
    let analyzer = build_analyzer(&args.analyzer).context("cannot build the analyzer")?;
    let mut stores = candor_server::Stores::default();
    let mut worker = None;
    let home = args
        .state_dir
        .clone()
        .unwrap_or_else(|| args.analyzer.candor_home.clone());
    let mut store = None;
    if let Some(url) = &args.bulk_queue {
        store = Some(
            candor_bulk::Store::open(url, 8)
                .await
                .context("cannot open the bulk queue")?,
        );
    } else if args.durable_jobs {
        let url = home.join("bulk.db").display().to_string();
        store = Some(
            candor_bulk::Store::open(&url, 4)
                .await
                .context("cannot open the durable job store (set --durable-jobs false to keep async jobs in memory)")?,
        );
    }
    if args.identity.enabled {
        let Some(store) = &store else {
            anyhow::bail!(
                "the identity registry needs a store: set --queue, or leave --durable-jobs on"
            );
        };
        stores.identity = args.identity.open(store).await?;
    }
    if let (true, Some(store)) = (args.durable_jobs, &store) {
        let node = candor_server::durable::node_id(args.node_id.as_deref(), &home, config.port);
        stores.jobs = Some(candor_server::durable::DurableJobs::new(
            store.clone(),
            &home.join("jobs"),
            node,
        ));
    }
    if let (Some(_), Some(store)) = (&args.bulk_queue, store) {
        let mut roots = Vec::new();
        for r in &args.bulk_roots {
            roots.push(
                r.canonicalize()
                    .with_context(|| format!("bulk root {}", r.display()))?,
            );
        }
        if args.bulk_worker {
            let mut w = candor_bulk::BulkWorker::new(
                store.clone(),
                Arc::clone(&analyzer),
                args.worker.config(),
            );
            if let Some(reg) = &stores.identity {
                w = w.with_identity(Arc::clone(reg) as Arc<dyn candor_bulk::Enroller>);
            }
            let (tx, rx) = tokio::sync::watch::channel(false);
            worker = Some((tx, tokio::spawn(w.run(rx))));
        }
        stores.bulk = Some(candor_server::batches::BulkService {
            store,
            roots,
            limits: args.bulk_manifest.limits(),
            max_items: args.bulk_manifest.max_batch_items,
            max_report_top: 10_000,
        });
    }
    let served = candor_server::serve_with_stores(config, analyzer, stores)
        .await
        .context("HTTP server");
    if let Some((tx, handle)) = worker {
        let _ = tx.send(true);
        let _ = handle.await;
    }
    served
}
