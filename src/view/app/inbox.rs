//! The app's inbox: every [`Event`] from outside, applied to the store and the panels.

use std::path::PathBuf;

use super::ViewerApp;
use crate::report::Report;
use crate::session::Loaded;
use crate::stream::StreamEvent;
use crate::view::command::Tab;
use crate::view::event::{Event, Opened, Reply, Request, Slot, TrainedRun};
use crate::view::store::Store;
use crate::view::worker::{self, ModelSession, TRAINER_SOURCE};

impl ViewerApp {
    /// Drains the event channel. Returns true if anything arrived.
    pub(super) fn poll(&mut self) -> bool {
        let events: Vec<Event> = self.inbox.try_iter().collect();
        let changed = !events.is_empty();
        for e in events {
            match e {
                Event::Opened { path, slot: Slot::Main, result } => self.opened(path, result),
                Event::Opened { path, slot: Slot::Other, result } => self.opened_other(path, result),
                Event::Model { session, reply } if self.model.as_ref().is_some_and(|m| m.id == session) => self.model_reply(reply),
                Event::Model { .. } => {} // from a model closed since
                Event::Stream(e) => self.stream_event(e),
                Event::Trained(m) => {
                    if self.store.apply((*m).clone(), TRAINER_SOURCE) && self.follow_live {
                        self.current = self.store.snapshots.len() - 1;
                    }
                }
                Event::TrainingDone(r) => {
                    self.trainer = None;
                    match r {
                        Ok(run) => self.trained(*run),
                        Err(e) => self.error = Some(format!("training failed: {e:#}")),
                    }
                }
                Event::Attached { recording, result } => self.attached(recording, result),
            }
        }
        self.current = self.current.min(self.store.snapshots.len().saturating_sub(1));
        changed
    }

    fn opened(&mut self, path: PathBuf, result: anyhow::Result<Box<Opened>>) {
        self.opening = self.opening.saturating_sub(1);
        let opened = match result {
            Ok(o) => *o,
            Err(e) => return self.error = Some(format!("could not open {}: {e:#}", path.display())),
        };
        match opened {
            Opened::Recording(rec) => {
                self.close_model();
                self.status = format!("opened {}", path.display());
                let header = rec.header.clone();
                self.set_store(Store::from_recording(rec, path.display().to_string()));
                worker::attach(path.clone(), header, self.events.clone());
            }
            Opened::Model(rec, model, probe) => {
                self.close_model();
                self.status = format!("opened model {}: its gate biases; probing {} examples...", path.display(), rec.header.probe_size);
                self.set_store(Store::from_recording(rec, path.display().to_string()));
                let session = ModelSession::start(model, Some(probe), path.clone(), self.events.clone());
                session.request(Request::Probe);
                session.request(Request::Trace(0));
                self.probing = Some((0, 1));
                self.model = Some(session);
            }
            Opened::Report(Report::Lesion(r)) => {
                self.status = format!("opened report {}", path.display());
                (self.panels.lesion.report, self.panels.lesion.of_model) = (Some(r), false);
                if !self.pinned_tab {
                    self.tab = Tab::Lesion;
                }
            }
            Opened::Report(r) => {
                self.status = format!("opened report {}", path.display());
                self.panels.studies.report = Some(r);
                if !self.pinned_tab {
                    self.tab = Tab::Studies;
                }
            }
        }
        self.remember(path);
    }

    pub(super) fn close_model(&mut self) {
        self.model = None;
        self.lesioned = None;
        (self.attached, self.timeline, self.probing) = (false, None, None);
        let lesion = &mut self.panels.lesion;
        if lesion.of_model {
            lesion.report = None; // the closed model's; a report opened from a file stays
        }
        lesion.settle();
    }

    fn opened_other(&mut self, path: PathBuf, result: anyhow::Result<Box<Opened>>) {
        self.panels.compare.loading = false;
        match result.map(|o| *o) {
            Ok(Opened::Recording(rec) | Opened::Model(rec, ..)) => {
                let mut store = Store::from_recording(rec, path.display().to_string());
                store.generation = self.store.generation + 1000;
                self.panels.compare.set_other(store);
                self.status = format!("comparing with {}", path.display());
            }
            Ok(Opened::Report(_)) => self.error = Some(format!("{}: a report, not a recording: open it with File > Open", path.display())),
            Err(e) => self.error = Some(format!("could not open {}: {e:#}", path.display())),
        }
    }

