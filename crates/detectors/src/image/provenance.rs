//! Provenance from an image's own metadata: AI-generation declarations and
//! editing traces a person can check.
//!
//! Read (all already extracted, bounded, by `candor-media`):
//! * the IPTC digital source type in XMP (`Iptc4xmpExt:DigitalSourceType`,
//!   a `http://cv.iptc.org/newscodes/digitalsourcetype/<code>` URI);
//! * generator text in PNG chunks: AUTOMATIC1111-style `parameters`,
//!   ComfyUI `prompt` / `workflow` graphs;
//! * generator and editor names in EXIF `Software` and XMP `CreatorTool`;
//! * an embedded C2PA manifest store, read and validated offline by the
//!   `c2pa` crate in `candor-media`: validation state, claim generator,
//!   signer, and the digital source types of its actions.
//!
//! A declaration of AI generation is decisive (the file says so itself);
//! the absence of metadata is not evidence of anything and never moves a
//! score.

use candor_media::ImageMetadata;

/// IPTC digital source types that declare AI or algorithmic generation.
pub const AI_SOURCE_TYPES: [&str; 4] = [
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
    "algorithmicMedia",
    "compositeSynthetic",
];

/// Generator names that, in `Software` / `CreatorTool`, declare generation.
const GENERATORS: [&str; 14] = [
    "midjourney",
    "dall-e",
    "dall·e",
    "stable diffusion",
    "stablediffusion",
    "novelai",
    "firefly",
    "imagen",
    "comfyui",
    "invokeai",
    "automatic1111",
    "leonardo.ai",
    "flux.1",
    "gpt-image",
];

/// Editors whose name in `Software` / `CreatorTool` says the file was
/// edited (not decisive: most professional headshots are retouched).
const EDITORS: [&str; 12] = [
    "photoshop",
    "lightroom",
    "gimp",
    "affinity",
    "pixelmator",
    "snapseed",
    "facetune",
    "faceapp",
    "meitu",
    "picsart",
    "canva",
    "capture one",
];

/// One provenance fact: name, value, where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub name: String,
    pub value: String,
    pub source: String,
}

/// What the metadata says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance {
    pub facts: Vec<Fact>,
    /// Why the file declares AI generation, if it does.
    pub ai_declared: Option<String>,
    /// Editing software named, if any.
    pub edited_with: Option<String>,
}

impl Provenance {
    fn fact(&mut self, name: &str, value: impl Into<String>, source: &str) {
        self.facts.push(Fact {
            name: name.into(),
            value: value.into(),
            source: source.into(),
        });
    }

    fn declare(&mut self, why: String) {
        if self.ai_declared.is_none() {
            self.ai_declared = Some(why);
        }
    }
}

/// Reads the provenance facts of `meta`.
pub fn inspect(meta: &ImageMetadata) -> Provenance {
    let mut p = Provenance::default();
    if let Some(xmp) = &meta.xmp {
        for code in digital_source_types(xmp) {
            p.fact("iptc.digital_source_type", code.clone(), "XMP");
            if AI_SOURCE_TYPES.contains(&code.as_str()) {
                p.declare(format!("XMP digital source type `{code}`"));
            }
        }
        if let Some(tool) = xml_value(xmp, "CreatorTool") {
            p.fact("xmp.creator_tool", tool.clone(), "XMP");
            name_check(&mut p, &tool, "XMP CreatorTool");
        }
    }
    for c in &meta.png_text {
        let key = c.keyword.to_ascii_lowercase();
        let text = &c.text;
        match key.as_str() {
            "parameters" if text.contains("Steps:") && text.contains("Sampler:") => {
                p.fact(
                    "png.generation_parameters",
                    clip(text, 300),
                    "PNG text chunk `parameters`",
                );
                p.declare(
                    "PNG `parameters` chunk with diffusion sampling settings (AUTOMATIC1111 style)"
                        .into(),
                );
            }
            "prompt" | "workflow" if text.contains("class_type") || text.contains("\"nodes\"") => {
                p.fact(
                    "png.comfyui_graph",
                    clip(text, 300),
                    &format!("PNG text chunk `{}`", c.keyword),
                );
                p.declare(format!("PNG `{}` chunk holding a ComfyUI graph", c.keyword));
            }
            "software" => {
                p.fact("png.software", clip(text, 200), "PNG text chunk `Software`");
                name_check(&mut p, text, "PNG Software");
            }
            _ => {}
        }
    }
    for f in &meta.exif {
        if f.tag == "Software" || f.tag == "ProcessingSoftware" {
            p.fact("exif.software", clip(&f.value, 200), "EXIF");
            name_check(&mut p, &f.value, "EXIF Software");
        }
    }
    if meta.has_c2pa {
        p.fact(
            "c2pa.manifest_present",
            "yes",
            "embedded C2PA manifest store",
        );
    }
    if let Some(c) = &meta.c2pa {
        let src = "C2PA manifest store (validated offline, no trust list)";
        let state = match &c.error {
            Some(e) => format!("{} ({e})", c.state),
            None => c.state.clone(),
        };
        p.fact("c2pa.validation_state", state, src);
        if !c.ingredient_failures.is_empty() {
            p.fact(
                "c2pa.ingredient_invalid",
                format!(
                    "an ingredient's credentials do not validate: {}",
                    c.ingredient_failures.join(", ")
                ),
                src,
            );
        }
        if let Some(g) = &c.claim_generator {
            p.fact("c2pa.claim_generator", g.clone(), src);
        }
        if let Some(i) = &c.issuer {
            p.fact("c2pa.signer", i.clone(), src);
        }
        for code in &c.digital_source_types {
            p.fact("c2pa.digital_source_type", code.clone(), src);
            if AI_SOURCE_TYPES.contains(&code.as_str()) {
                p.declare(format!(
                    "C2PA manifest ({}) declares digital source type `{code}`",
                    c.state
                ));
            }
        }
    }
    p
}

