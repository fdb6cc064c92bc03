//! What a batch found: item rows as CSV or JSONL, per-applicant cases
//! ranked by risk, and the impact report over the manifest's group columns.
//!
//! **Cases.** The items of one applicant combine into one
//! [`CaseSummary`] (the same summary `/v1/analyze` gives several inputs of
//! one applicant). Cases are ranked by their most severe label, then by
//! their highest score.
//!
//! **Impact report.** For each group column the manifest carries (given at
//! submit, or every column named `group:<name>`), each value's cases are
//! counted, and the share *flagged* (routed to human review: the case's
//! label is `inconclusive` or `likely_manipulated`) is compared across
//! values. As in the four-fifths rule and the impact ratios of NYC Local
//! Law 144 bias audits, the favourable outcome's rate (here: *not*
//! flagged) of each value is divided by the highest such rate; a ratio
//! under 0.8 is marked. Cases no detector scored (every input abstained or
//! failed) are counted apart and left out of the rates; a blank value is
//! reported as `(unknown)` and left out of the reference rate. Candor never
//! infers a demographic: groups come only from the manifest.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use candor_core::{AnalysisResult, CaseSummary, Label};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::{ItemRow, ItemState, Store};

/// Rows read per page while streaming a batch.
pub const PAGE: i64 = 1000;

/// Output format of `results`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            _ => Err(format!("unknown format `{s}` (csv or jsonl)")),
        }
    }
}

/// Fixed CSV columns (the manifest's free columns follow).
pub const CSV_COLUMNS: [&str; 13] = [
    "applicant_id",
    "path",
    "state",
    "modality",
    "score",
    "label",
    "abstention",
    "error_code",
    "sha256",
    "models",
    "attempts",
    "finished_at",
    "item_id",
];

fn csv_line(fields: impl IntoIterator<Item = String>) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let fields: Vec<String> = fields.into_iter().collect();
    let _ = w.write_record(&fields);
    let _ = w.flush();
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The CSV header for a batch whose items carry `free` columns.
pub fn csv_header(free: &[String]) -> String {
    csv_line(
        CSV_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .chain(free.iter().cloned()),
    )
}

fn abstention_code(result: Option<&str>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(result?).ok()?;
    v.get("abstention")?
        .get("code")?
        .as_str()
        .map(str::to_owned)
}

/// One item as a CSV line.
pub fn csv_row(it: &ItemRow, free: &[String]) -> String {
    let fixed = [
        it.applicant_id.clone(),
        it.path.clone(),
        it.state.as_str().to_owned(),
        it.modality.clone().unwrap_or_default(),
        it.score.map(|s| format!("{s:.4}")).unwrap_or_default(),
        it.label.clone().unwrap_or_default(),
        abstention_code(it.result.as_deref()).unwrap_or_default(),
        it.error_code.clone().unwrap_or_default(),
        it.sha256.clone().unwrap_or_default(),
        it.models.clone().unwrap_or_default(),
        it.attempts.to_string(),
        it.finished_at_ms
            .map(|ms| {
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
                )
                .to_string()
            })
            .unwrap_or_default(),
        it.item_id.clone(),
    ];
    csv_line(
        fixed.into_iter().chain(
            free.iter()
                .map(|c| it.columns.get(c).cloned().unwrap_or_default()),
        ),
    )
}

/// One item as a JSON line (the stored result and problem as objects).
pub fn jsonl_row(it: &ItemRow) -> String {
    let parse = |s: &Option<String>| {
        s.as_deref()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
    };
    let mut line = serde_json::json!({
        "item_id": it.item_id,
        "applicant_id": it.applicant_id,
        "path": it.path,
        "columns": it.columns,
        "state": it.state,
        "attempts": it.attempts,
        "writes": it.writes,
        "sha256": it.sha256,
        "models": it.models,
        "result": parse(&it.result),
        "error": parse(&it.error),
    })
    .to_string();
    line.push('\n');
    line
}

/// One applicant's case in a batch report.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchCase {
    /// 1 = highest risk.
    pub rank: usize,
    pub applicant_id: String,
    pub case: CaseSummary,
    /// Items that could not be analysed (missing, corrupt, refused).
    pub errors: usize,
    /// Items not finished yet (pending).
    pub pending: usize,
    /// The manifest's free columns of this applicant.
    pub columns: BTreeMap<String, String>,
}

