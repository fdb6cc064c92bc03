//! Bulk re-screening with the identity registry on: every item a worker
//! analyses is enrolled under its applicant id (scoped to the batch's
//! owner), and the batch report lists the applicants linked by matches as
//! clusters. Resumes only, so that no model is needed: the same resume
//! skeleton reworded under two names, unrelated resumes beside it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use candor_bulk::testpg::PgServer;
use candor_bulk::{BulkWorker, ManifestLimits, ManifestReader, NewBatch, Store, WorkerConfig};
use candor_detectors::{Analyzer, AnalyzerConfig};
use candor_identity::{Registry, RegistryConfig};
use tokio::sync::watch;

const SKELETON: &str = "Senior backend engineer with eight years in payments. Led the migration \
of a card platform to event sourcing, cutting reconciliation from five days to one. Mentored four \
engineers and ran the on-call rotation for two years. Built the fraud scoring service in Rust and \
Kafka, handling twelve thousand events a second.";
const REWORDED: &str = "Built the fraud scoring service in Rust and Kafka, handling twelve \
thousand events a second. Senior backend engineer with nine years in payments. Led the migration \
of a card platform to event sourcing, cutting reconciliation from five days to one. Coached four \
engineers and ran the on-call rotation for two years.";
const OTHER: &str = "Registered nurse on a cardiac ward for six years; trained new staff on \
telemetry monitoring and wrote the unit's handover checklist, now used across the hospital.";
const THIRD: &str = "Civil engineer who designed drainage for three motorway junctions and \
supervised the contractors on site; chartered since 2019 and fluent in Spanish.";

fn cfg() -> RegistryConfig {
    RegistryConfig {
        retention: Duration::from_secs(3600),
        face_threshold: 0.45,
        face_operating_point: "test".into(),
        voice_threshold: 0.8,
        voice_operating_point: "test".into(),
        text_threshold: 0.3,
        text_operating_point: "test".into(),
        photo_max_bits: 10,
        photo_operating_point: "test".into(),
        joint_face_threshold: 1.0,
        joint_text_threshold: 1.0,
        joint_operating_point: String::new(),
        max_matches: 10,
        scan_threads: 1,
    }
}

async fn scenario(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    for (a, t) in [
        ("ann", SKELETON),
        ("bob", REWORDED),
        ("cyd", OTHER),
        ("dee", THIRD),
    ] {
        std::fs::write(dir.path().join(format!("{a}.txt")), t).unwrap();
    }
    let m = dir.path().join("manifest.csv");
    std::fs::write(
        &m,
        "applicant_id,files\nann,ann.txt\nbob,bob.txt\ncyd,cyd.txt\ndee,dee.txt\n",
    )
    .unwrap();
    let reg = Arc::new(Registry::open(store.clone(), cfg()).await.unwrap());
    let new = NewBatch {
        batch_id: "farm".into(),
        owner: Some("k1".into()),
        ..Default::default()
    };
    let r = ManifestReader::open(&m, ManifestLimits::default()).unwrap();
    candor_bulk::submit(&store, &new, r, 100, |_| {})
        .await
        .unwrap();

    let (tx, rx) = watch::channel(false);
    let w = BulkWorker::new(
        store.clone(),
        Arc::new(Analyzer::new(AnalyzerConfig::default())),
        WorkerConfig {
            poll_interval: Duration::from_millis(100),
            ..WorkerConfig::default()
        },
    )
    .with_identity(reg.clone());
    let h = tokio::spawn(w.run(rx));
    let t = Instant::now();
    while !store.status("farm", None).await.unwrap().finished {
        assert!(t.elapsed() < Duration::from_secs(60), "batch not finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tx.send(true).unwrap();
    h.await.unwrap().unwrap();

    // Scoped to the batch's owner.
    let seen = reg.matches_of("k1", "bob").await.unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (
            seen[0].other_applicant_id.as_str(),
            seen[0].modality.as_str()
        ),
        ("ann", "text")
    );
    assert!(reg.matches_of("", "bob").await.unwrap().is_empty());

    let rep = candor_bulk::report::report(&store, "farm", None, 10)
        .await
        .unwrap();
    let clusters = rep.clusters.expect("the registry's tables exist");
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert_eq!(clusters[0].applicants, vec!["ann", "bob"]);
    assert_eq!(clusters[0].links.len(), 1);
    assert_eq!(clusters[0].links[0].modality, "text");
    assert!(clusters[0].links[0].similarity >= 0.3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_items_are_enrolled_and_clustered_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bulk.db").display().to_string(), 2)
        .await
        .unwrap();
    // No registry ever ran here: the report says so with `null`.
    let m = dir.path().join("m.csv");
    std::fs::write(dir.path().join("x.txt"), OTHER).unwrap();
    std::fs::write(&m, "applicant_id,files\nzed,x.txt\n").unwrap();
    let new = NewBatch {
        batch_id: "plain".into(),
        ..Default::default()
    };
    let r = ManifestReader::open(&m, ManifestLimits::default()).unwrap();
    candor_bulk::submit(&store, &new, r, 100, |_| {})
        .await
        .unwrap();
    let rep = candor_bulk::report::report(&store, "plain", None, 10)
        .await
        .unwrap();
    assert!(rep.clusters.is_none());
    scenario(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_items_are_enrolled_and_clustered_on_postgres() {
    let Some(pg) = PgServer::start("bulkidentity") else {
        return;
    };
    scenario(Store::open(&pg.url(), 2).await.unwrap()).await;
}
