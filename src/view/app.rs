//! The viewer application: panels draw and return [`Command`]s; the app carries them out
//! after drawing. Data arrives from a file, a listener socket, a model session or an
//! in-process trainer, all drained once per frame.

mod analysis;

use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use eframe::egui::{self, Vec2};
use serde::{Deserialize, Serialize};

use super::colormap::Scale;
use super::heatmap::{Grid, Heatmap};
use super::store::Store;
use super::worker::{self, ModelSession, Opened, Reply, Request, SampleTrace, TrainerHandle};
pub use analysis::{Analysis, Quantity};
use crate::report::Report;
use crate::capture::Cadence;
use crate::model::Family;
use crate::snapshot::{Array, Snapshot};
use crate::stream::{Listener, StreamEvent};
use crate::train::TrainConfig;

const STORAGE_KEY: &str = "gatescope.viewer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    Figure2,
    Figure3,
    Layers,
    /// Figure 4: lesions.
    Lesion,
    /// Sweep (Figure 1) and ablation reports.
    Studies,
    /// Two recordings side by side.
    Compare,
}

/// What the viewer remembers between runs (eframe persistence).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Persisted {
    pub recent: Vec<PathBuf>,
    pub last_path: Option<PathBuf>,
    pub tab: Tab,
    pub listen_addr: String,
    pub sample: usize,
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted { recent: vec![], last_path: None, tab: Tab::Figure2, listen_addr: crate::stream::DEFAULT_ADDR.into(), sample: 0 }
    }
}

/// Side effects the panels ask for.
#[derive(Debug, Clone)]
pub enum Command {
    Open(PathBuf),
    PickFile,
    Listen,
    StartTraining,
    StopTraining,
    TraceExample(usize),
    /// Close all gates of a layer of the open model (None: reopen them) and probe again.
    Lesion(Option<usize>),
    /// Lesion every layer of the open model in turn (Figure 4).
    LesionAll,
    /// Open a second recording to compare with.
    OpenOther(PathBuf),
    PickOther,
    /// Export the current view's figure (None: ask where with a file dialog).
    Export(Option<PathBuf>),
}

/// The training panel's form.
pub struct TrainForm {
    pub arch: Family,
    pub depth: usize,
    pub width: usize,
    pub gate_bias: f32,
    pub lr: f64,
    pub epochs: usize,
    pub every_steps: usize,
}

impl Default for TrainForm {
    fn default() -> Self {
        TrainForm { arch: Family::Highway, depth: 50, width: 50, gate_bias: -2.0, lr: 0.1, epochs: 5, every_steps: 100 }
    }
}

pub struct ViewerApp {
    pub store: Store,
    pub current: usize,
    pub sample: usize,
    pub tab: Tab,
    pub follow_live: bool,
    pub playing: bool,
    last_tick: f64,
    pub error: Option<String>,
    pub status: String,
    pub persisted: Persisted,
    heatmaps: [Heatmap; 4],
    class_maps: Vec<Heatmap>,
    big_map: Heatmap,
    pub enlarged: Option<usize>,
    pub compare: (usize, usize),
    listener: Option<Listener>,
    loading: Option<mpsc::Receiver<(PathBuf, anyhow::Result<Opened>)>>,
    session: Option<ModelSession>,
    /// A training example traced through an open model (any example, not only the probes).
    pub example: Option<SampleTrace>,
    pub example_index: usize,
    trainer: Option<TrainerHandle>,
    pub form: TrainForm,
    pending: Vec<Command>,
    /// The picked sample's image, kept while the pick does not change.
    sample_texture: Option<((u64, usize, usize), egui::TextureHandle)>,
    /// Lesions, reports, comparison.
    pub an: Analysis,
    /// Conv nets: the traced example's spatial T map shown, (gated layer index, channel).
    pub spatial_pick: (usize, usize),
    spatial_map: Heatmap,
    compare_maps: [Heatmap; 3],
}

