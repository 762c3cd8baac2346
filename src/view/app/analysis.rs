//! The analysis views: lesioning (Figure 4), sweep and ablation reports, comparing two
//! recordings, and figure export. Panels draw and push [`Command`]s; `ViewerApp::run_analysis`
//! carries them out after drawing.

use std::path::PathBuf;

use eframe::egui::{self, Vec2};

use super::{Command, Tab, ViewerApp};
use crate::export::{self, Figure};
use crate::report::{LesionReport, Report, RunResult};
use crate::view::colormap::Scale;
use crate::view::heatmap::Grid;
use crate::view::store::Store;
use crate::view::worker::{self, Opened, Request};

/// Which layer × unit map the comparison shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantity {
    #[default]
    MeanGate,
    GateBias,
    SampleGate,
    SampleBlocks,
}

impl Quantity {
    const ALL: [Quantity; 4] = [Quantity::MeanGate, Quantity::GateBias, Quantity::SampleGate, Quantity::SampleBlocks];
    fn label(self) -> &'static str {
        match self {
            Quantity::MeanGate => "mean T",
            Quantity::GateBias => "gate biases",
            Quantity::SampleGate => "T of the probe sample",
            Quantity::SampleBlocks => "block outputs of the probe sample",
        }
    }
}

/// The map of `q` in a store's snapshot `i`: (rows, cols, values, first layer).
fn quantity(store: &Store, i: usize, q: Quantity, sample: usize) -> Option<(usize, usize, Vec<f32>, usize)> {
    let s = store.snapshots.get(i)?;
    let first = store.header.as_ref().and_then(|h| h.gated_layers().first().copied()).unwrap_or(1);
    let w = s.mean_gate.shape.get(1).copied().or(s.sample_blocks.shape.get(2).copied())?;
    let per_sample = |a: &crate::snapshot::Array| (a.shape.len() == 3 && sample < a.shape[0]).then(|| a.row(sample).to_vec());
    let (values, first) = match q {
        Quantity::MeanGate => (s.mean_gate.data.clone(), first),
        Quantity::GateBias => (s.gate_bias.data.clone(), first),
        Quantity::SampleGate => (per_sample(&s.sample_gates)?, first),
        Quantity::SampleBlocks => (per_sample(&s.sample_blocks)?, 0),
    };
    (w > 0 && !values.is_empty()).then(|| (values.len() / w, w, values, first))
}

/// The state of the analysis views.
#[derive(Default)]
pub struct Analysis {
    /// A report opened from a file (sweep or ablation; a lesion report goes to `lesions`).
    pub report: Option<Report>,
    /// Figure 4 of the open model, or of an opened lesion report.
    pub lesions: Option<LesionReport>,
    /// The layer whose gates are closed right now in the open model.
    pub lesioned: Option<usize>,
    /// Progress of a running lesion analysis.
    pub lesion_progress: Option<(usize, usize)>,
    /// The layer in the lesion picker.
    pub pick: usize,
    /// A second recording to compare the open one with.
    pub other: Option<Store>,
    pub other_index: usize,
    pub quantity: Quantity,
    pub other_path: String,
    pub loading_other: Option<std::sync::mpsc::Receiver<(PathBuf, anyhow::Result<Opened>)>>,
    /// Waiting for the model session to answer.
    pub waiting: bool,
}

