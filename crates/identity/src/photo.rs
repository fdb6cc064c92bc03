//! Same-photograph lookup: a picture's three 64-bit perceptual hashes
//! (the whole picture, the aligned face in a wide and in a close framing;
//! see the image detector's `phash`) and an exact scan by Hamming distance.
//!
//! The scan reads 32 bytes per picture (id and three hashes, in four
//! arrays) and does three XOR-popcounts each, compiled for the CPU's
//! `popcnt` when it has one (the build's x86-64 baseline lacks it).

/// A picture's hashes. The face hashes are absent when no face was found
/// (the close one also in pictures hashed before it existed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoHashes {
    pub whole: u64,
    pub face: Option<u64>,
    pub close: Option<u64>,
}

/// Stands for "no face" in the face arrays. A DCT hash never has bit 0
/// set (the mean term's bit), so no real hash equals it.
const NO_FACE: u64 = u64::MAX;

/// Bits in which two pictures' hashes differ: the whole pictures, and the
/// faces in each framing (when both have one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Distances {
    pub whole: u32,
    pub face: Option<u32>,
    pub close: Option<u32>,
}

impl Distances {
    /// The matching rule: the closest of the distances (a picture matches
    /// when its whole or either face framing is the same photograph).
    pub fn bits(&self) -> u32 {
        self.whole
            .min(self.face.unwrap_or(u32::MAX))
            .min(self.close.unwrap_or(u32::MAX))
    }
}

fn hex(h: Option<u64>) -> String {
    h.map_or(String::new(), |h| format!("{h:016x}"))
}

impl PhotoHashes {
    /// The stored form: `whole`, `whole:face` or `whole:face:close`, 16 hex
    /// digits each (an empty field for a missing hash).
    pub fn encode(&self) -> String {
        match (self.face, self.close) {
            (None, None) => format!("{:016x}", self.whole),
            (f, None) => format!("{:016x}:{}", self.whole, hex(f)),
            (f, c) => format!("{:016x}:{}:{}", self.whole, hex(f), hex(c)),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() > 3 {
            return None;
        }
        let field = |i: usize| -> Option<Option<u64>> {
            match parts.get(i) {
                None | Some(&"") => Some(None),
                Some(x) => u64::from_str_radix(x, 16).ok().map(Some),
            }
        };
        Some(PhotoHashes {
            whole: u64::from_str_radix(parts[0], 16).ok()?,
            face: field(1)?,
            close: field(2)?,
        })
    }

    /// Bits in which the two pictures differ.
    pub fn distances(&self, other: &PhotoHashes) -> Distances {
        let d = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| (a ^ b).count_ones());
        Distances {
            whole: (self.whole ^ other.whole).count_ones(),
            face: d(self.face, other.face),
            close: d(self.close, other.close),
        }
    }
}

impl From<&candor_core::PhotoTemplate> for PhotoHashes {
    fn from(p: &candor_core::PhotoTemplate) -> Self {
        PhotoHashes {
            whole: p.whole,
            face: p.face,
            close: p.face_close,
        }
    }
}

/// One hit: the id, and the bits in which the hashes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhotoHit {
    /// The closest of the distances (what the threshold applies to).
    pub bits: u32,
    pub distances: Distances,
    pub id: u64,
}

/// The pictures of one scope.
#[derive(Debug, Clone, Default)]
pub struct PhotoIndex {
    ids: Vec<u64>,
    whole: Vec<u64>,
    face: Vec<u64>,
    close: Vec<u64>,
}

/// A query's hashes, [`NO_FACE`] for a missing one.
#[derive(Clone, Copy)]
struct Query {
    whole: u64,
    face: u64,
    close: u64,
}

#[inline(always)]
fn dist(a: u64, b: u64) -> u32 {
    // A missing face on either side never matches by face.
    if a == NO_FACE || b == NO_FACE {
        u32::MAX
    } else {
        (a ^ b).count_ones()
    }
}

/// Rows of the three hash arrays.
#[derive(Clone, Copy)]
struct Cols<'a> {
    whole: &'a [u64],
    face: &'a [u64],
    close: &'a [u64],
}

#[inline(always)]
fn scan_rows(c: Cols<'_>, q: Query, max: u32) -> Vec<usize> {
    let mut out = Vec::new();
    let rows = c.whole.iter().zip(c.face).zip(c.close).enumerate();
    for (r, ((&w, &f), &cl)) in rows {
        let d = (w ^ q.whole)
            .count_ones()
            .min(dist(f, q.face))
            .min(dist(cl, q.close));
        if d <= max {
            out.push(r);
        }
    }
    out
}

/// [`scan_rows`] with the CPU's `popcnt` when it has one.
fn scan(c: Cols<'_>, q: Query, max: u32) -> Vec<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "popcnt")]
        fn fast(c: Cols<'_>, q: Query, max: u32) -> Vec<usize> {
            scan_rows(c, q, max)
        }
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has the feature `fast` is compiled for.
            return unsafe { fast(c, q, max) };
        }
    }
    scan_rows(c, q, max)
}

/// Rows per scan thread at least (below, one thread: spawning costs more
/// than it saves).
const ROWS_PER_THREAD: usize = 1 << 16;

