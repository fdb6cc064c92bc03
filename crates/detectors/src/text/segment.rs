//! Sentences and prose: where a resume's running text is.
//!
//! Resumes mix prose (summaries, achievement bullets written as sentences)
//! with lists of names, dates, employers and keywords. Only prose says
//! anything about who wrote it, so the detector scores prose sentences and
//! abstains when there are too few of them.

use std::ops::Range;

/// One sentence (or bullet / line) of the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    /// Byte range in the text (trimmed).
    pub bytes: Range<usize>,
    /// Words (runs of letters/digits).
    pub words: usize,
    /// Whether it reads as prose (see [`is_prose`]).
    pub prose: bool,
}

/// Common English function words: prose has them, keyword lists do not.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "of", "to", "in", "for", "with", "on", "at", "by", "from", "and", "or",
    "but", "as", "is", "are", "was", "were", "be", "been", "has", "have", "had", "that", "which",
    "who", "this", "these", "their", "its", "our", "my", "i", "we", "it", "into", "over", "while",
    "across", "through", "than", "more", "most", "not", "can", "will", "also", "both", "each",
    "all", "such", "using", "via", "within", "per",
];

/// Abbreviations after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "inc", "ltd", "co", "corp", "jr",
    "sr", "st", "no", "approx", "dept", "fig", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "u.s", "b.s", "m.s", "ph.d", "b.a", "m.a",
];

fn is_bullet(c: char) -> bool {
    matches!(
        c,
        '•' | '◦' | '▪' | '●' | '‣' | '–' | '—' | '-' | '*' | '·' | '>'
    )
}

/// Lower-cased words of a string (letters, digits, apostrophes).
pub fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty() && w.chars().any(char::is_alphanumeric))
        .map(|w| w.trim_matches('\'').to_lowercase())
}

/// Whether a piece of text holds a URL, an e-mail address or a phone
/// number: contact lines and links say nothing about who wrote a resume,
/// and a language model finds their tokens oddly predictable or oddly not.
pub fn has_contact_or_link(s: &str) -> bool {
    let lower = s.to_lowercase();
    if ["http://", "https://", "www.", "linkedin.com", "github.com"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return true;
    }
    for tok in s.split_whitespace() {
        let t = tok.trim_matches(|c: char| !c.is_alphanumeric());
        // name@host.tld
        if let Some((user, host)) = t.split_once('@') {
            if !user.is_empty() && host.contains('.') && !host.ends_with('.') {
                return true;
            }
        }
        // host.tld/path or bare domains such as example.com
        if let Some((host, _)) = t.split_once('/') {
            if host.contains('.')
                && host
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            {
                return true;
            }
        }
        let dot = t.rfind('.');
        if let Some(d) = dot {
            let tld = &t[d + 1..];
            if ["com", "org", "net", "io", "dev", "me", "ai"].contains(&tld)
                && d > 0
                && t[..d]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            {
                return true;
            }
        }
    }
    // Phone numbers: 7 or more digits in one run of digits, spaces, dots,
    // dashes, parentheses and a leading plus.
    let mut digits = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits += 1;
            if digits >= 7 {
                return true;
            }
        } else if !matches!(c, ' ' | '-' | '.' | '(' | ')' | '+') {
            digits = 0;
        }
    }
    false
}

/// A sentence is prose when it has at least 6 words, at least one function
/// word per 8 words, most of its words are not numbers, and it holds no
/// URL, e-mail address or phone number.
pub fn is_prose(s: &str) -> bool {
    if has_contact_or_link(s) {
        return false;
    }
    let ws: Vec<String> = words(s).collect();
    let n = ws.len();
    if n < 6 {
        return false;
    }
    let func = ws
        .iter()
        .filter(|w| FUNCTION_WORDS.contains(&w.as_str()))
        .count();
    let numeric = ws
        .iter()
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .count();
    func * 8 >= n && numeric * 3 < n
}

