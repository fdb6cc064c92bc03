//! Labelled sets: manifests in JSONL or CSV, or a directory layout.
//!
//! A manifest row names one file and its ground truth:
//!
//! ```text
//! {"path": "img/0001.jpg", "label": "manipulated", "group": "sdxl", "split": "test"}
//! ```
//!
//! Other fields are ignored. CSV manifests carry the same fields as header columns
//! (`path,label,group,split,source,modality`; only `path` and `label` are
//! required). Relative paths are resolved against the manifest's directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// Ground truth of one labelled item. `Manipulated` is the positive class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroundTruth {
    /// Made by a person and a camera / microphone / keyboard, unaltered.
    Authentic,
    /// Generated or altered by AI (positive class).
    Manipulated,
}

impl GroundTruth {
    /// `true` for the positive class (`Manipulated`).
    pub fn is_positive(self) -> bool {
        self == GroundTruth::Manipulated
    }

    /// Lower-case name as used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            GroundTruth::Authentic => "authentic",
            GroundTruth::Manipulated => "manipulated",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "authentic" => Some(GroundTruth::Authentic),
            "manipulated" => Some(GroundTruth::Manipulated),
            _ => None,
        }
    }
}

/// Which part of a labelled set a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Used to train a detector.
    Train,
    /// Used only to fit calibrations and choose thresholds.
    Calib,
    /// Held out: used only to measure.
    Test,
}

impl Split {
    /// Lower-case name as used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Calib => "calib",
            Split::Test => "test",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "train" => Some(Split::Train),
            "calib" => Some(Split::Calib),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One labelled file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// Path of the file; absolute after loading (resolved against the
    /// manifest's directory).
    pub path: PathBuf,
    /// Ground truth.
    pub label: GroundTruth,
    /// Sub-population, e.g. generator, codec, native / non-native writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Split the row belongs to; `None` means "not assigned".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Where the item came from (data set, URL, licence note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `image`, `audio` or `text` (free text, not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
}

/// Raw JSONL row (strings, so that errors can say what was wrong). Other
/// fields (a data set's own bookkeeping: speaker, codec, tool...) are
/// ignored, except near-misses of a known field name (`lable`), which are
/// errors.
#[derive(Deserialize)]
struct RawRow {
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
    path: Option<String>,
    label: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    split: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    modality: Option<String>,
}

/// The known field a key is a likely misspelling of (edit distance 1-2,
/// or the same letters in another order), if any.
fn near_miss(key: &str) -> Option<&'static str> {
    const KNOWN: [&str; 6] = ["path", "label", "group", "split", "source", "modality"];
    let k = key.to_ascii_lowercase();
    KNOWN.into_iter().find(|&f| {
        if k == f {
            return true; // different case, e.g. `Label`
        }
        let (a, b): (Vec<char>, Vec<char>) = (k.chars().collect(), f.chars().collect());
        let mut sa = a.clone();
        let mut sb = b.clone();
        sa.sort_unstable();
        sb.sort_unstable();
        sa == sb || edit_distance(&a, &b) <= 2.min(f.len() / 3)
    })
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Item counts per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Authentic items.
    pub authentic: usize,
    /// Manipulated items.
    pub manipulated: usize,
}

impl ClassCounts {
    /// Count one item.
    pub fn add(&mut self, label: GroundTruth) {
        match label {
            GroundTruth::Authentic => self.authentic += 1,
            GroundTruth::Manipulated => self.manipulated += 1,
        }
    }

    /// Both classes together.
    pub fn total(&self) -> usize {
        self.authentic + self.manipulated
    }
}

/// A labelled set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Short name (the manifest's file stem or the directory name).
    pub name: String,
    /// The manifest file or directory it was loaded from.
    pub origin: PathBuf,
    /// The rows, in file order (directory loads: sorted by path).
    pub items: Vec<ManifestItem>,
}

