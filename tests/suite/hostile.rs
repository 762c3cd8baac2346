//! Hostile files: sizes a file claims are checked before anything is allocated for them.
//! Every case gives one clear error (non-zero exit or `Err`) that names the field, with
//! bounded memory (each command's peak RSS, from wait4's rusage: what `/usr/bin/time -f %M`
//! reports), and never a panic or an abort.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common;
use gatescope::snapshot::{Array, Message};

/// Peak RSS a command may reach on any input of at most 100 MB: 1 GB.
const RSS_BUDGET_KB: i64 = 1_000_000;

fn bundled(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Runs gatescope with `args`: (success, stdout + stderr, peak RSS in KB). The child is
/// reaped by wait4 (which gives its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&str]) -> (bool, String, i64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatescope"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut text = String::new();
    let _ = err.read_to_string(&mut text);
    text = reader.join().unwrap() + &text;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; wait4 reaps exactly this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(libc::WIFEXITED(status), "{args:?} died of a signal {}: {text}", libc::WTERMSIG(status));
    (ok, text, usage.ru_maxrss)
}

/// The command fails with one error naming `words`, without a panic, within the budget.
fn refuses(args: &[&str], words: &[&str]) -> String {
    let (ok, text, rss) = run_measured(args);
    assert!(!ok, "{args:?} succeeded: {text}");
    for w in words {
        assert!(text.contains(w), "{args:?}: the error does not say {w:?}: {text}");
    }
    for bad in ["panicked", "RUST_BACKTRACE", "memory allocation of"] {
        assert!(!text.contains(bad), "{args:?}: {text}");
    }
    assert_eq!(text.matches("error:").count(), 1, "{args:?}: one error: {text}");
    assert!(rss < RSS_BUDGET_KB, "{args:?}: peak RSS {rss} KB");
    text
}

