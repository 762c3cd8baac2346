//! Recording format v1: a preamble, a header frame, then append-only snapshot frames.
//! The same bytes travel over a socket (`stream`). Documented in docs/recording-format.md.
//!
//! ```text
//! file    = magic "GATESCP\0" | major u16 LE | minor u16 LE | frame*
//! frame   = length u32 LE | crc32 u32 LE (of body) | body            (length = body bytes)
//! body    = json_length u32 LE | json | payload
//! payload = the frame's arrays, in the order the json lists them, deflate-compressed
//! ```
//!
//! Reading is incremental ([`Decoder`]): a frame that is not complete yet is "need more",
//! which is what a reader of a file being written, a socket reader, and a reader of a file
//! whose writer was killed (a torn tail) all need.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::snapshot::{Array, Header, LayerStats, Message, Snapshot};

pub const MAGIC: &[u8; 8] = b"GATESCP\0";
pub const VERSION_MAJOR: u16 = 1;
pub const VERSION_MINOR: u16 = 0;
pub const PREAMBLE_LEN: usize = 12;
/// No frame is larger than this (a guard against a garbage or hostile length): 256 MiB.
pub const MAX_FRAME: usize = 1 << 28;
/// No frame decodes to more than this (its arrays as f32): 256 MiB.
pub const MAX_FRAME_DECODED: usize = 1 << 28;
/// A whole recording read into memory decodes to at most this: 640 MiB.
pub const MAX_RECORDING_DECODED: usize = 640 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a gatescope recording (wrong magic bytes {0:02x?})")]
    BadMagic(Vec<u8>),
    #[error("recording format version {major}.{minor} is newer than this gatescope reads ({VERSION_MAJOR}.x); upgrade gatescope")]
    NewerVersion { major: u16, minor: u16 },
    #[error("corrupt frame {index} at byte {offset}: {reason}")]
    Corrupt { index: usize, offset: u64, reason: String },
    #[error("the recording has no header frame")]
    NoHeader,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How an array is stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    F32,
    F16,
    /// 8-bit, linear between lo and hi.
    U8,
    /// Raw bytes (images).
    Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArrayMeta {
    name: String,
    shape: Vec<usize>,
    enc: Encoding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lo: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hi: Option<f32>,
    /// u8: the top level (lo ↔ 0, hi ↔ top).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    top: Option<u8>,
    /// u8: rows stored as differences from the previous row.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    delta: bool,
}

