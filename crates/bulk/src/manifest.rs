//! What a batch screens: a manifest (CSV or JSONL) or a directory tree.
//!
//! * **CSV**: a header row with `applicant_id` and one file column (`files`,
//!   `file`, `paths` or `path`; several paths in one cell are separated by
//!   `;` or `|`). Every other column is kept as-is (hire date, team, and
//!   the group columns an impact report may use).
//! * **JSONL**: one object per line with `applicant_id` and `files` (an
//!   array) or `file` (a string); every other key is kept (non-strings as
//!   their JSON text).
//! * **A directory**: one folder per applicant (the folder's name is the
//!   `applicant_id`), every file below it an item.
//!
//! A listed path that is a directory stands for every file below it. Paths
//! relative to a manifest are relative to the manifest's folder. Hidden
//! entries (names starting with `.`) are skipped. Files need not exist when
//! the batch is submitted: a missing file is an item whose error is
//! recorded when a worker reaches it.
//!
//! The reader streams: [`ManifestReader::next_chunk`] gives at most `n`
//! items at a time, so a million-row manifest never sits in memory whole.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{BulkError, Result};

/// One file of one applicant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestItem {
    pub applicant_id: String,
    /// Absolute (or as given, when the manifest's folder is unknown) path.
    pub path: String,
    /// The row's other columns, as given.
    pub columns: BTreeMap<String, String>,
}

/// Bounds on what a manifest may expand to.
#[derive(Debug, Clone)]
pub struct ManifestLimits {
    /// Most bytes read from a manifest file.
    pub max_manifest_bytes: u64,
    /// Most files one applicant may have (after directories are expanded).
    pub max_files_per_applicant: usize,
    /// Longest accepted `applicant_id`, in bytes.
    pub max_applicant_id_bytes: usize,
}

impl Default for ManifestLimits {
    fn default() -> Self {
        ManifestLimits {
            max_manifest_bytes: 1 << 30,
            max_files_per_applicant: 1000,
            max_applicant_id_bytes: 256,
        }
    }
}

/// Names accepted for the file column.
const FILE_COLUMNS: [&str; 4] = ["files", "file", "paths", "path"];

enum Source {
    Csv {
        rows: csv::StringRecordsIntoIter<std::io::Take<BufReader<File>>>,
        id_col: usize,
        file_col: usize,
        headers: Vec<String>,
        line: u64,
    },
    Jsonl {
        lines: std::io::Lines<BufReader<std::io::Take<BufReader<File>>>>,
        line: u64,
    },
    Tree {
        applicants: std::vec::IntoIter<PathBuf>,
    },
}

/// Streams the items of a manifest or directory tree.
pub struct ManifestReader {
    source: Source,
    base: Option<PathBuf>,
    limits: ManifestLimits,
    pending: VecDeque<ManifestItem>,
    filter: Option<ItemFilter>,
    /// Number of items read so far.
    pub items_read: u64,
}

/// A change applied to every item as it is read.
type ItemFilter = Box<dyn FnMut(&mut ManifestItem) + Send>;

impl std::fmt::Debug for ManifestReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestReader")
            .field("items_read", &self.items_read)
            .finish()
    }
}