impl ViewerApp {
    /// Figure 4: the per-layer bar chart; a click (or the picker) lesions that layer live.
    pub(super) fn lesion_view(&mut self, ui: &mut egui::Ui) {
        let has_session = self.session.is_some();
        let lesionable = self.session.as_ref().map(|s| s.lesionable.clone()).unwrap_or_default();
        if has_session && lesionable.is_empty() {
            ui.label("This model has no gates or skip connections to lesion.");
        }
        if has_session && !lesionable.is_empty() {
            ui.horizontal(|ui| {
                if self.an.lesion_progress.is_some() {
                    let (d, t) = self.an.lesion_progress.unwrap_or((0, 1));
                    ui.add(egui::ProgressBar::new(d as f32 / t.max(1) as f32).text(format!("lesioning {d}/{t}")).desired_width(220.0));
                } else if ui.button("Lesion every layer (train and test sets)").clicked() {
                    self.pending.push(Command::LesionAll);
                }
                ui.separator();
                let (lo, hi) = (*lesionable.first().unwrap_or(&1), *lesionable.last().unwrap_or(&1));
                self.an.pick = self.an.pick.clamp(lo, hi);
                let label = ui.label("layer");
                ui.add(egui::DragValue::new(&mut self.an.pick).range(lo..=hi)).labelled_by(label.id);
                if ui.button("Lesion this layer").clicked() {
                    self.pending.push(Command::Lesion(Some(self.an.pick)));
                }
                if self.an.lesioned.is_some() && ui.button("Clear lesion").clicked() {
                    self.pending.push(Command::Lesion(None));
                }
            });
        }
        match self.an.lesioned {
            Some(l) => ui.label(format!("Layer {l} lesioned: its gates are closed (T = 0) in every view until cleared.")),
            None => ui.label("No layer lesioned."),
        };
        let Some(r) = &self.an.lesions else {
            if !has_session {
                ui.label("Open a model file to lesion it live, or a lesion report (gatescope lesion --out FILE.json).");
            }
            return;
        };
        ui.label(format!(
            "{}: error with all gates of one layer closed, {} training and {} test examples ({:.1} s). Dashed: no lesion. Click a bar to lesion that layer.",
            r.dataset, r.train_examples, r.test_examples, r.seconds
        ));
        let bars: Vec<egui_plot::Bar> = r
            .layers
            .iter()
            .map(|x| {
                let b = egui_plot::Bar::new(x.layer as f64, x.train.error()).width(0.8).name(format!("layer {}", x.layer));
                if Some(x.layer) == self.an.lesioned { b.fill(egui::Color32::from_rgb(214, 96, 77)) } else { b }
            })
            .collect();
        let test: egui_plot::PlotPoints = r.layers.iter().map(|x| [x.layer as f64, x.test.error()]).collect::<Vec<_>>().into();
        let (bt, be) = (r.baseline_train.error(), r.baseline_test.error());
        let resp = egui_plot::Plot::new("lesions")
            .legend(egui_plot::Legend::default())
            .x_axis_label("lesioned layer")
            .y_axis_label("error rate")
            .include_y(0.0)
            .allow_drag(false)
            .allow_zoom(false)
            .height((ui.available_height() - 10.0).max(200.0))
            .show(ui, |p| {
                p.bar_chart(egui_plot::BarChart::new("training error, layer lesioned", bars).color(egui::Color32::from_rgb(59, 81, 139)));
                p.line(egui_plot::Line::new("test error, layer lesioned", test).color(egui::Color32::from_rgb(214, 96, 77)));
                p.hline(egui_plot::HLine::new(format!("training error, no lesion ({:.2} %)", bt * 100.0), bt).style(egui_plot::LineStyle::dashed_loose()).color(egui::Color32::BLACK));
                p.hline(egui_plot::HLine::new(format!("test error, no lesion ({:.2} %)", be * 100.0), be).style(egui_plot::LineStyle::dashed_dense()).color(egui::Color32::from_rgb(214, 96, 77)));
            });
        if resp.response.clicked() && has_session {
            if let Some(pos) = resp.response.interact_pointer_pos() {
                let layer = resp.transform.value_from_position(pos).x.round();
                if let Some(&l) = lesionable.iter().find(|&&l| l as f64 == layer) {
                    self.an.pick = l;
                    self.pending.push(Command::Lesion(Some(l)));
                }
            }
        }
    }

    /// Sweep (Figure 1) or ablation report: the curves and the table.
    pub(super) fn studies_view(&mut self, ui: &mut egui::Ui) {
        let Some(report) = &self.an.report else {
            ui.label("Open a sweep or ablation report (gatescope sweep / gatescope ablate write runs/sweep.json and runs/ablation.json).");
            return;
        };
        let (title, runs): (String, &[RunResult]) = match report {
            Report::Sweep(r) => (format!("Depth sweep on {}: {} epochs per run, {:.0} s", r.dataset, r.epochs, r.seconds), &r.runs),
            Report::Ablation(r) => (format!("Gate ablation on {}: depth {}, {} epochs per run, {:.0} s", r.dataset, r.depth, r.epochs, r.seconds), &r.runs),
            Report::Lesion(_) => return,
        };
        ui.label(egui::RichText::new(title).strong());
        egui::Grid::new("runs-table").striped(true).spacing([14.0, 4.0]).show(ui, |ui| {
            for h in ["run", "depth", "width", "params", "lr", "train loss", "train acc", "test loss", "test acc", "seconds"] {
                ui.label(egui::RichText::new(h).strong());
            }
            ui.end_row();
            for r in runs {
                ui.label(&r.name);
                ui.label(r.depth.to_string());
                ui.label(r.width.to_string());
                ui.label(r.params.to_string());
                ui.label(format!("{:.3e}", r.lr));
                ui.label(format!("{:.4}", r.train.loss));
                ui.label(format!("{:.4}", r.train.accuracy));
                ui.label(format!("{:.4}", r.test.loss));
                ui.label(format!("{:.4}", r.test.accuracy));
                ui.label(format!("{:.0}{}", r.seconds, if r.diverged { " (diverged)" } else { "" }));
                ui.end_row();
            }
        });
        ui.label("Training cross-entropy per epoch (log scale):");
        egui_plot::Plot::new("study-curves")
            .legend(egui_plot::Legend::default())
            .x_axis_label("epoch")
            .y_axis_label("log10 training cross-entropy")
            .height((ui.available_height() - 10.0).max(200.0))
            .show(ui, |p| {
                for r in runs {
                    let pts: Vec<[f64; 2]> = r.epoch_train_loss.iter().enumerate().filter(|(_, v)| v.is_finite() && **v > 0.0).map(|(e, v)| [e as f64 + 1.0, v.log10()]).collect();
                    p.line(egui_plot::Line::new(&r.name, pts));
                }
            });
    }

