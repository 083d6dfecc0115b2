use std::io::{Cursor, Read};

use time::macros::datetime;

use super::*;
use crate::audio::{Channels, ExportFormat, MixLeg, Party, leg_source, mix_source};
use crate::testing::{drain, tone, write_leg};

fn entries_of(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.name().unwrap().into_owned(), bytes)
        })
        .collect()
}

#[test]
fn an_archive_of_legs_and_mixes_opens_with_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let caller = dir.path().join("caller.wav");
    let callee = dir.path().join("callee.wav");
    write_leg(&caller, 8000, &tone(440.0, 8000, 10.0, 0.5));
    write_leg(&callee, 16000, &tone(1000.0, 16000, 10.0, 0.5));
    let legs = vec![
        MixLeg::new(&caller, Party::Caller),
        MixLeg::new(&callee, Party::Callee),
    ];
    let (mixed, _) = drain(&mut *mix_source(&legs, ExportFormat::Wav, Channels::Stereo).unwrap());

    let (path_a, path_b) = (caller.clone(), callee.clone());
    let mp3_legs = legs.clone();
    let stream = ZipStream::new(vec![
        ZipEntry::new("call.wav", move || leg_source(&path_a))
            .modified(datetime!(2025-03-04 05:06:08 UTC)),
        // The same name again, in another case, and a hostile one.
        ZipEntry::new("CALL.wav", move || leg_source(&path_b)),
        ZipEntry::new("../../etc/passwd", move || {
            mix_source(&legs, ExportFormat::Wav, Channels::Stereo)
        }),
        ZipEntry::new("call.mp3", move || {
            mix_source(&mp3_legs, ExportFormat::Mp3, Channels::Mono)
        }),
    ]);
    assert_eq!(
        stream.names().collect::<Vec<_>>(),
        ["call.wav", "CALL_2.wav", "etc_passwd", "call.mp3"]
    );
    let mut stream = stream;
    let (archive, largest) = drain(&mut stream);
    // One chunk of an entry at a time (64 KiB of a leg), plus the zip's own headers.
    assert!(largest <= 64 * 1024 + 1024, "{largest}");

    let entries = entries_of(&archive);
    let names: Vec<_> = entries.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["call.wav", "CALL_2.wav", "etc_passwd", "call.mp3"]);
    assert_eq!(entries[0].1, std::fs::read(&caller).unwrap());
    assert_eq!(entries[1].1, std::fs::read(&callee).unwrap());
    assert_eq!(entries[2].1, mixed);
    assert_eq!((entries[3].1[0], entries[3].1[1] & 0xE0), (0xFF, 0xE0));

    let mut zip = zip::ZipArchive::new(Cursor::new(&archive[..])).unwrap();
    let first = zip.by_index(0).unwrap();
    assert_eq!(first.compression(), CompressionMethod::Stored);
    let modified = first.last_modified().unwrap();
    assert_eq!(
        (modified.year(), modified.month(), modified.day()),
        (2025, 3, 4)
    );
    assert_eq!(
        (modified.hour(), modified.minute(), modified.second()),
        (5, 6, 8)
    );
}

#[test]
fn an_entry_that_cannot_be_opened_fails_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone.wav");
    let mut stream = ZipStream::new(vec![ZipEntry::new("gone.wav", move || leg_source(&gone))]);
    let error = loop {
        match stream.next_chunk() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("an archive without its entry was completed"),
            Err(error) => break error,
        }
    };
    assert!(error.is_missing_file());
}

#[test]
fn an_empty_archive_is_still_a_zip() {
    let (archive, _) = drain(&mut ZipStream::new(Vec::new()));
    assert!(entries_of(&archive).is_empty());
}

#[test]
fn names_are_made_unique_before_the_extension() {
    let mut taken = HashSet::new();
    let names: Vec<_> = ["a.wav", "a.wav", "A.WAV", "a", "a", ".wav"]
        .iter()
        .map(|name| unique_name(name, &mut taken))
        .collect();
    assert_eq!(names, ["a.wav", "a_2.wav", "A_3.WAV", "a", "a_2", ".wav"]);
}