/// NaN-safe f64 for JSON (NaN ↔ null).
mod nan {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireLayer {
    layer: u32,
    mean_gate: Option<f32>,
    open_fraction: Option<f32>,
    mean_change: Option<f32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Json {
    Header {
        header: Box<Header>,
        arrays: Vec<ArrayMeta>,
    },
    Snapshot {
        step: u64,
        epoch: f64,
        #[serde(with = "nan")]
        train_loss: f64,
        #[serde(with = "nan")]
        train_accuracy: f64,
        #[serde(with = "nan")]
        test_accuracy: f64,
        sample_predictions: Vec<u32>,
        layers: Vec<WireLayer>,
        arrays: Vec<ArrayMeta>,
    },
    Dropped {
        count: u64,
    },
}

/// The 12 bytes a recording (or stream) starts with.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..8].copy_from_slice(MAGIC);
    p[8..10].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    p[10..12].copy_from_slice(&VERSION_MINOR.to_le_bytes());
    p
}

/// Checks a preamble. `Ok(None)`: not enough bytes yet.
pub fn check_preamble(b: &[u8]) -> Result<Option<(u16, u16)>, RecordError> {
    let n = b.len().min(8);
    if b[..n] != MAGIC[..n] {
        return Err(RecordError::BadMagic(b[..n].to_vec()));
    }
    if b.len() < PREAMBLE_LEN {
        return Ok(None);
    }
    let major = u16::from_le_bytes([b[8], b[9]]);
    let minor = u16::from_le_bytes([b[10], b[11]]);
    if major > VERSION_MAJOR {
        return Err(RecordError::NewerVersion { major, minor });
    }
    Ok(Some((major, minor)))
}

/// Quantisation of a u8 array: `top` levels above zero, optionally row-delta coded.
#[derive(Clone, Copy)]
struct Quant {
    top: u8,
    delta: bool,
}

/// `q` rounded to the nearest level in 0..=`top` (halves away from zero, as `f32::round`),
/// 0 if not finite. Without `round`'s call to libm: the truncation and its fraction are exact
/// below 2²³, and this runs once per value of a snapshot's maps.
fn level(q: f32, top: f32) -> u8 {
    if !q.is_finite() {
        return 0;
    }
    let c = q.clamp(0.0, top);
    let whole = c as u32; // c ≥ 0: truncation is floor
    (whole + u32::from(c - whole as f32 >= 0.5)) as u8
}

fn push_array(metas: &mut Vec<ArrayMeta>, payload: &mut Vec<u8>, name: &str, a: &Array, enc: Encoding, quant: Option<Quant>) {
    let (mut lo, mut hi) = (None, None);
    let quant_meta = quant.unwrap_or(Quant { top: 255, delta: false });
    match enc {
        Encoding::F32 => payload.extend(a.data.iter().flat_map(|v| v.to_le_bytes())),
        Encoding::F16 => {
            // byte-shuffled: all low bytes, then all high bytes (compresses better)
            let bits: Vec<[u8; 2]> = a.data.iter().map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
            payload.extend(bits.iter().map(|b| b[0]));
            payload.extend(bits.iter().map(|b| b[1]));
        }
        Encoding::U8 => {
            let (l, h) = a.range().unwrap_or((0.0, 0.0));
            let top = quant_meta.top as f32;
            let scale = if h > l { top / (h - l) } else { 0.0 };
            let start = payload.len();
            payload.extend(a.data.iter().map(|v| level((v - l) * scale, top)));
            if quant_meta.delta {
                // each row minus the row before it (wrapping): where layers carry their input,
                // the changes are small and the bytes compress well. In place, from the end,
                // so that the row before is still the levels.
                let row = (*a.shape.last().unwrap_or(&1)).max(1);
                let q = &mut payload[start..];
                for i in (row..q.len()).rev() {
                    q[i] = q[i].wrapping_sub(q[i - row]);
                }
            }
            (lo, hi) = (Some(l), Some(h));
        }
        Encoding::Bytes => unreachable!("bytes are pushed by push_bytes"),
    }
    let (top, delta) = match (enc, quant) {
        (Encoding::U8, Some(q)) => (Some(q.top), q.delta),
        _ => (None, false),
    };
    metas.push(ArrayMeta { name: name.into(), shape: a.shape.clone(), enc, lo, hi, top, delta });
}

/// Payloads at least this long are deflated in two halves on two threads.
const SPLIT_DEFLATE: usize = 64 << 10;

/// The deflate level of frames. Level 2 against 6 on a snapshot of the Figure-2 net (K = 32):
/// 2.42 against 3.0 ms to encode, 124,191 against 122,905 bytes (+1 %); level 1 took 1.76 ms
/// but 169,919 bytes (+38 %).
const DEFLATE_LEVEL: u32 = 2;

/// `payload` as one raw deflate stream. A long one is deflated in two halves at once (the
/// prober's frames take the cores' idle time, two threads' worth of it): the first half ends
/// with a sync flush (an empty stored block on a byte boundary, not final), so the halves
/// joined are one stream that any inflater reads, as pigz does.
fn deflate(payload: &[u8]) -> Vec<u8> {
    let level = flate2::Compression::new(DEFLATE_LEVEL);
    if payload.len() < SPLIT_DEFLATE {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), level);
        z.write_all(payload).expect("in-memory write");
        return z.finish().expect("in-memory write");
    }
    let (first, second) = payload.split_at(payload.len() / 2);
    std::thread::scope(|s| {
        let tail = s.spawn(|| {
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), level);
            z.write_all(second).expect("in-memory write");
            z.finish().expect("in-memory write")
        });
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), level);
        z.write_all(first).expect("in-memory write");
        z.flush().expect("in-memory write"); // a sync flush: everything out, not final
        let mut out = std::mem::take(z.get_mut());
        out.extend(tail.join().expect("the deflate thread panicked"));
        out
    })
}

fn finish_frame(json: &Json, payload: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(json).expect("frame json serialises");
    let payload = deflate(payload);
    let mut body = Vec::with_capacity(4 + json.len() + payload.len());
    body.extend((json.len() as u32).to_le_bytes());
    body.extend(&json);
    body.extend(&payload);
    let mut frame = Vec::with_capacity(8 + body.len());
    frame.extend((body.len() as u32).to_le_bytes());
    frame.extend(crc32fast::hash(&body).to_le_bytes());
    frame.extend(body);
    frame
}

