//! Recording format v1: round trips, torn tails at every byte offset, version and magic errors.

use crate::common;

use common::{header, snapshot};
use gatescope::record::{self, RecordError};
use gatescope::snapshot::{Array, Message};

fn recording(n: usize, k: usize) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    {
        let mut w = record::Writer::new(&mut bytes, &header(k)).unwrap();
        for s in 0..n {
            w.write(&Message::Snapshot(Box::new(snapshot(s as u64 * 10, k)))).unwrap();
        }
    }
    // frame boundaries: after the preamble+header, and after each snapshot
    let mut ends = vec![record::PREAMBLE_LEN + record::encode(&Message::Header(Box::new(header(k)))).len()];
    for s in 0..n {
        ends.push(ends.last().unwrap() + record::encode(&Message::Snapshot(Box::new(snapshot(s as u64 * 10, k)))).len());
    }
    (bytes, ends)
}

fn same_f64(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

#[test]
fn every_field_round_trips() {
    let (bytes, _) = recording(3, 5);
    let rec = record::read_bytes(&bytes).unwrap();
    assert!(rec.torn_tail.is_none());
    assert_eq!(rec.header, header(5));
    assert_eq!(rec.header.sample_images, header(5).sample_images);
    assert_eq!(rec.snapshots.len(), 3);
    for (i, got) in rec.snapshots.iter().enumerate() {
        let want = snapshot(i as u64 * 10, 5);
        assert_eq!((got.step, got.epoch), (want.step, want.epoch));
        assert!(same_f64(got.train_loss, want.train_loss));
        assert_eq!((got.train_accuracy, got.test_accuracy), (want.train_accuracy, want.test_accuracy));
        assert_eq!(got.sample_predictions, want.sample_predictions);
        // f32 fields are exact
        assert_eq!(got.mean_gate, want.mean_gate);
        for (g, w) in got.layers.iter().zip(&want.layers) {
            assert_eq!((g.layer, g.mean_gate, g.open_fraction), (w.layer, w.mean_gate, w.open_fraction));
            assert!(g.mean_change.is_nan() && w.mean_change.is_nan());
        }
        // f16 gate biases: within f16 precision
        for (a, b) in got.gate_bias.data.iter().zip(&want.gate_bias.data) {
            assert!((a - b).abs() <= b.abs() * 1e-3, "{a} vs {b}");
        }
        // class means: their deviations from the mean within half of 1/255 of their range
        assert_eq!(got.class_mean_gate.shape, want.class_mean_gate.shape);
        let dev: Vec<f32> = (0..2).flat_map(|c| want.class_deviation(c).data).collect();
        let (lo, hi) = Array::new(vec![dev.len()], dev).range().unwrap();
        for (a, b) in got.class_mean_gate.data.iter().zip(&want.class_mean_gate.data) {
            assert!((a - b).abs() <= (hi - lo) / 255.0 * 0.5 + 1e-6, "{a} vs {b}");
        }
        // 7-bit sample maps: within half a level of their range
        for (g, w) in [(&got.sample_gates, &want.sample_gates), (&got.sample_blocks, &want.sample_blocks)] {
            assert_eq!(g.shape, w.shape);
            let (lo, hi) = w.range().unwrap();
            for (a, b) in g.data.iter().zip(&w.data) {
                assert!((a - b).abs() <= (hi - lo) / 127.0 * 0.5 + 1e-6, "{a} vs {b}");
            }
        }
        // and storing what was read gives the same bytes again
        let again = record::encode(&Message::Snapshot(Box::new(got.clone())));
        assert!(again == record::encode(&Message::Snapshot(Box::new(want.clone()))), "re-encoding changed the bytes");
    }
}

#[test]
fn truncation_at_every_byte_offset_keeps_every_complete_frame() {
    let (bytes, ends) = recording(3, 2);
    for cut in 0..=bytes.len() {
        let r = record::read_bytes(&bytes[..cut]);
        if cut < ends[0] {
            let e = r.expect_err("no complete header");
            assert!(matches!(e, RecordError::NoHeader | RecordError::Corrupt { .. }), "cut {cut}: {e}");
            continue;
        }
        let rec = r.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let complete = ends[1..].iter().filter(|&&e| e <= cut).count();
        assert_eq!(rec.snapshots.len(), complete, "cut {cut}");
        let boundary = ends.contains(&cut);
        assert_eq!(rec.torn_tail.is_none(), boundary, "cut {cut}");
        if let Some(t) = rec.torn_tail {
            assert_eq!(t.offset as usize, *ends.iter().rfind(|&&e| e <= cut).unwrap());
            assert_eq!(t.offset as usize + t.bytes, cut);
            assert!(t.to_string().contains("torn tail"));
        }
    }
}

#[test]
fn magic_version_and_corruption_are_clear_errors() {
    let (bytes, ends) = recording(2, 2);
    let mut bad = bytes.clone();
    bad[0] = b'X';
    let e = record::read_bytes(&bad).unwrap_err().to_string();
    assert!(e.contains("not a gatescope recording"), "{e}");

    let mut newer = bytes.clone();
    newer[8..10].copy_from_slice(&2u16.to_le_bytes());
    let e = record::read_bytes(&newer).unwrap_err().to_string();
    assert!(e.contains("version 2.0 is newer"), "{e}");

    // a newer minor version is read
    let mut minor = bytes.clone();
    minor[10..12].copy_from_slice(&7u16.to_le_bytes());
    assert_eq!(record::read_bytes(&minor).unwrap().snapshots.len(), 2);

    // a flipped bit inside the first snapshot frame
    let mut flipped = bytes.clone();
    flipped[ends[0] + 20] ^= 0x10;
    let e = record::read_bytes(&flipped).unwrap_err().to_string();
    assert!(e.contains("corrupt frame 1") && e.contains("checksum"), "{e}");

    // an absurd frame length
    let mut long = bytes.clone();
    long[ends[0]..ends[0] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = record::read_bytes(&long).unwrap_err().to_string();
    assert!(e.contains("frame length 4294967295 is over the limit"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.gsrec");
    std::fs::write(&p, &bad).unwrap();
    let e = format!("{:#}", record::open(&p).unwrap_err());
    assert!(e.contains("x.gsrec") && e.contains("magic"), "{e}");
}

#[test]
fn decoder_reads_a_stream_byte_by_byte() {
    let (bytes, _) = recording(3, 2);
    let mut d = record::Decoder::new();
    let mut got = Vec::new();
    for b in &bytes {
        d.push(std::slice::from_ref(b));
        while let Some(m) = d.next().unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got.len(), 4);
    assert!(matches!(got[0], Message::Header(_)));
    assert!(matches!(&got[3], Message::Snapshot(s) if s.step == 20));
}