impl ViewerApp {
    pub fn new(persisted: Persisted) -> Self {
        ViewerApp {
            store: Store::default(),
            current: 0,
            sample: persisted.sample,
            tab: persisted.tab,
            follow_live: true,
            playing: false,
            last_tick: 0.0,
            error: None,
            status: String::new(),
            persisted,
            heatmaps: Default::default(),
            class_maps: Vec::new(),
            big_map: Heatmap::default(),
            enlarged: None,
            compare: (0, 1),
            listener: None,
            loading: None,
            session: None,
            example: None,
            example_index: 0,
            trainer: None,
            form: TrainForm::default(),
            pending: Vec::new(),
            sample_texture: None,
            an: Analysis::default(),
            spatial_pick: (0, 0),
            spatial_map: Heatmap::with_axes("row", "column"),
            compare_maps: Default::default(),
        }
    }

    /// For eframe: restores the remembered state.
    pub fn from_storage(storage: Option<&dyn eframe::Storage>) -> Self {
        let persisted = storage.and_then(|s| eframe::get_value::<Persisted>(s, STORAGE_KEY)).unwrap_or_default();
        Self::new(persisted)
    }

    /// Loads a recording synchronously (CLI path, tests).
    pub fn open_recording_now(&mut self, path: &std::path::Path) -> anyhow::Result<()> {
        let rec = crate::record::open(path)?;
        self.set_store(Store::from_recording(rec, path.display().to_string()));
        self.remember(path.to_path_buf());
        Ok(())
    }

    pub fn queue(&mut self, c: Command) {
        self.pending.push(c);
    }

    /// Texture uploads of the Figure-2 heatmaps so far.
    pub fn uploads(&self) -> usize {
        self.heatmaps.iter().map(|h| h.uploads).sum::<usize>()
            + self.class_maps.iter().map(|h| h.uploads).sum::<usize>()
            + self.big_map.uploads
            + self.compare_maps.iter().map(|h| h.uploads).sum::<usize>()
    }

    fn set_store(&mut self, store: Store) {
        self.store.replace(store);
        self.current = self.store.snapshots.len().saturating_sub(1);
        let k = self.store.header.as_ref().map_or(0, |h| h.num_samples());
        if self.sample >= k {
            self.sample = 0;
        }
        self.enlarged = None;
        self.example = None;
        self.error = self.store.torn_tail.clone().map(|t| format!("{}: {t}", self.store.source));
    }

    fn remember(&mut self, path: PathBuf) {
        let p = &mut self.persisted;
        p.recent.retain(|r| r != &path);
        p.recent.insert(0, path.clone());
        p.recent.truncate(8);
        p.last_path = Some(path);
    }

    pub fn listen(&mut self, addr: &str, ctx: &egui::Context) {
        let c = ctx.clone();
        match Listener::bind(addr, Arc::new(move || c.request_repaint())) {
            Ok(l) => {
                self.status = format!("listening for trainers on {}", l.addr);
                self.listener = Some(l);
            }
            Err(e) => self.error = Some(format!("{e:#}")),
        }
    }