/// Encodes one message as a frame.
///
/// Storage per array (chosen to keep 100 snapshots of a 50 × 50 net with K = 32 under 16 MB):
/// mean T as f32; gate biases as f16 (byte-shuffled); per-class means as their deviation from
/// the mean T (Figure 3), 256 levels across its range; the K probe samples'
/// T and block outputs as 128 levels between the array's min and max (a colormap shows 256;
/// the eye does not tell them apart), block outputs as row-to-row differences.
pub fn encode(msg: &Message) -> Vec<u8> {
    let (mut metas, mut payload) = (Vec::new(), Vec::new());
    match msg {
        Message::Header(h) => {
            payload.extend(&h.sample_images);
            let per = h.sample_images.len() / h.num_samples().max(1);
            metas.push(ArrayMeta {
                name: "sample_images".into(),
                shape: vec![h.num_samples(), per],
                enc: Encoding::Bytes,
                lo: None,
                hi: None,
                top: None,
                delta: false,
            });
            finish_frame(&Json::Header { header: h.clone(), arrays: metas }, &payload)
        }
        Message::Snapshot(s) => {
            let q7 = |delta| Some(Quant { top: 127, delta });
            push_array(&mut metas, &mut payload, "gate_bias", &s.gate_bias, Encoding::F16, None);
            push_array(&mut metas, &mut payload, "mean_gate", &s.mean_gate, Encoding::F32, None);
            // per-class means as their deviation from the overall mean (Figure 3's quantity)
            let per = s.mean_gate.data.len().max(1);
            let dev: Vec<f32> = s.class_mean_gate.data.iter().enumerate().map(|(i, v)| v - s.mean_gate.data[i % per]).collect();
            let dev = Array { shape: s.class_mean_gate.shape.clone(), data: dev };
            push_array(&mut metas, &mut payload, "class_deviation", &dev, Encoding::U8, Some(Quant { top: 255, delta: false }));
            push_array(&mut metas, &mut payload, "sample_gates", &s.sample_gates, Encoding::U8, q7(false));
            push_array(&mut metas, &mut payload, "sample_blocks", &s.sample_blocks, Encoding::U8, q7(true));
            let opt = |v: f32| v.is_finite().then_some(v);
            let layers = s
                .layers
                .iter()
                .map(|l| WireLayer {
                    layer: l.layer,
                    mean_gate: opt(l.mean_gate),
                    open_fraction: opt(l.open_fraction),
                    mean_change: opt(l.mean_change),
                })
                .collect();
            let json = Json::Snapshot {
                step: s.step,
                epoch: s.epoch,
                train_loss: s.train_loss,
                train_accuracy: s.train_accuracy,
                test_accuracy: s.test_accuracy,
                sample_predictions: s.sample_predictions.clone(),
                layers,
                arrays: metas,
            };
            finish_frame(&json, &payload)
        }
        Message::Dropped(count) => finish_frame(&Json::Dropped { count: *count }, &[]),
    }
}

impl ArrayMeta {
    /// (payload bytes, bytes in memory once decoded), or an error naming the array.
    fn sizes(&self) -> Result<(usize, usize), String> {
        let overflow = || format!("array {}: shape {:?} overflows", self.name, self.shape);
        let n = self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(overflow)?;
        let (stored, decoded) = match self.enc {
            Encoding::F32 => (4, 4),
            Encoding::F16 => (2, 4),
            Encoding::U8 => (1, 4),
            Encoding::Bytes => (1, 1),
        };
        Ok((n.checked_mul(stored).ok_or_else(overflow)?, n.checked_mul(decoded).ok_or_else(overflow)?))
    }
}

/// (payload bytes, decoded bytes) of a frame's arrays, checked against [`MAX_FRAME_DECODED`].
fn claimed(metas: &[ArrayMeta]) -> Result<(usize, usize), String> {
    let (mut payload, mut decoded) = (0usize, 0usize);
    for m in metas {
        let (p, d) = m.sizes()?;
        payload = payload.checked_add(p).ok_or("array sizes overflow")?;
        decoded = decoded.checked_add(d).ok_or("array sizes overflow")?;
    }
    if decoded > MAX_FRAME_DECODED {
        return Err(format!("the frame's arrays would take {decoded} bytes, over the limit of {MAX_FRAME_DECODED}"));
    }
    Ok((payload, decoded))
}

