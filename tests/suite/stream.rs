//! Streaming over a real loopback socket: order, a slow reader, reconnects, a dying trainer,
//! and `gatescope train --connect` end to end.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatescope::record::{self, Decoder};
use gatescope::snapshot::Message;
use gatescope::stream::{Listener, SocketSink, StreamEvent};

use crate::common;
use common as fixtures;

fn next_event(l: &std::sync::mpsc::Receiver<StreamEvent>) -> StreamEvent {
    l.recv_timeout(Duration::from_secs(30)).expect("an event within 30 s")
}

fn snap(step: u64) -> Arc<Message> {
    Arc::new(Message::Snapshot(Box::new(fixtures::snapshot(step, 4))))
}

#[test]
fn snapshots_arrive_in_order_and_a_reconnecting_viewer_picks_up() {
    let (listener, events) = Listener::channel("127.0.0.1:0").unwrap();
    let addr = listener.addr.to_string();
    let sink = SocketSink::connect(&addr, fixtures::header(4)).unwrap();
    assert!(matches!(next_event(&events), StreamEvent::Connected { .. }));
    assert!(matches!(next_event(&events), StreamEvent::Message { message: Message::Header(_), .. }));
    for step in 0..3 {
        sink.send(snap(step));
        match next_event(&events) {
            StreamEvent::Message { message: Message::Snapshot(s), .. } => assert_eq!(s.step, step),
            e => panic!("unexpected {e:?}"),
        }
    }
    // the viewer goes away …
    drop(listener);
    std::thread::sleep(Duration::from_millis(400));
    for step in 3..6 {
        sink.send(snap(step)); // never blocks, even with nobody listening
    }
    // … and comes back on the same port: header first, then the next frames
    let (_listener, events) = loop {
        match Listener::channel(&addr) {
            Ok(l) => break l,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    sink.send(snap(6));
    assert!(matches!(next_event(&events), StreamEvent::Connected { .. }));
    assert!(matches!(next_event(&events), StreamEvent::Message { message: Message::Header(_), .. }));
    let mut steps = vec![];
    while !steps.contains(&6) {
        if let StreamEvent::Message { message: Message::Snapshot(s), .. } = next_event(&events) {
            steps.push(s.step);
        }
    }
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
    // the trainer finishes: the viewer hears a clean disconnect and keeps running
    sink.finish(Duration::from_secs(5));
    loop {
        match next_event(&events) {
            StreamEvent::Disconnected { error, .. } => {
                assert!(error.is_none(), "{error:?}");
                break;
            }
            StreamEvent::Message { .. } => {}
            e => panic!("unexpected {e:?}"),
        }
    }
}

#[test]
fn a_slow_reader_never_slows_the_sender_and_drops_are_counted() {
    let raw = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = raw.local_addr().unwrap().to_string();
    // a big snapshot, so that the socket buffers fill
    let big = Arc::new(Message::Snapshot(Box::new(gatescope::snapshot::Snapshot {
        sample_blocks: gatescope::snapshot::Array::new(vec![400, 50, 50], (0..1_000_000u64).map(|i| ((i * 7919) % 1000) as f32).collect()),
        ..Default::default()
    })));
    let mut header = fixtures::header(400);
    (header.card.arch.depth, header.card.arch.width) = (50, 50);
    let sink = SocketSink::connect(&addr, header).unwrap();
    let (mut conn, _) = raw.accept().unwrap();
    // the reader reads nothing while 200 snapshots are pushed
    for step in 0..200u64 {
        let mut m = (*big).clone();
        if let Message::Snapshot(s) = &mut m {
            s.step = step;
        }
        sink.send(Arc::new(m));
    }
    let dropped_while_stalled = sink.dropped();
    assert!(dropped_while_stalled > 0, "a stalled reader must make the queue coalesce");
    // now read slowly until the last snapshot arrives
    let mut dec = Decoder::new();
    let mut buf = vec![0u8; 1 << 14];
    let (mut steps, mut reported) = (vec![], 0u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !steps.contains(&199) {
        assert!(Instant::now() < deadline);
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0);
        dec.push(&buf[..n]);
        while let Some(m) = dec.next().unwrap() {
            match m {
                Message::Snapshot(s) => steps.push(s.step),
                Message::Dropped(d) => reported = d,
                Message::Header(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(steps.len() < 200, "some snapshots were coalesced away");
    assert_eq!(steps.len() as u64 + sink.dropped(), 200);
    assert!(reported > 0, "the reader is told how many were dropped");
    assert!(steps.windows(2).all(|w| w[0] < w[1]));
    sink.finish(Duration::from_secs(1));
}

#[test]
fn a_dead_trainer_leaves_the_viewer_with_what_it_got() {
    let (listener, events) = Listener::channel("127.0.0.1:0").unwrap();
    let mut conn = std::net::TcpStream::connect(listener.addr).unwrap();
    use std::io::Write;
    conn.write_all(&record::preamble()).unwrap();
    conn.write_all(&record::encode(&Message::Header(Box::new(fixtures::header(4))))).unwrap();
    let frame = record::encode(&snap(1));
    conn.write_all(&frame).unwrap();
    conn.write_all(&frame[..frame.len() / 2]).unwrap(); // dies mid-frame
    drop(conn);
    let mut got = 0;
    loop {
        match next_event(&events) {
            StreamEvent::Message { message: Message::Snapshot(_), .. } => got += 1,
            StreamEvent::Disconnected { error, .. } => {
                assert!(error.unwrap().contains("inside a frame"));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(got, 1);
    // garbage is one clear error, not a panic
    let mut conn = std::net::TcpStream::connect(listener.addr).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    loop {
        if let StreamEvent::Disconnected { error, .. } = next_event(&events) {
            assert!(error.unwrap().contains("not a gatescope recording"));
            break;
        }
    }
}

#[test]
fn train_connect_streams_to_a_listener() {
    let (listener, events) = Listener::channel("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_gatescope"))
        .args([
            "train",
            "--quiet",
            "--depth",
            "6",
            "--width",
            "20",
            "--epochs",
            "1",
            "--max-steps",
            "60",
            "--every",
            "20steps",
            "--probe",
            "2000",
        ])
        .arg("--connect")
        .arg(listener.addr.to_string())
        .arg("--out")
        .arg(dir.path().join("m.safetensors"))
        .status()
        .unwrap();
    assert!(status.success());
    let (mut header, mut steps) = (false, vec![]);
    loop {
        match next_event(&events) {
            StreamEvent::Message { message: Message::Header(h), .. } => {
                assert_eq!(h.card.arch.depth, 6);
                header = true;
            }
            StreamEvent::Message { message: Message::Snapshot(s), .. } => steps.push(s.step),
            StreamEvent::Disconnected { .. } => break,
            _ => {}
        }
    }
    assert!(header);
    assert_eq!(steps, vec![0, 20, 40, 60]);
}