impl PhotoIndex {
    pub fn insert(&mut self, id: u64, h: PhotoHashes) {
        self.ids.push(id);
        self.whole.push(h.whole);
        self.face.push(h.face.unwrap_or(NO_FACE));
        self.close.push(h.close.unwrap_or(NO_FACE));
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Removes every picture with an id for which `gone` is true.
    pub fn remove_where(&mut self, gone: impl Fn(u64) -> bool) -> usize {
        let before = self.ids.len();
        let mut w = 0;
        for r in 0..self.ids.len() {
            if gone(self.ids[r]) {
                continue;
            }
            self.ids[w] = self.ids[r];
            self.whole[w] = self.whole[r];
            self.face[w] = self.face[r];
            self.close[w] = self.close[r];
            w += 1;
        }
        self.ids.truncate(w);
        self.whole.truncate(w);
        self.face.truncate(w);
        self.close.truncate(w);
        before - w
    }

    /// Pictures whose whole-picture or either face hash differs from
    /// `q`'s in at most `max_bits` bits, closest first, scanning on up to
    /// `threads` threads (the scan is bound by memory bandwidth: 24 MiB
    /// per 10^6 pictures).
    pub fn search(&self, q: &PhotoHashes, max_bits: u32, threads: usize) -> Vec<PhotoHit> {
        let query = Query {
            whole: q.whole,
            face: q.face.unwrap_or(NO_FACE),
            close: q.close.unwrap_or(NO_FACE),
        };
        let n = self.ids.len();
        let threads = threads.clamp(1, 16).min(n.div_ceil(ROWS_PER_THREAD).max(1));
        let per = n.div_ceil(threads).max(1);
        let part = |lo: usize| {
            let hi = (lo + per).min(n);
            let cols = Cols {
                whole: &self.whole[lo..hi],
                face: &self.face[lo..hi],
                close: &self.close[lo..hi],
            };
            scan(cols, query, max_bits)
                .into_iter()
                .map(move |r| r + lo)
                .collect::<Vec<usize>>()
        };
        let rows: Vec<usize> = if threads == 1 {
            part(0)
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..n)
                    .step_by(per)
                    .map(|lo| s.spawn(move || part(lo)))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        let some = |h: u64| (h != NO_FACE).then_some(h);
        let mut hits: Vec<PhotoHit> = rows
            .into_iter()
            .map(|r| {
                let stored = PhotoHashes {
                    whole: self.whole[r],
                    face: some(self.face[r]),
                    close: some(self.close[r]),
                };
                let distances = q.distances(&stored);
                PhotoHit {
                    bits: distances.bits(),
                    distances,
                    id: self.ids[r],
                }
            })
            .collect();
        hits.sort_unstable();
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(whole: u64, face: Option<u64>, close: Option<u64>) -> PhotoHashes {
        PhotoHashes { whole, face, close }
    }

    #[test]
    fn finds_by_any_hash_and_round_trips() {
        let mut idx = PhotoIndex::default();
        let a = hashes(
            0xf0f0_0000_1234_5670,
            Some(0x0ff0_aaaa_0000_0002),
            Some(0x1234_0000_ffff_0010),
        );
        idx.insert(1, a);
        idx.insert(2, hashes(!a.whole, None, None));
        idx.insert(3, hashes(a.whole ^ 0b111, None, None));
        // Re-cropped: the whole hash moved, the faces did not.
        let q = hashes(
            a.whole ^ 0xffff_ffff,
            Some(a.face.unwrap() ^ 0b110),
            Some(a.close.unwrap() ^ 0b1110),
        );
        let hits = idx.search(&q, 8, 1);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!((hits[0].id, hits[0].bits), (1, 2));
        assert_eq!(
            hits[0].distances,
            Distances {
                whole: 32,
                face: Some(2),
                close: Some(3)
            }
        );
        // Cut into the background: the wide framing moved too, the close
        // one did not.
        let q = hashes(
            a.whole ^ 0xffff_0000_ffff_0000,
            Some(!a.face.unwrap()),
            Some(a.close.unwrap() ^ 0b10),
        );
        let hits = idx.search(&q, 8, 1);
        assert_eq!(
            hits.iter().map(|h| (h.id, h.bits)).collect::<Vec<_>>(),
            [(1, 1)]
        );
        // The whole hash alone; closest first.
        let hits = idx.search(&hashes(a.whole, None, None), 8, 1);
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(hits[1].bits, 3);
        assert_eq!(idx.remove_where(|id| id == 1), 1);
        assert_eq!(idx.len(), 2);
        assert!(idx.search(&q, 8, 1).is_empty());
        for h in [
            a,
            hashes(5, None, None),
            hashes(5, Some(6), None),
            hashes(5, None, Some(7)),
        ] {
            assert_eq!(PhotoHashes::decode(&h.encode()), Some(h));
        }
        // Rows stored before the close framing existed.
        assert_eq!(
            PhotoHashes::decode("00000000000000f0:0000000000000e00"),
            Some(hashes(0xf0, Some(0xe00), None))
        );
        assert_eq!(PhotoHashes::decode("zz"), None);
        assert_eq!(PhotoHashes::decode("1:2:zz"), None);
        assert_eq!(PhotoHashes::decode("1:2:3:4"), None);
    }

    /// Split over threads, the scan finds what one thread finds.
    #[test]
    fn threads_find_what_one_finds() {
        let mut idx = PhotoIndex::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x & !1
        };
        let q = hashes(next(), Some(next()), Some(next()));
        for id in 0..3 * ROWS_PER_THREAD as u64 + 17 {
            let h = match id % 50_000 {
                // Planted near copies, one per hash, spread over the rows.
                7 => hashes(q.whole ^ 0b1010, None, None),
                8 => hashes(next(), Some(q.face.unwrap() ^ 0b110), None),
                9 => hashes(next(), Some(next()), Some(q.close.unwrap() ^ 0b1)),
                _ => hashes(next(), Some(next()), Some(next())),
            };
            idx.insert(id, h);
        }
        let one = idx.search(&q, 7, 1);
        assert_eq!(one.len(), 12, "{one:?}");
        for threads in [2, 3, 8] {
            assert_eq!(idx.search(&q, 7, threads), one, "{threads} threads");
        }
    }
}