fn io_err(path: &Path, source: std::io::Error) -> BulkError {
    BulkError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl ManifestReader {
    /// Opens `path`: a directory (one folder per applicant), a `.jsonl` /
    /// `.ndjson` file, or a CSV file (any other name).
    pub fn open(path: &Path, limits: ManifestLimits) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        if meta.is_dir() {
            let root = path.canonicalize().map_err(|e| io_err(path, e))?;
            let mut applicants = Vec::new();
            for e in std::fs::read_dir(&root).map_err(|e| io_err(&root, e))? {
                let e = e.map_err(|e| io_err(&root, e))?;
                let hidden = e.file_name().to_string_lossy().starts_with('.');
                if !hidden && e.file_type().map_err(|x| io_err(&e.path(), x))?.is_dir() {
                    applicants.push(e.path());
                }
            }
            applicants.sort();
            return Ok(ManifestReader {
                source: Source::Tree {
                    applicants: applicants.into_iter(),
                },
                base: Some(root),
                limits,
                pending: VecDeque::new(),
                filter: None,
                items_read: 0,
            });
        }
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let bounded = BufReader::new(file).take(limits.max_manifest_bytes);
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let source = if ext == "jsonl" || ext == "ndjson" {
            Source::Jsonl {
                lines: BufReader::new(bounded).lines(),
                line: 0,
            }
        } else {
            let mut rdr = csv::ReaderBuilder::new()
                .flexible(false)
                .trim(csv::Trim::All)
                .from_reader(bounded);
            let headers: Vec<String> = rdr
                .headers()
                .map_err(|e| BulkError::Manifest(format!("CSV header: {e}")))?
                .iter()
                .map(str::to_owned)
                .collect();
            let id_col = headers
                .iter()
                .position(|h| h == "applicant_id")
                .ok_or_else(|| {
                    BulkError::Manifest("the CSV header has no `applicant_id` column".to_owned())
                })?;
            let file_col = headers
                .iter()
                .position(|h| FILE_COLUMNS.contains(&h.as_str()))
                .ok_or_else(|| {
                    BulkError::Manifest(
                        "the CSV header has no file column (`files`, `file`, `paths` or `path`)"
                            .to_owned(),
                    )
                })?;
            Source::Csv {
                rows: rdr.into_records(),
                id_col,
                file_col,
                headers,
                line: 1,
            }
        };
        Ok(ManifestReader {
            source,
            base,
            limits,
            pending: VecDeque::new(),
            filter: None,
            items_read: 0,
        })
    }

    /// Applies `f` to every item as it is read (the server uses it to keep
    /// paths inside its bulk roots).
    pub fn with_filter(mut self, f: impl FnMut(&mut ManifestItem) + Send + 'static) -> Self {
        self.filter = Some(Box::new(f));
        self
    }

    /// Up to `n` more items; empty when the manifest is exhausted.
    pub fn next_chunk(&mut self, n: usize) -> Result<Vec<ManifestItem>> {
        let n = n.max(1);
        while self.pending.len() < n {
            if !self.read_row()? {
                break;
            }
        }
        let take = n.min(self.pending.len());
        let mut out: Vec<ManifestItem> = self.pending.drain(..take).collect();
        if let Some(f) = self.filter.as_mut() {
            for item in &mut out {
                f(item);
            }
        }
        self.items_read += out.len() as u64;
        Ok(out)
    }

    /// Reads one more row (or applicant folder) into `pending`; false at the end.
    fn read_row(&mut self) -> Result<bool> {
        let (applicant, paths, columns, where_) = match &mut self.source {
            Source::Csv {
                rows,
                id_col,
                file_col,
                headers,
                line,
            } => {
                let Some(rec) = rows.next() else {
                    return Ok(false);
                };
                *line += 1;
                let rec = rec.map_err(|e| BulkError::Manifest(format!("CSV: {e}")))?;
                let applicant = rec.get(*id_col).unwrap_or("").to_owned();
                let paths: Vec<String> = rec
                    .get(*file_col)
                    .unwrap_or("")
                    .split([';', '|'])
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                let mut columns = BTreeMap::new();
                for (i, h) in headers.iter().enumerate() {
                    if i != *id_col && i != *file_col {
                        columns.insert(h.clone(), rec.get(i).unwrap_or("").to_owned());
                    }
                }
                (applicant, paths, columns, format!("CSV row {line}"))
            }
            Source::Jsonl { lines, line } => {
                let text = loop {
                    let Some(l) = lines.next() else {
                        return Ok(false);
                    };
                    *line += 1;
                    let l = l.map_err(|e| BulkError::Manifest(format!("line {line}: {e}")))?;
                    if !l.trim().is_empty() {
                        break l;
                    }
                };
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| BulkError::Manifest(format!("line {line}: {e}")))?;
                let serde_json::Value::Object(obj) = v else {
                    return Err(BulkError::Manifest(format!(
                        "line {line}: expected a JSON object"
                    )));
                };
                let mut applicant = String::new();
                let mut paths = Vec::new();
                let mut columns = BTreeMap::new();
                for (k, v) in obj {
                    match (k.as_str(), v) {
                        ("applicant_id", serde_json::Value::String(s)) => applicant = s,
                        ("applicant_id", serde_json::Value::Number(n)) => applicant = n.to_string(),
                        ("files" | "paths", serde_json::Value::Array(a)) => {
                            for p in a {
                                match p {
                                    serde_json::Value::String(s) => paths.push(s),
                                    _ => {
                                        return Err(BulkError::Manifest(format!(
                                            "line {line}: `{k}` must hold strings"
                                        )))
                                    }
                                }
                            }
                        }
                        ("file" | "path" | "files" | "paths", serde_json::Value::String(s)) => {
                            paths.push(s)
                        }
                        ("file" | "path" | "files" | "paths", _) => {
                            return Err(BulkError::Manifest(format!(
                                "line {line}: `{k}` must be a path or an array of paths"
                            )))
                        }
                        (_, serde_json::Value::String(s)) => {
                            columns.insert(k, s);
                        }
                        (_, serde_json::Value::Null) => {
                            columns.insert(k, String::new());
                        }
                        (_, other) => {
                            columns.insert(k, other.to_string());
                        }
                    }
                }
                (applicant, paths, columns, format!("line {line}"))
            }
            Source::Tree { applicants } => {
                let Some(dir) = applicants.next() else {
                    return Ok(false);
                };
                let applicant = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let where_ = format!("folder {}", dir.display());
                (
                    applicant,
                    vec![dir.display().to_string()],
                    BTreeMap::new(),
                    where_,
                )
            }
        };
        let applicant = applicant.trim().to_owned();
        if applicant.is_empty() {
            return Err(BulkError::Manifest(format!("{where_}: empty applicant_id")));
        }
        if applicant.len() > self.limits.max_applicant_id_bytes {
            return Err(BulkError::Manifest(format!(
                "{where_}: applicant_id is {} bytes long, at most {} are accepted",
                applicant.len(),
                self.limits.max_applicant_id_bytes
            )));
        }
        if paths.is_empty() {
            return Err(BulkError::Manifest(format!(
                "{where_}: applicant `{applicant}` lists no file"
            )));
        }
        let mut files = Vec::new();
        for p in paths {
            let p = self.resolve(&p);
            expand(&p, &mut files, self.limits.max_files_per_applicant).map_err(|e| match e {
                BulkError::Limit { code, message } => BulkError::Limit {
                    code,
                    message: format!("{where_}: applicant `{applicant}`: {message}"),
                },
                other => other,
            })?;
        }
        for path in files {
            self.pending.push_back(ManifestItem {
                applicant_id: applicant.clone(),
                path,
                columns: columns.clone(),
            });
        }
        Ok(true)
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        match (&self.base, path.is_absolute()) {
            (Some(base), false) => base.join(path),
            _ => path,
        }
    }
}