fn name_check(p: &mut Provenance, value: &str, source: &str) {
    let v = value.to_ascii_lowercase();
    if let Some(g) = GENERATORS.iter().find(|g| v.contains(*g)) {
        p.declare(format!(
            "{source} names the generator `{}` ({g})",
            clip(value, 80)
        ));
    } else if let Some(e) = EDITORS.iter().find(|e| v.contains(*e)) {
        if p.edited_with.is_none() {
            p.edited_with = Some(format!("{} ({source})", clip(value, 80)));
        }
        let _ = e;
    }
}

/// The codes of every IPTC digital-source-type URI in an XMP packet.
fn digital_source_types(xmp: &str) -> Vec<String> {
    const KEY: &str = "newscodes/digitalsourcetype/";
    let lower = xmp.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(KEY) {
        let start = from + i + KEY.len();
        let code: String = xmp[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .take(64)
            .collect();
        if !code.is_empty() && !out.contains(&code) {
            out.push(code);
        }
        from = start;
    }
    out
}

/// The value of `<ns:name>value</ns:name>` or `ns:name="value"` in XML.
fn xml_value(xml: &str, name: &str) -> Option<String> {
    let attr = format!("{name}=\"");
    if let Some(i) = xml.find(&attr) {
        let rest = &xml[i + attr.len()..];
        return rest.find('"').map(|j| unescape(&rest[..j]));
    }
    let open = format!("{name}>");
    let i = xml.find(&open)?;
    let rest = &xml[i + open.len()..];
    let j = rest.find("</")?;
    let v = rest[..j].trim();
    (!v.is_empty() && !v.contains('<')).then(|| unescape(v))
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_media::{ExifField, PngTextChunk};

    #[test]
    fn xmp_declaration_is_found_in_both_xml_forms() {
        let attr = r#"<rdf:Description Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia" xmp:CreatorTool="Some App"/>"#;
        let p = inspect(&ImageMetadata {
            xmp: Some(attr.into()),
            ..Default::default()
        });
        assert!(p.ai_declared.unwrap().contains("trainedAlgorithmicMedia"));
        assert!(p.facts.iter().any(|f| f.value == "Some App"));
        let elem = "<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture</Iptc4xmpExt:DigitalSourceType>";
        let p = inspect(&ImageMetadata {
            xmp: Some(elem.into()),
            ..Default::default()
        });
        assert_eq!(p.ai_declared, None, "a camera capture is not a declaration");
        assert_eq!(p.facts[0].value, "digitalCapture");
    }

    #[test]
    fn png_generator_chunks_and_software_names() {
        let meta = ImageMetadata {
            png_text: vec![PngTextChunk {
                keyword: "parameters".into(),
                text: "a portrait\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7".into(),
                compressed: false,
            }],
            ..Default::default()
        };
        assert!(inspect(&meta).ai_declared.is_some());
        let meta = ImageMetadata {
            exif: vec![ExifField {
                tag: "Software".into(),
                value: "Adobe Photoshop 25.0".into(),
            }],
            has_c2pa: true,
            ..Default::default()
        };
        let p = inspect(&meta);
        assert_eq!(p.ai_declared, None, "an editor is not a generator");
        assert!(p.edited_with.unwrap().contains("Photoshop"));
        assert!(p.facts.iter().any(|f| f.name == "c2pa.manifest_present"));
        let meta = ImageMetadata {
            has_c2pa: true,
            c2pa: Some(Box::new(candor_media::c2pa_read::C2paInfo {
                state: "valid".into(),
                digital_source_types: vec!["trainedAlgorithmicMedia".into()],
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(inspect(&meta).ai_declared.unwrap().contains("C2PA"));
        // A prompt chunk without a graph is just text.
        let meta = ImageMetadata {
            png_text: vec![PngTextChunk {
                keyword: "prompt".into(),
                text: "hello".into(),
                compressed: false,
            }],
            ..Default::default()
        };
        assert_eq!(inspect(&meta), Provenance::default());
    }
}
