//! The viewer application. Each frame: drain the one [`Event`] channel into the store and the
//! panels, let the panels draw and return [`Command`]s, then carry the commands out. Panels
//! never hold the app; only the app starts workers, listeners and trainers.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use eframe::egui;

mod inbox;

pub use super::command::{Command, Tab};
use super::event::{Event, Events, Request, Slot};
use super::layout::{self, Chrome};
use super::panels::{Panels, Shown};
pub use super::persisted::Persisted;
use super::store::Store;
use super::worker::{self, ModelSession, SampleTrace, TrainerHandle};
use crate::export::{self, Figure};
use crate::report::Report;
use crate::stream::Listener;

const STORAGE_KEY: &str = "gatescope.viewer";

pub struct ViewerApp {
    pub store: Store,
    pub current: usize,
    pub sample: usize,
    pub tab: Tab,
    pub follow_live: bool,
    pub error: Option<String>,
    pub status: String,
    pub persisted: Persisted,
    /// A training example traced through the open model (any example, not only the probes).
    pub example: Option<SampleTrace>,
    /// The layer whose gates are closed in the open model.
    pub lesioned: Option<usize>,
    pub panels: Panels,
    model: Option<ModelSession>,
    /// The open model belongs to the open recording (found beside it, or trained here).
    attached: bool,
    /// The recording of the attached model, kept while a lesion's probe is shown.
    timeline: Option<Store>,
    /// Progress of the open model's probe pass: (examples done, total).
    probing: Option<(usize, usize)>,
    trainer: Option<TrainerHandle>,
    /// Where runs trained in the viewer are kept.
    pub runs_dir: PathBuf,
    /// The last run trained here: (recording, model).
    pub last_run: Option<(PathBuf, PathBuf)>,
    /// The window title last set.
    title: String,
    /// A tab asked for on the command line: opening a report does not switch away from it.
    pinned_tab: bool,
    /// With GATESCOPE_TIMING set: when the viewer started, and whether the first picture was
    /// logged (until the probe's maps are drawn).
    pub timing: Option<(std::time::Instant, bool)>,
    listener: Option<Listener>,
    /// Files being opened into the main view.
    opening: usize,
    events: Events,
    inbox: mpsc::Receiver<Event>,
    pending: Vec<Command>,
}