/// `path` itself, or every regular file below it when it is a directory
/// (sorted, hidden entries skipped, symbolic links not followed into
/// directories).
fn expand(path: &Path, out: &mut Vec<String>, max: usize) -> Result<()> {
    let is_dir = std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false);
    if !is_dir {
        push_file(path, out, max)?;
        return Ok(());
    }
    let mut stack = vec![path.to_path_buf()];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let e = e.map_err(|e| io_err(&dir, e))?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = e.file_type().map_err(|x| io_err(&e.path(), x))?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() || ft.is_symlink() {
                found.push(e.path());
                if out.len() + found.len() > max {
                    return Err(too_many(max));
                }
            }
        }
    }
    found.sort();
    for f in found {
        push_file(&f, out, max)?;
    }
    Ok(())
}

fn push_file(path: &Path, out: &mut Vec<String>, max: usize) -> Result<()> {
    let s = path.display().to_string();
    if !out.contains(&s) {
        if out.len() >= max {
            return Err(too_many(max));
        }
        out.push(s);
    }
    Ok(())
}

fn too_many(max: usize) -> BulkError {
    BulkError::Limit {
        code: "max_files_per_applicant",
        message: format!("more than {max} files"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(r: &mut ManifestReader) -> Vec<ManifestItem> {
        let mut v = Vec::new();
        loop {
            let c = r.next_chunk(2).unwrap();
            if c.is_empty() {
                return v;
            }
            v.extend(c);
        }
    }

    #[test]
    fn csv_keeps_free_columns_and_expands_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/docs")).unwrap();
        std::fs::write(d.path().join("a/docs/cv.txt"), "x").unwrap();
        std::fs::write(d.path().join("a/docs/.hidden"), "x").unwrap();
        std::fs::write(d.path().join("a/photo.jpg"), "x").unwrap();
        let m = d.path().join("m.csv");
        std::fs::write(
            &m,
            "applicant_id,files,hire_date,group:sex\n\
             A1,a/photo.jpg;a/docs,2024-01-02,F\n\
             B2,/nope/missing.wav,2023-05-06,M\n",
        )
        .unwrap();
        let mut r = ManifestReader::open(&m, ManifestLimits::default()).unwrap();
        let items = all(&mut r);
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].applicant_id, "A1");
        assert!(items[0].path.ends_with("a/photo.jpg"));
        assert!(items[1].path.ends_with("a/docs/cv.txt"));
        assert_eq!(items[2].path, "/nope/missing.wav");
        assert_eq!(items[2].columns["hire_date"], "2023-05-06");
        assert_eq!(items[0].columns["group:sex"], "F");
        assert_eq!(r.items_read, 3);
    }

    #[test]
    fn jsonl_and_tree() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m.jsonl");
        std::fs::write(
            &m,
            "{\"applicant_id\":\"x\",\"files\":[\"/a\",\"/b\"],\"team\":\"ops\",\"age\":41}\n\n\
             {\"applicant_id\":7,\"file\":\"/c\"}\n",
        )
        .unwrap();
        let items = all(&mut ManifestReader::open(&m, ManifestLimits::default()).unwrap());
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].columns["team"], "ops");
        assert_eq!(items[0].columns["age"], "41");
        assert_eq!(items[2].applicant_id, "7");

        let t = d.path().join("tree");
        for (a, f) in [("p1", "x.png"), ("p1", "y.txt"), ("p2", "z.wav")] {
            std::fs::create_dir_all(t.join(a)).unwrap();
            std::fs::write(t.join(a).join(f), "x").unwrap();
        }
        let items = all(&mut ManifestReader::open(&t, ManifestLimits::default()).unwrap());
        let got: Vec<(&str, bool)> = items
            .iter()
            .map(|i| (i.applicant_id.as_str(), i.path.ends_with(".wav")))
            .collect();
        assert_eq!(got, [("p1", false), ("p1", false), ("p2", true)]);
    }

    #[test]
    fn bad_manifests_are_clear_errors() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m.csv");
        std::fs::write(&m, "id,files\n1,/a\n").unwrap();
        let e = ManifestReader::open(&m, ManifestLimits::default()).unwrap_err();
        assert!(e.to_string().contains("applicant_id"), "{e}");
        std::fs::write(&m, "applicant_id,files\n,/a\n").unwrap();
        let mut r = ManifestReader::open(&m, ManifestLimits::default()).unwrap();
        let e = r.next_chunk(10).unwrap_err();
        assert!(e.to_string().contains("empty applicant_id"), "{e}");
        let j = d.path().join("m.jsonl");
        std::fs::write(&j, "{not json\n").unwrap();
        let mut r = ManifestReader::open(&j, ManifestLimits::default()).unwrap();
        assert!(r.next_chunk(10).unwrap_err().to_string().contains("line 1"));
        std::fs::create_dir_all(d.path().join("big")).unwrap();
        for i in 0..5 {
            std::fs::write(d.path().join(format!("big/{i}")), "x").unwrap();
        }
        std::fs::write(&m, "applicant_id,files\nA,big\n").unwrap();
        let limits = ManifestLimits {
            max_files_per_applicant: 3,
            ..Default::default()
        };
        let mut r = ManifestReader::open(&m, limits).unwrap();
        let e = r.next_chunk(10).unwrap_err();
        assert!(matches!(e, BulkError::Limit { .. }), "{e}");
    }
}
