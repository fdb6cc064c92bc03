//! Command-line flags. Every flag is also a `CANDOR_*` environment variable;
//! flags win over the environment.

use std::path::PathBuf;
use std::time::Duration;

use candor_core::{Limits, Priority};
use candor_detectors::{AnalyzerConfig, Device as EngineDevice, EngineConfig};
use candor_server::ServerConfig;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Candor: tells recruiters when an applicant's headshot, interview audio or
/// resume text was likely made or altered by AI. Labels route material to a
/// person for review; they never reject an applicant.
///
/// Every flag can also be set with the environment variable shown in
/// brackets (e.g. CANDOR_PORT=9000); a flag on the command line wins.
#[derive(Debug, Parser)]
#[command(name = "candor", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (POST /v1/analyze, upload page at /, docs at /docs).
    Serve(Box<ServeArgs>),
    /// Analyse files (and pasted text) in-process, without a server.
    ///
    /// Exit status: 0 when every input was analysed (scored or abstained),
    /// 1 when at least one input could not be read or analysed, 2 on a usage
    /// or setup error.
    Scan(ScanArgs),
    /// Bulk re-screening of stored files: submit a manifest of applicants'
    /// files, follow it, read its results, cases and impact report, cancel it.
    Bulk(crate::bulk::BulkArgs),
    /// Work on the bulk queue (`--queue postgres://...` for many workers on
    /// many machines) until SIGINT/SIGTERM.
    Worker(Box<crate::bulk::WorkerCmdArgs>),
    /// Print the analyzer's setup (device, runtime, models, detectors,
    /// limits) as JSON.
    Info(InfoArgs),
    /// Evaluate a detector on a labelled set (--set), or externally produced
    /// scores (--scores), and write report.json, report.md, items.jsonl and
    /// plots.
    ///
    /// Exit status: 0 when the report was written (abstentions and per-item
    /// errors are counted in it), 1 when it could not be, 2 on a usage error.
    Eval(Box<crate::eval::EvalArgs>),
    /// Fit a calibration artefact (Platt or isotonic + thresholds) on the
    /// calib split of a labelled set or a scores file, and write it.
    Calibrate(Box<crate::eval::CalibrateArgs>),
    /// Write docs/evaluation.md from report.json files (used by
    /// scripts/gen-evaluation.sh).
    EvalDoc(crate::eval::EvalDocArgs),
    /// Score a labelled set of texts with the text detector's language model
    /// and write per-row features and pooled hidden states (training input
    /// of scripts/text/train_text_head.py).
    TextFeatures(Box<crate::textdev::TextFeaturesArgs>),
    /// Run a labelled set of audio files through the audio detector's VAD,
    /// speech encoder and forensics; write per-segment features (input of
    /// scripts/audio/train_audio_head.py).
    AudioFeatures(Box<crate::audiodev::AudioFeaturesArgs>),
    /// Embed the faces (YuNet, aligned) and whole images of a labelled set
    /// with the CLIP tower (training input of scripts/image/train_face_head.py).
    ImageEmbed(Box<crate::imageembed::ImageEmbedArgs>),
    /// Measure the identity registry's face matching on an LFW-layout folder
    /// (false-match and false-non-match rates, the operating point, a
    /// persona-farm scenario) and write a markdown report.
    IdentityEval(Box<crate::identityeval::IdentityEvalArgs>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// CUDA when available, else CPU.
    Auto,
    Cpu,
    Cuda,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Auto => "auto",
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format on stderr. `json` is easier to ship and query, `text`
    /// easier to read in a terminal.
    #[arg(long, global = true, env = "CANDOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing
    /// directive like `candor_server=debug,info`). Falls back to RUST_LOG,
    /// then to `info` for `serve` and `warn` for `scan`/`info`. More verbose
    /// levels help debugging but cost CPU and log volume per request.
    #[arg(long, global = true, env = "CANDOR_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// Settings of the analyzer shared by `serve`, `scan` and `info`.
#[derive(Debug, Clone, Args)]
pub struct AnalyzerArgs {
    /// Directory holding models and assets installed by scripts/setup.sh
    /// (models, ONNX Runtime, Swagger UI under www/swagger-ui/). Put it on
    /// fast local disk: models are read from it at start-up.
    #[arg(long, env = "CANDOR_HOME", default_value = ".candor")]
    pub candor_home: PathBuf,

    /// Where models run. `cuda` needs the CUDA build and GPU runtime
    /// libraries and fails at start-up without them; `auto` falls back to
    /// CPU, which is slower but always available.
    #[arg(long, env = "CANDOR_DEVICE", value_enum, default_value_t = Device::Auto)]
    pub device: Device,

    /// Model manifest (ids, versions, sha256, batching). The default is the
    /// repository's `models/manifest.toml`; the models it lists are verified
    /// against their sha256 at start-up, which costs a second or two per
    /// 100 MB of weights but catches corrupted or swapped files.
    #[arg(long, env = "CANDOR_MANIFEST", default_value = "models/manifest.toml")]
    pub manifest: PathBuf,

    /// Run without any models (decoding and abstentions only). Useful to
    /// check inputs on a machine where scripts/setup.sh has not run; every
    /// detector that needs a model abstains.
    #[arg(
        long,
        env = "CANDOR_NO_MODELS",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub no_models: bool,

    /// Threads each ONNX Runtime session uses inside one operator (0 = all
    /// cores). More threads cut single-request latency; fewer leave cores for
    /// decoding and other requests when many run at once.
    #[arg(long, env = "CANDOR_INTRA_THREADS", default_value_t = 0)]
    pub intra_threads: usize,

    /// Let ONNX Runtime's threads spin-wait between operators instead of
    /// sleeping (ONNX Runtime's own default), `true` or `false` for every
    /// model; unset, each model as its manifest entry says (the audio
    /// models spin, the others sleep). Spinning shaves wake-ups off a model
    /// running alone on idle cores, but an analysis runs several models in
    /// turn, each with its own threads, and the spinning threads of one
    /// take the cores from the next (measured on 2 cores, both ways, in
    /// docs/benchmarks-served.md).
    #[arg(long, env = "CANDOR_ORT_SPINNING")]
    pub ort_spinning: Option<bool>,

    /// Run the text detector's language model on CPU through OpenBLAS (the
    /// library scripts/setup.sh installs from the PyPI scipy-openblas32
    /// wheel; `CANDOR_BLAS_LIBRARY` names another). Its AVX-512 kernels make
    /// a resume about 2x faster than candle's own GEMM; the statistics agree
    /// to float rounding. `false` uses candle's kernels (no foreign library
    /// in the process). Without the library it falls back with a warning.
    #[arg(
        long,
        env = "CANDOR_CPU_BLAS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub cpu_blas: bool,

    /// Largest accepted upload per input, in bytes (one file or one text
    /// field). Larger values let long recordings and big PDFs through but
    /// raise peak memory per analysis (an input is held in memory whole
    /// while it is analysed; while it waits, a large one is on disk).
    #[arg(long, env = "CANDOR_MAX_UPLOAD_BYTES", default_value_t = Limits::default().max_upload_bytes)]
    pub max_upload_bytes: u64,

    /// Largest decoded image in pixels (width × height). Larger values accept
    /// huge photos but each decoded pixel costs ~4 bytes of RAM (40 MP ≈
    /// 160 MB), and decompression bombs get more room.
    #[arg(long, env = "CANDOR_MAX_PIXELS", default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,

    /// Largest decoded image side in pixels. Raising it accepts panoramas and
    /// scans; lowering it rejects extreme aspect ratios earlier.
    #[arg(long, env = "CANDOR_MAX_IMAGE_SIDE", default_value_t = Limits::default().max_image_side)]
    pub max_image_side: u32,

    /// Longest audio accepted after decoding, in seconds. Larger values let
    /// long interviews through but raise peak memory (~64 KB per second of
    /// 16 kHz mono f32) and analysis time.
    #[arg(long, env = "CANDOR_MAX_AUDIO_SECONDS", default_value_t = Limits::default().max_audio_seconds)]
    pub max_audio_seconds: f64,

    /// Lowest source sample rate accepted, in Hz; a header declaring less is
    /// refused as implausible (`implausible_header`). Speech is recorded at
    /// 8 kHz or more; lowering this lets a few-KB file declaring 1 Hz
    /// decode to hours of audio and seconds of CPU.
    #[arg(long, env = "CANDOR_MIN_AUDIO_SAMPLE_RATE", default_value_t = Limits::default().min_audio_sample_rate)]
    pub min_audio_sample_rate: u32,

    /// Seconds between the starts of the 2 s audio segments (0.25-2). The
    /// default, 2, tiles the speech with segments that touch: every second
    /// is scored once, and 30 s costs 15 encoder rows. Smaller overlaps them:
    /// a finer timeline and a better chance for a fake passage shorter than
    /// 2 s to fill a segment, at proportionally more model work (1 s: twice
    /// the rows; docs/benchmarks-served.md times 30 s at both). The file
    /// calibration was fitted at 2 s; at 1 s the held-out AUROC was the same
    /// (the evaluation's clips are 2-8 s).
    #[arg(long, env = "CANDOR_AUDIO_HOP_S", default_value_t = 2.0)]
    pub audio_hop_s: f64,

    /// The audio detector abstains (`unsuitable_audio`) when speech is less
    /// than this many dB above the background. Lower scores noisier audio,
    /// where the false positive rate was not measured.
    #[arg(long, env = "CANDOR_AUDIO_MIN_SNR_DB", default_value_t = 3.0)]
    pub audio_min_snr_db: f64,

    /// Most audio segments scored per file (one per `audio_hop_s`); the rest
    /// is skipped with a warning. Bounds the work per file.
    #[arg(long, env = "CANDOR_AUDIO_MAX_SEGMENTS", default_value_t = 3600)]
    pub audio_max_segments: usize,

    /// Attach the spectrogram PNG (base64) to audio results. Off saves
    /// ~20-150 KB per result and a few ms.
    #[arg(long, env = "CANDOR_AUDIO_PICTURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub audio_picture: bool,

    /// Longest image side the forensic measures analyse; larger images are
    /// centre-cropped to it (never resized, which would erase the traces).
    /// Larger values cover more of big photos at more CPU per image
    /// (roughly linear in pixels).
    #[arg(long, env = "CANDOR_IMAGE_MAX_SIDE", default_value_t = 1536)]
    pub image_max_side: u32,

    /// Side of the square the image forgery CNN maps (an evidence map, not
    /// part of the score), centred on the largest face; 128-1024. Its CPU
    /// cost is linear in the area: 512 (16 tiles) covers the face of a
    /// headshot at a quarter of the cost of 1024 (64 tiles, a whole 1024 px
    /// picture; about 100 ms more CPU per image, which on 2 cores competes
    /// with the face tower that gives the score).
    #[arg(long, env = "CANDOR_IMAGE_CNN_MAX_SIDE", default_value_t = 512)]
    pub image_cnn_max_side: usize,

    /// Attach the heatmap and spectrum PNGs (base64) to image results. Off
    /// saves ~240-310 KB of JSON per result (measured on photos of 384 to
    /// 2280 px) and the time to draw and encode them.
    #[arg(long, env = "CANDOR_IMAGE_PICTURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub image_picture: bool,

    /// Run the CLIP package's own generation probe on the whole image (a
    /// weak, uncalibrated hint shown as the signal `generation.clip_probe`;
    /// not part of the score, which comes from the face heads). On costs a
    /// second tower pass per image (~60-100 ms per 1024 px image on 2 cores).
    #[arg(long, env = "CANDOR_IMAGE_CLIP_PROBE", default_value_t = false, action = clap::ArgAction::Set)]
    pub image_clip_probe: bool,

    /// Also compute the language model's zero-shot likelihood signals
    /// (`lm.mean_logprob`, `lm.mean_log_rank`, `lm.fast_detectgpt`, ...) as
    /// evidence for the reviewer; they are not part of the score, which reads
    /// the hidden states after blocks 12 and 18. On runs the remaining 12 of 30
    /// blocks and the vocabulary head: about 1.7x the text detector's time
    /// (see docs/benchmarks-served.md). Off stops the model at block 18.
    #[arg(long, env = "CANDOR_TEXT_SIGNALS", default_value_t = false, action = clap::ArgAction::Set)]
    pub text_signals: bool,

    /// Bulk analyses (re-screening batches) start only after live analyses
    /// have left the cores alone for this many milliseconds, so that an
    /// in-process bulk worker does not slow live interviews. Larger keeps
    /// live latency flatter under bursty live traffic but slows batches
    /// while live traffic lasts; 0 turns the yielding off.
    #[arg(long, env = "CANDOR_BULK_QUIET_MS", default_value_t = 250)]
    pub bulk_quiet_ms: u64,

    /// Longest a bulk analysis waits for that quiet moment before it runs
    /// anyway. Larger protects live latency under constant live traffic,
    /// smaller keeps batches moving (bulk then competes for the cores).
    #[arg(long, env = "CANDOR_BULK_MAX_WAIT_MS", default_value_t = 10_000)]
    pub bulk_max_wait_ms: u64,

    /// Most PDF pages read. More pages cover long CVs with appendices but cost
    /// decode time and memory per page.
    #[arg(long, env = "CANDOR_MAX_PAGES", default_value_t = Limits::default().max_pages)]
    pub max_pages: u32,

    /// Most characters of extracted or pasted text. Larger values analyse
    /// longer documents but text scoring time grows with length.
    #[arg(long, env = "CANDOR_MAX_TEXT_CHARS", default_value_t = Limits::default().max_text_chars)]
    pub max_text_chars: u64,

    /// Largest decompressed/compressed size ratio accepted inside containers
    /// (DOCX zip members, PNG chunks, PDF streams). Higher values accept more
    /// unusual files but weaken zip-bomb protection.
    #[arg(long, env = "CANDOR_MAX_DECOMPRESSION_RATIO", default_value_t = Limits::default().max_decompression_ratio)]
    pub max_decompression_ratio: f64,

    /// Largest total decompressed size inside a container, in bytes. Higher
    /// values accept bigger documents but raise peak memory per input.
    #[arg(long, env = "CANDOR_MAX_DECOMPRESSED_BYTES", default_value_t = Limits::default().max_decompressed_bytes)]
    pub max_decompressed_bytes: u64,

    /// Wall-clock budget for decoding one input, in milliseconds. Longer
    /// budgets let slow, large files finish but let hostile files hold a CPU
    /// longer.
    #[arg(long, env = "CANDOR_DECODE_TIMEOUT_MS", default_value_t = Limits::default().decode_timeout_ms)]
    pub decode_timeout_ms: u64,

    /// Sample rate audio is decoded to, in Hz. Must match what the audio
    /// models expect (16000); other values only make sense with other models.
    #[arg(long, env = "CANDOR_AUDIO_SAMPLE_RATE", default_value_t = 16_000)]
    pub audio_sample_rate: u32,

    /// Deadline of one analysis when the caller sets none, in milliseconds
    /// (for `serve`: requests without `timeout_ms`). Longer deadlines finish
    /// big inputs under load; shorter ones free slots sooner and fail fast.
    #[arg(long, env = "CANDOR_REQUEST_TIMEOUT_MS", default_value_t = 120_000)]
    pub request_timeout_ms: u64,
}

impl AnalyzerArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_upload_bytes: self.max_upload_bytes,
            max_pixels: self.max_pixels,
            max_image_side: self.max_image_side,
            max_audio_seconds: self.max_audio_seconds,
            min_audio_sample_rate: self.min_audio_sample_rate,
            max_pages: self.max_pages,
            max_text_chars: self.max_text_chars,
            max_decompression_ratio: self.max_decompression_ratio,
            max_decompressed_bytes: self.max_decompressed_bytes,
            decode_timeout_ms: self.decode_timeout_ms,
        }
    }

    /// Engine settings: where models live, which device, how many threads.
    pub fn engine_config(&self) -> EngineConfig {
        let mut c = EngineConfig {
            home: self.candor_home.clone(),
            manifest: self.manifest.clone(),
            ..EngineConfig::default()
        };
        c.device = match self.device {
            Device::Auto => EngineDevice::Auto,
            Device::Cpu => EngineDevice::Cpu,
            Device::Cuda => EngineDevice::Cuda(0),
        };
        c.intra_threads = (self.intra_threads > 0).then_some(self.intra_threads);
        c.intra_spinning = self.ort_spinning;
        c.cpu_blas = self.cpu_blas;
        c.lm_statistics = Some(self.text_signals);
        c
    }

    pub fn analyzer_config(&self) -> AnalyzerConfig {
        AnalyzerConfig {
            limits: self.limits(),
            audio_sample_rate: self.audio_sample_rate,
            default_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
            audio: candor_detectors::audio::AudioConfig {
                hop_s: self.audio_hop_s.clamp(0.25, 2.0),
                min_snr_db: self.audio_min_snr_db,
                max_segments: self.audio_max_segments.max(1),
                picture: self.audio_picture,
            },
            image: candor_detectors::image::ImageConfig {
                forensics: candor_detectors::image::forensics::ForensicConfig {
                    max_side: self.image_max_side.clamp(64, 8192),
                    ..Default::default()
                },
                picture: self.image_picture,
                clip_probe: self.image_clip_probe,
                cnn_max_side: self.image_cnn_max_side.clamp(128, 1024),
            },
            bulk_quiet: Duration::from_millis(self.bulk_quiet_ms),
            bulk_max_wait: Duration::from_millis(self.bulk_max_wait_ms),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,

    /// Serve `/v1/batches` from this bulk queue: a SQLite file or
    /// `postgres://...` (see `candor bulk --help`). Unset: no bulk routes.
    #[arg(long = "queue", env = "CANDOR_QUEUE")]
    pub bulk_queue: Option<String>,

    /// Directories whose manifests and files `POST /v1/batches` may read
    /// (comma-separated). Anything outside them is refused, so an API
    /// client cannot make the server read arbitrary files. Empty: batches
    /// can only be submitted with `candor bulk submit`.
    #[arg(long, env = "CANDOR_BULK_ROOTS", value_delimiter = ',')]
    pub bulk_roots: Vec<PathBuf>,

    /// Run a bulk worker inside the server (with --queue). Convenient on
    /// one machine; with PostgreSQL, `false` leaves bulk work to separate
    /// `candor worker` processes so the server's cores stay with live
    /// traffic (items run at `bulk` priority either way).
    #[arg(long, env = "CANDOR_SERVE_BULK_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub bulk_worker: bool,

    /// Write `?async=true` jobs down (a row in the --queue store, default
    /// `$CANDOR_HOME/bulk.db`, and their inputs under
    /// `$CANDOR_HOME/jobs/`) before answering 202, so that a restart runs
    /// the unfinished ones again and keeps finished ones pollable. Costs a
    /// disk write of each job's inputs and a few small database writes per
    /// job; `false` keeps jobs in memory only (lost on a restart).
    #[arg(long, env = "CANDOR_DURABLE_JOBS", default_value_t = true, action = clap::ArgAction::Set)]
    pub durable_jobs: bool,

    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Writable directory for the server's own state: the default durable
    /// job store (`bulk.db`, when --queue is unset) and async jobs' inputs
    /// (`jobs/`). Default: `$CANDOR_HOME`. Point it at a volume when
    /// `CANDOR_HOME` is read-only (the container image does).
    #[arg(long, env = "CANDOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// This server's name in the durable job store: it runs again only
    /// the unfinished jobs that carry its name. Default: a digest of the
    /// host name, `CANDOR_HOME` and the port, which is stable across
    /// restarts; set it when those change (e.g. containers with random
    /// host names sharing one PostgreSQL store).
    #[arg(long, env = "CANDOR_NODE_ID")]
    pub node_id: Option<String>,

    #[command(flatten)]
    pub bulk_manifest: crate::bulk::ManifestArgs,

    #[command(flatten)]
    pub worker: crate::bulk::WorkerArgs,

    /// Address to listen on. `127.0.0.1` keeps the API local; `0.0.0.0`
    /// exposes it to the network (then set API keys or put a proxy in front).
    #[arg(long, env = "CANDOR_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// TCP port to listen on.
    #[arg(long, short, env = "CANDOR_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Comma-separated API keys. Empty (default) disables authentication,
    /// which is only safe on a trusted network. Keys on the command line are
    /// visible in the process list; prefer the env var or --api-key-file.
    #[arg(
        long,
        env = "CANDOR_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// File with one API key per line (blank lines and `#` comments ignored),
    /// added to --api-keys. Keeps keys out of the environment and process
    /// list; the file is read once at start-up.
    #[arg(long, env = "CANDOR_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Comma-separated paths that stay open when API keys are set (`/`,
    /// `/docs` are always open). Removing `/metrics` hides operational data
    /// but your scraper then needs a key.
    #[arg(long, env = "CANDOR_AUTH_EXEMPT_PATHS", value_delimiter = ',',
          default_values_t = candor_server::default_exempt_paths())]
    pub auth_exempt_paths: Vec<String>,

    /// Most inputs (files + text fields) in one request; more is answered
    /// 413. Higher values suit bulk uploads but raise the body limit (this ×
    /// max upload bytes, capped) and the memory one request may hold.
    #[arg(long, env = "CANDOR_MAX_INPUTS_PER_REQUEST", default_value_t = 16)]
    pub max_inputs_per_request: usize,

    /// Most inputs analysed at once across all requests. A synchronous
    /// request that finds no free slot is answered 429 before its body is
    /// read (load shedding, not queueing). Higher values raise throughput until CPU/GPU
    /// or memory saturate; lower values keep latency predictable.
    #[arg(long, env = "CANDOR_MAX_CONCURRENT_ANALYSES", default_value_t = 8)]
    pub max_concurrent_analyses: usize,

    /// Most inputs of one request analysed at once. Higher values finish a
    /// multi-file request sooner but let one request take more of the
    /// global slots.
    #[arg(long, env = "CANDOR_REQUEST_PARALLELISM", default_value_t = 4)]
    pub request_parallelism: usize,

    /// Cap on a request's `timeout_ms`, in milliseconds. Higher caps let
    /// callers wait for very large inputs but let a request hold slots
    /// longer.
    #[arg(long, env = "CANDOR_MAX_REQUEST_TIMEOUT_MS", default_value_t = 600_000)]
    pub max_request_timeout_ms: u64,

    /// Hard cap on the request body, in bytes, whatever the per-input limits
    /// say. Higher caps allow big multi-file uploads; a declared length over
    /// it is refused before the body is read, a body that grows past it at
    /// that byte.
    #[arg(long, env = "CANDOR_BODY_LIMIT_CAP_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub body_limit_cap_bytes: u64,

    /// Most async jobs held in memory (`?async=true`). When full of
    /// unfinished jobs, new jobs get 429. Higher values absorb bigger bursts
    /// but each finished job keeps its full response in memory until its TTL.
    #[arg(long, env = "CANDOR_MAX_JOBS", default_value_t = 1024)]
    pub max_jobs: usize,

    /// Bytes the async job store may hold: the inputs of unfinished jobs
    /// (counted from the first byte of their upload, refused at the first
    /// byte past it) and the responses of finished ones (the oldest are
    /// evicted to make room). Higher values absorb bigger bursts of jobs;
    /// lower ones bound memory and disk more tightly.
    #[arg(long, env = "CANDOR_MAX_JOB_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub max_job_bytes: u64,

    /// How long finished async jobs stay pollable, in seconds. Longer TTLs
    /// give slow pollers time; shorter ones free memory sooner.
    #[arg(long, env = "CANDOR_JOB_TTL_SECS", default_value_t = 3600)]
    pub job_ttl_secs: u64,

    /// Days a reviewer's case (`review=true` uploads: the material, the
    /// result and the decisions) is kept before it is erased. Longer keeps
    /// the evidence for audits and disputes; shorter holds applicants'
    /// personal data for less time (data-minimisation duties).
    #[arg(long, env = "CANDOR_CASE_RETENTION_DAYS", default_value_t = 30)]
    pub case_retention_days: u64,

    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM before
    /// they are dropped. Longer graces lose less work on deploys but delay
    /// restarts. Requests still running then are logged one line each and
    /// lost; unfinished async jobs run again at the next start (with
    /// --durable-jobs, the default).
    #[arg(long, env = "CANDOR_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Most live audio streams (`POST /v1/stream/audio`) at once. Streams
    /// have their own slots, separate from the analysis slots of uploads,
    /// so neither can starve the other. More streams cost CPU per second
    /// of audio each; a stream over the cap gets 429.
    #[arg(long, env = "CANDOR_MAX_CONCURRENT_STREAMS", default_value_t = 4)]
    pub max_concurrent_streams: usize,

    /// A live stream that sends no audio for this many milliseconds is
    /// ended with an error line. Longer tolerates network hiccups; shorter
    /// frees the stream slot of a silent or vanished client sooner.
    #[arg(long, env = "CANDOR_STREAM_IDLE_TIMEOUT_MS", default_value_t = 10_000)]
    pub stream_idle_timeout_ms: u64,

    /// Longest wall-clock life of one live stream, in seconds (the audio
    /// itself is also capped by --max-audio-seconds). Longer allows long
    /// interviews; shorter bounds how long one client holds a slot.
    #[arg(long, env = "CANDOR_STREAM_MAX_DURATION_SECS", default_value_t = 3 * 3600)]
    pub stream_max_duration_secs: u64,

    /// Milliseconds a client has to send a request's headers, from opening
    /// the connection (or from the request's first byte on a kept-alive
    /// one). Longer tolerates very slow links; shorter drops slow-header and
    /// half-open connections sooner.
    #[arg(long, env = "CANDOR_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// Milliseconds a kept-alive connection may sit idle between requests.
    /// Longer saves reconnects for chatty clients; shorter frees sockets
    /// and connection slots sooner.
    #[arg(long, env = "CANDOR_KEEP_ALIVE_TIMEOUT_MS", default_value_t = 60_000)]
    pub keep_alive_timeout_ms: u64,

    /// A request body that sends no bytes for this many milliseconds is
    /// answered 408, and a response the client stops reading for this long
    /// closes the connection. Longer tolerates stalling links; shorter
    /// frees slots held by stalled clients sooner.
    #[arg(long, env = "CANDOR_BODY_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_idle_timeout_ms: u64,

    /// Most open connections. Over it, new connections get a one-line 503
    /// and are closed. Higher serves more idle clients at once but lets a
    /// flood hold more sockets and memory.
    #[arg(long, env = "CANDOR_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Most open connections from one client address (0 = no cap). Behind
    /// a reverse proxy every client shares the proxy's address: raise it
    /// or set 0 there, and cap per client at the proxy.
    #[arg(long, env = "CANDOR_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64)]
    pub max_connections_per_client: usize,

    /// Directory where large inputs wait while they arrive and queue
    /// (unnamed files: nothing is left behind, even after a crash). Default:
    /// `candor-spill-<pid>` in the system's temporary directory. Put it on a
    /// local disk, not tmpfs, or spilled inputs take RAM again.
    #[arg(long, env = "CANDOR_SPILL_DIR")]
    pub spill_dir: Option<PathBuf>,

    /// Inputs larger than this many bytes are written to the spill
    /// directory as they arrive instead of held in memory. Lower saves
    /// memory under many concurrent uploads at the cost of disk writes.
    #[arg(long, env = "CANDOR_SPILL_THRESHOLD_BYTES", default_value_t = 1024 * 1024)]
    pub spill_threshold_bytes: u64,

    /// Most bytes of inputs in the spill directory at once; an upload that
    /// would go past it is refused (429) at that byte. Higher absorbs more
    /// large uploads and queued jobs; lower bounds disk use.
    #[arg(long, env = "CANDOR_SPILL_MAX_BYTES", default_value_t = 4 * 1024 * 1024 * 1024)]
    pub spill_max_bytes: u64,

    /// Most bytes of spilled (large) inputs read back into memory at once
    /// for analysis; an input waits for its share. Bounds the memory that
    /// large inputs take while they are analysed (the default fits two at
    /// the default 64 MiB upload limit, or many typical ones); lower values
    /// serialise the analysis of big files (less throughput on them).
    #[arg(long, env = "CANDOR_MAX_LOADED_INPUT_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub max_loaded_input_bytes: u64,

    /// Longest accepted input name (file name or `name` field), in bytes;
    /// longer names are refused (400). Names are echoed in results, so a
    /// large value lets clients inflate responses.
    #[arg(long, env = "CANDOR_MAX_FILE_NAME_BYTES", default_value_t = 255)]
    pub max_file_name_bytes: usize,

    /// Wrong or missing API keys from one client address, within
    /// --auth-failure-window-secs, after which that address is refused
    /// (429) until the window ends (0 = no throttling). Lower slows key
    /// guessing more but locks out a misconfigured client sooner; behind a
    /// proxy all clients share one address.
    #[arg(long, env = "CANDOR_AUTH_MAX_FAILURES", default_value_t = 10)]
    pub auth_max_failures: u32,

    /// Length of the window, in seconds, in which wrong API keys are
    /// counted (and of the lock-out). Longer slows guessing more; shorter
    /// lets a locked-out client back sooner.
    #[arg(long, env = "CANDOR_AUTH_FAILURE_WINDOW_SECS", default_value_t = 60)]
    pub auth_failure_window_secs: u64,
}

