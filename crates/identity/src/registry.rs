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
use crate::photo::{PhotoHashes, PhotoIndex};
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
CREATE INDEX IF NOT EXISTS candor_identity_templates_created ON candor_identity_templates(created_at);
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
CREATE INDEX IF NOT EXISTS candor_identity_audit_at ON candor_identity_audit(at);
"#;

/// How far back [`Registry::sync`] looks past its last run: rows another
/// process wrote with a clock up to this much behind ours are still seen.
pub const SYNC_OVERLAP_MS: i64 = 10_000;
/// Lookups sync first when the last sync is older than this: another
/// process's enrolment is seen within about this long.
pub const SYNC_EVERY_MS: i64 = 1_000;

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
    /// Most bits (of 64) in which two pictures' perceptual hashes, of the
    /// whole picture or of the aligned face, may differ for the two to be
    /// reported as the same photograph.
    pub photo_max_bits: u32,
    /// Where `photo_max_bits` comes from (shown with every photo match).
    pub photo_operating_point: String,
    /// The joint rule: two applicants whose faces reach this cosine and
    /// whose texts reach `joint_text_threshold`, while neither reaches its
    /// own threshold, are reported as one person (modality `face+text`).
    /// The rule is off when either joint threshold is not below its
    /// modality's own.
    pub joint_face_threshold: f32,
    /// The text side of the joint rule (estimated Jaccard).
    pub joint_text_threshold: f32,
    /// Where the joint thresholds come from (shown with every joint match).
    pub joint_operating_point: String,
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
    /// `face`, `photo` (the same photograph), `voice`, `text`, or
    /// `face+text` (the joint rule: a face and a text each short of their
    /// own threshold, both past the joint ones).
    pub modality: String,
    /// Cosine of the face or speaker embeddings, the share of equal bits of
    /// the pictures' perceptual hashes (1 − differing bits / 64), or the
    /// estimated Jaccard similarity of the texts' word 3-shingles inside
    /// sentences; for `face+text`, the face cosine (the texts' Jaccard is
    /// in the evidence).
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
    expires_at: i64,
}

/// The indexes of one scope.
#[derive(Default)]
struct Scope {
    faces: VectorIndex,
    voices: VectorIndex,
    texts: LshIndex,
    photos: PhotoIndex,
}

#[derive(Default)]
struct Inner {
    scopes: HashMap<String, Scope>,
    metas: HashMap<u64, Meta>,
    /// Template id (the table's key) → index id.
    known: HashMap<String, u64>,
    /// Hash of (scope, applicant) → index ids of the applicant's templates
    /// (a hash, not the two strings again: 10^6 applicants cost tens of
    /// MiB, not hundreds; a collision only adds ids that [`Inner::of`]
    /// filters out).
    applicants: HashMap<u64, Vec<u64>>,
    /// No template expires before this (Unix ms; a lower bound).
    first_expiry: i64,
    next: u64,
}