impl ViewerApp {
    pub fn new(persisted: Persisted) -> Self {
        let (events, inbox) = Events::channel();
        ViewerApp {
            store: Store::default(),
            current: 0,
            sample: persisted.sample,
            tab: persisted.tab,
            follow_live: true,
            error: None,
            status: String::new(),
            persisted,
            example: None,
            lesioned: None,
            panels: Panels::default(),
            model: None,
            attached: false,
            timeline: None,
            probing: None,
            trainer: None,
            runs_dir: PathBuf::from(crate::recipe::RUNS_DIR),
            last_run: None,
            title: String::new(),
            pinned_tab: false,
            timing: None,
            listener: None,
            opening: 0,
            events,
            inbox,
            pending: Vec::new(),
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

    /// Shows `tab`, and keeps showing it while the files given with it open.
    pub fn pin_tab(&mut self, tab: Tab) {
        (self.tab, self.pinned_tab) = (tab, true);
    }

    pub fn queue(&mut self, c: Command) {
        self.pending.push(c);
    }

    /// Texture uploads of the heatmaps so far.
    pub fn uploads(&self) -> usize {
        self.panels.uploads()
    }

    fn set_store(&mut self, store: Store) {
        self.store.replace(store);
        self.current = self.store.snapshots.len().saturating_sub(1);
        let k = self.store.header.as_ref().map_or(0, |h| h.num_samples());
        if self.sample >= k {
            self.sample = 0;
        }
        self.panels.reset_for_new_run();
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

    pub fn listen(&mut self, addr: &str) {
        match Listener::bind(addr, self.events.stream_sink()) {
            Ok(l) => {
                self.status = format!("listening for trainers on {}", l.addr);
                self.listener = Some(l);
            }
            Err(e) => self.error = Some(format!("{e:#}")),
        }
    }

    fn run_commands(&mut self) {
        for c in std::mem::take(&mut self.pending) {
            self.run(c);
        }
    }

    fn run(&mut self, c: Command) {
        match c {
            Command::Open(path) => {
                self.status = format!("opening {}", path.display());
                self.opening += 1;
                worker::open(path, Slot::Main, self.events.clone());
            }
            Command::PickFile => {
                if let Some(p) = rfd::FileDialog::new().add_filter("gatescope", &["gsrec", "safetensors", "json"]).pick_file() {
                    self.run(Command::Open(p));
                }
            }
            Command::Listen => self.listen(&self.persisted.listen_addr.clone()),
            Command::StartTraining(cfg, every) => match TrainerHandle::start(*cfg, every, self.runs_dir.clone(), self.events.clone()) {
                Ok(t) => {
                    (self.trainer, self.follow_live, self.status) = (Some(t), true, "training...".into());
                    self.close_model();
                }
                Err(e) => self.error = Some(format!("cannot start training: {e:#}")),
            },
            Command::StopTraining => self.trainer.iter().for_each(|t| t.stop()),
            Command::TraceExample(i) => self.model.iter().for_each(|m| m.request(Request::Trace(i))),
            Command::Lesion(l) => self.ask_model(Request::Lesion(l)),
            Command::LesionAll => self.ask_model(Request::LesionAll),
            Command::OpenOther(p) if p.as_os_str().is_empty() => self.error = Some("type the path of a recording to compare with".into()),
            Command::OpenOther(p) => {
                self.panels.compare.loading = true;
                worker::open(p, Slot::Other, self.events.clone());
            }
            Command::PickOther => {
                if let Some(p) = rfd::FileDialog::new().add_filter("gatescope", &["gsrec", "safetensors"]).pick_file() {
                    self.panels.compare.other_path = p.display().to_string();
                    self.run(Command::OpenOther(p));
                }
            }
            Command::Export(None) => {
                let dialog =
                    rfd::FileDialog::new().add_filter("PNG image", &["png"]).add_filter("SVG image", &["svg"]).set_file_name("figure.png");
                if let Some(p) = dialog.save_file() {
                    self.run(Command::Export(Some(p)));
                }
            }
            Command::Export(Some(path)) => match self.export_current(&path) {
                Ok(what) => self.status = format!("exported {what} to {}", path.display()),
                Err(e) => self.error = Some(format!("export failed: {e:#}")),
            },
            Command::Select { index, follow } => (self.current, self.follow_live) = (index, follow),
            Command::SelectSample(k) => self.sample = k,
            Command::Cancel => self.model.iter().for_each(|m| m.cancel()),
            Command::Probe => {
                self.probing = Some((0, 1));
                self.ask_model(Request::Probe);
            }
            Command::Inspect(layer) => (self.tab, self.panels.layers.highlight) = (Tab::Layers, Some(layer)),
            Command::SaveRunAs(path) => self.save_run_as(path),
            Command::ExportAnimation(None) => {
                let dialog = rfd::FileDialog::new().add_filter("GIF animation", &["gif"]).set_file_name("gates.gif");
                if let Some(p) = dialog.save_file() {
                    self.run(Command::ExportAnimation(Some(p)));
                }
            }
            Command::ExportAnimation(Some(path)) => match self.export_animation(&path) {
                Ok(n) => self.status = format!("exported an animation of {n} snapshots to {}", path.display()),
                Err(e) => self.error = Some(format!("animation export failed: {e:#}")),
            },
        }
    }

    /// Copies the last run trained here (model and recording) to `path` (None: ask).
    fn save_run_as(&mut self, path: Option<PathBuf>) {
        let Some((rec, model)) = self.last_run.clone() else {
            self.error = Some("no run trained here yet: start one in the Train panel".into());
            return;
        };
        let path = path.or_else(|| {
            let name = model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            rfd::FileDialog::new().add_filter("gatescope model", &["safetensors"]).set_file_name(name).save_file()
        });
        let Some(path) = path else { return };
        let (to_model, to_rec) = (path.with_extension("safetensors"), path.with_extension("gsrec"));
        let copied = std::fs::copy(&model, &to_model).and_then(|_| std::fs::copy(&rec, &to_rec));
        match copied {
            Ok(_) => {
                self.status = format!("saved the run as {} and {}", to_model.display(), to_rec.display());
                self.remember(to_rec);
            }
            Err(e) => self.error = Some(format!("could not save the run to {}: {e}", path.display())),
        }
    }

    /// Draws Figure 2 or 3 (the current tab's) over every snapshot into a GIF at `path`.
    pub fn export_animation(&self, path: &std::path::Path) -> anyhow::Result<usize> {
        let header = self.store.header.as_ref().ok_or_else(|| anyhow::anyhow!("nothing to animate: open a recording"))?;
        let figure = match self.tab {
            Tab::Figure3 => crate::animate::Animated::Classes,
            _ => crate::animate::Animated::Gates { sample: self.sample },
        };
        crate::animate::save_gif(header, &self.store.snapshots, figure, path, &mut |_, _| {})
    }

    /// Sends a lesion request to the open model.
    fn ask_model(&mut self, r: Request) {
        let Some(m) = &self.model else {
            self.error = Some("lesioning needs an open model file".into());
            return;
        };
        m.request(r);
        let lesion = &mut self.panels.lesion;
        lesion.waiting = true;
        match r {
            Request::LesionAll => lesion.progress = Some((0, 1)),
            Request::Lesion(Some(l)) => self.status = format!("lesioning layer {l}..."),
            _ => self.status = "clearing the lesion...".into(),
        }
    }

    /// Draws the figure of the current view into `path`.
    pub fn export_current(&self, path: &std::path::Path) -> anyhow::Result<&'static str> {
        let need = || anyhow::anyhow!("nothing to export yet: open a recording or a model");
        let (fig, what) = match self.tab {
            Tab::Figure2 | Tab::Figure3 => {
                let header = self.store.header.as_ref().ok_or_else(need)?;
                let snapshot = self.store.snapshots.get(self.current).ok_or_else(need)?;
                match self.tab {
                    Tab::Figure2 => (Figure::Gates { header, snapshot, sample: self.sample }, "figure 2"),
                    _ => (Figure::Classes { header, snapshot }, "figure 3"),
                }
            }
            Tab::Lesion => {
                let r =
                    self.panels.lesion.report.as_ref().ok_or_else(|| anyhow::anyhow!("no lesion results yet: lesion every layer first"))?;
                (Figure::Lesion(r), "figure 4")
            }
            Tab::Studies => match &self.panels.studies.report {
                Some(Report::Sweep(r)) => (Figure::Sweep(r), "figure 1"),
                Some(Report::Ablation(r)) => (Figure::Ablation(r), "the ablation curves"),
                _ => anyhow::bail!("no sweep or ablation report is open"),
            },
            Tab::Layers | Tab::Compare => {
                anyhow::bail!("this view has no paper figure: export from Figure 2, Figure 3, Figure 4 or Studies")
            }
        };
        export::save(&fig, path)?;
        Ok(what)
    }

    /// The whole UI, inside a given `Ui` (eframe's root, or a test harness).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        let c = ctx.clone();
        self.events.set_wake(Arc::new(move || c.request_repaint()));
        self.poll();
        let dropped = ctx.input(|i| {
            i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect::<Vec<_>>()
        });
        self.pending.extend(dropped.into_iter().map(Command::Open));
        let mut out = Vec::new();
        let recent = self.persisted.recent.clone();
        let shown = Shown {
            store: &self.store,
            current: self.current,
            sample: self.sample,
            follow_live: self.follow_live,
            example: self.example.as_ref(),
            model: self.model.as_ref(),
            lesioned: self.lesioned,
            probing: self.probing,
            attached: self.attached,
            last_run: self.last_run.is_some(),
            recent: &recent,
            training: self.trainer.is_some(),
            listening: self.listener.is_some(),
        };
        self.panels.timeline.tick(&ctx, &shown, &mut out);
        keys(&ctx, &shown, &mut out);
        let mut chrome = Chrome {
            tab: &mut self.tab,
            error: &mut self.error,
            status: &self.status,
            persisted: &mut self.persisted,
            opening: self.opening > 0,
        };
        layout::draw(ui, &mut self.panels, &shown, &mut chrome, &mut out);
        self.log_first_picture();
        self.pending.extend(out);
        self.set_title(&ctx);
        if self.panels.lesion.waiting || self.trainer.is_some() || self.probing.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_millis(200));
        }
        if !self.pending.is_empty() {
            self.run_commands();
            ctx.request_repaint(); // show what the commands did (status, errors) at once
        }
    }
}