impl ServeArgs {
    /// The server configuration, with keys from the key file merged in.
    pub fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let mut keys: Vec<String> = self
            .api_keys
            .iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read API key file {}: {e}", path.display()))?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        Ok(ServerConfig {
            host: self.host.clone(),
            port: self.port,
            api_keys: keys,
            auth_exempt_paths: self.auth_exempt_paths.clone(),
            max_inputs_per_request: self.max_inputs_per_request,
            max_concurrent_analyses: self.max_concurrent_analyses,
            request_parallelism: self.request_parallelism,
            request_timeout: Duration::from_millis(self.analyzer.request_timeout_ms.max(1)),
            max_request_timeout: Duration::from_millis(self.max_request_timeout_ms.max(1)),
            body_limit_cap_bytes: self.body_limit_cap_bytes,
            max_jobs: self.max_jobs,
            max_job_bytes: self.max_job_bytes,
            job_ttl: Duration::from_secs(self.job_ttl_secs),
            case_retention: Duration::from_secs(self.case_retention_days.saturating_mul(86_400)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            candor_home: self.analyzer.candor_home.clone(),
            max_concurrent_streams: self.max_concurrent_streams,
            stream_idle_timeout: Duration::from_millis(self.stream_idle_timeout_ms.max(1)),
            stream_max_duration: Duration::from_secs(self.stream_max_duration_secs.max(1)),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            keep_alive_timeout: Duration::from_millis(self.keep_alive_timeout_ms.max(1)),
            body_idle_timeout: Duration::from_millis(self.body_idle_timeout_ms.max(1)),
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            spill_dir: self.spill_dir.clone(),
            spill_threshold_bytes: self.spill_threshold_bytes,
            spill_max_bytes: self.spill_max_bytes,
            max_loaded_input_bytes: self.max_loaded_input_bytes,
            max_file_name_bytes: self.max_file_name_bytes,
            auth_max_failures: self.auth_max_failures,
            auth_failure_window: Duration::from_secs(self.auth_failure_window_secs.max(1)),
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,

    /// Files to analyse (images, audio/video, PDF/DOCX/TXT).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Pasted text to analyse as well; may be repeated (the environment
    /// variable holds one text). Handy for a resume pasted into a form.
    #[arg(long = "text", env = "CANDOR_SCAN_TEXT", value_name = "TEXT")]
    pub texts: Vec<String>,

    /// Print one JSON document (`request_id`, `results`, `case`; the same
    /// schema as the HTTP API) instead of a table. Tables are for people,
    /// JSON for scripts and audit trails.
    #[arg(long, env = "CANDOR_SCAN_JSON")]
    pub json: bool,

    /// Scheduling class. `bulk` yields to live and upload traffic when the
    /// engine is shared; `live` jumps the queue.
    #[arg(long, env = "CANDOR_SCAN_PRIORITY", default_value = "upload", value_parser = parse_priority)]
    pub priority: Priority,

    /// Add a case summary even for a single input (it is included by default
    /// from two inputs on).
    #[arg(long, env = "CANDOR_SCAN_CASE")]
    pub case: bool,
}

#[derive(Debug, Clone, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed_and_every_flag_has_env() {
        Cli::command().debug_assert();
        // Every (sub)subcommand, e.g. `bulk submit`, not only the top level.
        fn check(cmd: &clap::Command, path: &str) {
            for sc in cmd.get_subcommands() {
                let sub = format!("{path} {}", sc.get_name()).trim().to_owned();
                for a in sc.get_arguments() {
                    let id = a.get_id().as_str();
                    if a.is_positional() || matches!(id, "help" | "version") {
                        continue;
                    }
                    assert!(a.get_env().is_some(), "--{id} of `{sub}` has no env var");
                    assert!(
                        a.get_long_help().or(a.get_help()).is_some(),
                        "--{id} of `{sub}` has no doc comment"
                    );
                }
                check(sc, &sub);
            }
        }
        check(&Cli::command(), "");
    }

    #[test]
    fn bulk_submit_takes_its_manifest_beside_the_model_manifest() {
        let cli = Cli::try_parse_from([
            "candor",
            "bulk",
            "submit",
            "--manifest",
            "models/manifest.toml",
            "hires.csv",
        ])
        .unwrap();
        let Command::Bulk(b) = cli.command else {
            panic!("bulk")
        };
        let crate::bulk::BulkCommand::Submit(s) = b.command else {
            panic!("submit")
        };
        assert_eq!(s.manifest, std::path::Path::new("hires.csv"));
        assert_eq!(
            s.analyzer.manifest,
            std::path::Path::new("models/manifest.toml")
        );
    }

    #[test]
    fn defaults_equal_core_limits() {
        let cli = Cli::try_parse_from(["candor", "info"]).unwrap();
        let Command::Info(i) = cli.command else {
            panic!("info")
        };
        assert_eq!(i.analyzer.limits(), Limits::default());
        let d = AnalyzerConfig::default();
        let c = i.analyzer.analyzer_config();
        assert_eq!(c.audio_sample_rate, d.audio_sample_rate);
        assert_eq!(c.default_timeout, d.default_timeout);
    }

    #[test]
    fn serve_config_merges_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("keys");
        std::fs::write(&f, "# keys\nk2\n\n k3 \n").unwrap();
        let cli = Cli::try_parse_from([
            "candor",
            "serve",
            "--api-keys",
            "k1,",
            "--api-key-file",
            f.to_str().unwrap(),
            "--port",
            "9000",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("serve")
        };
        let c = s.server_config().unwrap();
        assert_eq!(c.api_keys, vec!["k1", "k2", "k3"]);
        assert_eq!(c.port, 9000);
        let d = ServerConfig::default();
        assert_eq!(c.max_inputs_per_request, d.max_inputs_per_request);
        assert_eq!(c.auth_exempt_paths, d.auth_exempt_paths);
        // Every resource limit defaults to the server library's default.
        assert_eq!(c.max_job_bytes, d.max_job_bytes);
        assert_eq!(c.max_concurrent_streams, d.max_concurrent_streams);
        assert_eq!(c.stream_idle_timeout, d.stream_idle_timeout);
        assert_eq!(c.stream_max_duration, d.stream_max_duration);
        assert_eq!(c.header_read_timeout, d.header_read_timeout);
        assert_eq!(c.keep_alive_timeout, d.keep_alive_timeout);
        assert_eq!(c.body_idle_timeout, d.body_idle_timeout);
        assert_eq!(c.max_connections, d.max_connections);
        assert_eq!(c.max_connections_per_client, d.max_connections_per_client);
        assert_eq!(c.spill_dir, d.spill_dir);
        assert_eq!(c.spill_threshold_bytes, d.spill_threshold_bytes);
        assert_eq!(c.spill_max_bytes, d.spill_max_bytes);
        assert_eq!(c.max_loaded_input_bytes, d.max_loaded_input_bytes);
        assert_eq!(c.max_file_name_bytes, d.max_file_name_bytes);
        assert_eq!(c.auth_max_failures, d.auth_max_failures);
        assert_eq!(c.auth_failure_window, d.auth_failure_window);
    }
}

