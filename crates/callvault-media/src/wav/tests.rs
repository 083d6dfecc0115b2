use std::io::Write;
use std::process::Command;

use super::*;

fn ramp(count: usize, from: i16) -> Vec<i16> {
    (0..count).map(|i| from.wrapping_add(i as i16)).collect()
}

fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn read_back(path: &Path) -> (u32, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let rate = reader.spec().sample_rate;
    (rate, reader.samples::<i16>().map(Result::unwrap).collect())
}

#[test]
fn a_new_file_is_a_valid_empty_wav_with_room_for_ds64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/leg.wav");
    WavFile::create(&path, 16000, MAX_RIFF_SIZE).unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 80);
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(u32_at(&bytes, 4), 72);
    assert_eq!(&bytes[8..16], b"WAVEJUNK");
    assert_eq!(u32_at(&bytes, 16), 28);
    assert_eq!(&bytes[20..48], &[0; 28]);
    assert_eq!(&bytes[48..52], b"fmt ");
    assert_eq!(u32_at(&bytes, 52), 16);
    assert_eq!(&bytes[56..60], &[1, 0, 1, 0], "PCM, mono");
    assert_eq!(u32_at(&bytes, 60), 16000);
    assert_eq!(u32_at(&bytes, 64), 32000, "bytes per second");
    assert_eq!(&bytes[68..72], &[2, 0, 16, 0], "block align 2, 16 bits");
    assert_eq!(&bytes[72..76], b"data");
    assert_eq!(u32_at(&bytes, 76), 0);
    assert_eq!(read_back(&path), (16000, vec![]));
}

#[test]
fn appended_samples_count_once_the_header_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leg.wav");
    let mut wav = WavFile::create(&path, 8000, MAX_RIFF_SIZE).unwrap();
    let mut bytes = Vec::new();
    wav.append(&ramp(300, -150), &mut bytes).unwrap();
    wav.append_silence(5000, &[0; 1024]).unwrap();
    wav.append(&[7; 10], &mut bytes).unwrap();
    assert_eq!(wav.samples(), 5310);
    assert!(wav.header_is_stale());
    // Until the header is rewritten a reader sees the samples it counted before.
    assert_eq!(read_back(&path).1.len(), 0);
    wav.write_header().unwrap();
    assert!(!wav.header_is_stale());
    let (rate, samples) = read_back(&path);
    assert_eq!(rate, 8000);
    assert_eq!(samples[..300], ramp(300, -150)[..]);
    assert!(samples[300..5300].iter().all(|s| *s == 0));
    assert_eq!(samples[5300..], [7; 10]);
    let (_, result) = wav.finish();
    result.unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 80 + 5310 * 2);
}

#[test]
fn an_existing_path_is_never_truncated_nor_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leg.wav");
    fs::write(&path, b"an earlier leg's audio").unwrap();
    let error = WavFile::create(&path, 8000, MAX_RIFF_SIZE).unwrap_err();
    assert!(matches!(error, Error::FileExists { .. }), "{error}");
    assert_eq!(fs::read(&path).unwrap(), b"an earlier leg's audio");
}

/// Crossing the RIFF limit (set at 4 KiB here, 4 GiB in use) turns the header into RF64 in
/// place: the data does not move and the `JUNK` chunk becomes `ds64`.
#[test]
fn crossing_the_riff_limit_rewrites_the_header_as_rf64_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    let limit = 4096;
    let mut wav = WavFile::create(&path, 48000, limit).unwrap();
    let mut scratch = Vec::new();
    let first = ramp(2000, 1);
    wav.append(&first, &mut scratch).unwrap();
    wav.write_header().unwrap();
    let riff = fs::read(&path).unwrap();
    assert_eq!(&riff[0..4], b"RIFF", "72 + 4000 bytes fit the limit");
    assert_eq!(u32_at(&riff, 4), 4072);
    assert_eq!(u32_at(&riff, 76), 4000);

    let second = ramp(1000, 2001);
    wav.append(&second, &mut scratch).unwrap();
    wav.write_header().unwrap();
    let rf64 = fs::read(&path).unwrap();
    assert_eq!(rf64.len(), 80 + 6000);
    assert_eq!(&rf64[0..4], b"RF64");
    assert_eq!(u32_at(&rf64, 4), u32::MAX, "the RIFF size lives in ds64");
    assert_eq!(&rf64[8..12], b"WAVE");
    assert_eq!(&rf64[12..16], b"ds64");
    assert_eq!(u32_at(&rf64, 16), 28);
    assert_eq!(u64_at(&rf64, 20), 6072, "RIFF size: file size - 8");
    assert_eq!(u64_at(&rf64, 28), 6000, "data size");
    assert_eq!(u64_at(&rf64, 36), 3000, "sample count");
    assert_eq!(u32_at(&rf64, 44), 0, "no table");
    assert_eq!(rf64[48..72], riff[48..72], "fmt unchanged");
    assert_eq!(&rf64[72..76], b"data");
    assert_eq!(u32_at(&rf64, 76), u32::MAX, "the data size lives in ds64");
    let expected = le_bytes(&[first, second].concat());
    assert_eq!(rf64[80..], expected[..], "the data did not move");

    // Once RF64, always RF64: a later, smaller header keeps the form (a cut after a failure).
    wav.finish().1.unwrap();
    assert_eq!(&fs::read(&path).unwrap()[0..4], b"RF64");

    // An independent reader agrees, where one is installed.
    match Command::new("sox")
        .arg(&path)
        .args(["-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-"])
        .output()
    {
        Ok(output) => {
            assert!(output.status.success(), "{output:?}");
            assert_eq!(output.stdout, expected, "sox reads the RF64 file's samples");
        }
        Err(error) => eprintln!("SKIPPED the sox check of the RF64 file: cannot run sox ({error})"),
    }
}

