//! The registry of applicants' templates: rows in the bulk store's
//! database (SQLite by default, PostgreSQL when the bulk store is), an
//! exact in-process index over them ([`crate::vector`], [`crate::minhash`]).
//!
//! Scopes: every template, match and audit line carries a scope (the
//! digest of the API key that submitted it, empty without keys), and
//! material is compared only within its scope: one client never learns
//! about another's applicants.
//!
//! Privacy by design: the registry exists only when it is switched on; a
//! template expires after the configured retention; [`Registry::erase`]
//! deletes an applicant's templates and matches; templates are never
//! logged (their types print as redacted) and never returned by the API,
//! only the matches they produce; every match and every erasure is written
//! to the audit table `candor_identity_audit`.

use std::collections::HashMap;
use std::time::Duration;

use candor_bulk::store::now_ms;
use candor_bulk::Store;
use candor_core::IdentityTemplates;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::RwLock;

use crate::minhash::{self, LshIndex, Signature};
use crate::vector::VectorIndex;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS candor_identity_templates (
    template_id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    applicant_id TEXT NOT NULL,
    modality TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    input_name TEXT,
    evidence TEXT NOT NULL,
    model TEXT NOT NULL,
    vector TEXT,
    text TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS candor_identity_templates_applicant ON candor_identity_templates(scope, applicant_id);
CREATE TABLE IF NOT EXISTS candor_identity_matches (
    match_id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    applicant_id TEXT NOT NULL,
    other_applicant_id TEXT NOT NULL,
    modality TEXT NOT NULL,
    similarity DOUBLE PRECISION NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS candor_identity_matches_a ON candor_identity_matches(scope, applicant_id);
CREATE INDEX IF NOT EXISTS candor_identity_matches_b ON candor_identity_matches(scope, other_applicant_id);
CREATE TABLE IF NOT EXISTS candor_identity_audit (
    audit_id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    scope TEXT NOT NULL,
    action TEXT NOT NULL,
    applicant_id TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("identity registry database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("identity registry: {0}")]
    Invalid(String),
}

/// How the registry decides and forgets.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Templates older than this are deleted.
    pub retention: Duration,
    /// Face cosine at or above which two faces are reported as one person.
    pub face_threshold: f32,
    /// Where `face_threshold` comes from (shown with every face match).
    pub face_operating_point: String,
    /// Voice cosine (GE2E speaker embeddings) at or above which two
    /// recordings are reported as one speaker.
    pub voice_threshold: f32,
    /// Where `voice_threshold` comes from (shown with every voice match).
    pub voice_operating_point: String,
    /// Estimated Jaccard (word 3-shingles inside sentences) at or above which two texts are
    /// reported as reuse.
    pub text_threshold: f32,
    pub text_operating_point: String,
    /// Most matches reported per input.
    pub max_matches: usize,
    /// Threads of a face scan.
    pub scan_threads: usize,
}

/// A match of one input against another applicant's material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Match {
    /// Index of the input in the request (the result it belongs to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_index: Option<usize>,
    /// The applicant this material was submitted for.
    pub applicant_id: String,
    /// The other applicant whose material matches.
    pub other_applicant_id: String,
    /// `face`, `voice` or `text`.
    pub modality: String,
    /// Cosine of the face or speaker embeddings, or the estimated Jaccard
    /// similarity of the texts' word 3-shingles inside sentences.
    pub similarity: f64,
    /// The threshold the similarity passed.
    pub threshold: f64,
    /// How the threshold was chosen.
    pub operating_point: String,
    /// What matched: which photo or recording (its sha256 prefix and name,
    /// the face's box or the speech's span) or which passages (quoted from this input, with where they sit in the other).
    pub evidence: Vec<String>,
    /// Unix ms.
    pub created_at_ms: i64,
}

/// A template as loaded.
#[derive(Clone)]
struct Meta {
    template_id: String,
    scope: String,
    applicant_id: String,
    modality: String,
    input_sha256: String,
    input_name: Option<String>,
    evidence: String,
    text: Option<String>,
}

/// The indexes of one scope.
#[derive(Default)]
struct Scope {
    faces: VectorIndex,
    voices: VectorIndex,
    texts: LshIndex,
}

#[derive(Default)]
struct Inner {
    scopes: HashMap<String, Scope>,
    metas: HashMap<u64, Meta>,
    next: u64,
}

impl Inner {
    fn add(&mut self, meta: Meta, vector: Option<&[f32]>, sig: Option<Signature>) {
        let id = self.next;
        self.next += 1;
        let sc = self
            .scopes
            .entry(meta.scope.clone())
            .or_insert_with(|| Scope {
                faces: VectorIndex::new(FACE_DIM),
                voices: VectorIndex::new(VOICE_DIM),
                texts: LshIndex::default(),
            });
        match (meta.modality.as_str(), vector) {
            ("face", Some(v)) if v.len() == FACE_DIM => {
                sc.faces.insert(id, v);
            }
            ("voice", Some(v)) if v.len() == VOICE_DIM => {
                sc.voices.insert(id, v);
            }
            _ => {}
        }
        if let Some(s) = sig {
            sc.texts.insert(id, s);
        }
        self.metas.insert(id, meta);
    }

    fn remove(&mut self, gone: impl Fn(&Meta) -> bool) -> usize {
        let ids: std::collections::HashSet<u64> = self
            .metas
            .iter()
            .filter(|(_, m)| gone(m))
            .map(|(id, _)| *id)
            .collect();
        for sc in self.scopes.values_mut() {
            sc.faces.remove_where(|id| ids.contains(&id));
            sc.voices.remove_where(|id| ids.contains(&id));
            sc.texts.remove_where(|id| ids.contains(&id));
        }
        self.metas.retain(|id, _| !ids.contains(id));
        ids.len()
    }

    fn faces(&self) -> usize {
        self.scopes.values().map(|s| s.faces.len()).sum()
    }

    fn voices(&self) -> usize {
        self.scopes.values().map(|s| s.voices.len()).sum()
    }

    fn texts(&self) -> usize {
        self.scopes.values().map(|s| s.texts.len()).sum()
    }
}

/// One embedding looked up in its modality's index: (index, embedding,
/// modality, threshold, operating point, evidence about this input).
type Probe<'a> = (
    &'a VectorIndex,
    &'a [f32],
    &'static str,
    f32,
    &'a String,
    String,
);