/// The bundled model file with its card's JSON changed by `edit`.
pub(crate) fn model_with_card(dir: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let bytes = std::fs::read(bundled("recordings/default.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut card: serde_json::Value = serde_json::from_str(header["__metadata__"]["gatescope.card"].as_str().unwrap()).unwrap();
    edit(&mut card);
    header["__metadata__"]["gatescope.card"] = serde_json::Value::String(card.to_string());
    let mut text = header.to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text.as_bytes());
    out.extend(&bytes[8 + n..]);
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

pub(crate) const HUGE: u64 = 1 << 40;

#[test]
fn a_model_card_claiming_an_absurd_architecture_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let absurd = model_with_card(dir.path(), "absurd.safetensors", |c| c["arch"]["depth"] = HUGE.into());
    let p = absurd.to_str().unwrap();
    for cmd in [vec!["info", p], vec!["eval", p], vec!["probe", p, "--out"], vec!["lesion", p], vec!["export", p, "--figure", "2"]] {
        let mut args = cmd.clone();
        let out = dir.path().join("x.gsrec");
        if args.last() == Some(&"--out") {
            args.push(out.to_str().unwrap());
        }
        refuses(&args, &["absurd.safetensors", "depth 1099511627776", "limit of 10000"]);
    }
    // within every limit, but more parameters than the file holds
    let big = model_with_card(dir.path(), "big.safetensors", |c| c["arch"]["width"] = 200.into());
    refuses(&["eval", big.to_str().unwrap()], &["big.safetensors", "parameters", "the file has"]);
    // a count that is not a count
    let float = model_with_card(dir.path(), "float.safetensors", |c| c["arch"]["depth"] = serde_json::json!(1e300));
    refuses(&["eval", float.to_str().unwrap()], &["float.safetensors", "arch.depth"]);
    // a newer major version
    let newer = model_with_card(dir.path(), "newer.safetensors", |c| c["format_version"] = 99.into());
    refuses(&["info", newer.to_str().unwrap()], &["newer.safetensors", "version 99 is newer"]);
}

#[test]
fn conv_cards_whose_sizes_overflow_are_refused_not_wrapped() {
    let dir = tempfile::tempdir().unwrap();
    let conv = model_with_card(dir.path(), "conv.safetensors", |c| {
        c["arch"]["family"] = "conv".into();
        c["arch"]["image_shape"] = serde_json::json!([1u64 << 40, 1u64 << 40, 1u64 << 40]);
        c["arch"]["conv_stages"] = serde_json::json!([49]);
    });
    refuses(&["info", conv.to_str().unwrap()], &["conv.safetensors", "image shape"]);
    let a = gatescope::arch::Arch {
        width: 65_536,
        image_shape: Some([1, 4096, 4096]),
        input_dim: 4096 * 4096,
        ..gatescope::arch::Arch::conv_mnist()
    };
    let e = a.validate().unwrap_err().to_string();
    assert!(e.contains("over the limit"), "{e}");
}

/// An import spec for the bundled MNIST with these fields, beside a tiny state_dict.
pub(crate) fn spec_with(dir: &Path, depth: u64, width: u64) -> PathBuf {
    std::fs::write(dir.join("w.safetensors"), b"\x10\0\0\0\0\0\0\0{}              ").unwrap();
    let spec = serde_json::json!({"format": "gatescope-pytorch-spec", "weights": "w.safetensors", "depth": depth, "width": width,
        "input_dim": 784, "classes": 10, "activation": "tanh", "dataset": "mnist"});
    let path = dir.join(format!("spec-{depth}-{width}.json"));
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

#[test]
fn import_specs_claiming_absurd_sizes_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let p = spec_with(dir.path(), HUGE, 50);
    assert!(std::fs::metadata(&p).unwrap().len() < 300);
    refuses(&["eval", p.to_str().unwrap()], &["spec-1099511627776-50.json", "depth 1099511627776", "limit of 10000"]);
    // each within its own limit, but the product is not
    let p = spec_with(dir.path(), 10_000, 65_536);
    refuses(&["info", p.to_str().unwrap()], &["spec-10000-65536.json", "parameters", "limit"]);
    // a plausible net that the weights file cannot hold
    let p = spec_with(dir.path(), 50, 50);
    refuses(&["eval", p.to_str().unwrap()], &["spec-50-50.json", "parameters", "can hold"]);
}

/// A recording whose header claims a depth of 2^40.
pub(crate) fn absurd_recording(dir: &Path) -> PathBuf {
    let mut header = common::header(2);
    header.card.arch.depth = HUGE as usize;
    let path = dir.join("absurd.gsrec");
    let mut w = gatescope::record::Writer::create(&path, &header).unwrap();
    w.write(&Message::Snapshot(Box::new(common::snapshot(0, 2)))).unwrap();
    path
}

/// A recording with a snapshot whose mean gate map has another shape than its header implies.
pub(crate) fn disagreeing_recording(dir: &Path) -> PathBuf {
    let mut snap = common::snapshot(10, 2);
    snap.mean_gate = Array::new(vec![9, 1], vec![0.5; 9]);
    let path = dir.join("shapes.gsrec");
    let mut w = gatescope::record::Writer::create(&path, &common::header(2)).unwrap();
    w.write(&Message::Snapshot(Box::new(common::snapshot(0, 2)))).unwrap();
    w.write(&Message::Snapshot(Box::new(snap))).unwrap();
    path
}

#[test]
fn a_recording_whose_header_claims_an_absurd_architecture_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = absurd_recording(dir.path());
    let p = path.to_str().unwrap();
    refuses(&["info", p], &["absurd.gsrec", "header", "depth 1099511627776", "limit of 10000"]);
    refuses(&["export", p, "--figure", "2", "--out", dir.path().join("f.png").to_str().unwrap()], &["absurd.gsrec", "depth"]);
}

#[test]
fn snapshots_that_disagree_with_their_header_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = disagreeing_recording(dir.path()); // the header: depth 4, width 3, gated maps [3, 3]
    let e = gatescope::record::open(&path).unwrap_err().to_string();
    assert!(e.contains("mean_gate has shape [9, 1]") && e.contains("[3, 3]"), "{e}");
    refuses(&["info", path.to_str().unwrap()], &["shapes.gsrec", "mean_gate"]);
    // the same through the incremental decoder (sockets)
    let bytes = std::fs::read(&path).unwrap();
    let mut d = gatescope::record::Decoder::new();
    d.push(&bytes);
    let mut result = Ok(None);
    for _ in 0..4 {
        result = d.next();
        if !matches!(result, Ok(Some(_))) {
            break;
        }
    }
    assert!(result.unwrap_err().to_string().contains("mean_gate"));
}