    /// Drains every source of data. Returns true if anything arrived.
    fn poll(&mut self, ctx: &egui::Context) -> bool {
        let mut changed = false;
        if let Some(rx) = &self.loading {
            if let Ok((path, result)) = rx.try_recv() {
                self.loading = None;
                changed = true;
                match result {
                    Ok(Opened::Recording(rec)) => {
                        self.session = None;
                        (self.an.lesioned, self.an.lesions) = (None, None);
                        self.status = format!("opened {}", path.display());
                        self.set_store(Store::from_recording(rec, path.display().to_string()));
                        self.remember(path);
                    }
                    Ok(Opened::Model(rec, session)) => {
                        self.status = format!("opened model {} (probed on {} examples)", path.display(), rec.header.probe_size);
                        self.set_store(Store::from_recording(rec, path.display().to_string()));
                        session.request(Request::Trace(0));
                        self.session = Some(session);
                        (self.an.lesioned, self.an.lesions) = (None, None);
                        self.remember(path);
                    }
                    Ok(Opened::Report(report)) => {
                        self.status = format!("opened report {}", path.display());
                        match report {
                            Report::Lesion(r) => {
                                self.an.lesions = Some(r);
                                self.tab = Tab::Lesion;
                            }
                            r => {
                                self.an.report = Some(r);
                                self.tab = Tab::Studies;
                            }
                        }
                        self.remember(path);
                    }
                    Err(e) => self.error = Some(format!("could not open {}: {e:#}", path.display())),
                }
            }
        }
        let replies: Vec<_> = self.session.as_ref().map(|s| s.results.try_iter().collect()).unwrap_or_default();
        for r in replies {
            changed = true;
            match r {
                Ok(Reply::Trace(t)) => self.example = Some(t),
                Ok(Reply::Probed { recording, lesion }) => {
                    let (source, example) = (self.store.source.clone(), self.example.as_ref().map(|e| e.index));
                    self.set_store(Store::from_recording(recording, source));
                    self.an.lesioned = lesion;
                    self.an.waiting = false;
                    self.status = match lesion {
                        Some(l) => format!("layer {l} lesioned: test accuracy {:.4}", self.store.snapshots.last().map_or(f64::NAN, |s| s.test_accuracy)),
                        None => "no layer lesioned".into(),
                    };
                    if let (Some(i), Some(s)) = (example, &self.session) {
                        s.request(Request::Trace(i));
                    }
                }
                Ok(Reply::Lesions(r)) => {
                    self.status = format!("lesioned {} layers in {:.1} s", r.layers.len(), r.seconds);
                    self.an.lesions = Some(r);
                    self.an.lesion_progress = None;
                    self.an.waiting = false;
                }
                Ok(Reply::Progress(d, t)) => self.an.lesion_progress = Some((d, t)),
                Err(e) => {
                    self.error = Some(format!("{e:#}"));
                    self.an.lesion_progress = None;
                    self.an.waiting = false;
                }
            }
        }
        if self.an.waiting {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        changed |= self.poll_analysis();
        let mut events = Vec::new();
        if let Some(l) = &self.listener {
            while let Ok(e) = l.events.try_recv() {
                events.push(e);
            }
        }
        for e in events {
            changed = true;
            match e {
                StreamEvent::Connected { peer } => self.status = format!("trainer connected from {peer}"),
                StreamEvent::Message { peer, message } => {
                    let was_live_end = self.current + 1 >= self.store.snapshots.len();
                    if self.store.apply(message, &format!("stream from {peer}")) && self.follow_live && was_live_end {
                        self.current = self.store.snapshots.len() - 1;
                    }
                    self.session = None;
                }
                StreamEvent::Disconnected { peer, error } => {
                    self.status = format!("trainer {peer} disconnected");
                    if let Some(e) = error {
                        self.error = Some(format!("stream from {peer} lost: {e}"));
                    }
                }
            }
        }
        if let Some(t) = &self.trainer {
            while let Some(m) = t.queue.try_pop() {
                changed = true;
                if self.store.apply((*m).clone(), "viewer training panel") && self.follow_live {
                    self.current = self.store.snapshots.len() - 1;
                }
            }
            if let Ok(r) = t.done.try_recv() {
                changed = true;
                match r {
                    Ok(s) => self.status = s,
                    Err(e) => self.error = Some(format!("training failed: {e:#}")),
                }
                self.trainer = None;
            } else {
                ctx.request_repaint_after(std::time::Duration::from_millis(200));
            }
        }
        self.current = self.current.min(self.store.snapshots.len().saturating_sub(1));
        changed
    }

    fn run_commands(&mut self, ctx: &egui::Context) {
        for c in std::mem::take(&mut self.pending) {
            match c {
                Command::Open(path) => {
                    let ctx2 = ctx.clone();
                    self.status = format!("opening {}", path.display());
                    self.loading = Some(worker::open(path, move || ctx2.request_repaint()));
                }
                Command::PickFile => {
                    if let Some(p) = rfd::FileDialog::new().add_filter("gatescope", &["gsrec", "safetensors", "json"]).pick_file() {
                        self.pending.push(Command::Open(p));
                        return self.run_commands(ctx);
                    }
                }
                Command::Listen => {
                    let addr = self.persisted.listen_addr.clone();
                    self.listen(&addr, ctx);
                }
                Command::StartTraining => {
                    let mut cfg = TrainConfig::default_recipe();
                    let f = &self.form;
                    (cfg.arch, cfg.depth, cfg.width, cfg.gate_bias, cfg.lr, cfg.epochs) = (f.arch, f.depth, Some(f.width), Some(f.gate_bias), f.lr, f.epochs);
                    let c = ctx.clone();
                    match TrainerHandle::start(cfg, Cadence::Steps(f.every_steps.max(1)), move || c.request_repaint()) {
                        Ok(t) => {
                            self.trainer = Some(t);
                            self.session = None;
                            self.follow_live = true;
                            self.status = "training...".into();
                        }
                        Err(e) => self.error = Some(format!("cannot start training: {e:#}")),
                    }
                }
                Command::StopTraining => {
                    if let Some(t) = &self.trainer {
                        t.stop();
                    }
                }
                Command::TraceExample(i) => {
                    if let Some(s) = &self.session {
                        s.request(Request::Trace(i));
                    }
                }
                other => {
                    let _ = self.run_analysis(other, ctx);
                }
            }
        }
    }

    /// The whole UI, inside a given `Ui` (eframe's root, or a test harness).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll(&ctx);
        // drag and drop
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect());
        for p in dropped {
            self.pending.push(Command::Open(p));
        }
        if self.playing && !self.store.snapshots.is_empty() {
            let now = ctx.input(|i| i.time);
            if now - self.last_tick > 0.3 {
                self.last_tick = now;
                self.current = (self.current + 1) % self.store.snapshots.len();
            }
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }

        egui::Panel::top("menu").show(ui, |ui| self.top_bar(ui));
        egui::Panel::left("side").default_size(240.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.side_panel(ui));
        });
        egui::Panel::bottom("timeline").resizable(true).default_size(190.0).show(ui, |ui| self.timeline(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(e) = self.error.clone() {
                ui.horizontal(|ui| {
                    ui.colored_label(egui::Color32::from_rgb(220, 60, 60), format!("Error: {e}"));
                    if ui.small_button("dismiss").clicked() {
                        self.error = None;
                    }
                });
            }
            let needs_run = matches!(self.tab, Tab::Figure2 | Tab::Figure3 | Tab::Layers | Tab::Compare);
            if self.store.header.is_none() && needs_run {
                ui.heading("Open a recording, a model or a report (File > Open, or drop it here), or listen for a trainer.");
                return;
            }
            egui::ScrollArea::both().show(ui, |ui| match self.tab {
                Tab::Figure2 => self.figure2(ui),
                Tab::Figure3 => self.figure3(ui),
                Tab::Layers => self.layers(ui),
                Tab::Lesion => self.lesion_view(ui),
                Tab::Studies => self.studies_view(ui),
                Tab::Compare => self.compare_view(ui),
            });
        });
        if !self.pending.is_empty() {
            self.run_commands(&ctx);
            ctx.request_repaint(); // show what the commands did (status, errors) at once
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open...").clicked() {
                    self.pending.push(Command::PickFile);
                    ui.close();
                }
                ui.menu_button("Recent", |ui| {
                    for p in self.persisted.recent.clone() {
                        if ui.button(p.display().to_string()).clicked() {
                            self.pending.push(Command::Open(p));
                            ui.close();
                        }
                    }
                });
            });
            ui.separator();
            ui.selectable_value(&mut self.tab, Tab::Figure2, "Figure 2: gates per layer");
            ui.selectable_value(&mut self.tab, Tab::Figure3, "Figure 3: classes");
            ui.selectable_value(&mut self.tab, Tab::Layers, "Layer inspector");
            ui.selectable_value(&mut self.tab, Tab::Lesion, "Figure 4: lesions");
            ui.selectable_value(&mut self.tab, Tab::Studies, "Sweep / ablation");
            ui.selectable_value(&mut self.tab, Tab::Compare, "Compare runs");
            ui.separator();
            if ui.button("Export figure...").clicked() {
                self.pending.push(Command::Export(None));
            }
            if let Some(l) = self.an.lesioned {
                ui.colored_label(egui::Color32::from_rgb(214, 96, 77), format!("layer {l} lesioned"));
            }
            ui.separator();
            // the file name only (the full path on hover), so the bar reads the same anywhere
            let short = self.store.source.rsplit('/').next().unwrap_or_default();
            ui.label(short).on_hover_text(&self.store.source);
            if self.store.dropped > 0 {
                ui.colored_label(egui::Color32::from_rgb(230, 160, 40), format!("{} snapshots dropped by the stream", self.store.dropped));
            }
            if self.loading.is_some() {
                ui.spinner();
            }
        });
    }

    fn side_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Run");
        if let Some(h) = &self.store.header {
            let a = &h.card.arch;
            ui.label(format!("{:?} net, depth {}, width {}", a.family, a.depth, a.width));
            ui.label(format!("{:?}, gate bias {}", a.activation, a.gate_bias));
            ui.label(format!("{} on {}", h.card.dataset.name.name(), h.probe_size));
            ui.label(format!("{} snapshots", self.store.snapshots.len()));
        }
        ui.label(&self.status);
        ui.separator();
        ui.heading("Stream");
        ui.horizontal(|ui| {
            let label = ui.label("address");
            ui.text_edit_singleline(&mut self.persisted.listen_addr).labelled_by(label.id);
        });
        if self.listener.is_none() && ui.button("Listen for trainers").clicked() {
            self.pending.push(Command::Listen);
        }
        ui.separator();
        ui.heading("Train");
        let f = &mut self.form;
        egui::ComboBox::from_label("architecture").selected_text(format!("{:?}", f.arch)).show_ui(ui, |ui| {
            for fam in [Family::Highway, Family::Plain, Family::Residual, Family::Conv] {
                ui.selectable_value(&mut f.arch, fam, format!("{fam:?}"));
            }
        });
        ui.add(egui::DragValue::new(&mut f.depth).range(2..=200).prefix("depth "));
        ui.add(egui::DragValue::new(&mut f.width).range(2..=512).prefix("width "));
        ui.add(egui::DragValue::new(&mut f.gate_bias).range(-10.0..=10.0).speed(0.1).prefix("gate bias "));
        ui.add(egui::DragValue::new(&mut f.lr).range(1e-4..=1.0).speed(0.001).prefix("lr "));
        ui.add(egui::DragValue::new(&mut f.epochs).range(1..=200).prefix("epochs "));
        ui.add(egui::DragValue::new(&mut f.every_steps).range(1..=10_000).prefix("snapshot every ").suffix(" steps"));
        if self.trainer.is_some() {
            if ui.button("Stop training").clicked() {
                self.pending.push(Command::StopTraining);
            }
        } else if ui.button("Start training").clicked() {
            self.pending.push(Command::StartTraining);
        }
    }

    fn timeline(&mut self, ui: &mut egui::Ui) {
        let n = self.store.snapshots.len();
        ui.horizontal(|ui| {
            let label = if self.playing { "Pause" } else { "Play" };
            if ui.button(label).clicked() {
                self.playing = !self.playing;
            }
            ui.checkbox(&mut self.follow_live, "follow live");
            if n > 0 {
                let mut i = self.current;
                let s = &self.store.snapshots[i];
                let text = format!("step {} (epoch {:.2})", s.step, s.epoch);
                ui.add(egui::Slider::new(&mut i, 0..=n - 1).text("snapshot").show_value(true));
                if i != self.current {
                    self.current = i;
                    self.follow_live = i + 1 == n;
                }
                ui.label(text);
            }
        });
        let snaps = &self.store.snapshots;
        let pts = |f: &dyn Fn(&Snapshot) -> f64| -> egui_plot::PlotPoints<'static> {
            snaps.iter().filter(|s| f(s).is_finite()).map(|s| [s.step as f64, f(s)]).collect::<Vec<_>>().into()
        };
        let current_step = snaps.get(self.current).map_or(0.0, |s| s.step as f64);
        egui_plot::Plot::new("curves").legend(egui_plot::Legend::default()).x_axis_label("step").height(ui.available_height().max(80.0)).show(ui, |p| {
            p.line(egui_plot::Line::new("train loss", pts(&|s| s.train_loss)));
            p.line(egui_plot::Line::new("train accuracy", pts(&|s| s.train_accuracy)));
            p.line(egui_plot::Line::new("test accuracy", pts(&|s| s.test_accuracy)));
            p.vline(egui_plot::VLine::new("current snapshot", current_step));
        });
    }

    fn sample_picker(&mut self, ui: &mut egui::Ui) {
        let Some(h) = &self.store.header else { return };
        let k = h.num_samples();
        let names = h.class_names().to_vec();
        let shape = h.card.dataset.image_shape;
        ui.horizontal(|ui| {
            if k > 0 {
                ui.add(egui::Slider::new(&mut self.sample, 0..=k - 1).text("probe sample"));
                let Some(h) = &self.store.header else { return };
                let label = h.sample_labels[self.sample] as usize;
                let pred = self.store.snapshots.get(self.current).and_then(|s| s.sample_predictions.get(self.sample)).map(|&p| p as usize);
                let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
                ui.label(format!("label {}", name(label)));
                ui.label(format!("prediction {}", pred.map(name).unwrap_or_default()));
                let dim = h.sample_images.len() / k;
                let key = (self.store.generation, self.sample, usize::MAX);
                if self.sample_texture.as_ref().map(|t| t.0) != Some(key) {
                    let img = &h.sample_images[self.sample * dim..(self.sample + 1) * dim];
                    self.sample_texture = sample_texture(ui.ctx(), &shape, img).map(|t| (key, t));
                }
                if let Some((_, t)) = &self.sample_texture {
                    ui.image((t.id(), Vec2::new(56.0, 56.0)));
                }
            }
            if let Some(s) = &self.session {
                ui.separator();
                let mut i = self.example_index;
                ui.add(egui::DragValue::new(&mut i).range(0..=s.train_len.saturating_sub(1)).prefix("any training example #"));
                if i != self.example_index || ui.button("trace").clicked() {
                    self.example_index = i;
                    self.pending.push(Command::TraceExample(i));
                }
            }
        });
    }

    fn figure2(&mut self, ui: &mut egui::Ui) {
        self.sample_picker(ui);
        let Some(snap) = self.store.snapshots.get(self.current) else { return };
        let g = self.store.generation;
        let first = self.store.header.as_ref().and_then(|h| h.gated_layers().first().copied()).unwrap_or(1);
        let k = self.sample;
        let key = |what: u64| (g << 32 | what, self.current as u64);
        let (sample_t, sample_y, sample_key): (Vec<f32>, Vec<f32>, u64) = match &self.example {
            Some(ex) => (ex.gates.data.clone(), ex.blocks.data.clone(), 1_000_000 + ex.index as u64),
            None if snap.sample_gates.shape.len() == 3 && k < snap.sample_gates.shape[0] => (snap.sample_gates.row(k).to_vec(), snap.sample_blocks.row(k).to_vec(), k as u64),
            None => (vec![], vec![], 0),
        };
        if let Some(ex) = &self.example {
            let names = self.store.class_names();
            let name = |c: u32| names.get(c as usize).cloned().unwrap_or_else(|| c.to_string());
            ui.label(format!("training example #{}: label {}, prediction {}", ex.index, name(ex.label), name(ex.prediction)));
        }
        let (l, w) = (snap.mean_gate.shape.first().copied().unwrap_or(0), snap.mean_gate.shape.get(1).copied().unwrap_or(0));
        let depth = if w > 0 { sample_y.len() / w } else { 0 };
        let size = Vec2::new(150.0, 360.0);
        let bias_scale = Scale::symmetric(&snap.gate_bias.data);
        let y_scale = Scale::symmetric(&sample_y);
        let across = self.store.header.as_ref().map_or("unit", |h| h.card.arch.unit_name());
        ui.horizontal_top(|ui| {
            let titles = ["Transform gate biases", "Mean transform gate outputs", "Transform gate outputs (sample)", "Block outputs (sample)"];
            let grids = [
                (Grid { rows: l, cols: w, values: &snap.gate_bias.data, first_layer: first }, bias_scale, key(0)),
                (Grid { rows: l, cols: w, values: &snap.mean_gate.data, first_layer: first }, Scale::unit(), key(1)),
                (Grid { rows: if w > 0 { sample_t.len() / w } else { 0 }, cols: w, values: &sample_t, first_layer: first }, Scale::unit(), (key(2).0, key(2).1 ^ (sample_key << 20))),
                (Grid { rows: depth, cols: w, values: &sample_y, first_layer: 0 }, y_scale, (key(3).0, key(3).1 ^ (sample_key << 20))),
            ];
            for (i, ((grid, scale, hk), title)) in grids.into_iter().zip(titles).enumerate() {
                ui.vertical(|ui| {
                    ui.label(egui::RichText::new(title).strong());
                    ui.label(egui::RichText::new(format!("rows: layers (first on top), columns: {across}s")).small());
                    self.heatmaps[i].axes = Some(("layer", across));
                    self.heatmaps[i].show(ui, &format!("fig2-{i}"), hk, &grid, scale, size);
                });
            }
            if let Some(ex) = self.example.as_ref().filter(|ex| !ex.spatial.is_empty()) {
                ui.separator();
                ui.vertical(|ui| spatial_gate_map(ui, ex, &mut self.spatial_pick, &mut self.spatial_map, g, first));
            }
        });
    }

    fn figure3(&mut self, ui: &mut egui::Ui) {
        let Some(snap) = self.store.snapshots.get(self.current) else { return };
        let names = self.store.class_names();
        let c = snap.class_mean_gate.shape.first().copied().unwrap_or(0);
        if c == 0 || snap.mean_gate.is_empty() {
            ui.label("This run has no gates (plain or residual net).");
            return;
        }
        let devs: Vec<Array> = (0..c).map(|i| snap.class_deviation(i)).collect();
        let all: Vec<f32> = devs.iter().flat_map(|d| d.data.iter().copied()).collect();
        let scale = Scale::symmetric(&all);
        let (l, w) = (snap.mean_gate.shape[0], snap.mean_gate.shape[1]);
        let first = self.store.header.as_ref().and_then(|h| h.gated_layers().first().copied()).unwrap_or(1);
        let g = self.store.generation;
        ui.label(format!("Mean T per class minus mean T over all {} probe examples (shared scale +/-{:.3}). Click a class to enlarge it.", self.store.header.as_ref().map_or(0, |h| h.probe_size), scale.hi));
        ui.horizontal(|ui| {
            let name = |i: usize| names.get(i).cloned().unwrap_or_else(|| i.to_string());
            egui::ComboBox::new("cmp-a", "class A").selected_text(name(self.compare.0)).show_ui(ui, |ui| {
                for i in 0..c {
                    ui.selectable_value(&mut self.compare.0, i, name(i));
                }
            });
            egui::ComboBox::new("cmp-b", "class B").selected_text(name(self.compare.1)).show_ui(ui, |ui| {
                for i in 0..c {
                    ui.selectable_value(&mut self.compare.1, i, name(i));
                }
            });
            if ui.button("show A minus B").clicked() {
                self.enlarged = Some(usize::MAX);
            }
            if self.enlarged.is_some() && ui.button("back to all classes").clicked() {
                self.enlarged = None;
            }
        });
        if let Some(e) = self.enlarged {
            let (title, data, k) = if e == usize::MAX {
                let (a, b) = (self.compare.0.min(c - 1), self.compare.1.min(c - 1));
                let d: Vec<f32> = snap.class_mean_gate.row(a).iter().zip(snap.class_mean_gate.row(b)).map(|(x, y)| x - y).collect();
                (format!("class {} minus class {}", names.get(a).cloned().unwrap_or_default(), names.get(b).cloned().unwrap_or_default()), d, 10_000 + a * 1000 + b)
            } else {
                (format!("class {}", names.get(e).cloned().unwrap_or_default()), devs[e.min(c - 1)].data.clone(), e)
            };
            let sc = if e == usize::MAX { Scale::symmetric(&data) } else { scale };
            ui.label(egui::RichText::new(title).strong());
            self.big_map.show(ui, "fig3-big", (g << 32 | 7, (self.current as u64) << 24 | k as u64), &Grid { rows: l, cols: w, values: &data, first_layer: first }, sc, Vec2::new(300.0, 420.0));
            return;
        }
        self.class_maps.resize_with(c, Heatmap::default);
        let cols = ((ui.available_width() / 90.0).floor() as usize).clamp(1, 12);
        ui.horizontal(|ui| {
            ui.label("shared scale:");
            super::heatmap::colorbar(ui, scale, 110.0);
        });
        egui::Grid::new("fig3-grid").spacing([8.0, 8.0]).show(ui, |ui| {
            for (i, dev) in devs.iter().enumerate() {
                ui.vertical(|ui| {
                    let label = names.get(i).cloned().unwrap_or_else(|| i.to_string());
                    if ui.button(&label).clicked() {
                        self.enlarged = Some(i);
                    }
                    let grid = Grid { rows: l, cols: w, values: &dev.data, first_layer: first };
                    self.class_maps[i].show_with(ui, &format!("fig3-{i}"), (g << 32 | 8, (self.current as u64) << 24 | i as u64), &grid, scale, Vec2::new(70.0, 140.0), false);
                });
                if (i + 1) % cols == 0 {
                    ui.end_row();
                }
            }
        });
    }

    fn layers(&mut self, ui: &mut egui::Ui) {
        let Some(snap) = self.store.snapshots.get(self.current) else { return };
        ui.label("Per layer: mean T, the fraction of open gates (T > 0.5), and how much each layer changes its input (mean |y_l - y_(l-1)|).");
        let series = |f: &dyn Fn(&crate::snapshot::LayerStats) -> f32| -> egui_plot::PlotPoints<'static> {
            snap.layers.iter().filter(|l| f(l).is_finite()).map(|l| [l.layer as f64, f(l) as f64]).collect::<Vec<_>>().into()
        };
        let h = (ui.available_height() / 3.0 - 20.0).max(120.0);
        for (title, pts) in [
            ("mean transform gate output", series(&|l| l.mean_gate)),
            ("fraction of open gates (T > 0.5)", series(&|l| l.open_fraction)),
            ("mean change of block output", series(&|l| l.mean_change)),
        ] {
            ui.label(egui::RichText::new(title).strong());
            egui_plot::Plot::new(title).height(h).x_axis_label("layer").show(ui, |p| {
                p.line(egui_plot::Line::new(title, pts));
            });
        }
    }
}

