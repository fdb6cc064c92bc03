//! Near-duplicate text: MinHash signatures over word shingles, banded for
//! lookup (LSH), and the longest passages two texts share as evidence.
//!
//! Words are lower-cased alphanumeric runs, so punctuation, case and
//! spacing do not matter. Shingles are [`SHINGLE`] consecutive words inside
//! one sentence or line (a shorter sentence is one shingle), so moving
//! sentences, paragraphs or resume lines around changes nothing, and a
//! reworded word breaks only the shingles that cover it.

use std::collections::{HashMap, HashSet};

/// Words per shingle.
pub const SHINGLE: usize = 3;
/// Words per window of [`shared_passages`] (which may cross sentences).
const PASSAGE_WINDOW: usize = 4;
/// Hash functions in a signature.
pub const HASHES: usize = 128;
/// LSH bands (of `HASHES / BANDS` rows each). 64 bands of 2 rows find a
/// pair with Jaccard 0.3 (the default threshold) with probability
/// 1-(1-0.3^2)^64 = 0.998, 0.2 with 0.93; unrelated texts (Jaccard about
/// 0.02) become candidates 2.5% of the time, and the signature's estimate
/// decides. (32 bands of 4 rows found only 23% of the pairs at 0.3.)
pub const BANDS: usize = 64;

/// A word and where it is in the original text (byte offsets).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// A sentence or line ends between the previous word and this one.
    pub starts_sentence: bool,
}

/// The text's words.
pub fn words(text: &str) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::new();
    let mut start = None;
    let push = |out: &mut Vec<Word>, s: usize, e: usize| {
        let gap = out.last().map_or("", |w: &Word| &text[w.end..s]);
        out.push(Word {
            text: text[s..e].to_lowercase(),
            start: s,
            end: e,
            starts_sentence: out.is_empty() || gap.contains(['.', '!', '?', '\n', ';', '•']),
        });
    };
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            push(&mut out, s, i);
        }
    }
    if let Some(s) = start {
        push(&mut out, s, text.len());
    }
    out
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash_words(w: &[Word]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for x in w {
        h = fnv(x.text.as_bytes(), h);
        h = fnv(b" ", h);
    }
    mix(h)
}

/// Hashes of the text's shingles: [`SHINGLE`]-word windows inside each
/// sentence (a sentence of 2 to `SHINGLE - 1` words is one shingle;
/// one-word sentences count for nothing).
pub fn shingles(ws: &[Word]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=ws.len() {
        if i == ws.len() || ws[i].starts_sentence {
            let sentence = &ws[start..i];
            if sentence.len() >= SHINGLE {
                out.extend(sentence.windows(SHINGLE).map(hash_words));
            } else if sentence.len() >= 2 {
                out.push(hash_words(sentence));
            }
            start = i;
        }
    }
    out
}

/// Hashes of every window of `k` words, across sentences, in word order.
fn windows(ws: &[Word], k: usize) -> Vec<u64> {
    if ws.len() < k {
        return Vec::new();
    }
    ws.windows(k).map(hash_words).collect()
}

/// A MinHash signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature(pub Vec<u64>);

impl Signature {
    /// The signature of a set of shingle hashes; `None` when empty.
    pub fn of(shingles: &[u64]) -> Option<Self> {
        if shingles.is_empty() {
            return None;
        }
        let mut sig = vec![u64::MAX; HASHES];
        for &s in shingles {
            for (i, m) in sig.iter_mut().enumerate() {
                let h = mix(s ^ mix(i as u64 + 1));
                if h < *m {
                    *m = h;
                }
            }
        }
        Some(Signature(sig))
    }

    /// Estimated Jaccard similarity of the two shingle sets.
    pub fn jaccard(&self, other: &Signature) -> f32 {
        let same = self.0.iter().zip(&other.0).filter(|(a, b)| a == b).count();
        same as f32 / self.0.len().max(1) as f32
    }

    /// The band keys (one per band) used to find candidates.
    pub fn bands(&self) -> Vec<u64> {
        let rows = HASHES / BANDS;
        self.0
            .chunks(rows)
            .enumerate()
            .map(|(b, c)| {
                let mut h = mix(b as u64 ^ 0x9e37_79b9_7f4a_7c15);
                for x in c {
                    h = mix(h ^ x);
                }
                h
            })
            .collect()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != HASHES * 8 {
            return None;
        }
        Some(Signature(
            b.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ))
    }
}

/// Candidate lookup over band keys.
#[derive(Debug, Default, Clone)]
pub struct LshIndex {
    buckets: HashMap<u64, Vec<u64>>,
    sigs: HashMap<u64, Signature>,
}

impl LshIndex {
    pub fn insert(&mut self, id: u64, sig: Signature) {
        for b in sig.bands() {
            self.buckets.entry(b).or_default().push(id);
        }
        self.sigs.insert(id, sig);
    }