/// One value of one group column.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImpactRow {
    pub value: String,
    /// Applicants with this value.
    pub cases: u64,
    /// Cases at least one detector scored (the rate's denominator).
    pub scored: u64,
    /// Scored cases routed to human review.
    pub flagged: u64,
    pub flag_rate: Option<f64>,
    /// Rate of the favourable outcome (not flagged) over the highest such
    /// rate among known values.
    pub impact_ratio: Option<f64>,
    /// `impact_ratio` < 0.8 (the four-fifths rule).
    pub below_four_fifths: bool,
    /// Fewer than 2% of the batch's scored cases: a ratio on so few is
    /// unstable (bias audits may leave such groups out).
    pub small: bool,
}

/// The impact table of one group column.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImpactTable {
    pub column: String,
    pub rows: Vec<ImpactRow>,
}

/// A batch's report: ranked cases and impact tables.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchReport {
    pub batch_id: String,
    pub applicants: u64,
    /// Applicants whose case needs review.
    pub needs_review: u64,
    /// Applicants no detector scored.
    pub unscored: u64,
    /// The highest-risk cases, best first (at most the `top` asked for).
    pub cases: Vec<BatchCase>,
    pub impact: Vec<ImpactTable>,
    /// What `flagged` means in the impact tables.
    pub flagged_means: String,
    /// Groups of this batch's applicants linked by the identity registry
    /// (one face, voice or resume behind several applicant ids), largest
    /// first; `null` when the registry has never run on this store.
    pub clusters: Option<Vec<IdentityCluster>>,
}

/// Applicants of one batch linked, directly or through each other, by
/// identity matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct IdentityCluster {
    /// Applicant ids, sorted.
    pub applicants: Vec<String>,
    /// The matches that link them: `[applicant, other, modality, best similarity]`.
    pub links: Vec<ClusterLink>,
}

/// One recorded match between two applicants of a cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ClusterLink {
    pub applicant_id: String,
    pub other_applicant_id: String,
    /// `face`, `voice` or `text`.
    pub modality: String,
    /// The highest similarity recorded for this pair and modality.
    pub similarity: f64,
}

/// Most clusters a report lists.
pub const MAX_CLUSTERS: usize = 1000;

type LinkRow = (String, String, String, f64);

fn link_from_row<R: sqlx::Row>(r: &R) -> std::result::Result<LinkRow, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> f64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok((
        r.try_get(0usize)?,
        r.try_get(1usize)?,
        r.try_get(2usize)?,
        r.try_get(3usize)?,
    ))
}

/// Connected components of the links between applicant ids (union-find):
/// each linked id and the number of its component (ids in no link are
/// absent). The batch report's `clusters`, and the identity evaluation's
/// count of what they show.
pub fn components<'a>(
    links: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, usize> {
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut parent: Vec<usize> = Vec::new();
    for (a, b) in links {
        let mut id = |s: &str| {
            *index.entry(s.to_owned()).or_insert_with(|| {
                parent.push(parent.len());
                parent.len() - 1
            })
        };
        let (x, y) = (id(a), id(b));
        let (rx, ry) = (root(&mut parent, x), root(&mut parent, y));
        if rx != ry {
            parent[rx] = ry;
        }
    }
    index
        .into_iter()
        .map(|(k, i)| (k, root(&mut parent, i)))
        .collect()
}