/// A recording of the test header and one snapshot whose frame has its JSON changed by
/// `json` and its deflated payload replaced by `payload` (if given), with a valid checksum.
fn doctored(json: impl Fn(&mut serde_json::Value), payload: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = gatescope::record::preamble().to_vec();
    out.extend(gatescope::record::encode(&Message::Header(Box::new(common::header(2)))));
    let frame = gatescope::record::encode(&Message::Snapshot(Box::new(common::snapshot(0, 2))));
    let body = &frame[8..];
    let jl = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
    let mut value: serde_json::Value = serde_json::from_slice(&body[4..4 + jl]).unwrap();
    json(&mut value);
    let text = value.to_string();
    let mut new_body = (text.len() as u32).to_le_bytes().to_vec();
    new_body.extend(text.as_bytes());
    new_body.extend(payload.unwrap_or_else(|| body[4 + jl..].to_vec()));
    out.extend((new_body.len() as u32).to_le_bytes());
    out.extend(crc32fast::hash(&new_body).to_le_bytes());
    out.extend(new_body);
    out
}

#[test]
fn frames_whose_arrays_claim_too_much_or_inflate_too_far_are_refused() {
    let read = |bytes: &[u8]| gatescope::record::read_bytes(bytes).map(|_| ()).unwrap_err().to_string();
    // an array that claims 1.6 GB: refused before anything is inflated
    let e = read(&doctored(|v| v["arrays"][0]["shape"] = serde_json::json!([20_000, 20_000]), None));
    assert!(e.contains("over the limit of 268435456"), "{e}");
    // a shape whose product overflows
    let e = read(&doctored(|v| v["arrays"][0]["shape"] = serde_json::json!([1u64 << 40, 1u64 << 40]), None));
    assert!(e.contains("overflows"), "{e}");
    // a deflate bomb behind a small declared array: inflation stops at what was declared
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &vec![0u8; 200 << 20]).unwrap();
    let e = read(&doctored(|_| {}, Some(z.finish().unwrap())));
    assert!(e.contains("the arrays need"), "{e}");
    // the same bytes through the incremental decoder
    let bytes = doctored(|v| v["arrays"][0]["shape"] = serde_json::json!([20_000, 20_000]), None);
    let mut d = gatescope::record::Decoder::new();
    d.push(&bytes);
    assert!(matches!(d.next(), Ok(Some(Message::Header(_)))));
    assert!(d.next().unwrap_err().to_string().contains("over the limit"));
}

