//! The reviewer's web app, served by the same binary: server-rendered pages
//! (minijinja templates compiled into the binary, one small script, no
//! external requests) over what the API already stores.
//!
//! * `/review`: recent cases and an upload form (`POST /v1/analyze?review=true`).
//! * `/review/cases/{id}`: one applicant's material: the picture with its
//!   heatmaps and face boxes, the recording with its scored segments, the
//!   resume shaded sentence by sentence, the verdict and its reasons, the
//!   abstentions, then the reviewer's decision form and its history.
//! * `/review/batches`, `/review/batches/{id}`: bulk batches, live progress
//!   (server-sent events), applicants ranked by risk, CSV download.
//! * `/review/reviews.csv|.jsonl`: every decision with the case's scores.
//! * `/review/login`: when API keys are set, the key goes into an HttpOnly,
//!   SameSite=Strict cookie that the API accepts like the header.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use axum::extract::{Form, FromRequest, Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use candor_bulk::ReviewRecord;
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Caller;
use crate::durable::DurableJobs;
use crate::error::ServerError;
use crate::jobs::JobView;
use crate::AppState;

/// Name of the sign-in cookie.
pub const KEY_COOKIE: &str = "candor_key";

/// The decisions a reviewer may record, with their wording.
pub const DECISIONS: [(&str, &str); 3] = [
    ("confirmed_manipulation", "Confirmed manipulation"),
    ("cleared", "Cleared"),
    ("needs_live_check", "Needs a live check"),
];

const TEMPLATES: [(&str, &str); 6] = [
    ("base.html", include_str!("../static/review/base.html")),
    ("login.html", include_str!("../static/review/login.html")),
    ("cases.html", include_str!("../static/review/cases.html")),
    ("case.html", include_str!("../static/review/case.html")),
    (
        "batches.html",
        include_str!("../static/review/batches.html"),
    ),
    ("batch.html", include_str!("../static/review/batch.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut e = Environment::new();
        for (name, src) in TEMPLATES {
            // The templates are part of the binary and tested; a broken
            // one is a build defect, reported when the page renders.
            if let Err(err) = e.add_template(name, src) {
                tracing::error!(template = name, error = %err, "review template");
            }
        }
        e
    })
}

fn render(name: &str, ctx: impl Serialize) -> Result<Response, ServerError> {
    let t = env()
        .get_template(name)
        .map_err(|e| ServerError::Internal(format!("template {name}: {e}")))?;
    let html = t
        .render(ctx)
        .map_err(|e| ServerError::Internal(format!("template {name}: {e:#}")))?;
    let mut r = Html(html).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn caller_key(caller: &Option<Extension<Caller>>) -> Option<[u8; 32]> {
    caller.as_ref().and_then(|Extension(c)| c.key)
}

fn durable(state: &AppState) -> Result<&DurableJobs, ServerError> {
    state.inner.durable.as_ref().ok_or_else(|| {
        ServerError::NotFound(
            "the review pages need the durable job store (CANDOR_DURABLE_JOBS=true)".into(),
        )
    })
}

fn time_text(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.replacen('T', " ", 1).trim_end_matches('Z').to_owned() + " UTC"
}

fn rfc_text(s: &str) -> String {
    humantime::parse_rfc3339_weak(s)
        .map(time_text)
        .unwrap_or_else(|_| s.to_owned())
}

fn label_text(l: &str) -> &'static str {
    match l {
        "likely_authentic" => "Likely authentic",
        "inconclusive" => "Inconclusive",
        "likely_manipulated" => "Likely AI-made or altered",
        _ => "Unknown",
    }
}

fn decision_text(d: &str) -> &'static str {
    DECISIONS
        .iter()
        .find(|(v, _)| *v == d)
        .map_or("Unknown", |(_, t)| t)
}

/// Shading class of a score (l0 lightest .. l4 darkest).
fn level(score: f64) -> &'static str {
    match score {
        s if s >= 0.9 => "l4",
        s if s >= 0.75 => "l3",
        s if s >= 0.5 => "l2",
        s if s >= 0.25 => "l1",
        _ => "l0",
    }
}

fn pct(v: Option<f64>) -> Option<String> {
    v.filter(|x| x.is_finite())
        .map(|x| format!("{:.1} %", x * 100.0))
}