/// The batch's identity clusters: connected components of the matches
/// recorded (in `owner`'s scope) between two of its applicants. `None`
/// when the identity tables do not exist.
pub async fn clusters(
    store: &Store,
    batch_id: &str,
    owner: Option<&str>,
) -> Result<Option<Vec<IdentityCluster>>> {
    let exists = match store.db() {
        crate::store::Db::Sqlite(p) => sqlx::query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'candor_identity_matches'",
        )
        .fetch_optional(p)
        .await?
        .is_some(),
        crate::store::Db::Postgres(p) => sqlx::query(
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'candor_identity_matches' \
             AND table_schema = current_schema()",
        )
        .fetch_optional(p)
        .await?
        .is_some(),
    };
    if !exists {
        return Ok(None);
    }
    let rows = crate::fetch!(
        store.db(),
        link_from_row,
        "SELECT applicant_id, other_applicant_id, modality, MAX(similarity) FROM candor_identity_matches \
         WHERE scope = $1 \
           AND applicant_id IN (SELECT applicant_id FROM candor_items WHERE batch_id = $2) \
           AND other_applicant_id IN (SELECT applicant_id FROM candor_items WHERE batch_id = $2) \
         GROUP BY applicant_id, other_applicant_id, modality \
         ORDER BY applicant_id, other_applicant_id, modality",
        owner.unwrap_or(""),
        batch_id
    )?;
    let component = components(rows.iter().map(|(a, b, _, _)| (a.as_str(), b.as_str())));
    let mut groups: BTreeMap<usize, IdentityCluster> = BTreeMap::new();
    for (name, c) in &component {
        groups
            .entry(*c)
            .or_insert_with(|| IdentityCluster {
                applicants: Vec::new(),
                links: Vec::new(),
            })
            .applicants
            .push(name.clone());
    }
    for (a, b, m, sim) in rows {
        if let Some(g) = groups.get_mut(&component[&a]) {
            g.links.push(ClusterLink {
                applicant_id: a,
                other_applicant_id: b,
                modality: m,
                similarity: sim,
            });
        }
    }
    let mut out: Vec<IdentityCluster> = groups
        .into_values()
        .map(|mut c| {
            c.applicants.sort();
            c
        })
        .collect();
    out.sort_by(|a, b| {
        b.applicants
            .len()
            .cmp(&a.applicants.len())
            .then_with(|| a.applicants.cmp(&b.applicants))
    });
    out.truncate(MAX_CLUSTERS);
    Ok(Some(out))
}

fn label_rank(l: Option<Label>) -> u8 {
    match l {
        Some(Label::LikelyManipulated) => 3,
        Some(Label::Inconclusive) => 2,
        Some(Label::LikelyAuthentic) => 1,
        None => 0,
    }
}

/// Ranking key: label, then score (both higher = riskier).
type Key = (u8, i64, Reverse<String>);

#[derive(Default)]
struct Counts {
    cases: u64,
    scored: u64,
    flagged: u64,
}

struct Builder {
    top: usize,
    heap: BinaryHeap<Reverse<(Key, usize)>>,
    kept: Vec<Option<BatchCase>>,
    groups: Vec<String>,
    counts: Vec<BTreeMap<String, Counts>>,
    applicants: u64,
    needs_review: u64,
    unscored: u64,
}

impl Builder {
    fn add(&mut self, applicant: String, items: &[ItemRow]) {
        let results: Vec<AnalysisResult> = items
            .iter()
            .filter(|i| i.state == ItemState::Done)
            .filter_map(|i| serde_json::from_str(i.result.as_deref()?).ok())
            .collect();
        let case = CaseSummary::from_results(&results);
        let columns = items.first().map(|i| i.columns.clone()).unwrap_or_default();
        self.applicants += 1;
        let scored = case.scored > 0;
        if case.needs_review {
            self.needs_review += 1;
        }
        if !scored {
            self.unscored += 1;
        }
        for (g, counts) in self.groups.iter().zip(self.counts.iter_mut()) {
            let v = columns.get(g).map(|s| s.trim()).unwrap_or("");
            let v = if v.is_empty() { "(unknown)" } else { v };
            let c = counts.entry(v.to_owned()).or_default();
            c.cases += 1;
            if scored {
                c.scored += 1;
                if case.needs_review {
                    c.flagged += 1;
                }
            }
        }
        if self.top == 0 {
            return;
        }
        let key: Key = (
            label_rank(case.label),
            (case.max_score.unwrap_or(-1.0) * 1e9) as i64,
            Reverse(applicant.clone()),
        );
        let full = BatchCase {
            rank: 0,
            applicant_id: applicant,
            errors: items.iter().filter(|i| i.state == ItemState::Error).count(),
            pending: items
                .iter()
                .filter(|i| i.state == ItemState::Pending)
                .count(),
            case,
            columns,
        };
        if self.heap.len() < self.top {
            self.kept.push(Some(full));
            self.heap.push(Reverse((key, self.kept.len() - 1)));
        } else if let Some(Reverse((min, slot))) = self.heap.peek() {
            if key > *min {
                let slot = *slot;
                self.heap.pop();
                self.kept[slot] = Some(full);
                self.heap.push(Reverse((key, slot)));
            }
        }
    }

