//! Uploads, checks and ranged reads against an in-memory bucket (the S3 client itself is
//! exercised end to end against a real S3 server in tests/e2e/objects.rs).

use super::*;

fn file_with(len: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1.wav");
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    (dir, path, bytes, digest)
}

#[tokio::test]
async fn a_small_file_is_one_put_and_reads_back_by_range() {
    let objects = Objects::in_memory("/callvault/");
    let (_dir, path, bytes, digest) = file_with(100_000);
    let uploaded = objects
        .upload_file(&path, "recordings/2026/12/03/r/1.wav", &digest)
        .await
        .unwrap();
    assert_eq!(
        uploaded,
        Uploaded {
            key: "callvault/recordings/2026/12/03/r/1.wav".to_owned(),
            bytes: 100_000,
            multipart: false,
        }
    );
    let part = objects.get_range(&uploaded.key, 10..20).await.unwrap();
    assert_eq!(&part[..], &bytes[10..20]);
}

#[tokio::test]
async fn a_large_file_goes_in_parts_and_arrives_whole() {
    let objects = Objects::in_memory("");
    let (_dir, path, bytes, digest) = file_with(2 * PART_SIZE + 12_345);
    let uploaded = objects
        .upload_file(&path, "a/1.wav", &digest)
        .await
        .unwrap();
    assert!(uploaded.multipart);
    assert_eq!(uploaded.key, "a/1.wav");
    assert_eq!(&objects.get(&uploaded.key).await.unwrap()[..], &bytes[..]);
}

#[tokio::test]
async fn a_file_that_no_longer_matches_its_digest_is_not_uploaded() {
    let objects = Objects::in_memory("p");
    for len in [1000, PART_SIZE + 1] {
        let (_dir, path, _, _) = file_with(len);
        let wrong = hex::encode(Sha256::digest(b"something else"));
        let err = objects
            .upload_file(&path, "a/1.wav", &wrong)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Digest { .. }), "{err}");
        assert!(err.is_permanent());
        assert!(matches!(
            objects.len("p/a/1.wav").await,
            Err(Error::NotFound { .. })
        ));
    }
}

#[tokio::test]
async fn deleting_a_folder_removes_its_objects_only() {
    let objects = Objects::in_memory("p");
    for name in ["r/1.wav", "r/2.wav", "r/recording.json", "r2/1.wav"] {
        objects
            .put_bytes(name, Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    let mut deleted = objects.delete_under("r").await.unwrap();
    deleted.sort();
    assert_eq!(deleted, ["p/r/1.wav", "p/r/2.wav", "p/r/recording.json"]);
    assert!(objects.len("p/r2/1.wav").await.is_ok());
    assert!(objects.delete_under("r").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_reader_reads_any_range_and_refuses_past_the_end() {
    let objects = Objects::in_memory("");
    let (_dir, path, bytes, digest) = file_with(3 * READ_AHEAD as usize + 5);
    let uploaded = objects
        .upload_file(&path, "r/1.wav", &digest)
        .await
        .unwrap();
    let handle = tokio::runtime::Handle::current();
    let key = uploaded.key.clone();
    tokio::task::spawn_blocking(move || {
        let reader = BlockingObject::open(&objects, &key, handle).unwrap();
        assert_eq!(reader.len(), bytes.len() as u64);
        for (offset, len) in [
            (0usize, 80usize),
            (80, 4000),
            (2 * READ_AHEAD as usize, 70_000),
            (5, 10),
        ] {
            let mut buf = vec![0; len];
            reader.read_exact_at(&mut buf, offset as u64).unwrap();
            assert_eq!(buf, bytes[offset..offset + len]);
        }
        let mut buf = vec![0; 10];
        let past = reader
            .read_exact_at(&mut buf, bytes.len() as u64 - 5)
            .unwrap_err();
        assert_eq!(past.kind(), std::io::ErrorKind::UnexpectedEof);
    })
    .await
    .unwrap();
}