fn decode_arrays(metas: &[ArrayMeta], payload: &[u8]) -> Result<Vec<(String, Array, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for m in metas {
        let n: usize = m.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("array shape overflows")?;
        let (len, _) = m.sizes()?;
        let end = at.checked_add(len).ok_or("array sizes overflow")?;
        let bytes = payload.get(at..end).ok_or_else(|| format!("array {} needs {len} bytes, {} left", m.name, payload.len() - at))?;
        at += len;
        let (array, raw) = match m.enc {
            Encoding::F32 => (bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), vec![]),
            Encoding::F16 => {
                let (low, high) = bytes.split_at(n);
                (low.iter().zip(high).map(|(&l, &h)| half::f16::from_le_bytes([l, h]).to_f32()).collect(), vec![])
            }
            Encoding::U8 => {
                let (lo, hi, top) = (m.lo.unwrap_or(0.0), m.hi.unwrap_or(0.0), m.top.unwrap_or(255).max(1));
                let step = (hi - lo) / top as f32;
                // the end levels are exact, so that re-encoding gives the same bytes
                let level = |q: u8| match q {
                    0 => lo,
                    q if q == top => hi,
                    _ => lo + q as f32 * step,
                };
                let row = (*m.shape.last().unwrap_or(&1)).max(1);
                let mut q = bytes.to_vec();
                if m.delta {
                    for i in row..q.len() {
                        q[i] = q[i].wrapping_add(q[i - row]);
                    }
                }
                (q.iter().map(|&q| level(q)).collect(), vec![])
            }
            Encoding::Bytes => (vec![], bytes.to_vec()),
        };
        let shape = if m.enc == Encoding::Bytes { vec![] } else { m.shape.clone() };
        out.push((m.name.clone(), Array { shape, data: array }, raw));
    }
    if at != payload.len() {
        return Err(format!("{} bytes after the last array", payload.len() - at));
    }
    Ok(out)
}

/// The JSON of a frame body and where its payload starts; `None` for a kind from a newer
/// minor version (to be skipped).
fn body_json(body: &[u8]) -> Result<Option<(Json, usize)>, String> {
    let jl = u32::from_le_bytes(body.get(..4).ok_or("short body")?.try_into().map_err(|_| "short body")?) as usize;
    let json = body.get(4..4usize.saturating_add(jl)).ok_or("json length beyond the frame")?;
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| format!("json: {e}"))?;
    let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if !matches!(kind, "header" | "snapshot" | "dropped") {
        return Ok(None);
    }
    let json: Json = serde_path_to_error::deserialize(value).map_err(|e| format!("json: {e}"))?;
    Ok(Some((json, 4 + jl)))
}

impl Json {
    fn arrays(&self) -> &[ArrayMeta] {
        match self {
            Json::Header { arrays, .. } | Json::Snapshot { arrays, .. } => arrays,
            Json::Dropped { .. } => &[],
        }
    }
}

/// Bytes a frame body will take once decoded (0 for frames skipped), checked against the
/// per-frame limit, without inflating anything.
fn body_claim(body: &[u8]) -> Result<usize, String> {
    Ok(match body_json(body)? {
        Some((json, _)) => claimed(json.arrays())?.1,
        None => 0,
    })
}