    /// Two recordings side by side, and their difference.
    pub(super) fn compare_view(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let label = ui.label("compare with");
            ui.add(egui::TextEdit::singleline(&mut self.an.other_path).desired_width(260.0)).labelled_by(label.id);
            if ui.button("Open B").clicked() {
                self.pending.push(Command::OpenOther(PathBuf::from(self.an.other_path.trim())));
            }
            if ui.button("Browse...").clicked() {
                self.pending.push(Command::PickOther);
            }
            if self.an.loading_other.is_some() {
                ui.spinner();
            }
        });
        let Some(other) = &self.an.other else {
            ui.label("Open a second recording (B) to compare the open one (A) with it, map by map.");
            return;
        };
        ui.horizontal(|ui| {
            egui::ComboBox::new("cmp-quantity", "map").selected_text(self.an.quantity.label()).show_ui(ui, |ui| {
                for q in Quantity::ALL {
                    ui.selectable_value(&mut self.an.quantity, q, q.label());
                }
            });
            let n = other.snapshots.len();
            if n > 0 {
                self.an.other_index = self.an.other_index.min(n - 1);
                ui.add(egui::Slider::new(&mut self.an.other_index, 0..=n - 1).text("snapshot of B"));
            }
        });
        let short = |s: &str| s.rsplit('/').next().unwrap_or_default().to_string();
        let (sa, sb) = (self.store.snapshots.get(self.current).map_or(0, |s| s.step), other.snapshots.get(self.an.other_index).map_or(0, |s| s.step));
        let a = quantity(&self.store, self.current, self.an.quantity, self.sample);
        let b = quantity(other, self.an.other_index, self.an.quantity, self.sample);
        let (ga, gb) = (self.store.generation, other.generation);
        let (ia, ib) = (self.current as u64, self.an.other_index as u64);
        let q = self.an.quantity as u64;
        let scale_of = |v: &[f32]| if matches!(self.an.quantity, Quantity::MeanGate | Quantity::SampleGate) { Scale::unit() } else { Scale::symmetric(v) };
        let size = Vec2::new(170.0, 360.0);
        let other_name = short(&other.source);
        let diff = match (&a, &b) {
            (Some(a), Some(b)) if a.0 == b.0 && a.1 == b.1 => Some(a.2.iter().zip(&b.2).map(|(x, y)| x - y).collect::<Vec<f32>>()),
            _ => None,
        };
        ui.horizontal_top(|ui| {
            let titles = [format!("A: {} (step {sa})", short(&self.store.source)), format!("B: {other_name} (step {sb})")];
            for (k, (m, title)) in [(&a, &titles[0]), (&b, &titles[1])].into_iter().enumerate() {
                ui.vertical(|ui| {
                    ui.label(egui::RichText::new(title).strong());
                    match m {
                        Some((rows, cols, v, first)) => {
                            let key = if k == 0 { (ga << 32 | 40 | q, ia) } else { (gb << 32 | 50 | q, ib ^ (1 << 40)) };
                            self.compare_maps[k].show(ui, &format!("cmp-{k}"), key, &Grid { rows: *rows, cols: *cols, values: v, first_layer: *first }, scale_of(v), size);
                        }
                        None => {
                            ui.label("(not in this recording)");
                        }
                    }
                });
            }
            ui.vertical(|ui| {
                ui.label(egui::RichText::new("A minus B").strong());
                match (&diff, &a) {
                    (Some(d), Some((rows, cols, _, first))) => {
                        let key = (ga << 32 | gb << 16 | 60 | q, ia << 20 | ib);
                        self.compare_maps[2].show(ui, "cmp-diff", key, &Grid { rows: *rows, cols: *cols, values: d, first_layer: *first }, Scale::symmetric(d), size);
                        let max = d.iter().filter(|v| v.is_finite()).fold(0f32, |m, v| m.max(v.abs()));
                        ui.label(format!("largest |A - B|: {max:.4}"));
                    }
                    _ => {
                        ui.label(match (&a, &b) {
                            (Some(a), Some(b)) => format!("The maps differ in shape (A: {} x {}, B: {} x {}): no difference.", a.0, a.1, b.0, b.1),
                            _ => "No difference: a map is missing.".to_string(),
                        });
                    }
                }
            });
        });
    }

    /// Carries out the analysis commands (after drawing). Returns the ones it does not handle.
    pub(super) fn run_analysis(&mut self, c: Command, ctx: &egui::Context) -> Option<Command> {
        match c {
            Command::Lesion(l) => match &self.session {
                Some(s) => {
                    s.request(Request::Lesion(l));
                    self.an.waiting = true;
                    self.status = match l {
                        Some(l) => format!("lesioning layer {l}..."),
                        None => "clearing the lesion...".into(),
                    };
                }
                None => self.error = Some("lesioning needs an open model file".into()),
            },
            Command::LesionAll => match &self.session {
                Some(s) => {
                    s.request(Request::LesionAll);
                    self.an.waiting = true;
                    self.an.lesion_progress = Some((0, 1));
                }
                None => self.error = Some("lesioning needs an open model file".into()),
            },
            Command::OpenOther(p) => {
                if p.as_os_str().is_empty() {
                    self.error = Some("type the path of a recording to compare with".into());
                } else {
                    let c = ctx.clone();
                    self.an.loading_other = Some(worker::open(p, move || c.request_repaint()));
                }
            }
            Command::PickOther => {
                if let Some(p) = rfd::FileDialog::new().add_filter("gatescope", &["gsrec", "safetensors"]).pick_file() {
                    self.an.other_path = p.display().to_string();
                    return self.run_analysis(Command::OpenOther(p), ctx);
                }
            }
            Command::Export(None) => {
                if let Some(p) = rfd::FileDialog::new().add_filter("PNG image", &["png"]).add_filter("SVG image", &["svg"]).set_file_name("figure.png").save_file() {
                    return self.run_analysis(Command::Export(Some(p)), ctx);
                }
            }
            Command::Export(Some(path)) => match self.export_current(&path) {
                Ok(what) => self.status = format!("exported {what} to {}", path.display()),
                Err(e) => self.error = Some(format!("export failed: {e:#}")),
            },
            other => return Some(other),
        }
        None
    }

    /// Draws the figure of the current view into `path`.
    pub fn export_current(&self, path: &std::path::Path) -> anyhow::Result<&'static str> {
        let need = || anyhow::anyhow!("nothing to export yet: open a recording or a model");
        let (fig, what) = match self.tab {
            Tab::Figure2 | Tab::Figure3 => {
                let header = self.store.header.as_ref().ok_or_else(need)?;
                let snapshot = self.store.snapshots.get(self.current).ok_or_else(need)?;
                if self.tab == Tab::Figure2 {
                    (Figure::Gates { header, snapshot, sample: self.sample }, "figure 2")
                } else {
                    (Figure::Classes { header, snapshot }, "figure 3")
                }
            }
            Tab::Lesion => (Figure::Lesion(self.an.lesions.as_ref().ok_or_else(|| anyhow::anyhow!("no lesion results yet: lesion every layer first"))?), "figure 4"),
            Tab::Studies => match &self.an.report {
                Some(Report::Sweep(r)) => (Figure::Sweep(r), "figure 1"),
                Some(Report::Ablation(r)) => (Figure::Ablation(r), "the ablation curves"),
                _ => anyhow::bail!("no sweep or ablation report is open"),
            },
            Tab::Layers | Tab::Compare => anyhow::bail!("this view has no paper figure: export from Figure 2, Figure 3, Figure 4 or Studies"),
        };
        export::save(&fig, path)?;
        Ok(what)
    }

    /// Drains the second recording's loader. Returns true if anything arrived.
    pub(super) fn poll_analysis(&mut self) -> bool {
        let Some(rx) = &self.an.loading_other else { return false };
        let Ok((path, r)) = rx.try_recv() else { return false };
        self.an.loading_other = None;
        match r {
            Ok(Opened::Recording(rec) | Opened::Model(rec, _)) => {
                let mut store = Store::from_recording(rec, path.display().to_string());
                store.generation = self.store.generation + 1000;
                self.an.other_index = store.snapshots.len().saturating_sub(1);
                self.an.other = Some(store);
                self.status = format!("comparing with {}", path.display());
            }
            Ok(Opened::Report(_)) => self.error = Some(format!("{}: a report, not a recording: open it with File > Open", path.display())),
            Err(e) => self.error = Some(format!("could not open {}: {e:#}", path.display())),
        }
        true
    }
}