/// The operating point a calibration is fitted for (`candor calibrate`).
#[derive(Debug, Clone, Args)]
pub struct OperatingPointArgs {
    /// False positive rate on authentic calibration rows at the
    /// `likely_manipulated` threshold. Lower flags fewer authentic inputs,
    /// catches fewer manipulated ones.
    #[arg(long, env = "CANDOR_CALIB_TARGET_FPR", default_value_t = 0.01)]
    pub target_fpr: f64,

    /// Largest share of manipulated calibration rows labelled
    /// `likely_authentic`. Lower widens the inconclusive band (more human
    /// review).
    #[arg(long, env = "CANDOR_CALIB_AUTHENTIC_MAX_FNR", default_value_t = 0.05)]
    pub authentic_max_fnr: f64,

    /// Share of manipulated inputs the calibrated probabilities are for
    /// (the classes of the calibration rows are weighted to it). 0.5 (the
    /// shipped artefacts): "as likely as not" before the evidence, the same
    /// meaning for every detector. 0 keeps the rows' own class mix. The
    /// thresholds follow the FPR / FNR targets either way.
    #[arg(long, env = "CANDOR_CALIB_PRIOR", default_value_t = 0.5)]
    pub prior: f64,
}

impl OperatingPointArgs {
    /// The library's spec (prior 0 = the rows' own mix).
    pub fn spec(&self) -> candor_eval::calibrate::OperatingPointSpec {
        candor_eval::calibrate::OperatingPointSpec {
            target_fpr: self.target_fpr,
            authentic_max_fnr: self.authentic_max_fnr,
            prior: (self.prior > 0.0).then_some(self.prior),
        }
    }
}