/// Decodes the body of one frame (after length and CRC were checked). The payload is
/// inflated to no more than the arrays the JSON declares (checked against the limits first).
fn decode_body(body: &[u8]) -> Result<Option<Message>, String> {
    let Some((json, at)) = body_json(body)? else { return Ok(None) }; // a kind from a newer minor version: skip it
    let (expected, _) = claimed(json.arrays())?;
    let mut payload = Vec::with_capacity(expected);
    let limit = u64::try_from(expected).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::DeflateDecoder::new(&body[at..]).take(limit).read_to_end(&mut payload).map_err(|e| format!("payload: {e}"))?;
    if payload.len() != expected {
        return Err(format!(
            "payload is {}{} bytes, the arrays need {expected}",
            payload.len(),
            if payload.len() > expected { "+" } else { "" }
        ));
    }
    Ok(Some(match json {
        Json::Header { mut header, arrays } => {
            let mut a = decode_arrays(&arrays, &payload)?;
            let images = a.pop().filter(|(n, ..)| n == "sample_images").ok_or("header without sample_images")?;
            header.sample_images = images.2;
            header.check()?;
            Message::Header(header)
        }
        Json::Snapshot { step, epoch, train_loss, train_accuracy, test_accuracy, sample_predictions, layers, arrays } => {
            let mut s = Snapshot { step, epoch, train_loss, train_accuracy, test_accuracy, sample_predictions, ..Default::default() };
            s.layers = layers
                .into_iter()
                .map(|l| LayerStats {
                    layer: l.layer,
                    mean_gate: l.mean_gate.unwrap_or(f32::NAN),
                    open_fraction: l.open_fraction.unwrap_or(f32::NAN),
                    mean_change: l.mean_change.unwrap_or(f32::NAN),
                })
                .collect();
            for (name, a, _) in decode_arrays(&arrays, &payload)? {
                match name.as_str() {
                    "gate_bias" => s.gate_bias = a,
                    "mean_gate" => s.mean_gate = a,
                    "class_deviation" => s.class_mean_gate = a,
                    "sample_gates" => s.sample_gates = a,
                    "sample_blocks" => s.sample_blocks = a,
                    _ => {} // an array from a newer minor version
                }
            }
            let per = s.mean_gate.data.len();
            if per > 0 && s.class_mean_gate.data.len().is_multiple_of(per) {
                for (i, v) in s.class_mean_gate.data.iter_mut().enumerate() {
                    *v += s.mean_gate.data[i % per];
                }
            } else if !s.class_mean_gate.data.is_empty() {
                return Err("class means do not match the mean gate map".into());
            }
            Message::Snapshot(Box::new(s))
        }
        Json::Dropped { count } => Message::Dropped(count),
    }))
}

/// The body of the frame at the start of `buf`: `Ok(None)` if it is not complete yet.
fn split_frame(buf: &[u8]) -> Result<Option<&[u8]>, String> {
    split_frame_within(buf, MAX_FRAME)
}

fn split_frame_within(buf: &[u8], max_frame: usize) -> Result<Option<&[u8]>, String> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    if len > max_frame {
        return Err(format!("frame length {len} is over the limit of {max_frame} bytes"));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let body = &buf[8..8 + len];
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(Some(body))
}

/// Incremental decoder of a byte stream: a file, a file being written, or a socket.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the undecoded bytes in `buf` (compacted lazily, so decoding stays linear).
    start: usize,
    /// Bytes consumed from the start of the stream.
    consumed: u64,
    frames: usize,
    preamble_ok: bool,
    /// The stream's header, which every snapshot after it must agree with.
    header: Option<Header>,
    /// The largest frame accepted (0: [`MAX_FRAME`]).
    max_frame: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that refuses frames over `max_frame` bytes (a socket reader's bound on what
    /// one peer may make it buffer).
    pub fn with_max_frame(max_frame: usize) -> Self {
        Decoder { max_frame: max_frame.min(MAX_FRAME), ..Self::default() }
    }

    /// Appends bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Offset (in the stream) of the first byte not yet decoded.
    pub fn offset(&self) -> u64 {
        self.consumed
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    #[allow(clippy::should_implement_trait)] // fallible: not an Iterator
    pub fn next(&mut self) -> Result<Option<Message>, RecordError> {
        loop {
            let buf = &self.buf[self.start..];
            if !self.preamble_ok {
                match check_preamble(buf)? {
                    None => return Ok(None),
                    Some(_) => {
                        self.take(PREAMBLE_LEN);
                        self.preamble_ok = true;
                    }
                }
            }
            let buf = &self.buf[self.start..];
            let corrupt = |d: &Decoder, reason: String| RecordError::Corrupt { index: d.frames, offset: d.consumed, reason };
            let max = if self.max_frame == 0 { MAX_FRAME } else { self.max_frame };
            let body = match split_frame_within(buf, max) {
                Ok(Some(body)) => body,
                Ok(None) => return Ok(None),
                Err(reason) => return Err(corrupt(self, reason)),
            };
            let len = body.len();
            let msg = decode_body(body).map_err(|r| corrupt(self, r))?;
            match &msg {
                Some(Message::Header(h)) => self.header = Some((**h).clone()),
                Some(Message::Snapshot(snap)) => {
                    let h = self.header.as_ref().ok_or_else(|| corrupt(self, "a snapshot before the header".into()))?;
                    h.check_snapshot(snap).map_err(|r| corrupt(self, r))?;
                }
                _ => {}
            }
            self.take(8 + len);
            self.frames += 1;
            if let Some(m) = msg {
                return Ok(Some(m));
            }
        }
    }

    fn take(&mut self, n: usize) {
        self.start += n;
        self.consumed += n as u64;
    }
}

/// A recording read whole.
#[derive(Debug, Clone)]
pub struct Recording {
    pub header: Header,
    pub snapshots: Vec<Snapshot>,
    /// Snapshots the sender reported dropping (streams only).
    pub dropped: u64,
    /// Bytes at the end that do not form a complete frame (a writer killed mid-frame).
    pub torn_tail: Option<TornTail>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    pub offset: u64,
    pub bytes: usize,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "torn tail: {} bytes at offset {} do not form a complete frame (ignored)", self.bytes, self.offset)
    }
}