impl Manifest {
    /// Load a manifest file: `.jsonl` / `.json` / `.ndjson` as JSON lines,
    /// `.csv` as CSV, or a directory via [`Manifest::from_dir`].
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest> {
        let path = path.as_ref();
        if path.is_dir() {
            return Manifest::from_dir(path);
        }
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let label = path.display().to_string();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let items = match ext.as_str() {
            "csv" => parse_csv(&text, base, &label)?,
            "jsonl" | "json" | "ndjson" => parse_jsonl(&text, base, &label)?,
            other => {
                return Err(EvalError::InvalidInput(format!(
                    "{label}: unknown manifest extension `{other}` (expected .jsonl or .csv)"
                )))
            }
        };
        Ok(Manifest {
            name: stem(path),
            origin: path.to_path_buf(),
            items,
        })
    }

    /// Parse JSON-lines text; relative paths are resolved against `base`.
    pub fn from_jsonl_str(text: &str, base: &Path, name: &str) -> Result<Manifest> {
        Ok(Manifest {
            name: name.to_string(),
            origin: base.to_path_buf(),
            items: parse_jsonl(text, base, name)?,
        })
    }

    /// Parse CSV text (header row required); relative paths are resolved
    /// against `base`.
    pub fn from_csv_str(text: &str, base: &Path, name: &str) -> Result<Manifest> {
        Ok(Manifest {
            name: name.to_string(),
            origin: base.to_path_buf(),
            items: parse_csv(text, base, name)?,
        })
    }

    /// Build a set from a directory layout `DIR/authentic/**` and
    /// `DIR/manipulated/**`. The group of a file is the first sub-folder
    /// below its label folder, if any (`DIR/manipulated/sdxl/x.png` → `sdxl`).
    /// Hidden files (starting with `.`) are skipped; items are sorted by path.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Manifest> {
        let dir = dir.as_ref();
        let mut items = Vec::new();
        let mut found_any_label_dir = false;
        for label in [GroundTruth::Authentic, GroundTruth::Manipulated] {
            let root = dir.join(label.as_str());
            if !root.is_dir() {
                continue;
            }
            found_any_label_dir = true;
            let mut files = Vec::new();
            walk(&root, &mut files)?;
            files.sort();
            for f in files {
                let rel = f.strip_prefix(&root).unwrap_or(&f);
                let comps: Vec<_> = rel.components().collect();
                let group = if comps.len() > 1 {
                    Some(comps[0].as_os_str().to_string_lossy().into_owned())
                } else {
                    None
                };
                items.push(ManifestItem {
                    path: f,
                    label,
                    group,
                    split: None,
                    source: None,
                    modality: None,
                });
            }
        }
        if !found_any_label_dir {
            return Err(EvalError::InvalidInput(format!(
                "{}: expected sub-directories `authentic/` and/or `manipulated/`",
                dir.display()
            )));
        }
        if items.is_empty() {
            return Err(EvalError::EmptySet(dir.display().to_string()));
        }
        Ok(Manifest {
            name: stem(dir),
            origin: dir.to_path_buf(),
            items,
        })
    }

    /// Items per class.
    pub fn counts(&self) -> ClassCounts {
        let mut c = ClassCounts::default();
        for it in &self.items {
            c.add(it.label);
        }
        c
    }

    /// Items per class for every group (items without a group are left out).
    pub fn group_counts(&self) -> BTreeMap<String, ClassCounts> {
        let mut m: BTreeMap<String, ClassCounts> = BTreeMap::new();
        for it in &self.items {
            if let Some(g) = &it.group {
                m.entry(g.clone()).or_default().add(it.label);
            }
        }
        m
    }

    /// The rows of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &ManifestItem> {
        self.items.iter().filter(move |it| it.split == Some(split))
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| EvalError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| EvalError::io(dir, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let p = entry.path();
        let ft = entry.file_type().map_err(|e| EvalError::io(&p, e))?;
        if ft.is_dir() {
            walk(&p, out)?;
        } else if ft.is_file() || p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// Validate one row's fields and turn it into an item.
struct RowCheck<'a> {
    origin: &'a str,
    base: &'a Path,
    seen: HashMap<PathBuf, usize>,
}