/// The registry.
pub struct Registry {
    store: Store,
    cfg: RegistryConfig,
    inner: RwLock<Inner>,
    /// Held through a whole lookup-then-enrol, so that two inputs enrolled
    /// at once (bulk workers, parallel requests) each see the other.
    enrolling: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store.url())
            .finish_non_exhaustive()
    }
}

fn encode_vec(v: &[f32]) -> String {
    hex::encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn decode_vec(s: &str) -> Option<Vec<f32>> {
    let b = hex::decode(s).ok()?;
    (b.len() % 4 == 0).then(|| {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

type Loaded = (Meta, Option<String>);

fn meta_from_row<R: Row>(r: &R) -> std::result::Result<Loaded, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok((
        Meta {
            template_id: r.try_get("template_id")?,
            scope: r.try_get("scope")?,
            applicant_id: r.try_get("applicant_id")?,
            modality: r.try_get("modality")?,
            input_sha256: r.try_get("input_sha256")?,
            input_name: r.try_get("input_name")?,
            evidence: r.try_get("evidence")?,
            text: r.try_get("text")?,
        },
        r.try_get("vector")?,
    ))
}

fn match_from_row<R: Row>(r: &R) -> std::result::Result<Match, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> f64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let detail: String = r.try_get("detail")?;
    let d: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
    Ok(Match {
        input_index: None,
        applicant_id: r.try_get("applicant_id")?,
        other_applicant_id: r.try_get("other_applicant_id")?,
        modality: r.try_get("modality")?,
        similarity: r.try_get("similarity")?,
        threshold: r.try_get("threshold")?,
        operating_point: d["operating_point"].as_str().unwrap_or("").to_owned(),
        evidence: d["evidence"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        created_at_ms: r.try_get("created_at")?,
    })
}

/// An f32 similarity or threshold as the f64 it reads as (0.85, not
/// 0.8500000238418579), to 4 decimals.
fn round4(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn quote(text: &str, range: (usize, usize), max_chars: usize) -> String {
    let s = text.get(range.0..range.1).unwrap_or("");
    let mut q: String = s.chars().take(max_chars).collect();
    if s.chars().count() > max_chars {
        q.push('…');
    }
    q.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Registry {
    /// Opens the registry in `store`'s database (creating its tables) and
    /// loads the templates that have not expired.
    pub async fn open(store: Store, cfg: RegistryConfig) -> Result<Self, RegistryError> {
        sqlx_schema(&store).await?;
        let reg = Registry {
            store,
            cfg,
            inner: RwLock::new(Inner::default()),
            enrolling: tokio::sync::Mutex::new(()),
        };
        reg.sweep().await?;
        let rows = candor_bulk::fetch!(
            reg.store.db(),
            meta_from_row,
            "SELECT * FROM candor_identity_templates ORDER BY created_at, template_id"
        )?;
        let mut inner = reg.inner.write().await;
        for (meta, vector) in rows {
            let vector = vector.as_deref().and_then(decode_vec);
            let sig = meta
                .text
                .as_deref()
                .and_then(|t| Signature::of(&minhash::shingles(&minhash::words(t))));
            inner.add(meta, vector.as_deref(), sig);
        }
        tracing::info!(
            templates = inner.metas.len(),
            faces = inner.faces(),
            voices = inner.voices(),
            texts = inner.texts(),
            "identity registry loaded"
        );
        drop(inner);
        Ok(reg)
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    /// Templates held in memory.
    pub async fn len(&self) -> usize {
        self.inner.read().await.metas.len()
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// Looks `t` up against every other applicant of `scope`, records the
    /// matches (and the audit line), then enrols `t` for `applicant` (once
    /// per input file and modality). Returns the matches, best first.
    pub async fn enroll_and_match(
        &self,
        scope: &str,
        applicant: &str,
        input_sha256: &str,
        input_name: Option<&str>,
        t: &IdentityTemplates,
    ) -> Result<Vec<Match>, RegistryError> {
        if applicant.is_empty() {
            return Err(RegistryError::Invalid("empty applicant id".into()));
        }
        let _one_at_a_time = self.enrolling.lock().await;
        let now = now_ms();
        let sig = t
            .text
            .as_deref()
            .and_then(|x| Signature::of(&minhash::shingles(&minhash::words(x))));
        let mut found = Vec::new();
        {
            let inner = self.inner.read().await;
            let empty = Scope::default();
            let sc = inner.scopes.get(scope).unwrap_or(&empty);
            let mut probes: Vec<Probe> = Vec::new();
            if let Some(f) = &t.face {
                probes.push((
                    &sc.faces,
                    &f.embedding,
                    "face",
                    self.cfg.face_threshold,
                    &self.cfg.face_operating_point,
                    format!(
                        "this picture: face at ({}, {}) {}x{}",
                        f.region[0], f.region[1], f.region[2], f.region[3]
                    ),
                ));
            }
            if let Some(v) = &t.voice {
                probes.push((
                    &sc.voices,
                    &v.embedding,
                    "voice",
                    self.cfg.voice_threshold,
                    &self.cfg.voice_operating_point,
                    format!("this recording: {}", voice_evidence(v)),
                ));
            }
            for (index, probe, modality, threshold, operating_point, this) in probes {
                let hits = index.search(
                    probe,
                    self.cfg.max_matches * 4 + 8,
                    threshold,
                    self.cfg.scan_threads,
                );
                let mut seen = std::collections::HashSet::new();
                let mut n = 0;
                for h in hits {
                    let Some(m) = inner.metas.get(&h.id) else {
                        continue;
                    };
                    if m.applicant_id == applicant || !seen.insert(m.applicant_id.clone()) {
                        continue;
                    }
                    let what = if modality == "face" {
                        "picture"
                    } else {
                        "recording"
                    };
                    found.push(Match {
                        input_index: None,
                        applicant_id: applicant.to_owned(),
                        other_applicant_id: m.applicant_id.clone(),
                        modality: modality.into(),
                        similarity: round4(h.similarity),
                        threshold: round4(threshold),
                        operating_point: operating_point.clone(),
                        evidence: vec![
                            this.clone(),
                            format!(
                                "their {what}: {} (sha256 {}…), {}",
                                m.input_name.as_deref().unwrap_or("unnamed"),
                                short(&m.input_sha256),
                                m.evidence
                            ),
                        ],
                        created_at_ms: now,
                    });
                    n += 1;
                    if n >= self.cfg.max_matches {
                        break;
                    }
                }
            }
            if let (Some(sig), Some(text)) = (&sig, t.text.as_deref()) {
                let mut seen = std::collections::HashSet::new();
                let mut n = 0;
                for (id, j) in sc.texts.search(sig, self.cfg.text_threshold) {
                    let Some(m) = inner.metas.get(&id) else {
                        continue;
                    };
                    if m.applicant_id == applicant || !seen.insert(m.applicant_id.clone()) {
                        continue;
                    }
                    let other = m.text.as_deref().unwrap_or("");
                    let mut evidence = vec![format!(
                        "their text: {} (sha256 {}…)",
                        m.input_name.as_deref().unwrap_or("unnamed"),
                        short(&m.input_sha256)
                    )];
                    for p in minhash::shared_passages(text, other, 8, 3) {
                        evidence.push(format!(
                            "shared passage of {} words: “{}”",
                            p.words,
                            quote(text, p.a, 240)
                        ));
                    }
                    found.push(Match {
                        input_index: None,
                        applicant_id: applicant.to_owned(),
                        other_applicant_id: m.applicant_id.clone(),
                        modality: "text".into(),
                        similarity: round4(j),
                        threshold: round4(self.cfg.text_threshold),
                        operating_point: self.cfg.text_operating_point.clone(),
                        evidence,
                        created_at_ms: now,
                    });
                    n += 1;
                    if n >= self.cfg.max_matches {
                        break;
                    }
                }
            }
        }
        for m in &found {
            let detail = serde_json::json!({
                "operating_point": m.operating_point,
                "evidence": m.evidence,
                "input_sha256": input_sha256,
            })
            .to_string();
            candor_bulk::exec!(
                self.store.db(),
                "INSERT INTO candor_identity_matches (match_id, scope, applicant_id, other_applicant_id, modality, similarity, threshold, detail, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                uuid::Uuid::new_v4().to_string(),
                scope,
                &m.applicant_id,
                &m.other_applicant_id,
                &m.modality,
                m.similarity,
                m.threshold,
                &detail,
                now
            )?;
            self.audit(
                scope,
                "match",
                applicant,
                &format!(
                    "{} match with {} (similarity {:.3}, threshold {:.3})",
                    m.modality, m.other_applicant_id, m.similarity, m.threshold
                ),
            )
            .await?;
            metrics::counter!("candor_identity_matches_total", "modality" => m.modality.clone())
                .increment(1);
        }
        // Enrol, once per (applicant, file, modality).
        let expires = now + self.cfg.retention.as_millis() as i64;
        // (modality, evidence, model, face vector, text)
        type Part = (
            &'static str,
            String,
            String,
            Option<Vec<f32>>,
            Option<String>,
        );
        let mut parts: Vec<Part> = Vec::new();
        if let Some(f) = &t.face {
            parts.push((
                "face",
                format!(
                    "face at ({}, {}) {}x{}",
                    f.region[0], f.region[1], f.region[2], f.region[3]
                ),
                f.model.clone(),
                Some(f.embedding.clone()),
                None,
            ));
        }
        if let Some(v) = &t.voice {
            parts.push((
                "voice",
                voice_evidence(v),
                v.model.clone(),
                Some(v.embedding.clone()),
                None,
            ));
        }
        if let (Some(text), Some(_)) = (&t.text, &sig) {
            parts.push((
                "text",
                "resume text".into(),
                "minhash-w3s-128".into(),
                None,
                Some(text.clone()),
            ));
        }
        for (modality, evidence, model, vector, text) in parts {
            let template_id = hex::encode(sha2_digest(&[scope, applicant, input_sha256, modality]));
            let n = candor_bulk::exec!(
                self.store.db(),
                "INSERT INTO candor_identity_templates (template_id, scope, applicant_id, modality, input_sha256, input_name, evidence, model, vector, text, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (template_id) DO NOTHING",
                &template_id,
                scope,
                applicant,
                modality,
                input_sha256,
                input_name,
                &evidence,
                &model,
                vector.as_deref().map(encode_vec),
                text.as_deref(),
                now,
                expires
            )?;
            if n == 1 {
                let meta = Meta {
                    template_id,
                    scope: scope.to_owned(),
                    applicant_id: applicant.to_owned(),
                    modality: modality.to_owned(),
                    input_sha256: input_sha256.to_owned(),
                    input_name: input_name.map(str::to_owned),
                    evidence,
                    text: text.clone(),
                };
                let s = text
                    .as_deref()
                    .and_then(|x| Signature::of(&minhash::shingles(&minhash::words(x))));
                self.inner.write().await.add(meta, vector.as_deref(), s);
                metrics::counter!("candor_identity_enrolled_total", "modality" => modality)
                    .increment(1);
            }
        }
        found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        Ok(found)
    }

    /// Matches recorded for `applicant` of `scope` (either side), newest
    /// first.
    pub async fn matches_of(
        &self,
        scope: &str,
        applicant: &str,
    ) -> Result<Vec<Match>, RegistryError> {
        let mut v = candor_bulk::fetch!(
            self.store.db(),
            match_from_row,
            "SELECT * FROM candor_identity_matches WHERE scope = $1 AND (applicant_id = $2 OR other_applicant_id = $2) \
             ORDER BY created_at DESC, match_id LIMIT 1000",
            scope,
            applicant
        )?;
        // Seen from `applicant`'s side.
        for m in v.iter_mut() {
            if m.applicant_id != applicant {
                std::mem::swap(&mut m.applicant_id, &mut m.other_applicant_id);
            }
        }
        self.audit(
            scope,
            "lookup",
            applicant,
            &format!("{} matches read", v.len()),
        )
        .await?;
        Ok(v)
    }

    /// Deletes every template and match of `applicant` of `scope` (the
    /// right to erasure). Gives the number of templates deleted.
    pub async fn erase(&self, scope: &str, applicant: &str) -> Result<u64, RegistryError> {
        let n = candor_bulk::exec!(
            self.store.db(),
            "DELETE FROM candor_identity_templates WHERE scope = $1 AND applicant_id = $2",
            scope,
            applicant
        )?;
        let m = candor_bulk::exec!(
            self.store.db(),
            "DELETE FROM candor_identity_matches WHERE scope = $1 AND (applicant_id = $2 OR other_applicant_id = $2)",
            scope,
            applicant
        )?;
        self.inner
            .write()
            .await
            .remove(|x| x.scope == scope && x.applicant_id == applicant);
        self.audit(
            scope,
            "erase",
            applicant,
            &format!("{n} templates and {m} matches deleted"),
        )
        .await?;
        Ok(n)
    }

    /// Deletes expired templates (from the database and the index).
    pub async fn sweep(&self) -> Result<u64, RegistryError> {
        let now = now_ms();
        let gone = candor_bulk::fetch!(
            self.store.db(),
            id_from_row,
            "SELECT template_id FROM candor_identity_templates WHERE expires_at < $1",
            now
        )?;
        if gone.is_empty() {
            return Ok(0);
        }
        let n = candor_bulk::exec!(
            self.store.db(),
            "DELETE FROM candor_identity_templates WHERE expires_at < $1",
            now
        )?;
        let gone: std::collections::HashSet<String> = gone.into_iter().collect();
        self.inner
            .write()
            .await
            .remove(|m| gone.contains(&m.template_id));
        tracing::info!(expired = n, "identity templates expired");
        Ok(n)
    }

    async fn audit(
        &self,
        scope: &str,
        action: &str,
        applicant: &str,
        detail: &str,
    ) -> Result<(), RegistryError> {
        candor_bulk::exec!(
            self.store.db(),
            "INSERT INTO candor_identity_audit (audit_id, at, scope, action, applicant_id, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            uuid::Uuid::new_v4().to_string(),
            now_ms(),
            scope,
            action,
            applicant,
            detail
        )?;
        Ok(())
    }
}

impl candor_bulk::Enroller for Registry {
    fn enroll<'a>(
        &'a self,
        scope: &'a str,
        applicant: &'a str,
        input_sha256: &'a str,
        input_name: Option<&'a str>,
        templates: &'a IdentityTemplates,
    ) -> futures_util::future::BoxFuture<'a, Result<usize, String>> {
        Box::pin(async move {
            self.enroll_and_match(scope, applicant, input_sha256, input_name, templates)
                .await
                .map(|m| m.len())
                .map_err(|e| e.to_string())
        })
    }
}

fn id_from_row<R: Row>(r: &R) -> std::result::Result<String, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    r.try_get(0usize)
}

fn sha2_digest(parts: &[&str]) -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()[..16].to_vec()
}

/// Embedding length of the face model (SFace).
const FACE_DIM: usize = 128;
/// Embedding length of the voice model (GE2E).
const VOICE_DIM: usize = 256;

fn voice_evidence(v: &candor_core::VoiceTemplate) -> String {
    format!(
        "{:.1} s of speech between {:.1} s and {:.1} s",
        v.speech_s, v.span_s[0], v.span_s[1]
    )
}

async fn sqlx_schema(store: &Store) -> Result<(), RegistryError> {
    match store.db() {
        candor_bulk::store::Db::Sqlite(p) => {
            sqlx::raw_sql(SCHEMA).execute(p).await?;
        }
        candor_bulk::store::Db::Postgres(p) => {
            let mut c = p.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock(7243412)")
                .execute(&mut *c)
                .await?;
            let r = sqlx::raw_sql(SCHEMA).execute(&mut *c).await;
            sqlx::query("SELECT pg_advisory_unlock(7243412)")
                .execute(&mut *c)
                .await?;
            r?;
        }
    }
    Ok(())
}