    fn finish(mut self, batch_id: String) -> BatchReport {
        let mut ranked: Vec<(Key, usize)> = self.heap.drain().map(|Reverse(x)| x).collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0));
        let cases = ranked
            .into_iter()
            .enumerate()
            .filter_map(|(i, (_, slot))| {
                self.kept[slot].take().map(|mut c| {
                    c.rank = i + 1;
                    c
                })
            })
            .collect();
        let total_scored: u64 = self.applicants - self.unscored;
        let impact = self
            .groups
            .iter()
            .zip(self.counts)
            .map(|(g, counts)| {
                let pass =
                    |c: &Counts| (c.scored > 0).then(|| 1.0 - c.flagged as f64 / c.scored as f64);
                let best = counts
                    .iter()
                    .filter(|(v, _)| v.as_str() != "(unknown)")
                    .filter_map(|(_, c)| pass(c))
                    .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
                let rows = counts
                    .iter()
                    .map(|(v, c)| {
                        let ratio = match (pass(c), best) {
                            (Some(p), Some(b)) if b > 0.0 => Some(p / b),
                            _ => None,
                        };
                        ImpactRow {
                            value: v.clone(),
                            cases: c.cases,
                            scored: c.scored,
                            flagged: c.flagged,
                            flag_rate: (c.scored > 0).then(|| c.flagged as f64 / c.scored as f64),
                            impact_ratio: ratio,
                            below_four_fifths: ratio.is_some_and(|r| r < 0.8),
                            small: (c.scored as f64) < 0.02 * total_scored as f64,
                        }
                    })
                    .collect();
                ImpactTable {
                    column: g.clone(),
                    rows,
                }
            })
            .collect();
        BatchReport {
            batch_id,
            applicants: self.applicants,
            needs_review: self.needs_review,
            unscored: self.unscored,
            cases,
            impact,
            flagged_means: "the applicant's case needs review (label inconclusive or likely_manipulated); impact_ratio = (1 - flag_rate) / the highest (1 - flag_rate) among known values".into(),
            clusters: None,
        }
    }
}

/// The batch report: the `top` riskiest cases and the impact tables.
/// Streams the batch's items once, applicant by applicant; memory holds
/// `top` cases and one counter per group value.
pub async fn report(
    store: &Store,
    batch_id: &str,
    owner: Option<&str>,
    top: usize,
) -> Result<BatchReport> {
    let batch = store.batch(batch_id, owner).await?;
    let mut b = Builder {
        top,
        heap: BinaryHeap::new(),
        kept: Vec::new(),
        groups: batch.group_columns.clone(),
        counts: Vec::new(),
        applicants: 0,
        needs_review: 0,
        unscored: 0,
    };
    let mut cur: Vec<ItemRow> = Vec::new();
    let mut after: Option<(String, String)> = None;
    let mut first = true;
    loop {
        let page = store
            .items_page(
                batch_id,
                after.as_ref().map(|(a, i)| (a.as_str(), i.as_str())),
                PAGE,
            )
            .await?;
        if first {
            first = false;
            if b.groups.is_empty() {
                if let Some(it) = page.first() {
                    b.groups = it
                        .columns
                        .keys()
                        .filter(|k| k.starts_with("group:"))
                        .cloned()
                        .collect();
                }
            }
            b.counts = b.groups.iter().map(|_| BTreeMap::new()).collect();
        }
        let Some(last) = page.last() else {
            break;
        };
        after = Some((last.applicant_id.clone(), last.item_id.clone()));
        for it in page {
            if cur
                .first()
                .is_some_and(|c| c.applicant_id != it.applicant_id)
            {
                let items = std::mem::take(&mut cur);
                b.add(items[0].applicant_id.clone(), &items);
            }
            cur.push(it);
        }
    }
    if let Some(first) = cur.first() {
        b.add(first.applicant_id.clone(), &cur);
    }
    let found = clusters(store, batch_id, batch.owner.as_deref()).await?;
    let mut r = b.finish(batch.batch_id);
    r.clusters = found;
    Ok(r)
}