/// A dataset image (grey or RGB) as a texture.
fn sample_texture(ctx: &egui::Context, shape: &[usize; 3], pixels: &[u8]) -> Option<egui::TextureHandle> {
    let [c, h, w] = *shape;
    if c * h * w != pixels.len() || h == 0 {
        return None;
    }
    let rgba: Vec<egui::Color32> = (0..h * w)
        .map(|i| if c == 3 { egui::Color32::from_rgb(pixels[i], pixels[h * w + i], pixels[2 * h * w + i]) } else { egui::Color32::from_gray(pixels[i]) })
        .collect();
    Some(ctx.load_texture("probe-sample", egui::ColorImage::new([w, h], rgba), egui::TextureOptions::NEAREST))
}

impl eframe::App for ViewerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.persisted.tab = self.tab;
        self.persisted.sample = self.sample;
        eframe::set_value(storage, STORAGE_KEY, &self.persisted);
    }
}

/// Conv nets: T over the image plane of the traced example, for one layer and channel
/// (`pick`: gated-layer index, channel), beside the Figure-2 maps.
fn spatial_gate_map(ui: &mut egui::Ui, ex: &SampleTrace, pick: &mut (usize, usize), map: &mut Heatmap, generation: u64, first_layer: usize) {
    ui.label(egui::RichText::new("Spatial transform gate map (conv net)").strong());
    ui.label(egui::RichText::new("T of the traced example over the image plane").small());
    let layers = ex.spatial.len();
    let channels = ex.spatial[0].shape.first().copied().unwrap_or(1);
    let (mut l, mut c) = *pick;
    ui.horizontal(|ui| {
        let label = ui.label("gated layer");
        ui.add(egui::DragValue::new(&mut l).range(0..=layers - 1).custom_formatter(move |v, _| format!("{}", v as usize + first_layer))).labelled_by(label.id);
        let label = ui.label("channel");
        ui.add(egui::DragValue::new(&mut c).range(0..=channels.saturating_sub(1))).labelled_by(label.id);
    });
    (l, c) = (l.min(layers - 1), c.min(channels.saturating_sub(1)));
    *pick = (l, c);
    let a = &ex.spatial[l];
    let (h, w) = (a.shape.get(1).copied().unwrap_or(0), a.shape.get(2).copied().unwrap_or(0));
    let plane = if a.shape.len() == 3 && c < a.shape[0] { a.row(c).to_vec() } else { vec![] };
    ui.label(format!("layer {}, channel {c}: {h} x {w}, mean T {:.3}", l + first_layer, plane.iter().sum::<f32>() / plane.len().max(1) as f32));
    let key = (generation << 32 | 9, (ex.index as u64) << 24 | (l as u64) << 12 | c as u64);
    map.show(ui, "spatial-gate", key, &Grid { rows: h, cols: w, values: &plane, first_layer: 0 }, Scale::unit(), Vec2::new(200.0, 200.0));
}
