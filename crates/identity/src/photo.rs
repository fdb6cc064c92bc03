//! Same-photograph lookup: a picture's two 64-bit perceptual hashes (the
//! whole picture, the aligned face; see the image detector's `phash`) and
//! an exact scan by Hamming distance.
//!
//! The scan reads 24 bytes per picture (id and two hashes, in three
//! arrays) and does two XOR-popcounts each, compiled for the CPU's
//! `popcnt` when it has one (the build's x86-64 baseline lacks it).

/// A picture's hashes. The face hash is absent when no face was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoHashes {
    pub whole: u64,
    pub face: Option<u64>,
}

/// Stands for "no face" in the face array. A DCT hash never has bit 0
/// set (the mean term's bit), so no real hash equals it.
const NO_FACE: u64 = u64::MAX;

impl PhotoHashes {
    /// The stored form: `whole` or `whole:face`, 16 hex digits each.
    pub fn encode(&self) -> String {
        match self.face {
            Some(f) => format!("{:016x}:{f:016x}", self.whole),
            None => format!("{:016x}", self.whole),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut it = s.split(':');
        let whole = u64::from_str_radix(it.next()?, 16).ok()?;
        let face = match it.next() {
            Some(f) => Some(u64::from_str_radix(f, 16).ok()?),
            None => None,
        };
        if it.next().is_some() {
            return None;
        }
        Some(PhotoHashes { whole, face })
    }

    /// Bits in which the whole pictures differ, and the faces (when both
    /// have one).
    pub fn distances(&self, other: &PhotoHashes) -> (u32, Option<u32>) {
        (
            (self.whole ^ other.whole).count_ones(),
            self.face.zip(other.face).map(|(a, b)| (a ^ b).count_ones()),
        )
    }

    /// The matching rule: the closer of the two distances (a picture
    /// matches when either its whole or its face is the same photograph).
    pub fn bits((whole, face): (u32, Option<u32>)) -> u32 {
        whole.min(face.unwrap_or(u32::MAX))
    }
}

impl From<&candor_core::PhotoTemplate> for PhotoHashes {
    fn from(p: &candor_core::PhotoTemplate) -> Self {
        PhotoHashes {
            whole: p.whole,
            face: p.face,
        }
    }
}

/// One hit: the id, and the bits the whole pictures and the faces differ in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhotoHit {
    /// The closer of the two distances (what the threshold applies to).
    pub bits: u32,
    pub whole_bits: u32,
    pub face_bits: Option<u32>,
    pub id: u64,
}

/// The pictures of one scope.
#[derive(Debug, Clone, Default)]
pub struct PhotoIndex {
    ids: Vec<u64>,
    whole: Vec<u64>,
    face: Vec<u64>,
}

#[inline(always)]
fn scan_rows(whole: &[u64], face: &[u64], w: u64, f: u64, max: u32) -> Vec<usize> {
    let mut out = Vec::new();
    for (r, (&a, &b)) in whole.iter().zip(face).enumerate() {
        let dw = (a ^ w).count_ones();
        // A missing face on either side never matches by face.
        let df = if b == NO_FACE || f == NO_FACE {
            u32::MAX
        } else {
            (b ^ f).count_ones()
        };
        if dw.min(df) <= max {
            out.push(r);
        }
    }
    out
}

/// [`scan_rows`] with the CPU's `popcnt` when it has one.
fn scan(whole: &[u64], face: &[u64], w: u64, f: u64, max: u32) -> Vec<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "popcnt")]
        fn fast(whole: &[u64], face: &[u64], w: u64, f: u64, max: u32) -> Vec<usize> {
            scan_rows(whole, face, w, f, max)
        }
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has the feature `fast` is compiled for.
            return unsafe { fast(whole, face, w, f, max) };
        }
    }
    scan_rows(whole, face, w, f, max)
}

impl PhotoIndex {
    pub fn insert(&mut self, id: u64, h: PhotoHashes) {
        self.ids.push(id);
        self.whole.push(h.whole);
        self.face.push(h.face.unwrap_or(NO_FACE));
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
            w += 1;
        }
        self.ids.truncate(w);
        self.whole.truncate(w);
        self.face.truncate(w);
        before - w
    }

    /// Pictures whose whole-picture or face hash differs from `q`'s in at
    /// most `max_bits` bits, closest first.
    pub fn search(&self, q: &PhotoHashes, max_bits: u32) -> Vec<PhotoHit> {
        let f = q.face.unwrap_or(NO_FACE);
        let mut hits: Vec<PhotoHit> = scan(&self.whole, &self.face, q.whole, f, max_bits)
            .into_iter()
            .map(|r| {
                let stored = PhotoHashes {
                    whole: self.whole[r],
                    face: (self.face[r] != NO_FACE).then_some(self.face[r]),
                };
                let (whole_bits, face_bits) = q.distances(&stored);
                PhotoHit {
                    bits: PhotoHashes::bits((whole_bits, face_bits)),
                    whole_bits,
                    face_bits,
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

    #[test]
    fn finds_by_either_hash_and_round_trips() {
        let mut idx = PhotoIndex::default();
        let a = PhotoHashes {
            whole: 0xf0f0_0000_1234_5670,
            face: Some(0x0ff0_aaaa_0000_0002),
        };
        idx.insert(1, a);
        idx.insert(
            2,
            PhotoHashes {
                whole: !a.whole,
                face: None,
            },
        );
        idx.insert(
            3,
            PhotoHashes {
                whole: a.whole ^ 0b111,
                face: None,
            },
        );
        // Re-cropped: the whole hash moved, the face did not.
        let q = PhotoHashes {
            whole: a.whole ^ 0xffff_ffff,
            face: Some(a.face.unwrap() ^ 0b110),
        };
        let hits = idx.search(&q, 8);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!((hits[0].id, hits[0].bits, hits[0].whole_bits), (1, 2, 32));
        assert_eq!(hits[0].face_bits, Some(2));
        // The whole hash alone; closest first.
        let hits = idx.search(
            &PhotoHashes {
                whole: a.whole,
                face: None,
            },
            8,
        );
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(hits[1].bits, 3);
        assert_eq!(idx.remove_where(|id| id == 1), 1);
        assert_eq!(idx.len(), 2);
        for h in [
            a,
            PhotoHashes {
                whole: 5,
                face: None,
            },
        ] {
            assert_eq!(PhotoHashes::decode(&h.encode()), Some(h));
        }
        assert_eq!(PhotoHashes::decode("zz"), None);
        assert_eq!(PhotoHashes::decode("1:2:3"), None);
    }
}