impl Inner {
    fn add(
        &mut self,
        meta: Meta,
        vector: Option<&[f32]>,
        sig: Option<Signature>,
        photo: Option<PhotoHashes>,
    ) -> bool {
        if self.known.contains_key(&meta.template_id) {
            return false;
        }
        let id = self.next;
        self.next += 1;
        let sc = self
            .scopes
            .entry(meta.scope.clone())
            .or_insert_with(|| Scope {
                faces: VectorIndex::new(FACE_DIM),
                voices: VectorIndex::new(VOICE_DIM),
                texts: LshIndex::default(),
                photos: PhotoIndex::default(),
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
        if let Some(p) = photo {
            sc.photos.insert(id, p);
        }
        self.known.insert(meta.template_id.clone(), id);
        self.applicants
            .entry(applicant_key(&meta.scope, &meta.applicant_id))
            .or_default()
            .push(id);
        self.first_expiry = if self.metas.is_empty() {
            meta.expires_at
        } else {
            self.first_expiry.min(meta.expires_at)
        };
        self.metas.insert(id, meta);
        true
    }

    /// Forgets the templates expired at `now` (a scan only when one is due).
    fn expire(&mut self, now: i64) -> usize {
        if self.metas.is_empty() || now <= self.first_expiry {
            return 0;
        }
        let n = self.remove(|m| m.expires_at < now);
        self.first_expiry = self
            .metas
            .values()
            .map(|m| m.expires_at)
            .min()
            .unwrap_or(i64::MAX);
        n
    }

    fn remove(&mut self, gone: impl Fn(&Meta) -> bool) -> usize {
        let ids: std::collections::HashSet<u64> = self
            .metas
            .iter()
            .filter(|(_, m)| gone(m))
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return 0;
        }
        for sc in self.scopes.values_mut() {
            sc.faces.remove_where(|id| ids.contains(&id));
            sc.voices.remove_where(|id| ids.contains(&id));
            sc.texts.remove_where(|id| ids.contains(&id));
            sc.photos.remove_where(|id| ids.contains(&id));
        }
        for id in &ids {
            let Some(m) = self.metas.remove(id) else {
                continue;
            };
            let key = applicant_key(&m.scope, &m.applicant_id);
            if let Some(v) = self.applicants.get_mut(&key) {
                v.retain(|x| x != id);
                if v.is_empty() {
                    self.applicants.remove(&key);
                }
            }
        }
        self.known.retain(|_, id| !ids.contains(id));
        ids.len()
    }

    /// Index ids of an applicant's templates.
    fn of<'a>(&'a self, scope: &'a str, applicant: &'a str) -> impl Iterator<Item = u64> + 'a {
        self.applicants
            .get(&applicant_key(scope, applicant))
            .into_iter()
            .flatten()
            .copied()
            .filter(move |id| {
                self.metas
                    .get(id)
                    .is_some_and(|m| m.scope == scope && m.applicant_id == applicant)
            })
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

    fn photos(&self) -> usize {
        self.scopes.values().map(|s| s.photos.len()).sum()
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
    /// When [`Registry::sync`] last read the tables (Unix ms).
    synced: std::sync::Mutex<i64>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store.url())
            .finish_non_exhaustive()
    }
}

/// The key of an applicant in [`Inner::applicants`].
fn applicant_key(scope: &str, applicant: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (scope, applicant).hash(&mut h);
    h.finish()
}

/// What [`Registry::joint_matches`] looks up: this input's face (unit)
/// and text, and the applicants it already matched directly.
struct Joint<'a> {
    scope: &'a str,
    applicant: &'a str,
    face: Option<&'a [f32]>,
    text: Option<(&'a Signature, &'a str)>,
    linked: &'a std::collections::HashSet<String>,
}

impl RegistryConfig {
    /// Whether the joint rule is on: both its thresholds below their
    /// modalities' own.
    pub fn joint_on(&self) -> bool {
        self.joint_face_threshold < self.face_threshold
            && self.joint_text_threshold < self.text_threshold
    }
}