impl ViewerApp {
    /// The window title names the open file.
    fn set_title(&mut self, ctx: &egui::Context) {
        let source = &self.store.source;
        let title = match source.rsplit('/').next() {
            Some(name) if !name.is_empty() => format!("{name} - gatescope"),
            _ => "gatescope".to_string(),
        };
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }

    /// With GATESCOPE_TIMING set, prints how long after the start the first map was drawn,
    /// and then the probe's maps.
    fn log_first_picture(&mut self) {
        let Some((t, first_logged)) = self.timing else { return };
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let drawn = self.panels.figure2.map_rects().len();
        if drawn > 0 && !first_logged {
            eprintln!("gatescope: first picture drawn {ms:.0} ms after start");
            self.timing = Some((t, true));
        }
        if drawn == 4 && self.store.snapshots.first().is_some_and(|s| !s.mean_gate.is_empty()) {
            eprintln!("gatescope: the probe's maps drawn {ms:.0} ms after start");
            self.timing = None;
        }
    }

    /// The window title last set.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The open model's file, if a model is open or attached.
    pub fn model_path(&self) -> Option<&std::path::Path> {
        self.model.as_ref().map(|m| m.path.as_path())
    }

    /// True when the open model belongs to the open recording.
    pub fn is_attached(&self) -> bool {
        self.attached
    }