fn ends_sentence(text: &str, dot: usize) -> bool {
    // `dot` is the byte index of '.', '!' or '?'.
    let bytes = text.as_bytes();
    if bytes[dot] != b'.' {
        return true;
    }
    // Decimal numbers and versions: "4.5", "v1.2".
    if dot + 1 < bytes.len() && bytes[dot + 1].is_ascii_alphanumeric() {
        return false;
    }
    let start = text[..dot]
        .rfind(|c: char| c.is_whitespace() || c == '(')
        .map_or(0, |i| i + 1);
    let word = text[start..dot].to_lowercase();
    let word = word.trim_start_matches(|c: char| !c.is_alphanumeric());
    if ABBREVIATIONS.contains(&word) {
        return false;
    }
    // Initials: "J. Smith".
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    !(letters == 1 && word.chars().count() == 1)
}

/// Splits text into sentences: at line breaks followed by a blank line, a
/// bullet or a capital letter (list items, headings, new lines of a
/// resume), and at `.`, `!`, `?` followed by white space. A line followed
/// by a lower-case line is wrapped text and continues.
pub fn sentences(text: &str) -> Vec<Sentence> {
    let mut out = Vec::new();
    let mut push = |range: Range<usize>| {
        let s = &text[range.clone()];
        let lead = s.len() - s.trim_start().len();
        let s2 = s.trim_start();
        // Drop a leading bullet marker from the span.
        let bullet = s2.chars().next().filter(|&c| is_bullet(c)).map_or(0, |c| {
            let rest = &s2[c.len_utf8()..];
            c.len_utf8() + (rest.len() - rest.trim_start().len())
        });
        let start = range.start + lead + bullet;
        let end = range.start + s.trim_end().len();
        if end > start {
            let body = &text[start..end];
            out.push(Sentence {
                bytes: start..end,
                words: words(body).count(),
                prose: is_prose(body),
            });
        }
    };
    // Lines first: a line ending without terminal punctuation ends its unit.
    let mut unit_start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_end = offset + line.len();
        let content = line.trim_end();
        let next_starts_new = text[line_end..]
            .trim_start_matches([' ', '\t'])
            .chars()
            .next()
            .is_none_or(|c| c == '\n' || is_bullet(c) || c.is_uppercase());
        // A line continues into the next (wrapped text) unless the next one
        // is blank, a bullet, or starts with a capital letter.
        if content.trim().is_empty() || next_starts_new {
            // Split the unit at sentence punctuation, then close it.
            let unit = unit_start..offset + content.len();
            let mut s = unit.start;
            let chars: Vec<(usize, char)> = text[unit.clone()].char_indices().collect();
            for (k, &(i, c)) in chars.iter().enumerate() {
                let at = unit.start + i;
                if matches!(c, '.' | '!' | '?')
                    && chars.get(k + 1).is_some_and(|&(_, n)| n.is_whitespace())
                    && ends_sentence(text, at)
                {
                    push(s..at + 1);
                    s = at + 1;
                }
            }
            push(s..unit.end);
            unit_start = line_end;
        }
        offset = line_end;
    }
    if unit_start < text.len() {
        push(unit_start..text.len());
    }
    out
}

/// Byte offset -> character offset map for a text.
pub struct CharIndex {
    /// Byte offset of each char boundary, in order; last = text length.
    starts: Vec<usize>,
}

impl CharIndex {
    pub fn new(text: &str) -> Self {
        let mut starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        starts.push(text.len());
        CharIndex { starts }
    }

    /// Character offset of a byte offset (rounded down to a boundary).
    pub fn char_at(&self, byte: usize) -> usize {
        self.starts
            .partition_point(|&b| b <= byte)
            .saturating_sub(1)
    }
}