    pub fn remove_where(&mut self, gone: impl Fn(u64) -> bool) {
        self.sigs.retain(|id, _| !gone(*id));
        for v in self.buckets.values_mut() {
            v.retain(|id| !gone(*id));
        }
        self.buckets.retain(|_, v| !v.is_empty());
    }

    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    /// The signature stored under `id`.
    pub fn get(&self, id: u64) -> Option<&Signature> {
        self.sigs.get(&id)
    }

    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Ids whose estimated Jaccard with `sig` is at least `min`, best first.
    pub fn search(&self, sig: &Signature, min: f32) -> Vec<(u64, f32)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for b in sig.bands() {
            for &id in self.buckets.get(&b).into_iter().flatten() {
                if seen.insert(id) {
                    if let Some(s) = self.sigs.get(&id) {
                        let j = sig.jaccard(s);
                        if j >= min {
                            out.push((id, j));
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

/// A passage two texts share: byte ranges in each.
///
/// Found over windows of four words that may cross sentences, so a passage
/// can run over several sentences copied together.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub a: (usize, usize),
    pub b: (usize, usize),
    /// Words in the passage.
    pub words: usize,
}

/// The longest passages (at least `min_words` words, at most `max` of
/// them, longest first) that `a` and `b` share word for word (after
/// lower-casing and ignoring punctuation), wherever they sit in each text.
pub fn shared_passages(a: &str, b: &str, min_words: usize, max: usize) -> Vec<Passage> {
    let (wa, wb) = (words(a), words(b));
    let (sa, sb) = (windows(&wa, PASSAGE_WINDOW), windows(&wb, PASSAGE_WINDOW));
    let mut at: HashMap<u64, Vec<usize>> = HashMap::new();
    for (j, h) in sb.iter().enumerate() {
        at.entry(*h).or_default().push(j);
    }
    // Diagonal runs: shingle i of a equal to shingle j of b, then i+1, j+1...
    let mut used = vec![false; sa.len()];
    let mut out = Vec::new();
    for i in 0..sa.len() {
        if used[i] {
            continue;
        }
        let Some(js) = at.get(&sa[i]) else { continue };
        let mut best: Option<(usize, usize)> = None; // (j, len in shingles)
        for &j in js {
            let mut n = 0;
            while i + n < sa.len() && j + n < sb.len() && sa[i + n] == sb[j + n] {
                n += 1;
            }
            if best.is_none_or(|(_, bn)| n > bn) {
                best = Some((j, n));
            }
        }
        let Some((j, n)) = best else { continue };
        for u in used.iter_mut().skip(i).take(n) {
            *u = true;
        }
        let nwords = n + PASSAGE_WINDOW - 1;
        if nwords >= min_words {
            out.push(Passage {
                a: (wa[i].start, wa[i + nwords - 1].end),
                b: (wb[j].start, wb[j + nwords - 1].end),
                words: nwords,
            });
        }
    }
    out.sort_by(|x, y| y.words.cmp(&x.words).then(x.a.0.cmp(&y.a.0)));
    out.truncate(max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "Led the migration of a payments platform to event sourcing, cutting \
        reconciliation time from five days to one. Mentored four engineers and ran the \
        on-call rotation for two years. Built the fraud scoring service in Rust.";

    fn sig(t: &str) -> Signature {
        Signature::of(&shingles(&words(t))).unwrap()
    }

    #[test]
    fn reordered_and_reworded_copies_stay_close_strangers_do_not() {
        let reordered = "Built the fraud scoring service in Rust. Mentored four engineers and \
            ran the on-call rotation for two years. Led the migration of a payments platform \
            to event sourcing, cutting reconciliation time from five days to one.";
        let reworded = A
            .replace("Mentored four", "Coached four")
            .replace("two years", "three years");
        let other = "Managed a bakery's supply chain and negotiated with flour mills across \
            the region, growing margins by a third while keeping every shop open at dawn.";
        let s = sig(A);
        assert!(
            s.jaccard(&sig(reordered)) > 0.6,
            "{}",
            s.jaccard(&sig(reordered))
        );
        assert!(
            s.jaccard(&sig(&reworded)) > 0.5,
            "{}",
            s.jaccard(&sig(&reworded))
        );
        assert!(s.jaccard(&sig(other)) < 0.1);
        assert!((s.jaccard(&s) - 1.0).abs() < 1e-6);
        assert_eq!(Signature::from_bytes(&s.to_bytes()), Some(s.clone()));
        assert!(Signature::of(&shingles(&words("short"))).is_none());

        let mut idx = LshIndex::default();
        idx.insert(1, sig(reordered));
        idx.insert(2, sig(other));
        let hits = idx.search(&s, 0.5);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [1]);
        idx.remove_where(|id| id == 1);
        assert!(idx.search(&s, 0.5).is_empty());
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn shared_passages_point_into_both_texts() {
        let b = "Summary. BUILT the fraud-scoring service in Rust; also led the migration of \
            a payments platform to event sourcing.";
        let p = shared_passages(A, b, 5, 3);
        assert_eq!(p.len(), 2, "{p:?}");
        for x in &p {
            let (ta, tb) = (&A[x.a.0..x.a.1], &b[x.b.0..x.b.1]);
            let norm = |t: &str| words(t).into_iter().map(|w| w.text).collect::<Vec<_>>();
            assert_eq!(norm(ta), norm(tb), "{ta} | {tb}");
        }
        assert!(p[0].words >= p[1].words);
        assert!(shared_passages(A, "nothing in common at all here", 5, 3).is_empty());
    }
}