/// The identity registry (issue 18): shared by `candor serve` and the bulk
/// workers, so that both enrol into, and match against, one registry.
#[derive(Debug, Clone, Args)]
pub struct IdentityArgs {
    /// Keep a registry of applicants' face and voice embeddings, photo
    /// hashes and resume texts and report other applicants whose face,
    /// photo, voice or resume matches (`matches` in results, `/v1/applicants/{id}/matches`,
    /// clusters in batch reports). Biometric data (GDPR art.
    /// 9, BIPA): off by default; turn it on only with a lawful basis, a
    /// retention period and notice to applicants. Costs one face or voice
    /// embedding per picture or recording and a scan of the registry per
    /// input with an `applicant_id` (every bulk item has one).
    #[arg(long = "identity", env = "CANDOR_IDENTITY", default_value_t = false, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Days an applicant's templates stay in the identity registry. Longer
    /// finds reuse across more hiring rounds; shorter keeps biometric data
    /// for less time.
    #[arg(
        long = "identity-retention-days",
        env = "CANDOR_IDENTITY_RETENTION_DAYS",
        default_value_t = 180
    )]
    pub retention_days: u64,

    /// Face cosine similarity at or above which two applicants' faces are
    /// reported as one person. Higher reports fewer false matches and
    /// misses more true ones (docs/identity.md has the measured rates).
    #[arg(
        long = "identity-face-threshold",
        env = "CANDOR_IDENTITY_FACE_THRESHOLD",
        default_value_t = 0.45
    )]
    pub face_threshold: f32,

    /// Voice cosine similarity (GE2E speaker embeddings of at least 3 s of
    /// speech) at or above which two applicants' recordings are reported as
    /// one speaker. Higher reports fewer false matches and misses more true
    /// ones, above all across channels (docs/identity.md has the measured rates).
    #[arg(
        long = "identity-voice-threshold",
        env = "CANDOR_IDENTITY_VOICE_THRESHOLD",
        default_value_t = 0.85
    )]
    pub voice_threshold: f32,

    /// Estimated Jaccard similarity (word 3-shingles inside sentences) at or above which two
    /// applicants' texts are reported as reuse. Lower catches heavier
    /// rewording and flags more shared boilerplate.
    #[arg(
        long = "identity-text-threshold",
        env = "CANDOR_IDENTITY_TEXT_THRESHOLD",
        default_value_t = 0.3
    )]
    pub text_threshold: f32,

    /// Most bits (of 64) in which two pictures' perceptual hashes (the
    /// whole picture, or the face aligned to a fixed framing) may differ
    /// for the two to be reported as the same photograph, re-encoded,
    /// resized or re-cropped. Higher catches heavier edits and takes
    /// different photos taken in one sitting for the same one
    /// (docs/identity.md has the measured rates).
    #[arg(
        long = "identity-photo-bits",
        env = "CANDOR_IDENTITY_PHOTO_BITS",
        default_value_t = 7
    )]
    pub photo_max_bits: u32,

    /// Face cosine of the joint rule: two applicants whose faces reach it
    /// and whose texts reach `--identity-joint-text-threshold`, neither
    /// reaching its own threshold, are reported as one person
    /// (`face+text`). Lower links more reworded, re-photographed personas
    /// and more strangers who happen to share boilerplate; at or above
    /// `--identity-face-threshold` the rule is off (docs/identity.md has
    /// the measured rates).
    #[arg(
        long = "identity-joint-face-threshold",
        env = "CANDOR_IDENTITY_JOINT_FACE_THRESHOLD",
        default_value_t = 0.29
    )]
    pub joint_face_threshold: f32,

    /// Text Jaccard of the joint rule (see `--identity-joint-face-threshold`).
    /// Lower links more reworded resumes and more pairs that merely share
    /// a template; at or above `--identity-text-threshold` the rule is off.
    #[arg(
        long = "identity-joint-text-threshold",
        env = "CANDOR_IDENTITY_JOINT_TEXT_THRESHOLD",
        default_value_t = 0.20
    )]
    pub joint_text_threshold: f32,
}