    /// The model of the open recording was looked for: attach it if it was found.
    fn attached(&mut self, recording: PathBuf, result: anyhow::Result<Option<(PathBuf, Box<Loaded>)>>) {
        if self.store.source != recording.display().to_string() || self.model.is_some() {
            return; // another file was opened since
        }
        match result {
            Ok(Some((path, model))) => {
                self.status = format!("attached its model {}: trace any example, lesion layers", path.display());
                self.model = Some(ModelSession::start(model, None, path, self.events.clone()));
                self.attached = true;
            }
            Ok(None) => {}
            Err(e) => self.status = format!("no model attached: {e:#}"),
        }
    }

    /// The training panel's run ended: show it as the recording it was kept as, model attached.
    fn trained(&mut self, run: TrainedRun) {
        self.status = run.summary;
        self.store.source = run.recording.display().to_string();
        self.model = Some(ModelSession::start(run.model, None, run.model_path.clone(), self.events.clone()));
        self.attached = true;
        self.last_run = Some((run.recording.clone(), run.model_path));
        self.remember(run.recording);
    }

    fn model_reply(&mut self, reply: anyhow::Result<Reply>) {
        let lesion = &mut self.panels.lesion;
        match reply {
            Ok(Reply::Trace(t)) => self.example = Some(t),
            Ok(Reply::Probed { recording, lesion: l }) => {
                let (source, example) = (self.store.source.clone(), self.example.as_ref().map(|e| e.index));
                (lesion.waiting, self.probing) = (false, None);
                match (l, self.timeline.take()) {
                    // the lesion is cleared: back to the recording the model belongs to
                    (None, Some(timeline)) => self.set_store(timeline),
                    (Some(_), None) if self.attached => {
                        self.timeline = Some(self.store.take());
                        self.set_store(Store::from_recording(*recording, source));
                    }
                    (_, kept) => {
                        self.timeline = kept;
                        self.set_store(Store::from_recording(*recording, source));
                    }
                }
                let was_lesioned = std::mem::replace(&mut self.lesioned, l).is_some();
                let acc = self.store.snapshots.last().map_or(f64::NAN, |s| s.test_accuracy);
                let probed = self.store.header.as_ref().map_or(0, |h| h.probe_size);
                self.status = match l {
                    Some(l) => format!("layer {l} lesioned: test accuracy {acc:.4}"),
                    None if was_lesioned => "no layer lesioned".into(),
                    None => format!("opened model {} (probed on {probed} examples)", self.store.source),
                };
                if let (Some(i), Some(m)) = (example, &self.model) {
                    m.request(Request::Trace(i));
                }
            }
            Ok(Reply::Lesions(r)) => {
                self.status = format!("lesioned {} layers in {:.1} s", r.layers.len(), r.seconds);
                lesion.settle();
                (lesion.report, lesion.of_model) = (Some(r), true);
            }
            Ok(Reply::Progress { done, total, so_far }) => (lesion.progress, lesion.so_far) = (Some((done, total)), so_far.map(|r| *r)),
            Ok(Reply::Probing(d, t)) => self.probing = Some((d, t)),
            Ok(Reply::LesionsCancelled) => {
                lesion.settle();
                self.status = "lesion analysis cancelled".into();
            }
            Ok(Reply::ProbeCancelled) => {
                (lesion.waiting, self.probing) = (false, None);
                self.status = "probe cancelled: the maps show the weights only (Probe again from Figure 2)".into();
            }
            Err(e) => {
                lesion.settle();
                self.probing = None;
                self.error = Some(format!("{e:#}"));
            }
        }
    }

    fn stream_event(&mut self, e: StreamEvent) {
        match e {
            StreamEvent::Connected { peer } => self.status = format!("trainer connected from {peer}"),
            StreamEvent::Message { peer, message } => {
                let was_live_end = self.current + 1 >= self.store.snapshots.len();
                if self.store.apply(message, &format!("stream from {peer}")) && self.follow_live && was_live_end {
                    self.current = self.store.snapshots.len() - 1;
                }
                self.close_model();
            }
            StreamEvent::Disconnected { peer, error } => {
                self.status = format!("trainer {peer} disconnected");
                if let Some(e) = error {
                    self.error = Some(format!("stream from {peer} lost: {e}"));
                }
            }
        }
    }
}