impl RowCheck<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> EvalError {
        EvalError::Manifest {
            path: self.origin.to_string(),
            line,
            message: message.into(),
        }
    }

    fn item(&mut self, line: usize, raw: RawRow) -> Result<ManifestItem> {
        let path = raw
            .path
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| self.err(line, "missing or empty `path`"))?;
        let label_s = raw.label.ok_or_else(|| self.err(line, "missing `label`"))?;
        let label = GroundTruth::parse(&label_s).ok_or_else(|| {
            self.err(
                line,
                format!("label `{label_s}` is not one of `authentic`, `manipulated`"),
            )
        })?;
        let split = match raw.split.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(Split::parse(s).ok_or_else(|| {
                self.err(
                    line,
                    format!("split `{s}` is not one of `train`, `calib`, `test`"),
                )
            })?),
        };
        let p = PathBuf::from(&path);
        let resolved = if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        };
        if let Some(first) = self.seen.insert(resolved.clone(), line) {
            return Err(self.err(
                line,
                format!("duplicate path `{path}` (first on line {first})"),
            ));
        }
        let nonempty =
            |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(ManifestItem {
            path: resolved,
            label,
            group: nonempty(raw.group),
            split,
            source: nonempty(raw.source),
            modality: nonempty(raw.modality),
        })
    }
}

fn parse_jsonl(text: &str, base: &Path, origin: &str) -> Result<Vec<ManifestItem>> {
    let mut check = RowCheck {
        origin,
        base,
        seen: HashMap::new(),
    };
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let raw: RawRow = serde_json::from_str(l).map_err(|e| check.err(n, e.to_string()))?;
        if let Some((bad, known)) = raw.other.keys().find_map(|k| near_miss(k).map(|m| (k, m))) {
            return Err(check.err(
                n,
                format!("unknown field `{bad}` (did you mean `{known}`?)"),
            ));
        }
        items.push(check.item(n, raw)?);
    }
    if items.is_empty() {
        return Err(EvalError::EmptySet(origin.to_string()));
    }
    Ok(items)
}

/// Split CSV text into records of fields, with the 1-based line each record
/// starts on. Supports quoted fields with `""` escapes and embedded newlines.
fn csv_records(text: &str, origin: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut record_has_content = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                record_has_content = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                record_has_content = true;
            }
            '\r' => {}
            '\n' => {
                if record_has_content || !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                    out.push((start_line, std::mem::take(&mut fields)));
                }
                record_has_content = false;
                line += 1;
                start_line = line;
            }
            _ => {
                field.push(c);
                record_has_content = true;
            }
        }
    }
    if in_quotes {
        return Err(EvalError::Manifest {
            path: origin.to_string(),
            line: start_line,
            message: "unterminated quoted field".into(),
        });
    }
    if record_has_content || !field.is_empty() {
        fields.push(field);
        out.push((start_line, fields));
    }
    Ok(out)
}

const CSV_COLUMNS: [&str; 6] = ["path", "label", "group", "split", "source", "modality"];