// ---------------------------------------------------------------- sign-in

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == KEY_COOKIE {
                    return Some(percent_decode(val));
                }
            }
        }
    }
    None
}

/// The API key carried by the sign-in cookie.
pub(crate) fn cookie_key(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers).filter(|k| !k.is_empty())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Serialize)]
struct LoginPage {
    section: &'static str,
    failed: bool,
}

pub(crate) async fn login_page() -> Result<Response, ServerError> {
    render(
        "login.html",
        LoginPage {
            section: "",
            failed: false,
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    key: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Result<Response, ServerError> {
    let ip = crate::auth::client_ip(&req);
    let Form(f) = Form::<LoginForm>::from_request(req, &state)
        .await
        .map_err(|e| ServerError::bad_request("form", e.body_text()))?;
    let auth = &state.inner.auth;
    if auth.enabled() && !auth.sign_in(ip, f.key.trim())? {
        // 200 with the form again: a page for a person, not a problem
        // document (error statuses are answered as problem+json).
        return render(
            "login.html",
            LoginPage {
                section: "",
                failed: true,
            },
        );
    }
    let mut r = Redirect::to("/review").into_response();
    let cookie = format!(
        "{KEY_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        percent_encode(f.key.trim())
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

pub(crate) async fn logout() -> Response {
    let mut r = Redirect::to("/review/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("candor_key=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

// ------------------------------------------------------------------ cases

#[derive(Serialize)]
struct CaseRow {
    job_id: String,
    applicant: Option<String>,
    created_at: String,
    status: &'static str,
    label: Option<String>,
    label_text: &'static str,
    decision: Option<&'static str>,
}

#[derive(Serialize)]
struct CasesPage {
    section: &'static str,
    retention_days: u64,
    cases: Vec<CaseRow>,
}

fn status_text(v: &JobView) -> &'static str {
    match v.status {
        crate::jobs::JobStatus::Queued => "queued",
        crate::jobs::JobStatus::Running => "running",
        crate::jobs::JobStatus::Done => "done",
        crate::jobs::JobStatus::Failed => "failed",
    }
}

fn case_label(v: &JobView) -> Option<String> {
    let r = v.response.as_ref()?;
    let c = serde_json::to_value(r.case.as_ref()?).ok()?;
    c.get("label")?.as_str().map(str::to_owned)
}

pub(crate) async fn cases_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ServerError> {
    let d = durable(&state)?;
    let owner = caller_key(&caller);
    let cases = d.cases(owner, 200).await?;
    let mut rows = Vec::with_capacity(cases.len());
    let decided = d.reviews(owner, 100_000).await?;
    for (v, applicant) in cases {
        let label = case_label(&v);
        let decision = decided
            .iter()
            .rev()
            .find(|(r, _)| r.job_id == v.job_id)
            .map(|(r, _)| decision_text(&r.decision));
        rows.push(CaseRow {
            created_at: rfc_text(&v.created_at),
            status: status_text(&v),
            label_text: label.as_deref().map_or("", label_text),
            label,
            decision,
            applicant,
            job_id: v.job_id,
        });
    }
    render(
        "cases.html",
        CasesPage {
            section: "cases",
            retention_days: state.inner.config.case_retention.as_secs() / 86_400,
            cases: rows,
        },
    )
}

#[derive(Serialize, Default)]
struct Picture {
    title: String,
    src: String,
}

#[derive(Serialize)]
struct BoxView {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    label: String,
    score_pct: Option<String>,
    level: &'static str,
}

#[derive(Serialize)]
struct ImageView {
    width: u64,
    height: u64,
    pictures: Vec<Picture>,
    boxes: Vec<BoxView>,
}

#[derive(Serialize)]
struct Segment {
    start: f64,
    start_text: String,
    end_text: String,
    score_pct: String,
    level: &'static str,
}

#[derive(Serialize)]
struct AudioView {
    segments: Vec<Segment>,
    pictures: Vec<Picture>,
}

#[derive(Serialize, Clone)]
struct Span {
    text: String,
    score: f64,
    score_pct: String,
    level: &'static str,
}

#[derive(Serialize)]
struct TextView {
    spans: Vec<Span>,
    top: Vec<Span>,
}

#[derive(Serialize)]
struct Fact {
    name: String,
    value: String,
}

#[derive(Serialize)]
struct SignalRow {
    name: String,
    value: String,
    detail: String,
}

#[derive(Serialize, Default)]
struct ItemView {
    index: usize,
    name: String,
    modality: String,
    modality_text: &'static str,
    label: Option<String>,
    label_text: &'static str,
    score_pct: Option<String>,
    abstention: Option<String>,
    problem: Option<String>,
    media_url: String,
    image: Option<ImageView>,
    audio: Option<AudioView>,
    text: Option<TextView>,
    facts: Vec<Fact>,
    signals: Vec<SignalRow>,
    models: Vec<String>,
    thresholds: String,
    sha256: String,
}

#[derive(Serialize)]
struct Verdict {
    label: String,
    label_text: &'static str,
    needs_review: bool,
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct ReviewView {
    decision_text: &'static str,
    reviewer: String,
    note: String,
    at: String,
}

#[derive(Serialize)]
struct Choice {
    value: &'static str,
    text: &'static str,
}

#[derive(Serialize)]
struct CasePage {
    section: &'static str,
    job_id: String,
    applicant: Option<String>,
    status: &'static str,
    created_at: String,
    finished_at: Option<String>,
    keep_until: Option<String>,
    error: Option<String>,
    verdict: Option<Verdict>,
    items: Vec<ItemView>,
    matches: Vec<MatchView>,
    reviews: Vec<ReviewView>,
    decisions: Vec<Choice>,
}

#[derive(Serialize)]
struct MatchView {
    other: String,
    modality: String,
    similarity: String,
    threshold: String,
    input: Option<String>,
    evidence: Vec<String>,
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn num_text(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

fn picture(e: &Value) -> Option<Picture> {
    let data = s(e, "data_base64")?;
    let media = s(e, "media_type").unwrap_or_else(|| "image/png".into());
    if !media.starts_with("image/") || media.contains(';') || media.contains('"') {
        return None;
    }
    let name = s(e, "name").unwrap_or_else(|| "picture".into());
    let title = match name.as_str() {
        "face_map" => "Heatmap of the face".to_owned(),
        "heatmap" => "Heatmap".to_owned(),
        "spectrogram" => "Spectrogram".to_owned(),
        other => {
            let t = other.replace('_', " ");
            let mut c = t.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    };
    Some(Picture {
        title,
        src: format!("data:{media};base64,{data}"),
    })
}

fn item_view(job_id: &str, index: usize, r: &Value, stored_name: Option<&str>) -> ItemView {
    let mut it = ItemView {
        index,
        media_url: format!("/review/cases/{job_id}/inputs/{index}"),
        ..ItemView::default()
    };
    let input = r.get("input").cloned().unwrap_or(Value::Null);
    it.name = s(&input, "name")
        .or_else(|| stored_name.map(str::to_owned))
        .or_else(|| s(r, "name"))
        .unwrap_or_else(|| format!("input {}", index + 1));
    it.sha256 = s(&input, "sha256").unwrap_or_default();
    if r.get("modality").is_none() {
        // An InputProblem entry.
        it.modality_text = "Input";
        it.problem = Some(
            s(r, "detail")
                .or_else(|| s(r, "title"))
                .or_else(|| r.get("problem").and_then(|p| s(p, "detail")))
                .unwrap_or_else(|| "unknown error".into()),
        );
        return it;
    }
    it.modality = s(r, "modality").unwrap_or_default();
    it.modality_text = match it.modality.as_str() {
        "image" => "Picture",
        "audio" => "Recording",
        "text" => "Text",
        _ => "Input",
    };
    it.label = s(r, "label");
    it.label_text = it.label.as_deref().map_or("", label_text);
    it.score_pct = pct(f(r, "score"));
    it.abstention = r.get("abstention").and_then(|a| match a {
        Value::Null => None,
        Value::String(x) => Some(x.clone()),
        o => s(o, "detail")
            .or_else(|| s(o, "reason"))
            .or_else(|| Some(o.to_string())),
    });
    let evidence = r
        .get("evidence")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut pictures = Vec::new();
    let mut boxes = Vec::new();
    let mut segments = Vec::new();
    let mut spans = Vec::new();
    for e in &evidence {
        match e.get("kind").and_then(Value::as_str).unwrap_or("") {
            "picture" => pictures.extend(picture(e)),
            "image_region" => {
                let score = f(e, "score");
                boxes.push(BoxView {
                    x: e.get("x").and_then(Value::as_i64).unwrap_or(0),
                    y: e.get("y").and_then(Value::as_i64).unwrap_or(0),
                    w: e.get("width").and_then(Value::as_i64).unwrap_or(0),
                    h: e.get("height").and_then(Value::as_i64).unwrap_or(0),
                    label: s(e, "label").unwrap_or_else(|| "region".into()),
                    score_pct: pct(score),
                    level: level(score.unwrap_or(0.0)),
                });
            }
            "audio_segment" => {
                let (a, b) = (f(e, "start_s").unwrap_or(0.0), f(e, "end_s").unwrap_or(0.0));
                let score = f(e, "score").unwrap_or(0.0);
                segments.push(Segment {
                    start: a,
                    start_text: format!("{a:.1}"),
                    end_text: format!("{b:.1}"),
                    score_pct: pct(Some(score)).unwrap_or_default(),
                    level: level(score),
                });
            }
            "text_span" => {
                let score = f(e, "score").unwrap_or(0.0);
                spans.push(Span {
                    text: s(e, "text").unwrap_or_default(),
                    score,
                    score_pct: pct(Some(score)).unwrap_or_default(),
                    level: level(score),
                });
            }
            "fact" => it.facts.push(Fact {
                name: s(e, "name").unwrap_or_default(),
                value: s(e, "value").unwrap_or_default(),
            }),
            _ => {}
        }
    }
    match it.modality.as_str() {
        "image" => {
            let props = input.get("properties").cloned().unwrap_or(Value::Null);
            let dim = |k: &str| props.get(k).and_then(Value::as_u64).unwrap_or(0);
            it.image = Some(ImageView {
                width: dim("width").max(1),
                height: dim("height").max(1),
                pictures,
                boxes,
            });
        }
        "audio" => {
            it.audio = Some(AudioView { segments, pictures });
        }
        "text" => {
            let mut top: Vec<Span> = spans
                .iter()
                .filter(|s| !s.text.is_empty())
                .cloned()
                .collect();
            top.sort_by(|a, b| b.score.total_cmp(&a.score));
            top.truncate(3);
            it.text = Some(TextView { spans, top });
        }
        _ => {}
    }
    for sig in r
        .get("signals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        it.signals.push(SignalRow {
            name: s(sig, "name").unwrap_or_default(),
            value: f(sig, "value").map(num_text).unwrap_or_default(),
            detail: s(sig, "detail").unwrap_or_default(),
        });
    }
    for m in r
        .get("models")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        it.models.push(format!(
            "{} {}",
            s(m, "id").unwrap_or_default(),
            s(m, "version").unwrap_or_default()
        ));
    }
    if let Some(t) = r.get("thresholds") {
        let g = |k: &str| f(t, k).map(|x| format!("{x:.3}")).unwrap_or("–".into());
        it.thresholds = format!(
            "Operating point: likely authentic below {}, likely AI-made or altered from {} (target false-positive rate {}).",
            g("authentic_below"),
            g("manipulated_at_or_above"),
            pct(f(t, "target_fpr")).unwrap_or("–".into())
        );
    }
    it
}

pub(crate) async fn case_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Response, ServerError> {
    let d = durable(&state)?;
    let Some(case) = d.case(&id, caller_key(&caller)).await? else {
        return Err(ServerError::NotFound(format!("no case `{id}`")));
    };
    // The memory copy is fresher while the job runs.
    let view = state
        .inner
        .jobs
        .get(&id, caller_key(&caller))
        .unwrap_or(case.view);
    let response = view
        .response
        .as_ref()
        .and_then(|r| serde_json::to_value(r).ok());
    let mut verdict = None;
    let mut items = Vec::new();
    if let Some(resp) = &response {
        if let Some(c) = resp.get("case").filter(|c| !c.is_null()) {
            let label = s(c, "label");
            verdict = Some(Verdict {
                label_text: label.as_deref().map_or("No score", label_text),
                label: label.unwrap_or_else(|| "abstained".into()),
                needs_review: c.get("needs_review").and_then(Value::as_bool) == Some(true),
                reasons: c
                    .get("reasons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
            });
        }
        for (i, r) in resp
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let stored = case.inputs.get(i).and_then(|(s, _)| s.name.as_deref());
            items.push(item_view(&id, i, r, stored));
        }
    }
    let matches = response
        .as_ref()
        .and_then(|r| r.get("matches"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| MatchView {
            other: s(m, "other_applicant_id").unwrap_or_default(),
            modality: s(m, "modality").unwrap_or_default(),
            similarity: f(m, "similarity").map_or(String::new(), |x| format!("{x:.2}")),
            threshold: f(m, "threshold").map_or(String::new(), |x| format!("{x:.2}")),
            input: m
                .get("input_index")
                .and_then(Value::as_u64)
                .and_then(|i| items.get(i as usize))
                .map(|it| it.name.clone()),
            evidence: m
                .get("evidence")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
        })
        .collect();
    // A single-input case that failed is one problem, not a result list.
    let error = view.error.as_ref().map(|p| p.detail.clone());
    render(
        "case.html",
        CasePage {
            section: "cases",
            job_id: id,
            applicant: case.applicant_id,
            status: status_text(&view),
            created_at: rfc_text(&view.created_at),
            finished_at: view.finished_at.as_deref().map(rfc_text),
            keep_until: case.keep_until.map(time_text),
            error,
            verdict,
            items,
            matches,
            reviews: case
                .reviews
                .iter()
                .map(|r| ReviewView {
                    decision_text: decision_text(&r.decision),
                    reviewer: r.reviewer.clone(),
                    note: r.note.clone(),
                    at: time_text(
                        SystemTime::UNIX_EPOCH
                            + Duration::from_millis(r.created_at_ms.max(0) as u64),
                    ),
                })
                .collect(),
            decisions: DECISIONS
                .iter()
                .map(|(v, t)| Choice { value: v, text: t })
                .collect(),
        },
    )
}

/// Media types the case page plays or shows inline; anything else is sent
/// as a download.
fn inline_type(ct: Option<&str>) -> Option<&'static str> {
    let ct = ct?.split(';').next()?.trim().to_ascii_lowercase();
    [
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
        "audio/webm",
        "audio/ogg",
        "audio/mpeg",
        "audio/flac",
        "audio/x-flac",
        "audio/mp4",
        "video/webm",
        "video/mp4",
        "text/plain",
    ]
    .into_iter()
    .find(|t| *t == ct)
}

/// Media type from the file's first bytes, for inputs sent without one.
fn sniff(b: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| b.starts_with(p);
    Some(if starts(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else if starts(b"RIFF") && b.get(8..12) == Some(b"WAVE") {
        "audio/wav"
    } else if starts(b"\x1a\x45\xdf\xa3") {
        "audio/webm"
    } else if starts(b"OggS") {
        "audio/ogg"
    } else if starts(b"fLaC") {
        "audio/flac"
    } else if starts(b"ID3") || (b.len() > 1 && b[0] == 0xff && b[1] & 0xe0 == 0xe0) {
        "audio/mpeg"
    } else if b.get(4..8) == Some(b"ftyp") {
        "audio/mp4"
    } else {
        return None;
    })
}

/// The byte range asked for by a `Range: bytes=a-b` header (one range; a
/// player seeking in a recording), within `len` bytes.
fn byte_range(headers: &HeaderMap, len: usize) -> Option<(usize, usize)> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: usize = suffix.parse().ok()?;
            (len.saturating_sub(n), len - 1)
        }
        (a, "") => (a.parse().ok()?, len - 1),
        (a, b) => (a.parse().ok()?, b.parse::<usize>().ok()?.min(len - 1)),
    };
    (start <= end && start < len).then_some((start, end))
}

pub(crate) async fn case_input(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((id, n)): Path<(String, usize)>,
    req_headers: HeaderMap,
) -> Result<Response, ServerError> {
    let d = durable(&state)?;
    let Some(case) = d.case(&id, caller_key(&caller)).await? else {
        return Err(ServerError::NotFound(format!("no case `{id}`")));
    };
    let Some((meta, Some(path))) = case.inputs.get(n) else {
        return Err(ServerError::NotFound(format!(
            "case `{id}` has no input {n}"
        )));
    };
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|_| ServerError::NotFound(format!("the input {n} of case `{id}` is gone")))?;
    let ct = if meta.kind == "text" {
        Some("text/plain")
    } else {
        inline_type(meta.content_type.as_deref()).or_else(|| sniff(&bytes))
    };
    let len = bytes.len();
    let mut r = match byte_range(&req_headers, len) {
        Some((a, b)) => {
            let mut r = bytes[a..=b].to_vec().into_response();
            *r.status_mut() = axum::http::StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        None => bytes.into_response(),
    };
    let h = r.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match ct {
            Some("text/plain") => "text/plain; charset=utf-8",
            Some(t) => t,
            None => "application/octet-stream",
        }),
    );
    if ct.is_none() {
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    Ok(r)
}

#[derive(Deserialize)]
pub(crate) struct ReviewForm {
    decision: String,
    reviewer: String,
    #[serde(default)]
    note: String,
}

pub(crate) async fn post_review(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    Form(f): Form<ReviewForm>,
) -> Result<Response, ServerError> {
    let d = durable(&state)?;
    if !DECISIONS.iter().any(|(v, _)| *v == f.decision) {
        return Err(ServerError::bad_request(
            "decision",
            "decision must be confirmed_manipulation, cleared or needs_live_check",
        ));
    }
    let reviewer = f.reviewer.trim();
    if reviewer.is_empty() || reviewer.chars().count() > 100 {
        return Err(ServerError::bad_request(
            "reviewer",
            "reviewer must be 1-100 characters",
        ));
    }
    let note = f.note.trim();
    if note.chars().count() > 2000 {
        return Err(ServerError::bad_request(
            "note",
            "the note must be at most 2000 characters",
        ));
    }
    let owner = caller_key(&caller);
    match d
        .add_review(&id, owner, &f.decision, note, reviewer)
        .await?
    {
        Some(r) => {
            tracing::info!(job_id = %id, decision = %r.decision, "review recorded");
            metrics::counter!("candor_reviews_total", "decision" => r.decision).increment(1);
            Ok(Redirect::to(&format!("/review/cases/{id}#review-h")).into_response())
        }
        None => Err(ServerError::NotFound(format!("no case `{id}`"))),
    }
}

/// One exported decision.
#[derive(Serialize)]
struct ExportRow<'a> {
    #[serde(flatten)]
    review: &'a ReviewRecord,
    case_label: Option<String>,
    case_max_score: Option<f64>,
    /// Per input: modality, name, score, label (for `candor calibrate`:
    /// `confirmed_manipulation` is a positive, `cleared` a negative).
    inputs: Vec<Value>,
}

fn export_rows(all: &[(ReviewRecord, Option<JobView>)]) -> Vec<ExportRow<'_>> {
    all.iter()
        .map(|(r, job)| {
            let resp = job
                .as_ref()
                .and_then(|j| j.response.as_ref())
                .and_then(|x| serde_json::to_value(x).ok());
            let case = resp.as_ref().and_then(|v| v.get("case")).cloned();
            ExportRow {
                review: r,
                case_label: case.as_ref().and_then(|c| s(c, "label")),
                case_max_score: case.as_ref().and_then(|c| f(c, "max_score")),
                inputs: resp
                    .as_ref()
                    .and_then(|v| v.get("results"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        serde_json::json!({
                            "modality": x.get("modality"),
                            "name": x.get("input").and_then(|i| i.get("name")),
                            "sha256": x.get("input").and_then(|i| i.get("sha256")),
                            "score": x.get("score"),
                            "label": x.get("label"),
                        })
                    })
                    .collect(),
            }
        })
        .collect()
}

fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

pub(crate) async fn reviews_csv(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ServerError> {
    let d = durable(&state)?;
    let all = d.reviews(caller_key(&caller), 1_000_000).await?;
    let mut out = String::from(
        "review_id,job_id,applicant_id,decision,reviewer,note,created_at,case_label,case_max_score,inputs\n",
    );
    for row in export_rows(&all) {
        let r = row.review;
        let inputs = row
            .inputs
            .iter()
            .map(|i| {
                format!(
                    "{}:{}",
                    i["modality"].as_str().unwrap_or("?"),
                    i["score"]
                        .as_f64()
                        .map_or("abstained".to_owned(), |x| format!("{x:.4}"))
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let fields = [
            r.review_id.clone(),
            r.job_id.clone(),
            r.applicant_id.clone().unwrap_or_default(),
            r.decision.clone(),
            r.reviewer.clone(),
            r.note.clone(),
            time_text(
                SystemTime::UNIX_EPOCH + Duration::from_millis(r.created_at_ms.max(0) as u64),
            ),
            row.case_label.clone().unwrap_or_default(),
            row.case_max_score
                .map(|x| format!("{x:.4}"))
                .unwrap_or_default(),
            inputs,
        ];
        out.push_str(
            &fields
                .iter()
                .map(|x| csv_field(x))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"candor-reviews.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

pub(crate) async fn reviews_jsonl(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ServerError> {
    let d = durable(&state)?;
    let all = d.reviews(caller_key(&caller), 1_000_000).await?;
    let mut out = String::new();
    for row in export_rows(&all) {
        out.push_str(&serde_json::to_string(&row).unwrap_or_default());
        out.push('\n');
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")],
        out,
    )
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct ScoresQuery {
    modality: Option<String>,
}

/// Reviewed inputs as labelled scores for `candor calibrate --scores FILE
/// --format jsonl`: `confirmed_manipulation` cases are positives, `cleared`
/// ones negatives (the latest decision of each case counts; `needs_live_check`
/// is neither). One line per input of `modality` (all when unset).
pub(crate) async fn reviews_scores(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    axum::extract::Query(q): axum::extract::Query<ScoresQuery>,
) -> Result<Response, ServerError> {
    let d = durable(&state)?;
    let all = d.reviews(caller_key(&caller), 1_000_000).await?;
    // The latest decision per case.
    let mut latest: std::collections::BTreeMap<&str, usize> = Default::default();
    for (i, (r, _)) in all.iter().enumerate() {
        latest.insert(r.job_id.as_str(), i);
    }
    let mut out = String::new();
    for (_, i) in latest {
        let (r, _) = &all[i];
        let manipulated = match r.decision.as_str() {
            "confirmed_manipulation" => true,
            "cleared" => false,
            _ => continue,
        };
        let row = &export_rows(&all[i..=i])[0];
        for (k, input) in row.inputs.iter().enumerate() {
            let m = input["modality"].as_str().unwrap_or("");
            if q.modality.as_deref().is_some_and(|want| want != m) {
                continue;
            }
            let line = serde_json::json!({
                "id": format!("{}/{k}", r.job_id),
                "manipulated": manipulated,
                "score": input["score"],
                "group": m,
                "split": "calib",
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")],
        out,
    )
        .into_response())
}

// ---------------------------------------------------------------- batches

#[derive(Serialize)]
struct BatchRowView {
    batch_id: String,
    created_at: String,
    status: String,
    done: i64,
    pending: i64,
    error: i64,
}

#[derive(Serialize)]
struct BatchesPage {
    section: &'static str,
    enabled: bool,
    batches: Vec<BatchRowView>,
}

fn owner_hex(caller: &Option<Extension<Caller>>) -> Option<String> {
    caller_key(caller).map(hex::encode)
}

pub(crate) async fn batches_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ServerError> {
    let Some(svc) = state.inner.bulk.as_ref() else {
        return render(
            "batches.html",
            BatchesPage {
                section: "batches",
                enabled: false,
                batches: vec![],
            },
        );
    };
    let owner = owner_hex(&caller);
    let mut rows = Vec::new();
    for b in svc.store.batches(owner.as_deref(), 100).await? {
        let st = svc.store.status(&b.batch_id, owner.as_deref()).await?;
        rows.push(BatchRowView {
            created_at: time_text(
                SystemTime::UNIX_EPOCH + Duration::from_millis(b.created_at_ms.max(0) as u64),
            ),
            status: b.status.clone(),
            done: st.done,
            pending: st.pending,
            error: st.error,
            batch_id: b.batch_id,
        });
    }
    render(
        "batches.html",
        BatchesPage {
            section: "batches",
            enabled: true,
            batches: rows,
        },
    )
}

#[derive(Serialize)]
struct CaseLine {
    rank: usize,
    applicant: String,
    risk: f64,
    score_pct: String,
    label: Option<String>,
    label_text: &'static str,
    inputs: usize,
    reasons: String,
}

#[derive(Serialize)]
struct BatchPage {
    section: &'static str,
    batch_id: String,
    finished: bool,
    total: i64,
    finished_items: i64,
    done: i64,
    error: i64,
    cancelled: i64,
    eta: Option<String>,
    applicants: u64,
    needs_review: u64,
    cases: Vec<CaseLine>,
    /// Applicants linked by the identity registry (empty without it).
    clusters: Vec<ClusterLine>,
}

#[derive(Serialize)]
struct ClusterLine {
    applicants: String,
    links: Vec<String>,
}

fn bulk(state: &AppState) -> Result<&crate::batches::BulkService, ServerError> {
    state.inner.bulk.as_ref().ok_or_else(|| {
        ServerError::NotFound("bulk batches are not enabled on this server (--queue)".into())
    })
}

pub(crate) async fn batch_page(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Response, ServerError> {
    let svc = bulk(&state)?;
    let owner = owner_hex(&caller);
    let st = svc.store.status(&id, owner.as_deref()).await?;
    let rep = candor_bulk::report::report(&svc.store, &id, owner.as_deref(), 1000).await?;
    let cases = rep
        .cases
        .iter()
        .map(|c| {
            let label = c
                .case
                .label
                .and_then(|l| serde_json::to_value(l).ok())
                .and_then(|v| v.as_str().map(str::to_owned));
            CaseLine {
                rank: c.rank,
                applicant: c.applicant_id.clone(),
                risk: c.case.max_score.unwrap_or(-1.0),
                score_pct: pct(c.case.max_score).unwrap_or_else(|| "–".into()),
                label_text: label.as_deref().map_or("", label_text),
                label,
                inputs: c.case.inputs,
                reasons: c.case.reasons.join("; "),
            }
        })
        .collect();
    render(
        "batch.html",
        BatchPage {
            section: "batches",
            batch_id: id,
            // Items are added in the background after the 202: a batch is
            // over when its submit has ended too (completed_at).
            finished: st.finished && st.batch.completed_at_ms.is_some(),
            total: st.total,
            finished_items: st.done + st.error + st.cancelled,
            done: st.done,
            error: st.error,
            cancelled: st.cancelled,
            eta: st.eta_s.map(|s| format!("{s:.0} s")),
            applicants: rep.applicants,
            needs_review: rep.needs_review,
            clusters: rep
                .clusters
                .unwrap_or_default()
                .into_iter()
                .map(|c| ClusterLine {
                    applicants: c.applicants.join(", "),
                    links: c
                        .links
                        .iter()
                        .map(|l| {
                            format!(
                                "{} – {}: {} (similarity {:.2})",
                                l.applicant_id, l.other_applicant_id, l.modality, l.similarity
                            )
                        })
                        .collect(),
                })
                .collect(),
            cases,
        },
    )
}

/// Server-sent events: the batch's status every second until it is
/// finished (an `event: progress` each, the last with `finished: true`).
pub(crate) async fn batch_events(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ServerError> {
    let store = bulk(&state)?.store.clone();
    let owner = owner_hex(&caller);
    // Unknown or foreign batches are refused before the stream starts.
    store.status(&id, owner.as_deref()).await?;
    let stream = futures_util::stream::unfold(Some(()), move |go| {
        let store = store.clone();
        let id = id.clone();
        let owner = owner.clone();
        async move {
            go?;
            let st = store.status(&id, owner.as_deref()).await.ok()?;
            let over = st.finished && st.batch.completed_at_ms.is_some();
            let next = (!over).then_some(());
            if next.is_some() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let ev = Event::default()
                .event("progress")
                .json_data(&st)
                .unwrap_or_else(|_| Event::default().comment("status"));
            Some((Ok(ev), next))
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_cookies_round_trip() {
        for (name, _) in TEMPLATES {
            env().get_template(name).unwrap();
        }
        let k = "k3y with spaces;=%";
        assert_eq!(percent_decode(&percent_encode(k)), k);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {KEY_COOKIE}={}", percent_encode(k))).unwrap(),
        );
        assert_eq!(cookie_key(&h).as_deref(), Some(k));
        assert_eq!(csv_field("=1+2"), "'=1+2");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(level(0.95), "l4");
        let mut r = HeaderMap::new();
        r.insert(header::RANGE, HeaderValue::from_static("bytes=10-"));
        assert_eq!(byte_range(&r, 100), Some((10, 99)));
        r.insert(header::RANGE, HeaderValue::from_static("bytes=-5"));
        assert_eq!(byte_range(&r, 100), Some((95, 99)));
        r.insert(header::RANGE, HeaderValue::from_static("bytes=0-1000"));
        assert_eq!(byte_range(&r, 100), Some((0, 99)));
        r.insert(header::RANGE, HeaderValue::from_static("bytes=100-"));
        assert_eq!(byte_range(&r, 100), None);
        assert_eq!(level(0.1), "l0");
    }
}