    /// Progress of the open model's probe pass.
    pub fn probing(&self) -> Option<(usize, usize)> {
        self.probing
    }
}

/// Keyboard navigation: ←/→ step through the snapshots, ↑/↓ through the probe samples (when
/// no text field has the keyboard).
fn keys(ctx: &egui::Context, shown: &Shown, out: &mut Vec<Command>) {
    if ctx.egui_wants_keyboard_input() || ctx.memory(|m| m.focused().is_some()) {
        return; // a focused widget (a slider, a text field) has the arrows
    }
    let (n, k) = (shown.store.snapshots.len(), shown.store.header.as_ref().map_or(0, |h| h.num_samples()));
    let (left, right, up, down) = ctx.input(|i| {
        let p = |k| i.key_pressed(k);
        (p(egui::Key::ArrowLeft), p(egui::Key::ArrowRight), p(egui::Key::ArrowUp), p(egui::Key::ArrowDown))
    });
    if n > 0 && (left || right) {
        let i = if left { shown.current.saturating_sub(1) } else { (shown.current + 1).min(n - 1) };
        out.push(Command::Select { index: i, follow: i + 1 == n && right });
    }
    if k > 0 && (up || down) {
        let s = if up { shown.sample.saturating_sub(1) } else { (shown.sample + 1).min(k - 1) };
        out.push(Command::SelectSample(s));
    }
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
