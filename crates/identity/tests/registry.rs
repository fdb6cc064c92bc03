//! The registry on a real SQLite file and a real PostgreSQL server: matches
//! across applicants, never within one, persistence across a reopen,
//! erasure and expiry.

use std::time::Duration;

use candor_bulk::testpg::PgServer;
use candor_bulk::Store;
use candor_core::{FaceTemplate, IdentityTemplates, PhotoTemplate, VoiceTemplate};
use candor_identity::{Registry, RegistryConfig};
use rand::{Rng, SeedableRng};

fn cfg(retention: Duration) -> RegistryConfig {
    RegistryConfig {
        retention,
        face_threshold: 0.5,
        face_operating_point: "test".into(),
        voice_threshold: 0.8,
        voice_operating_point: "test".into(),
        text_threshold: 0.5,
        text_operating_point: "test".into(),
        photo_max_bits: 10,
        photo_operating_point: "test".into(),
        joint_face_threshold: 1.0,
        joint_text_threshold: 1.0,
        joint_operating_point: String::new(),
        max_matches: 5,
        scan_threads: 2,
    }
}

fn face(v: &[f32]) -> IdentityTemplates {
    IdentityTemplates {
        face: Some(FaceTemplate {
            embedding: v.to_vec(),
            model: "test 1".into(),
            region: [1, 2, 3, 4],
        }),
        ..Default::default()
    }
}

fn voice(v: &[f32]) -> IdentityTemplates {
    IdentityTemplates {
        voice: Some(VoiceTemplate {
            embedding: v.to_vec(),
            model: "test 1".into(),
            speech_s: 12.5,
            span_s: [0.4, 14.0],
        }),
        ..Default::default()
    }
}

fn photo(whole: u64, face: Option<u64>) -> IdentityTemplates {
    IdentityTemplates {
        photo: Some(PhotoTemplate {
            whole,
            face,
            face_close: None,
            model: "test 1".into(),
            size: [640, 480],
        }),
        ..Default::default()
    }
}

fn text(t: &str) -> IdentityTemplates {
    IdentityTemplates {
        text: Some(t.into()),
        ..Default::default()
    }
}

const RESUME: &str = "Senior backend engineer. Led the migration of a payments platform to event \
    sourcing, cutting reconciliation from five days to one. Mentored four engineers and ran the \
    on-call rotation for two years. Built the fraud scoring service in Rust and Kafka.";