/// Decodes a whole recording held in memory. Frames are found and checked in order, then
/// their bodies are decoded on all cores (they are independent).
pub fn read_bytes(bytes: &[u8]) -> Result<Recording, RecordError> {
    if bytes.len() < PREAMBLE_LEN {
        check_preamble(bytes)?;
        return Err(RecordError::Corrupt {
            index: 0,
            offset: 0,
            reason: format!("file is {} bytes, shorter than the 12-byte preamble", bytes.len()),
        });
    }
    check_preamble(bytes)?;
    let mut frames: Vec<(u64, &[u8])> = Vec::new();
    let mut at = PREAMBLE_LEN;
    while let Some(body) =
        split_frame(&bytes[at..]).map_err(|reason| RecordError::Corrupt { index: frames.len(), offset: at as u64, reason })?
    {
        frames.push((at as u64, body));
        at += 8 + body.len();
    }
    // what the frames claim, against the budget, before any payload is inflated
    let mut total = 0usize;
    for (index, (offset, body)) in frames.iter().enumerate() {
        let corrupt = |reason: String| RecordError::Corrupt { index, offset: *offset, reason };
        total = total.saturating_add(body_claim(body).map_err(corrupt)?);
        if total > MAX_RECORDING_DECODED {
            return Err(corrupt(format!(
                "the recording's arrays would take over {total} bytes in memory, over the limit of {MAX_RECORDING_DECODED}"
            )));
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(frames.len().max(1));
    let per = frames.len().div_ceil(threads.max(1)).max(1);
    let decoded: Vec<Result<Option<Message>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> =
            frames.chunks(per).map(|chunk| s.spawn(move || chunk.iter().map(|(_, body)| decode_body(body)).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("decoder thread")).collect()
    });
    let (mut header, mut snapshots, mut dropped) = (None, Vec::new(), 0);
    for (index, (result, (offset, _))) in decoded.into_iter().zip(&frames).enumerate() {
        let corrupt = |reason: String| RecordError::Corrupt { index, offset: *offset, reason };
        match result.map_err(corrupt)? {
            Some(Message::Header(h)) if header.is_none() => header = Some(*h),
            Some(Message::Header(_)) => return Err(corrupt("a second header frame".into())),
            Some(Message::Snapshot(s)) => match &header {
                Some(h) => {
                    h.check_snapshot(&s).map_err(corrupt)?;
                    snapshots.push(*s);
                }
                None => return Err(RecordError::NoHeader),
            },
            Some(Message::Dropped(n)) => dropped = n,
            None => {}
        }
    }
    let header = header.ok_or(RecordError::NoHeader)?;
    let torn_tail = (at < bytes.len()).then(|| TornTail { offset: at as u64, bytes: bytes.len() - at });
    Ok(Recording { header, snapshots, dropped, torn_tail })
}

/// Opens a recording file.
pub fn open(path: &Path) -> anyhow::Result<Recording> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    read_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Appends frames to a recording file; every frame is written whole and flushed.
pub struct Writer<W: Write> {
    out: W,
}

impl Writer<std::io::BufWriter<std::fs::File>> {
    /// Creates (truncates) `path` and writes the preamble and the header.
    pub fn create(path: &Path, header: &Header) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Writer::new(std::io::BufWriter::new(f), header)?)
    }
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, header: &Header) -> std::io::Result<Self> {
        out.write_all(&preamble())?;
        out.write_all(&encode(&Message::Header(Box::new(header.clone()))))?;
        out.flush()?;
        Ok(Writer { out })
    }

    /// Appends an encoded frame (see [`encode`]).
    pub fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.out.write_all(frame)?;
        self.out.flush()
    }

    pub fn write(&mut self, msg: &Message) -> std::io::Result<()> {
        self.write_frame(&encode(msg))
    }
}