/// How an embedding is stored in the `vector` column (hex of its
/// little-endian f32s).
pub fn encode_vec(v: &[f32]) -> String {
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
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
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
            expires_at: r.try_get("expires_at")?,
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

/// A stored input as evidence names it: its name and sha256 prefix.
fn source(m: &Meta) -> String {
    format!(
        "{} (sha256 {}…)",
        m.input_name.as_deref().unwrap_or("unnamed"),
        short(&m.input_sha256)
    )
}

/// Evidence lines quoting the longest passages `mine` shares with `theirs`
/// (quoted from `mine`).
fn passage_evidence(mine: &str, theirs: &str) -> Vec<String> {
    minhash::shared_passages(mine, theirs, 8, 3)
        .into_iter()
        .map(|p| {
            format!(
                "shared passage of {} words: “{}”",
                p.words,
                quote(mine, p.a, 240)
            )
        })
        .collect()
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
            synced: std::sync::Mutex::new(i64::MIN),
        };
        reg.sweep().await?;
        reg.sync().await?;
        let inner = reg.inner.read().await;
        tracing::info!(
            templates = inner.metas.len(),
            faces = inner.faces(),
            voices = inner.voices(),
            texts = inner.texts(),
            photos = inner.photos(),
            "identity registry loaded"
        );
        drop(inner);
        Ok(reg)
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    /// Brings the in-process index up to date with the tables, which
    /// other processes (servers, bulk workers on other machines sharing
    /// the PostgreSQL store) write too: loads the templates written since
    /// the last sync (looking [`SYNC_OVERLAP_MS`] further back, for clocks
    /// a little apart and writes still in flight), drops the applicants
    /// erased since, and forgets expired templates. Lookups run it first
    /// when the last sync is older than [`SYNC_EVERY_MS`]. Gives the
    /// templates added.
    pub async fn sync(&self) -> Result<usize, RegistryError> {
        let last = self.synced.lock().map(|s| *s).unwrap_or(i64::MIN);
        let first = last == i64::MIN;
        let since = last.saturating_sub(SYNC_OVERLAP_MS);
        let now = now_ms();
        let rows = if first {
            candor_bulk::fetch!(
                self.store.db(),
                meta_from_row,
                "SELECT * FROM candor_identity_templates WHERE expires_at >= $1 ORDER BY created_at, template_id",
                now
            )?
        } else {
            // The ids first (small); whole rows only when some are new.
            let recent = candor_bulk::fetch!(
                self.store.db(),
                id_time_from_row,
                "SELECT template_id, created_at FROM candor_identity_templates WHERE created_at >= $1",
                since
            )?;
            let oldest_new = {
                let inner = self.inner.read().await;
                recent
                    .iter()
                    .filter(|(id, _)| !inner.known.contains_key(id))
                    .map(|(_, t)| *t)
                    .min()
            };
            match oldest_new {
                Some(t) => candor_bulk::fetch!(
                    self.store.db(),
                    meta_from_row,
                    "SELECT * FROM candor_identity_templates WHERE created_at >= $1 AND expires_at >= $2 \
                     ORDER BY created_at, template_id",
                    t,
                    now
                )?,
                None => Vec::new(),
            }
        };
        let erased = if first {
            Vec::new()
        } else {
            candor_bulk::fetch!(
                self.store.db(),
                pair_from_row,
                "SELECT DISTINCT scope, applicant_id FROM candor_identity_audit WHERE action = 'erase' AND at >= $1",
                since
            )?
        };
        // What is still stored for each erased applicant (enrolled again
        // after the erasure, perhaps).
        let mut kept = Vec::new();
        for (scope, applicant) in &erased {
            let ids = candor_bulk::fetch!(
                self.store.db(),
                id_from_row,
                "SELECT template_id FROM candor_identity_templates WHERE scope = $1 AND applicant_id = $2",
                scope,
                applicant
            )?;
            kept.push(
                ids.into_iter()
                    .collect::<std::collections::HashSet<String>>(),
            );
        }
        let mut inner = self.inner.write().await;
        let mut added = 0;
        for (meta, vector) in rows {
            if inner.known.contains_key(&meta.template_id) {
                continue;
            }
            let (vector, photo) = if meta.modality == "photo" {
                (None, vector.as_deref().and_then(PhotoHashes::decode))
            } else {
                (vector.as_deref().and_then(decode_vec), None)
            };
            let sig = meta
                .text
                .as_deref()
                .and_then(|t| Signature::of(&minhash::shingles(&minhash::words(t))));
            added += usize::from(inner.add(meta, vector.as_deref(), sig, photo));
        }
        for ((scope, applicant), kept) in erased.iter().zip(&kept) {
            inner.remove(|m| {
                &m.scope == scope && &m.applicant_id == applicant && !kept.contains(&m.template_id)
            });
        }
        inner.expire(now);
        drop(inner);
        if let Ok(mut s) = self.synced.lock() {
            *s = now;
        }
        if added > 0 && !first {
            tracing::debug!(added, "identity templates from other processes");
        }
        Ok(added)
    }

    /// Sweeps expired templates and syncs every `every`, until the
    /// registry is dropped (a server or worker that runs for months still
    /// forgets on time, and sees what other processes enrol between its
    /// own lookups).
    pub fn spawn_maintenance(self: &std::sync::Arc<Self>, every: Duration) {
        let weak = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(reg) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = reg.sweep().await {
                    tracing::warn!(error = %e, "identity registry sweep failed");
                }
                if let Err(e) = reg.sync().await {
                    tracing::warn!(error = %e, "identity registry sync failed");
                }
            }
        });
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
        let last = self.synced.lock().map(|s| *s).unwrap_or(i64::MIN);
        if now_ms().saturating_sub(last) >= SYNC_EVERY_MS {
            self.sync().await?;
        }
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
                            format!("their {what}: {}, {}", source(m), m.evidence),
                        ],
                        created_at_ms: now,
                    });
                    n += 1;
                    if n >= self.cfg.max_matches {
                        break;
                    }
                }
            }
            if let Some(p) = &t.photo {
                found.extend(self.photo_matches(&inner, sc, applicant, p, now));
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
                    let mut evidence = vec![format!("their text: {}", source(m))];
                    evidence.extend(passage_evidence(text, other));
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
            if self.cfg.joint_on() {
                let linked: std::collections::HashSet<String> =
                    found.iter().map(|m| m.other_applicant_id.clone()).collect();
                let face = t
                    .face
                    .as_ref()
                    .and_then(|f| crate::vector::normalize(&f.embedding));
                let text = sig.as_ref().zip(t.text.as_deref());
                let probe = Joint {
                    scope,
                    applicant,
                    face: face.as_deref(),
                    text,
                    linked: &linked,
                };
                found.extend(self.joint_matches(&inner, sc, probe, now));
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
        // (modality, evidence, model, vector, text, hashes)
        type Part = (
            &'static str,
            String,
            String,
            Option<Vec<f32>>,
            Option<String>,
            Option<PhotoHashes>,
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
                None,
            ));
        }
        if let Some(p) = &t.photo {
            parts.push((
                "photo",
                photo_evidence(p),
                p.model.clone(),
                None,
                None,
                Some(PhotoHashes::from(p)),
            ));
        }
        if let Some(v) = &t.voice {
            parts.push((
                "voice",
                voice_evidence(v),
                v.model.clone(),
                Some(v.embedding.clone()),
                None,
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
                None,
            ));
        }
        for (modality, evidence, model, vector, text, photo) in parts {
            let stored = match (&vector, &photo) {
                (Some(v), _) => Some(encode_vec(v)),
                (None, Some(p)) => Some(p.encode()),
                (None, None) => None,
            };
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
                stored,
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
                    expires_at: expires,
                };
                // The text's signature, computed once above for the lookup.
                let s = if text.is_some() { sig.clone() } else { None };
                self.inner
                    .write()
                    .await
                    .add(meta, vector.as_deref(), s, photo);
                metrics::counter!("candor_identity_enrolled_total", "modality" => modality)
                    .increment(1);
            }
        }
        found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        Ok(found)
    }

    /// Joint evidence (the `face+text` rule): other applicants whose text
    /// reaches `joint_text_threshold` against one of this applicant's texts
    /// and whose face reaches `joint_face_threshold` against one of this
    /// applicant's faces, where neither reaches its own threshold (those are
    /// face or text matches) and this input supplies one side of the pair
    /// (an input that adds nothing to the pair does not report it again).
    /// The candidates come from the texts' LSH buckets; only their faces
    /// are compared, directly: no second face scan.
    fn joint_matches(&self, inner: &Inner, sc: &Scope, p: Joint<'_>, now: i64) -> Vec<Match> {
        if p.face.is_none() && p.text.is_none() {
            return Vec::new();
        }
        let (jf, jt) = (self.cfg.joint_face_threshold, self.cfg.joint_text_threshold);
        // This applicant's faces and texts: this input's (no id) and the
        // stored ones.
        let mut faces: Vec<(Option<u64>, Vec<f32>)> =
            p.face.map(|f| (None, f.to_vec())).into_iter().collect();
        let mut texts: Vec<(Option<u64>, &Signature, &str)> =
            p.text.map(|(s, t)| (None, s, t)).into_iter().collect();
        for id in inner.of(p.scope, p.applicant) {
            let Some(m) = inner.metas.get(&id) else {
                continue;
            };
            match m.modality.as_str() {
                "face" => faces.extend(sc.faces.get(id).map(|v| (Some(id), v))),
                "text" => {
                    if let (Some(s), Some(t)) = (sc.texts.get(id), m.text.as_deref()) {
                        texts.push((Some(id), s, t));
                    }
                }
                _ => {}
            }
        }
        if faces.is_empty() || texts.is_empty() {
            return Vec::new();
        }
        let mut candidates = std::collections::BTreeSet::new();
        for (_, s, _) in &texts {
            for (id, _) in sc.texts.search(s, jt) {
                if let Some(m) = inner.metas.get(&id) {
                    if m.applicant_id != p.applicant && !p.linked.contains(&m.applicant_id) {
                        candidates.insert(m.applicant_id.as_str());
                    }
                }
            }
        }
        let mut out = Vec::new();
        for other in candidates {
            // The best pair of each modality: (similarity, this side's
            // index, their template id), and the best with this input.
            let mut face: Option<(f32, usize, u64)> = None;
            let mut text: Option<(f32, usize, u64)> = None;
            let (mut this_face, mut this_text) = (f32::MIN, f32::MIN);
            for id in inner.of(p.scope, other) {
                let Some(m) = inner.metas.get(&id) else {
                    continue;
                };
                match m.modality.as_str() {
                    "face" => {
                        let Some(v) = sc.faces.get(id) else { continue };
                        for (k, (src, f)) in faces.iter().enumerate() {
                            let c = VectorIndex::cosine(f, &v).unwrap_or(f32::MIN);
                            if src.is_none() {
                                this_face = this_face.max(c);
                            }
                            if face.is_none_or(|b| c > b.0) {
                                face = Some((c, k, id));
                            }
                        }
                    }
                    "text" => {
                        let Some(s) = sc.texts.get(id) else { continue };
                        for (k, (src, mine, _)) in texts.iter().enumerate() {
                            let j = mine.jaccard(s);
                            if src.is_none() {
                                this_text = this_text.max(j);
                            }
                            if text.is_none_or(|b| j > b.0) {
                                text = Some((j, k, id));
                            }
                        }
                    }
                    _ => {}
                }
            }
            let (Some(face), Some(text)) = (face, text) else {
                continue;
            };
            let joint = face.0 >= jf && text.0 >= jt;
            let direct = face.0 >= self.cfg.face_threshold || text.0 >= self.cfg.text_threshold;
            let supplied = this_face >= jf || this_text >= jt;
            if !joint || direct || !supplied {
                continue;
            }
            let (Some(their_face), Some(their_text)) =
                (inner.metas.get(&face.2), inner.metas.get(&text.2))
            else {
                continue;
            };
            let mine = |src: Option<u64>, this: &str| match src.and_then(|id| inner.metas.get(&id))
            {
                None => this.to_owned(),
                Some(m) => format!(
                    "this applicant's {} {}, {}",
                    if m.modality == "face" {
                        "picture"
                    } else {
                        "text"
                    },
                    source(m),
                    m.evidence
                ),
            };
            let my_text = texts[text.1].2;
            let mut evidence = vec![
                mine(faces[face.1].0, "this picture"),
                format!(
                    "their picture: {}, {}: face cosine {:.3} (joint threshold {jf:.2}, short of the face threshold {:.2})",
                    source(their_face),
                    their_face.evidence,
                    face.0,
                    self.cfg.face_threshold
                ),
                mine(texts[text.1].0, "this text"),
                format!(
                    "their text: {}: Jaccard {:.3} (joint threshold {jt:.2}, short of the text threshold {:.2})",
                    source(their_text),
                    text.0,
                    self.cfg.text_threshold
                ),
            ];
            evidence.extend(passage_evidence(
                my_text,
                their_text.text.as_deref().unwrap_or(""),
            ));
            out.push(Match {
                input_index: None,
                applicant_id: p.applicant.to_owned(),
                other_applicant_id: other.to_owned(),
                modality: "face+text".into(),
                similarity: round4(face.0),
                threshold: round4(jf),
                operating_point: self.cfg.joint_operating_point.clone(),
                evidence,
                created_at_ms: now,
            });
        }
        out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        out.truncate(self.cfg.max_matches);
        out
    }

    /// Other applicants' pictures whose whole-picture or face hash is
    /// within `photo_max_bits` of `p`'s: the same photograph. Closest first,
    /// one per applicant.
    fn photo_matches(
        &self,
        inner: &Inner,
        sc: &Scope,
        applicant: &str,
        p: &candor_core::PhotoTemplate,
        now: i64,
    ) -> Vec<Match> {
        let probe = PhotoHashes::from(p);
        let max = self.cfg.photo_max_bits;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for h in sc.photos.search(&probe, max, self.cfg.scan_threads) {
            let (d, id) = (h.bits, h.id);
            let Some(m) = inner.metas.get(&id) else {
                continue;
            };
            if m.applicant_id == applicant || !seen.insert(m.applicant_id.clone()) {
                continue;
            }
            let ds = h.distances;
            let mut how = format!("whole-picture hashes differ in {} of 64 bits", ds.whole);
            if let Some(f) = ds.face {
                how.push_str(&format!(", face hashes in {f} of 64"));
            }
            if let Some(c) = ds.close {
                how.push_str(&format!(", close-framed face hashes in {c} of 64"));
            }
            out.push(Match {
                input_index: None,
                applicant_id: applicant.to_owned(),
                other_applicant_id: m.applicant_id.clone(),
                modality: "photo".into(),
                similarity: round4(1.0 - d as f32 / 64.0),
                threshold: round4(1.0 - max as f32 / 64.0),
                operating_point: self.cfg.photo_operating_point.clone(),
                evidence: vec![
                    format!("this picture: {}", photo_evidence(p)),
                    format!("their picture: {}, {}", source(m), m.evidence),
                    format!("the same photograph: {how}"),
                ],
                created_at_ms: now,
            });
            if out.len() >= self.cfg.max_matches {
                break;
            }
        }
        out
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
        let n = candor_bulk::exec!(
            self.store.db(),
            "DELETE FROM candor_identity_templates WHERE expires_at < $1",
            now
        )?;
        // Whoever deleted the rows (this process or another), the index
        // forgets them by their own expiry.
        let dropped = self.inner.write().await.expire(now);
        if n > 0 || dropped > 0 {
            tracing::info!(expired = n, dropped, "identity templates expired");
        }
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

fn id_time_from_row<R: Row>(r: &R) -> std::result::Result<(String, i64), sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok((r.try_get(0usize)?, r.try_get(1usize)?))
}

fn pair_from_row<R: Row>(r: &R) -> std::result::Result<(String, String), sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok((r.try_get(0usize)?, r.try_get(1usize)?))
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

fn photo_evidence(p: &candor_core::PhotoTemplate) -> String {
    format!(
        "{}x{} picture{}",
        p.size[0],
        p.size[1],
        if p.face.is_some() { " with a face" } else { "" }
    )
}

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