#[test]
fn idx_headers_whose_dimensions_overflow_or_inflate_too_far_are_refused() {
    use gatescope::data::idx;
    let mut b = 0x0803u32.to_be_bytes().to_vec();
    for _ in 0..3 {
        b.extend((u32::MAX).to_be_bytes());
    }
    b.extend([0u8; 16]);
    let e = idx::parse_images("huge-idx3-ubyte", &b).unwrap_err().to_string();
    assert!(e.contains("huge-idx3-ubyte") && e.contains("overflow"), "{e}");
    // a gzip bomb: 600 MiB of zeros in a few hundred KB
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..600 {
        std::io::Write::write_all(&mut gz, &zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 16 << 20, "{} bytes", bomb.len());
    let e = idx::decompress("bomb.gz", &bomb).unwrap_err().to_string();
    assert!(e.contains("bomb.gz") && e.contains("over") && e.contains("limit"), "{e}");
}

mod peers {
    //! The TCP listener under hostile peers: it stays responsive, memory stays bounded.
    use std::io::Write;
    use std::net::TcpStream;
    use std::sync::mpsc::Receiver;
    use std::time::{Duration, Instant};

    use gatescope::snapshot::{Array, Message};
    use gatescope::stream::{Limits, Listener, StreamEvent};

    use crate::common;

    fn quick() -> Limits {
        Limits { idle: Duration::from_secs(1), frame: Duration::from_secs(1), ..Limits::default() }
    }

    /// The next disconnection's error, within `secs`.
    fn next_error(events: &Receiver<StreamEvent>, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(StreamEvent::Disconnected { error, .. }) = events.recv_timeout(Duration::from_millis(100)) {
                return error.unwrap_or_default();
            }
        }
        panic!("no disconnection within {secs} s");
    }

    fn connect(l: &Listener) -> TcpStream {
        let mut s = TcpStream::connect(l.addr).unwrap();
        s.write_all(&gatescope::record::preamble()).unwrap();
        s
    }

    /// A real trainer still gets through: its header arrives.
    fn still_served(l: &Listener, events: &Receiver<StreamEvent>) {
        let sink = gatescope::stream::SocketSink::connect(&l.addr.to_string(), common::header(2)).unwrap();
        sink.send(std::sync::Arc::new(Message::Snapshot(Box::new(common::snapshot(5, 2)))));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "the listener no longer serves a real trainer");
            if let Ok(StreamEvent::Message { message: Message::Snapshot(s), .. }) = events.recv_timeout(Duration::from_millis(100)) {
                assert_eq!(s.step, 5);
                break;
            }
        }
    }

    #[test]
    fn a_huge_frame_length_is_refused_at_once() {
        let (l, events) = Listener::channel_with("127.0.0.1:0", quick()).unwrap();
        let mut s = connect(&l);
        s.write_all(&u32::MAX.to_le_bytes()).unwrap();
        s.write_all(&[0u8; 4]).unwrap();
        let e = next_error(&events, 10);
        assert!(e.contains("frame length 4294967295 is over the limit of 67108864"), "{e}");
        still_served(&l, &events);
    }

    #[test]
    fn a_peer_that_sends_a_header_and_stalls_is_closed() {
        let (l, events) = Listener::channel_with("127.0.0.1:0", quick()).unwrap();
        let mut s = connect(&l);
        s.write_all(&gatescope::record::encode(&Message::Header(Box::new(common::header(2))))).unwrap();
        let e = next_error(&events, 10);
        assert!(e.contains("nothing received for 1 s"), "{e}");
        // half a frame, then nothing
        let mut s2 = connect(&l);
        let frame = gatescope::record::encode(&Message::Header(Box::new(common::header(2))));
        s2.write_all(&frame[..frame.len() / 2]).unwrap();
        let e = next_error(&events, 10);
        assert!(e.contains("nothing received") || e.contains("did not arrive whole"), "{e}");
        drop((s, s2));
    }

    #[test]
    fn a_hundred_peers_at_once_are_capped_and_the_listener_stays_responsive() {
        let (l, events) = Listener::channel_with("127.0.0.1:0", quick()).unwrap();
        let socks: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(l.addr).unwrap()).collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut refused = 0;
        while refused < 92 && Instant::now() < deadline {
            if let Ok(StreamEvent::Disconnected { error: Some(e), .. }) = events.recv_timeout(Duration::from_millis(100)) {
                if e.contains("refused: 8 peers") {
                    refused += 1;
                }
            }
        }
        assert!(refused >= 92, "{refused} refused");
        drop(socks);
        std::thread::sleep(Duration::from_millis(1500)); // the 8 silent ones time out
        still_served(&l, &events);
    }

    #[test]
    fn a_peer_whose_snapshots_disagree_with_its_header_is_disconnected() {
        let (l, events) = Listener::channel_with("127.0.0.1:0", Limits::default()).unwrap();
        let mut s = connect(&l);
        let mut snap = common::snapshot(1, 2);
        snap.sample_gates = Array::new(vec![2, 7, 3], vec![0.5; 42]);
        s.write_all(&gatescope::record::encode(&Message::Header(Box::new(common::header(2))))).unwrap();
        s.write_all(&gatescope::record::encode(&Message::Snapshot(Box::new(snap)))).unwrap();
        let e = next_error(&events, 10);
        assert!(e.contains("sample_gates has shape [2, 7, 3]"), "{e}");
    }
}

#[test]
fn a_100_mb_model_opens_probes_and_exports_within_the_memory_budget() {
    use gatescope::data::DatasetKind;
    use gatescope::model::{file, import, Model};
    let dir = tempfile::tempdir().unwrap();
    // 1 plain + 49 highway layers of 500 units: 24.9 million parameters, 99.8 MB
    let arch = gatescope::arch::Arch { width: 500, ..gatescope::arch::Arch::figure2() };
    let model = Model::new(arch.clone(), 0).unwrap();
    let card = gatescope::card::ModelCard::new(arch, import::dataset_info(DatasetKind::Mnist), serde_json::json!({}));
    let path = dir.path().join("wide.safetensors");
    file::save(&model, &card, &path).unwrap();
    drop(model);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!((90_000_000..=100_000_000).contains(&size), "{size} bytes");
    let p = path.to_str().unwrap();
    let rec = dir.path().join("wide.gsrec");
    for args in [
        vec!["info", p],
        vec!["probe", p, "--out", rec.to_str().unwrap()],
        vec!["export", p, "--figure", "3", "--out", dir.path().join("f3.png").to_str().unwrap()],
    ] {
        let (ok, text, rss) = run_measured(&args);
        assert!(ok, "{args:?}: {text}");
        assert!(rss < RSS_BUDGET_KB, "{args:?}: peak RSS {rss} KB for a {size}-byte model");
    }
    let (ok, text, rss) = run_measured(&["info", rec.to_str().unwrap()]);
    assert!(ok && rss < RSS_BUDGET_KB, "{text} {rss}");
}