/// A file as `kill -9` leaves it: samples written after the last header rewrite, and half a
/// sample at the end.
fn crashed_file(dir: &Path) -> (PathBuf, Vec<i16>) {
    let path = dir.join("crashed.wav");
    let mut wav = WavFile::create(&path, 8000, MAX_RIFF_SIZE).unwrap();
    let mut scratch = Vec::new();
    let samples = ramp(1500, -700);
    wav.append(&samples[..1000], &mut scratch).unwrap();
    wav.write_header().unwrap();
    wav.append(&samples[1000..], &mut scratch).unwrap();
    drop(wav);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[0x55]).unwrap();
    (path, samples)
}

#[test]
fn repair_counts_the_whole_samples_on_disk_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (path, samples) = crashed_file(dir.path());
    assert_eq!(read_back(&path).1.len(), 1000, "the stale header");

    let repaired = repair(&path).unwrap();
    assert_eq!((repaired.samples, repaired.sample_rate), (1500, 8000));
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 80 + 3000, "the half sample is cut off");
    assert_eq!(read_back(&path), (8000, samples));
    let digest = hex::encode(Sha256::digest(&bytes));
    assert_eq!(repaired.sha256, digest);

    assert_eq!(repair(&path).unwrap(), repaired);
    assert_eq!(
        fs::read(&path).unwrap(),
        bytes,
        "nothing changed the second time"
    );
}

#[test]
fn repair_keeps_an_rf64_file_rf64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rf64.wav");
    let mut wav = WavFile::create(&path, 8000, 1000).unwrap();
    wav.append(&ramp(600, 0), &mut Vec::new()).unwrap();
    wav.write_header().unwrap();
    wav.append(&ramp(100, 600), &mut Vec::new()).unwrap();
    drop(wav);
    let repaired = repair(&path).unwrap();
    assert_eq!(repaired.samples, 700);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[0..4], b"RF64");
    assert_eq!((u64_at(&bytes, 20), u64_at(&bytes, 28)), (1472, 1400));
    assert_eq!(u64_at(&bytes, 36), 700);
}

#[test]
fn repair_reads_a_canonical_wav_of_an_earlier_version() {
    // hound wrote the leg files before: a 44-byte header, no JUNK chunk.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hound.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for sample in ramp(100, 5) {
        writer.write_sample(sample).unwrap();
    }
    writer.finalize().unwrap();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&le_bytes(&ramp(50, 105))).unwrap();

    let repaired = repair(&path).unwrap();
    assert_eq!((repaired.samples, repaired.sample_rate), (150, 16000));
    assert_eq!(read_back(&path).1, ramp(150, 5));
}

#[test]
fn repair_refuses_what_is_not_a_wav() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = b"RIFF and WAVE are words in this text, not a header";
    fs::write(&path, text).unwrap();
    assert!(matches!(repair(&path), Err(Error::NotWav { .. })));
    assert_eq!(fs::read(&path).unwrap(), text, "left untouched");
}

#[test]
fn layout_parse_rejects_hostile_headers_without_panicking() {
    let good = empty_header(8000);
    assert_eq!(
        Layout::parse(&good),
        Ok(Layout {
            data_offset: 80,
            sample_rate: 8000,
            block_align: 2,
            rf64: false,
            room_for_ds64: true,
        })
    );
    for len in 0..good.len() {
        assert!(Layout::parse(&good[..len]).is_err(), "cut at {len}");
    }
    let mut huge_chunk = good;
    huge_chunk[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Layout::parse(&huge_chunk).is_err());
    let mut no_block_align = good;
    no_block_align[68..70].copy_from_slice(&[0, 0]);
    assert!(Layout::parse(&no_block_align).is_err());
    let mut rf64_without_ds64 = good;
    rf64_without_ds64[0..4].copy_from_slice(b"RF64");
    rf64_without_ds64[12..16].copy_from_slice(b"LIST");
    assert!(Layout::parse(&rf64_without_ds64).is_err());
}