async fn scenario(store: Store) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let person: Vec<f32> = (0..128).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let stranger: Vec<f32> = (0..128).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let noisy = |v: &[f32], rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
        v.iter()
            .map(|x| x + rng.random_range(-0.3f32..0.3))
            .collect()
    };
    let reg = Registry::open(store.clone(), cfg(Duration::from_secs(3600)))
        .await
        .unwrap();
    // One person as "ann" and "bob"; "cyd" is someone else.
    let m = reg
        .enroll_and_match(
            "",
            "ann",
            "sha-a",
            Some("a.jpg"),
            &face(&noisy(&person, &mut rng)),
        )
        .await
        .unwrap();
    assert!(m.is_empty());
    let again = reg
        .enroll_and_match(
            "",
            "ann",
            "sha-a2",
            Some("a2.jpg"),
            &face(&noisy(&person, &mut rng)),
        )
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "an applicant never matches itself: {again:?}"
    );
    let m = reg
        .enroll_and_match("", "cyd", "sha-c", Some("c.jpg"), &face(&stranger))
        .await
        .unwrap();
    assert!(m.is_empty(), "{m:?}");
    let m = reg
        .enroll_and_match(
            "",
            "bob",
            "sha-b",
            Some("b.jpg"),
            &face(&noisy(&person, &mut rng)),
        )
        .await
        .unwrap();
    assert_eq!(m.len(), 1, "one match per other applicant: {m:?}");
    assert_eq!(
        (m[0].other_applicant_id.as_str(), m[0].modality.as_str()),
        ("ann", "face")
    );
    assert!(
        m[0].similarity >= 0.5
            && m[0]
                .evidence
                .iter()
                .any(|e| e.contains("a.jpg") || e.contains("a2.jpg"))
    );

    // A reworded, reordered copy of a resume under another name.
    reg.enroll_and_match("", "ann", "sha-t1", Some("ann.txt"), &text(RESUME))
        .await
        .unwrap();
    let reordered = "Built the fraud scoring service in Rust and Kafka. Senior backend engineer. \
        Led the migration of a payments platform to event sourcing, cutting reconciliation from \
        five days to one. Coached four engineers and ran the on-call rotation for two years.";
    let m = reg
        .enroll_and_match("", "dee", "sha-t2", Some("dee.txt"), &text(reordered))
        .await
        .unwrap();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].modality, "text");
    assert!(
        m[0].evidence
            .iter()
            .any(|e| e.contains("shared passage") && e.contains("payments platform")),
        "{m:?}"
    );

    // Both sides see the match; a reopened registry still knows everyone.
    let seen = reg.matches_of("", "ann").await.unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|x| x.applicant_id == "ann"));
    let reg2 = Registry::open(store.clone(), cfg(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(reg2.len().await, reg.len().await);
    let m = reg2
        .enroll_and_match("", "eve", "sha-e", None, &face(&noisy(&person, &mut rng)))
        .await
        .unwrap();
    let others: Vec<&str> = m.iter().map(|x| x.other_applicant_id.as_str()).collect();
    assert!(
        others.contains(&"ann") && others.contains(&"bob"),
        "{others:?}"
    );

    // Voices: their own index (a voice never meets a face); a reopened
    // registry loads them too; the evidence names the recording.
    let ann_voice: Vec<f32> = (0..256).map(|_| rng.random_range(0.0f32..1.0)).collect();
    let m = reg2
        .enroll_and_match("", "ann", "sha-v1", Some("ann.wav"), &voice(&ann_voice))
        .await
        .unwrap();
    assert!(m.is_empty(), "{m:?}");
    // Photos: ann's headshot; a reopened registry loads its hashes.
    let (whole, face_hash) = (0x9a3c_5e71_0f2d_b486u64, 0x1234_5678_9abc_def0u64);
    let m = reg2
        .enroll_and_match(
            "",
            "ann",
            "sha-p1",
            Some("ann.jpg"),
            &photo(whole, Some(face_hash)),
        )
        .await
        .unwrap();
    assert!(m.is_empty(), "{m:?}");
    let reg3 = Registry::open(store.clone(), cfg(Duration::from_secs(3600)))
        .await
        .unwrap();
    // Re-cropped: the whole picture moved, the aligned face did not.
    let m = reg3
        .enroll_and_match(
            "",
            "lea",
            "sha-p2",
            Some("lea.jpg"),
            &photo(whole ^ 0xffff_ffff, Some(face_hash ^ 0b1011)),
        )
        .await
        .unwrap();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(
        (m[0].other_applicant_id.as_str(), m[0].modality.as_str()),
        ("ann", "photo")
    );
    assert_eq!((m[0].similarity, m[0].threshold), (0.9531, 0.8438));
    assert!(
        m[0].evidence.iter().any(|e| e.contains("ann.jpg"))
            && m[0]
                .evidence
                .iter()
                .any(|e| e.contains("differ in 32 of 64 bits, face hashes in 3 of 64")),
        "{m:?}"
    );
    // Re-encoded without a face found: the whole picture alone; another
    // photograph (half the bits) matches no one.
    let m = reg3
        .enroll_and_match("", "max", "sha-p3", None, &photo(whole ^ 0b11_0000, None))
        .await
        .unwrap();
    let others: Vec<&str> = m.iter().map(|x| x.other_applicant_id.as_str()).collect();
    assert_eq!(others, ["ann"], "{m:?}");
    let m = reg3
        .enroll_and_match(
            "",
            "ned",
            "sha-p4",
            None,
            &photo(whole ^ 0x00ff_00ff_00ff_00ff, Some(!face_hash)),
        )
        .await
        .unwrap();
    assert!(m.is_empty(), "{m:?}");
    let m = reg3
        .enroll_and_match(
            "",
            "kit",
            "sha-v2",
            Some("kit.wav"),
            &voice(&noisy(&ann_voice, &mut rng)),
        )
        .await
        .unwrap();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(
        (m[0].other_applicant_id.as_str(), m[0].modality.as_str()),
        ("ann", "voice")
    );
    assert!(
        m[0].evidence.iter().any(|e| e.contains("ann.wav"))
            && m[0].evidence.iter().any(|e| e.contains("s of speech")),
        "{m:?}"
    );

    // Erasure: ann's templates and matches go.
    assert_eq!(reg2.erase("", "ann").await.unwrap(), 5);
    assert!(reg2.matches_of("", "ann").await.unwrap().is_empty());
    let m = reg2
        .enroll_and_match("", "fay", "sha-f", None, &face(&noisy(&person, &mut rng)))
        .await
        .unwrap();
    assert!(m.iter().all(|x| x.other_applicant_id != "ann"), "{m:?}");

    // Scopes: another API key's applicants are never compared.
    let m = reg2
        .enroll_and_match(
            "other-key",
            "ivy",
            "sha-i",
            None,
            &face(&noisy(&person, &mut rng)),
        )
        .await
        .unwrap();
    assert!(m.is_empty(), "{m:?}");
    assert!(reg2
        .matches_of("other-key", "bob")
        .await
        .unwrap()
        .is_empty());

    // Two processes on one store (servers or bulk workers sharing the
    // PostgreSQL store): each sees the other's enrolments and erasures.
    let a = Registry::open(store.clone(), cfg(Duration::from_secs(3600)))
        .await
        .unwrap();
    let b = Registry::open(store.clone(), cfg(Duration::from_secs(3600)))
        .await
        .unwrap();
    let m = a
        .enroll_and_match("shared", "pat", "sha-s1", None, &face(&person))
        .await
        .unwrap();
    assert!(m.is_empty(), "{m:?}");
    assert_eq!(b.sync().await.unwrap(), 1);
    let m = b
        .enroll_and_match(
            "shared",
            "quin",
            "sha-s2",
            None,
            &face(&noisy(&person, &mut rng)),
        )
        .await
        .unwrap();
    let others: Vec<&str> = m.iter().map(|x| x.other_applicant_id.as_str()).collect();
    assert_eq!(others, ["pat"], "{m:?}");
    a.erase("shared", "pat").await.unwrap();
    b.sync().await.unwrap();
    let m = b
        .enroll_and_match(
            "shared",
            "rui",
            "sha-s3",
            None,
            &face(&noisy(&person, &mut rng)),
        )
        .await
        .unwrap();
    let others: Vec<&str> = m.iter().map(|x| x.other_applicant_id.as_str()).collect();
    assert_eq!(
        others,
        ["quin"],
        "pat was erased by the other process: {m:?}"
    );

    // Expiry: a registry with no retention forgets at its next sweep.
    let short = Registry::open(store.clone(), cfg(Duration::ZERO))
        .await
        .unwrap();
    short
        .enroll_and_match("", "gus", "sha-g", None, &face(&stranger))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(short.sweep().await.unwrap() >= 1);
    let m = short
        .enroll_and_match("", "hal", "sha-h", None, &face(&stranger))
        .await
        .unwrap();
    assert!(m.iter().all(|x| x.other_applicant_id != "gus"), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bulk.db").display().to_string(), 2)
        .await
        .unwrap();
    scenario(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_on_postgres() {
    let Some(pg) = PgServer::start("identity") else {
        return;
    };
    scenario(Store::open(&pg.url(), 2).await.unwrap()).await;
}

/// A unit vector at cosine `c` to the unit vector `p` (random otherwise).
fn at_cosine(p: &[f32], c: f32, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
    let mut o: Vec<f32> = (0..p.len())
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let along: f32 = o.iter().zip(p).map(|(x, y)| x * y).sum();
    o.iter_mut().zip(p).for_each(|(x, y)| *x -= along * y);
    let n = o.iter().map(|x| x * x).sum::<f32>().sqrt();
    p.iter()
        .zip(&o)
        .map(|(y, x)| c * y + (1.0 - c * c).sqrt() * x / n)
        .collect()
}

fn unit(rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..128).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

const KIM: [&str; 8] = [
    "Designed the settlement ledger that reconciles card payments across four acquiring banks every night.",
    "Cut the monthly cloud bill by a third by moving batch analytics onto spot instances and columnar storage.",
    "Wrote the incident handbook that the whole platform group still follows during outages and postmortems.",
    "Introduced contract tests between the billing and invoicing services and removed two release freezes a year.",
    "Ran hiring loops for backend engineers and trained eleven interviewers on structured scoring rubrics.",
    "Migrated the customer database from a single primary to a sharded cluster without a minute of downtime.",
    "Built a feature flag service in Go that serves forty thousand evaluations per second at the edge.",
    "Taught an internal course on distributed tracing that two hundred engineers have completed so far.",
];
const LOU: [&str; 4] = [
    "Maintained the mobile checkout flow for a grocery delivery app with two million weekly orders.",
    "Automated the accessibility audit of every release candidate with a headless browser pipeline.",
    "Partnered with designers to ship a new onboarding journey that lifted activation by nine points.",
    "Volunteered as a mentor at a coding school for career changers on weekends and evenings.",
];
const PIA: [&str; 4] = [
    "Led a small team that rebuilt the warehouse scanning firmware for rugged handheld terminals.",
    "Negotiated service levels with three logistics carriers and tracked them on a public dashboard.",
    "Replaced a nightly spreadsheet export with an event stream that finance reads in near real time.",
    "Presented quarterly platform reviews to the executive board with cost and reliability figures.",
];
const OTHER: &str =
    "Pastry chef with ten years in hotel kitchens. Created a seasonal dessert menu \
    for a two hundred seat banquet hall. Trained apprentices in laminated doughs and sugar work. \
    Managed ordering and stock rotation for a busy brunch service every weekend.";

/// The joint rule (`face+text`): a face and a resume each short of their
/// own thresholds link two names together, whichever arrives last; an
/// input that adds nothing to the pair does not report it again; neither
/// side alone links; the rule can be switched off; erasure forgets.
async fn joint_scenario(store: Store) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut on = cfg(Duration::from_secs(3600));
    (on.joint_face_threshold, on.joint_text_threshold) = (0.3, 0.2);
    on.joint_operating_point = "joint test".into();
    let reg = Registry::open(store.clone(), on.clone()).await.unwrap();
    let p = unit(&mut rng);
    // Half of kim's sentences reused (Jaccard about 1/3, short of 0.5).
    let kim = KIM.join(" ");
    let lou = [&KIM[..4], &LOU[..]].concat().join(" ");
    let pia = [&KIM[4..], &PIA[..]].concat().join(" ");
    let enrol = |who: &'static str, sha: &'static str, t: IdentityTemplates| {
        let reg = &reg;
        async move {
            reg.enroll_and_match("", who, sha, Some(sha), &t)
                .await
                .unwrap()
        }
    };
    assert!(enrol("kim", "kim.jpg", face(&p)).await.is_empty());
    assert!(enrol("kim", "kim.txt", text(&kim)).await.is_empty());
    // The resume first: alone it links no one.
    let m = enrol("lou", "lou.txt", text(&lou)).await;
    assert!(m.is_empty(), "a text short of 0.5 alone: {m:?}");
    // Then a face at cosine 0.4 (short of 0.5): together, one person.
    let m = enrol("lou", "lou.jpg", face(&at_cosine(&p, 0.4, &mut rng))).await;
    assert_eq!(m.len(), 1, "{m:?}");
    let j = &m[0];
    assert_eq!(
        (j.other_applicant_id.as_str(), j.modality.as_str()),
        ("kim", "face+text")
    );
    assert!(
        (j.similarity - 0.4).abs() < 0.01 && j.threshold == 0.3,
        "{j:?}"
    );
    assert_eq!(j.operating_point, "joint test");
    let ev = j.evidence.join("\n");
    for want in [
        "this picture",
        "kim.jpg",
        "face cosine 0.4",
        "this applicant's text lou.txt",
        "kim.txt",
        "Jaccard 0.",
        "shared passage",
        "settlement ledger",
    ] {
        assert!(ev.contains(want), "{want:?} not in:\n{ev}");
    }
    // The face first, then the resume: the same link from the other side.
    assert!(enrol("pia", "pia.jpg", face(&at_cosine(&p, 0.4, &mut rng)))
        .await
        .is_empty());
    let m = enrol("pia", "pia.txt", text(&pia)).await;
    let others: Vec<(&str, &str)> = m
        .iter()
        .map(|x| (x.other_applicant_id.as_str(), x.modality.as_str()))
        .collect();
    assert_eq!(others, [("kim", "face+text")], "{m:?}");
    assert!(m[0]
        .evidence
        .iter()
        .any(|e| e.contains("this applicant's picture pia.jpg")));
    // pia's next inputs add nothing to that pair: not reported again.
    assert!(enrol("pia", "pia2.jpg", face(&unit(&mut rng)))
        .await
        .is_empty());
    assert!(enrol("pia", "pia.wav", voice(&vec![0.5; 256]))
        .await
        .is_empty());
    // Either side alone: a close-ish face with another resume, a shared
    // resume with another face.
    assert!(enrol("mo", "mo.txt", text(OTHER)).await.is_empty());
    assert!(enrol("mo", "mo.jpg", face(&at_cosine(&p, 0.4, &mut rng)))
        .await
        .is_empty());
    assert!(enrol("ned", "ned.jpg", face(&at_cosine(&p, 0.1, &mut rng)))
        .await
        .is_empty());
    assert!(enrol("ned", "ned.txt", text(&lou))
        .await
        .iter()
        .all(|x| x.modality == "text"));
    // Already linked by the text itself: the face adds no joint match.
    let m = enrol("sue", "sue.txt", text(&kim)).await;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].modality, "text");
    let m = enrol("sue", "sue.jpg", face(&at_cosine(&p, 0.4, &mut rng))).await;
    assert!(m.is_empty(), "{m:?}");
    assert!(reg
        .matches_of("", "kim")
        .await
        .unwrap()
        .iter()
        .all(|x| x.other_applicant_id != "mo" && x.other_applicant_id != "ned"));

    // Off: both joint thresholds at their modalities' own.
    let mut off = on.clone();
    (off.joint_face_threshold, off.joint_text_threshold) = (0.5, 0.5);
    let reg_off = Registry::open(store.clone(), off).await.unwrap();
    reg_off
        .enroll_and_match("", "oz", "oz.txt", None, &text(&lou))
        .await
        .unwrap();
    let m = reg_off
        .enroll_and_match(
            "",
            "oz",
            "oz.jpg",
            None,
            &face(&at_cosine(&p, 0.4, &mut rng)),
        )
        .await
        .unwrap();
    assert!(m.iter().all(|x| x.modality != "face+text"), "{m:?}");

    // Erased: kim's templates no longer link anyone.
    reg.erase("", "kim").await.unwrap();
    assert!(enrol("ray", "ray.txt", text(&lou))
        .await
        .iter()
        .all(|x| x.other_applicant_id != "kim"));
    let m = enrol("ray", "ray.jpg", face(&at_cosine(&p, 0.4, &mut rng))).await;
    assert!(m.iter().all(|x| x.other_applicant_id != "kim"), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joint_rule_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bulk.db").display().to_string(), 2)
        .await
        .unwrap();
    joint_scenario(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joint_rule_on_postgres() {
    let Some(pg) = PgServer::start("identity-joint") else {
        return;
    };
    joint_scenario(Store::open(&pg.url(), 2).await.unwrap()).await;
}