/// Writes every decoded array of a recording to one safetensors file, for readers without
/// gatescope (numpy, PyTorch): `header.sample_images` (U8, [K, input_dim]), then per snapshot
/// i `snapshot.{i}.{gate_bias, mean_gate, class_mean_gate, sample_gates, sample_blocks}` (F32,
/// exactly as this reader decodes them) and `snapshot.{i}.sample_predictions` (I64). The
/// metadata holds the header's JSON (`gatescope.header`) and the steps (`gatescope.steps`).
pub fn dump_arrays(rec: &Recording, path: &Path) -> anyhow::Result<()> {
    use safetensors::{tensor::TensorView, Dtype};
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let h = &rec.header;
    owned.push(("header.sample_images".into(), Dtype::U8, vec![h.num_samples(), h.card.arch.input_dim], h.sample_images.clone()));
    let f32s = |a: &Array| a.data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    for (i, s) in rec.snapshots.iter().enumerate() {
        for (name, a) in [
            ("gate_bias", &s.gate_bias),
            ("mean_gate", &s.mean_gate),
            ("class_mean_gate", &s.class_mean_gate),
            ("sample_gates", &s.sample_gates),
            ("sample_blocks", &s.sample_blocks),
        ] {
            owned.push((format!("snapshot.{i}.{name}"), Dtype::F32, a.shape.clone(), f32s(a)));
        }
        let preds: Vec<u8> = s.sample_predictions.iter().flat_map(|&p| (p as i64).to_le_bytes()).collect();
        owned.push((format!("snapshot.{i}.sample_predictions"), Dtype::I64, vec![s.sample_predictions.len()], preds));
    }
    let views = owned
        .iter()
        .map(|(n, d, shape, bytes)| Ok((n.clone(), TensorView::new(*d, shape.clone(), bytes)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let steps: Vec<u64> = rec.snapshots.iter().map(|s| s.step).collect();
    let meta = std::collections::HashMap::from([
        ("gatescope.header".to_string(), serde_json::to_string(h)?),
        ("gatescope.steps".to_string(), serde_json::to_string(&steps)?),
    ]);
    safetensors::tensor::serialize_to_file(views, &Some(meta), path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quantiser's rounding is `f32::round`'s, clamped, over the values a map gives
    /// (halves, just below and above them) and the non-finite ones.
    #[test]
    fn levels_round_as_f32_round() {
        let around = |v: f32| [v, f32::from_bits(v.to_bits().wrapping_sub(1)), f32::from_bits(v.to_bits() + 1)];
        let qs: Vec<f32> = (0..=2_600)
            .flat_map(|i| around(i as f32 * 0.1))
            .chain((0..=300).flat_map(|i| around(i as f32 + 0.5)))
            .chain([-0.0, -0.4, -0.5, -3.0, 127.49, 127.5, 255.5, 1e9, f32::INFINITY, f32::NEG_INFINITY, f32::NAN])
            .collect();
        for top in [127.0, 255.0] {
            for &q in &qs {
                let want = if q.round().is_finite() { q.round().clamp(0.0, top) as u8 } else { 0 };
                assert_eq!(level(q, top), want, "{q} (bits {:#x}) with top {top}", q.to_bits());
            }
        }
    }

    /// Short and long payloads (the long one deflated in two halves) inflate to themselves as
    /// one stream, and the halves cost next to nothing in size.
    #[test]
    fn deflated_payloads_inflate_whole() {
        for len in [0, 1_000, SPLIT_DEFLATE - 1, SPLIT_DEFLATE, 3 * SPLIT_DEFLATE + 7] {
            // quantised maps: runs and small differences, as snapshots hold
            let payload: Vec<u8> = (0..len).map(|i| ((i / 7) % 13 + (i * i) % 5) as u8).collect();
            let z = deflate(&payload);
            let mut back = Vec::new();
            flate2::read::DeflateDecoder::new(&z[..]).read_to_end(&mut back).expect("one deflate stream");
            assert_eq!(back, payload, "{len} bytes");
            let mut whole = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(DEFLATE_LEVEL));
            whole.write_all(&payload).expect("in-memory write");
            let whole = whole.finish().expect("in-memory write");
            assert!(z.len() <= whole.len() + whole.len() / 50 + 1024, "{len} bytes: {} deflated in halves, {} whole", z.len(), whole.len());
        }
    }
}