/// Moving-average type-token ratio over `window`-word windows (falls back
/// to the plain ratio for shorter texts).
pub fn mattr(words: &[String], window: usize) -> f64 {
    if words.is_empty() {
        return 0.0;
    }
    if words.len() <= window {
        let set: std::collections::HashSet<&String> = words.iter().collect();
        return set.len() as f64 / words.len() as f64;
    }
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for w in &words[..window] {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let mut total = counts.len() as f64;
    let mut n = 1.0;
    for i in window..words.len() {
        let out = words[i - window].as_str();
        if let Some(c) = counts.get_mut(out) {
            *c -= 1;
            if *c == 0 {
                counts.remove(out);
            }
        }
        *counts.entry(words[i].as_str()).or_default() += 1;
        total += counts.len() as f64;
        n += 1.0;
    }
    total / n / window as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_lines_and_links_are_never_prose() {
        for s in [
            "Find my work and my open source projects at https://github.com/jdoe and more",
            "You can reach me at jane.doe@example.com for any of the roles in the team",
            "Connect with me on linkedin.com/in/jane-doe where I post about the work I do",
            "Call me on +1 (555) 123-4567 if you would like to talk about the role",
            "My portfolio is at janedoe.dev and it has all of the case studies in it",
        ] {
            assert!(has_contact_or_link(s), "{s}");
            assert!(!is_prose(s), "{s}");
        }
        for s in [
            "I led a team of five engineers to migrate the billing system to the cloud.",
            "Reduced the cost of the service by 30% in 2021 while traffic grew.",
            "Version 2.5 of the tool was adopted by all of the teams in the company.",
        ] {
            assert!(!has_contact_or_link(s), "{s}");
            assert!(is_prose(s), "{s}");
        }
    }

    fn texts(t: &str) -> Vec<(&str, bool)> {
        sentences(t)
            .into_iter()
            .map(|s| (&t[s.bytes], s.prose))
            .collect()
    }

    #[test]
    fn splits_sentences_but_not_abbreviations_or_decimals() {
        let t = "I led a team of 12 engineers, e.g. backend and data. We cut costs by 4.5 percent \
                 in a year! Did it work? Yes.";
        let s = texts(t);
        assert_eq!(s.len(), 4, "{s:?}");
        assert!(s[0].0.ends_with("and data."));
        assert!(s[1].0.contains("4.5 percent"));
        assert_eq!(s[3].0, "Yes.");
    }

    #[test]
    fn bullets_and_keyword_lines_are_units_and_not_prose() {
        let t = "SKILLS\nPython, Rust, Kubernetes, AWS, Terraform, PostgreSQL\n\
                 • Designed and shipped a billing service that handled 2 million requests a day.\n\
                 • Mentored four junior engineers through their first production launches.\n\
                 Jan 2019 – Present";
        let s = texts(t);
        assert_eq!(s.len(), 5, "{s:?}");
        assert_eq!(s[0], ("SKILLS", false));
        assert!(!s[1].1, "keyword list is not prose");
        assert!(s[2].0.starts_with("Designed") && s[2].1);
        assert!(s[3].1);
        assert!(!s[4].1, "date line is not prose");
    }

    #[test]
    fn wrapped_lines_join_into_one_sentence() {
        let t = "I have worked on distributed systems for the last\nten years at two companies.";
        let s = texts(t);
        assert_eq!(s.len(), 1, "{s:?}");
    }

    #[test]
    fn char_index_maps_multibyte_text() {
        let t = "é—x";
        let ix = CharIndex::new(t);
        assert_eq!(ix.char_at(0), 0);
        assert_eq!(ix.char_at(2), 1);
        assert_eq!(ix.char_at(5), 2);
        assert_eq!(ix.char_at(t.len()), 3);
    }

    #[test]
    fn mattr_is_one_for_distinct_words_and_lower_for_repeats() {
        let w: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        assert!((mattr(&w, 50) - 1.0).abs() < 1e-12);
        let r: Vec<String> = (0..100).map(|i| format!("w{}", i % 10)).collect();
        assert!((mattr(&r, 50) - 0.2).abs() < 1e-12);
    }
}