fn parse_csv(text: &str, base: &Path, origin: &str) -> Result<Vec<ManifestItem>> {
    let mut check = RowCheck {
        origin,
        base,
        seen: HashMap::new(),
    };
    let records = csv_records(text.strip_prefix('\u{feff}').unwrap_or(text), origin)?;
    let mut it = records.into_iter();
    let (hline, header) = it
        .next()
        .ok_or_else(|| EvalError::EmptySet(origin.into()))?;
    let header: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let mut idx: HashMap<&str, usize> = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        let Some(col) = CSV_COLUMNS.iter().find(|c| **c == h.as_str()) else {
            return Err(check.err(
                hline,
                format!("unknown column `{h}` (known: {})", CSV_COLUMNS.join(", ")),
            ));
        };
        if idx.insert(col, i).is_some() {
            return Err(check.err(hline, format!("column `{h}` appears twice")));
        }
    }
    for required in ["path", "label"] {
        if !idx.contains_key(required) {
            return Err(check.err(hline, format!("header lacks required column `{required}`")));
        }
    }
    let mut items = Vec::new();
    for (line, rec) in it {
        if rec.len() != header.len() {
            return Err(check.err(
                line,
                format!("{} fields, header has {}", rec.len(), header.len()),
            ));
        }
        let get = |name: &str| idx.get(name).map(|&i| rec[i].clone());
        let raw = RawRow {
            other: BTreeMap::new(),
            path: get("path"),
            label: get("label"),
            group: get("group"),
            split: get("split"),
            source: get("source"),
            modality: get("modality"),
        };
        items.push(check.item(line, raw)?);
    }
    if items.is_empty() {
        return Err(EvalError::EmptySet(origin.to_string()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_resolves_relative_paths_and_reports_lines() {
        let base = Path::new("/data/set");
        let text = "{\"path\":\"a.jpg\",\"label\":\"authentic\",\"split\":\"calib\"}\n\n{\"path\":\"/abs/b.jpg\",\"label\":\"manipulated\",\"group\":\"sdxl\"}\n";
        let m = Manifest::from_jsonl_str(text, base, "t").unwrap();
        assert_eq!(m.items.len(), 2);
        assert_eq!(m.items[0].path, PathBuf::from("/data/set/a.jpg"));
        assert_eq!(m.items[0].split, Some(Split::Calib));
        assert_eq!(m.items[1].path, PathBuf::from("/abs/b.jpg"));
        assert_eq!(m.items[1].group.as_deref(), Some("sdxl"));

        let bad = "{\"path\":\"a\",\"label\":\"authentic\"}\n{\"path\":\"b\",\"label\":\"fake\"}\n";
        let e = Manifest::from_jsonl_str(bad, base, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t:2:") && e.contains("fake"), "{e}");
        let typo = "{\"path\":\"a\",\"lable\":\"authentic\"}\n";
        let e = Manifest::from_jsonl_str(typo, base, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t:1:") && e.contains("lable"), "{e}");
        let dup =
            "{\"path\":\"a\",\"label\":\"authentic\"}\n{\"path\":\"a\",\"label\":\"authentic\"}\n";
        let e = Manifest::from_jsonl_str(dup, base, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t:2:") && e.contains("line 1"), "{e}");
        // Bookkeeping fields are ignored; near-misses of known ones are not.
        let extra =
            "{\"path\":\"a\",\"label\":\"authentic\",\"speaker\":\"103\",\"codec\":\"opus16\"}\n";
        assert_eq!(
            Manifest::from_jsonl_str(extra, base, "t")
                .unwrap()
                .items
                .len(),
            1
        );
        let e = Manifest::from_jsonl_str(
            "{\"path\":\"a\",\"label\":\"authentic\",\"grup\":\"x\"}\n",
            base,
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("grup") && e.contains("group"), "{e}");
        let split = "{\"path\":\"a\",\"label\":\"authentic\",\"split\":\"val\"}\n";
        assert!(Manifest::from_jsonl_str(split, base, "t").is_err());
        assert!(Manifest::from_jsonl_str("\n\n", base, "t").is_err());
    }

    #[test]
    fn csv_with_quotes_and_errors() {
        let base = Path::new("/d");
        let text = "path,label,group,split\n\"x, y.wav\",manipulated,\"tts \"\"v2\"\"\",test\nz.wav,authentic,,\n";
        let m = Manifest::from_csv_str(text, base, "c").unwrap();
        assert_eq!(m.items[0].path, PathBuf::from("/d/x, y.wav"));
        assert_eq!(m.items[0].group.as_deref(), Some("tts \"v2\""));
        assert_eq!(m.items[1].group, None);
        assert_eq!(m.items[1].split, None);
        assert_eq!(
            m.counts(),
            ClassCounts {
                authentic: 1,
                manipulated: 1
            }
        );

        let e = Manifest::from_csv_str("path,label\na,authentic\nb\n", base, "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c:3:"), "{e}");
        let e = Manifest::from_csv_str("path,lbl\na,authentic\n", base, "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c:1:") && e.contains("lbl"), "{e}");
    }

    #[test]
    fn directory_layout_groups_by_first_subfolder() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for p in [
            "authentic/a.jpg",
            "authentic/studio/b.jpg",
            "manipulated/sdxl/deep/c.png",
            "manipulated/.hidden",
        ] {
            let f = d.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"x").unwrap();
        }
        let m = Manifest::from_dir(d).unwrap();
        assert_eq!(m.items.len(), 3);
        assert_eq!(m.items[0].group, None);
        assert_eq!(m.items[1].group.as_deref(), Some("studio"));
        assert_eq!(m.items[2].group.as_deref(), Some("sdxl"));
        assert_eq!(m.items[2].label, GroundTruth::Manipulated);
        assert!(Manifest::from_dir(d.join("authentic")).is_err());
    }
}
