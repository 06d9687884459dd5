use super::*;

fn both() -> Vec<(Location, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let local = Location::local(dir.path().join("root"));
    vec![
        (local, dir),
        (
            Location::in_memory().join("root"),
            tempfile::tempdir().unwrap(),
        ),
    ]
}

#[test]
fn put_get_list_delete_behave_alike_locally_and_in_an_object_store() {
    for (root, _keep) in both() {
        assert!(
            root.list().unwrap().is_empty(),
            "{root}: a missing root lists empty"
        );
        let a = root.join("date=2026-01-01/line=a/part-1.parquet");
        a.put(b"first".to_vec()).unwrap();
        a.put(b"second".to_vec()).unwrap();
        root.join("x").put(vec![7; 10]).unwrap();
        assert_eq!(&a.get().unwrap()[..], b"second", "{root}: a put replaces");
        assert_eq!(a.size().unwrap(), 6);
        assert_eq!(&a.get_range(1, 4).unwrap()[..], b"eco");
        let listed: Vec<(String, u64)> = root
            .list()
            .unwrap()
            .into_iter()
            .map(|l| (l.relative, l.size))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("date=2026-01-01/line=a/part-1.parquet".to_string(), 6),
                ("x".to_string(), 10)
            ],
            "{root}: no temporary files left, sizes right"
        );
        a.delete().unwrap();
        a.delete().unwrap();
        assert!(matches!(a.get(), Err(SinkError::NotFound(_))), "{root}");
        assert_eq!(a.name().as_deref(), Some("part-1.parquet"));
    }
}

#[test]
fn a_large_object_goes_up_in_parts_and_reads_back_whole() {
    let root = Location::in_memory();
    let big: Vec<u8> = (0..MULTIPART_THRESHOLD + 12_345)
        .map(|i| (i % 251) as u8)
        .collect();
    let f = root.join("big.bin");
    f.put(big.clone()).unwrap();
    assert_eq!(f.get().unwrap().len(), big.len());
    assert_eq!(&f.get().unwrap()[..], &big[..]);
}

#[test]
fn locations_parse_from_paths_and_urls() {
    let l = Location::parse("./out").unwrap();
    assert_eq!(l.as_local(), Some(Path::new("./out")));
    let l = Location::parse("file:///var/lib/linewatch").unwrap();
    assert_eq!(l.as_local(), Some(Path::new("/var/lib/linewatch")));
    // SAFETY-free: the builders read the environment; a region is all S3 needs to build.
    let s3 = Location::parse("s3://plant-data/linewatch/out").unwrap();
    assert!(s3.as_local().is_none());
    assert_eq!(s3.to_string(), "s3://plant-data/linewatch/out");
    assert_eq!(
        s3.join("scores/date=2026-01-01").to_string(),
        "s3://plant-data/linewatch/out/scores/date=2026-01-01"
    );
    for bad in ["", "ftp://host/x", "s3:///no-bucket", "file://relative"] {
        let e = Location::parse(bad).unwrap_err();
        assert!(
            matches!(e, SinkError::InvalidLocation { .. }),
            "{bad:?}: {e}"
        );
    }
}

/// Called from inside a Tokio task many more times than a task's cooperative budget (128
/// polls) allows: waiting must not depend on the caller's runtime (polling a Tokio
/// `JoinHandle` from a foreign executor there spins forever once the budget is spent).
#[test]
fn block_on_works_inside_a_tokio_runtime_past_its_budget() {
    for multi in [false, true] {
        let rt = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread().build()
        }
        .unwrap();
        let root = Location::in_memory();
        rt.block_on(async {
            for i in 0..400u32 {
                let f = root.join(&format!("k{i}"));
                f.put(i.to_le_bytes().to_vec()).unwrap();
                assert_eq!(&f.get().unwrap()[..], &i.to_le_bytes());
            }
            assert_eq!(root.list().unwrap().len(), 400);
        });
    }
}
