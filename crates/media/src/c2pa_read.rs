//! Reading and validating an embedded C2PA manifest store (content
//! credentials) with the `c2pa` crate, offline: no remote manifests, no
//! trust list (so `valid`, never `trusted`), pure-Rust crypto.

use std::io::Cursor;

use serde_json::Value;

/// What the C2PA reader found in a file that carries a manifest store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct C2paInfo {
    /// `valid`, `trusted` or `invalid` (the SDK's validation state).
    pub state: String,
    /// Claim generator of the active manifest (the app that signed it).
    pub claim_generator: Option<String>,
    /// Issuer of the signing certificate.
    pub issuer: Option<String>,
    /// Every IPTC digital source type named in the store's actions
    /// (e.g. `trainedAlgorithmicMedia`), by its last URI segment.
    pub digital_source_types: Vec<String>,
    /// Why the store could not be read or is invalid, when it is.
    pub error: Option<String>,
    /// Failure codes of ingredients' credentials (an earlier version of the
    /// picture whose own manifest does not validate), when the active
    /// manifest itself is valid.
    pub ingredient_failures: Vec<String>,
}

/// Reads the manifest store of `bytes` (`mime` e.g. `image/jpeg`).
pub fn read(bytes: &[u8], mime: &str) -> C2paInfo {
    let attempt = std::panic::catch_unwind(|| {
        c2pa::Reader::from_context(c2pa::Context::new()).with_stream(mime, Cursor::new(bytes))
    });
    let reader = match attempt {
        Err(_) => {
            return C2paInfo {
                state: "invalid".into(),
                error: Some("the C2PA reader failed on this file".into()),
                ..C2paInfo::default()
            }
        }
        Ok(Err(e)) => {
            return C2paInfo {
                state: "invalid".into(),
                error: Some(clip(&e.to_string(), 300)),
                ..C2paInfo::default()
            }
        }
        Ok(Ok(r)) => r,
    };
    let state = match reader.validation_state() {
        c2pa::ValidationState::Invalid => "invalid",
        c2pa::ValidationState::Valid => "valid",
        c2pa::ValidationState::Trusted => "trusted",
    };
    let mut info = C2paInfo {
        state: state.into(),
        ..C2paInfo::default()
    };
    if let Some(m) = reader.active_manifest() {
        info.claim_generator = m.claim_generator().map(|s| clip(s, 200));
        info.issuer = m.issuer().map(|s| clip(&s, 200));
    }
    let json: Value = serde_json::from_str(&reader.json()).unwrap_or(Value::Null);
    collect_source_types(&json, &mut info.digital_source_types, 0);
    for d in json
        .pointer("/validation_results/ingredientDeltas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(16)
    {
        // Failures, and informational mismatches (older SDKs recorded a bad
        // ingredient signature as a time-stamp digest mismatch).
        let failures = d
            .pointer("/validationDeltas/failure")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let mismatches = d
            .pointer("/validationDeltas/informational")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| {
                f.get("code")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c.ends_with(".mismatch"))
            });
        for f in failures.chain(mismatches).take(8) {
            // Without a trust list every signer is "untrusted"; that is not
            // a failure of the ingredient's credentials.
            if let Some(c) = f
                .get("code")
                .and_then(Value::as_str)
                .filter(|c| !c.ends_with(".untrusted"))
            {
                if !info.ingredient_failures.iter().any(|x| x == c) {
                    info.ingredient_failures.push(clip(c, 80));
                }
            }
        }
    }
    if state == "invalid" {
        let failures = failure_codes(&json);
        info.error = Some(if failures.is_empty() {
            "validation failed".into()
        } else {
            clip(&failures.join(", "), 300)
        });
    }
    info
}

fn collect_source_types(v: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 64 || out.len() >= 16 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "digitalSourceType" {
                    if let Some(s) = x.as_str() {
                        let code = s.rsplit('/').next().unwrap_or(s).to_string();
                        if !code.is_empty() && !out.contains(&code) {
                            out.push(clip(&code, 64));
                        }
                    }
                } else {
                    collect_source_types(x, out, depth + 1);
                }
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|x| collect_source_types(x, out, depth + 1)),
        _ => {}
    }
}

/// Failure codes of the validation results (`validation_results` ->
/// `activeManifest` -> `failure`, or the legacy `validation_status` list).
fn failure_codes(json: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let failures = json
        .pointer("/validation_results/activeManifest/failure")
        .and_then(Value::as_array)
        .or_else(|| json.get("validation_status").and_then(Value::as_array));
    for f in failures.into_iter().flatten().take(8) {
        // No trust list here: "untrusted" is expected, not a failure.
        if let Some(c) = f
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| !c.ends_with(".untrusted"))
        {
            out.push(c.to_string());
        }
    }
    out
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
