//! Tokenizers rebuilt from GGUF metadata, so a language model and its
//! tokenizer always come from the same verified file.
//!
//! Supported: `tokenizer.ggml.model = "gpt2"` (byte-level BPE). The
//! pre-tokenizer follows `tokenizer.ggml.pre`: `smollm` / `starcoder`
//! split every digit on its own before the GPT-2 regex; `gpt2` and
//! `default` use the GPT-2 regex alone. Control tokens (type 3) become
//! special tokens, so chat markers in the input are matched whole.

use std::path::Path;

use candle_core::quantized::gguf_file;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{EngineError, Result};

/// Token ids with their byte offsets into the input text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// `[start, end)` byte offsets of each token in the input.
    pub offsets: Vec<(usize, usize)>,
}

/// A byte-level BPE tokenizer read from a GGUF file.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// `tokenizer.ggml.pre` as found.
    pre: String,
    vocab: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("pre", &self.pre)
            .field("vocab", &self.vocab)
            .finish()
    }
}

fn strings(c: &gguf_file::Content, key: &str) -> std::result::Result<Vec<String>, String> {
    c.metadata
        .get(key)
        .ok_or_else(|| format!("GGUF metadata `{key}` missing"))?
        .to_vec()
        .map_err(|e| format!("`{key}`: {e}"))?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| format!("`{key}`: {e}")))
        .collect()
}

impl TextTokenizer {
    /// Reads the tokenizer of a GGUF model file (metadata only).
    pub fn from_gguf(path: &Path) -> Result<TextTokenizer> {
        let mut f = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
        let c = gguf_file::Content::read(&mut f)
            .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::from_content(&c).map_err(EngineError::Tokenizer)
    }

    /// Builds the tokenizer from already read GGUF metadata.
    pub fn from_content(c: &gguf_file::Content) -> std::result::Result<TextTokenizer, String> {
        let model = c
            .metadata
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if model != "gpt2" {
            return Err(format!(
                "tokenizer model `{model}` is not supported (byte-level BPE `gpt2` only)"
            ));
        }
        let pre = c
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "default".into());
        let tokens = strings(c, "tokenizer.ggml.tokens")?;
        let merges = strings(c, "tokenizer.ggml.merges")?;
        let types: Vec<i32> = c
            .metadata
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().map(|t| t.to_i32().unwrap_or(1)).collect())
            .unwrap_or_default();
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| format!("malformed merge `{m}`"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| format!("BPE: {e}"))?;
        let mut tk = Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tok: PreTokenizerWrapper = match pre.as_str() {
            "smollm" | "starcoder" | "refact" => {
                Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
            }
            "gpt2" | "default" | "gpt-2" => byte_level.into(),
            other => return Err(format!("pre-tokenizer `{other}` is not supported")),
        };
        tk.with_pre_tokenizer(Some(pre_tok));
        tk.with_decoder(Some(ByteLevel::default()));
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 3)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        tk.add_special_tokens(specials)
            .map_err(|e| format!("special tokens: {e}"))?;
        Ok(TextTokenizer {
            inner: tk,
            pre,
            vocab: tokens.len(),
        })
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    /// Encodes text (no BOS/EOS added) with byte offsets.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            offsets: enc.get_offsets().to_vec(),
        })
    }

    /// Token id of a (special) token string.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Decodes ids back to text.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }
}