impl IdentityArgs {
    /// The registry's configuration (thresholds with their operating points).
    pub fn config(&self) -> candor_identity::RegistryConfig {
        candor_identity::RegistryConfig {
            retention: std::time::Duration::from_secs(self.retention_days.saturating_mul(86_400)),
            face_threshold: self.face_threshold,
            face_operating_point: format!(
                "face cosine >= {} (SFace; false-match and non-match rates on LFW pairs in docs/identity-evaluation.md)",
                self.face_threshold
            ),
            voice_threshold: self.voice_threshold,
            voice_operating_point: format!(
                "voice cosine >= {} (GE2E; false-match and non-match rates on LibriSpeech speakers in docs/identity-evaluation.md)",
                self.voice_threshold
            ),
            text_threshold: self.text_threshold,
            text_operating_point: format!(
                "estimated Jaccard of word 3-shingles inside sentences >= {} (docs/identity-evaluation.md)",
                self.text_threshold
            ),
            photo_max_bits: self.photo_max_bits,
            photo_operating_point: format!(
                "perceptual hashes (whole picture or aligned face) differing in <= {} of 64 bits (false-match and non-match rates on LFW photos and edited copies in docs/identity-evaluation.md)",
                self.photo_max_bits
            ),
            joint_face_threshold: self.joint_face_threshold,
            joint_text_threshold: self.joint_text_threshold,
            joint_operating_point: format!(
                "face cosine >= {} and text Jaccard >= {}, each short of its own threshold (joint false-match rate estimated from the face and text rates in docs/identity-evaluation.md)",
                self.joint_face_threshold, self.joint_text_threshold
            ),
            max_matches: 10,
            scan_threads: 2,
        }
    }

    /// Opens the registry in `store` when it is switched on.
    pub async fn open(
        &self,
        store: &candor_bulk::Store,
    ) -> anyhow::Result<Option<std::sync::Arc<candor_identity::Registry>>> {
        if !self.enabled {
            return Ok(None);
        }
        let reg = candor_identity::Registry::open(store.clone(), self.config())
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the identity registry: {e}"))?;
        let reg = std::sync::Arc::new(reg);
        // Expiry on time however long the process runs, and other
        // processes' enrolments seen even between this one's lookups.
        reg.spawn_maintenance(std::time::Duration::from_secs(300));
        Ok(Some(reg))
    }
}
