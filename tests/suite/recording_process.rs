//! A real `gatescope train --record` process: killed with SIGKILL at several moments, its
//! recording still opens with every complete frame.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gatescope::record;

#[test]
fn a_recording_survives_sigkill_of_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut torn_seen = 0;
    for (round, wait_for) in [1usize, 3, 6].into_iter().enumerate() {
        let path = dir.path().join(format!("killed-{round}.gsrec"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatescope"))
            .args(["train", "--quiet", "--depth", "12", "--width", "40", "--epochs", "3", "--every", "3steps", "--probe", "20000"])
            .arg("--record")
            .arg(&path)
            .arg("--out")
            .arg(dir.path().join("m.safetensors"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // read the file while it is being written until it holds enough snapshots
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "the trainer wrote no recording in time");
            if let Ok(bytes) = std::fs::read(&path) {
                if let Ok(rec) = record::read_bytes(&bytes) {
                    if rec.snapshots.len() >= wait_for {
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let rec = record::open(&path).unwrap();
        assert!(rec.snapshots.len() >= wait_for);
        let steps: Vec<u64> = rec.snapshots.iter().map(|s| s.step).collect();
        assert!(steps.windows(2).all(|w| w[1] == w[0] + 3), "{steps:?}");
        torn_seen += rec.torn_tail.is_some() as usize;
        assert_eq!(rec.header.num_samples(), 32);
    }
    eprintln!("torn tails seen: {torn_seen} of 3");
}
