//! Figure 4: the per-layer error with one layer's gates closed; a click (or the picker)
//! lesions that layer live in the open model.

use eframe::egui;

use super::{Out, Shown};
use crate::figures;
use crate::recipe::{Example, ExampleKind};
use crate::report::LesionReport;
use crate::view::command::Command;

#[derive(Default)]
pub struct LesionPanel {
    /// Figure 4 of the open model, or of an opened lesion report.
    pub report: Option<LesionReport>,
    /// Progress of a running lesion analysis: (done, total).
    pub progress: Option<(usize, usize)>,
    /// Figure 4 over the examples the running analysis has done so far (shown until it ends).
    pub so_far: Option<LesionReport>,
    /// Waiting for the model to answer a lesion request.
    pub waiting: bool,
    /// The layer in the lesion picker.
    pub pick: usize,
    /// The report was computed from the open model (not opened from a file).
    pub of_model: bool,
}

const LESIONED: egui::Color32 = egui::Color32::from_rgb(214, 96, 77);

impl LesionPanel {
    /// Nothing under way: no analysis's progress or figure so far, no answer awaited.
    pub fn settle(&mut self) {
        (self.progress, self.so_far, self.waiting) = (None, None, false);
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, shown: &Shown, out: &mut Out) {
        let lesionable = shown.model.map(|m| m.lesionable.clone()).unwrap_or_default();
        if shown.model.is_some() && lesionable.is_empty() {
            ui.label("This model has no gates or skip connections to lesion.");
        }
        if !lesionable.is_empty() {
            self.controls(ui, &lesionable, shown.lesioned, out);
        }
        match shown.lesioned {
            Some(l) => ui.label(format!("Layer {l} lesioned: its gates are closed (T = 0) in every view until cleared.")),
            None => ui.label("No layer lesioned."),
        };
        // while an analysis runs, its figure so far; else the last report
        let running = self.so_far.as_ref().filter(|_| self.progress.is_some());
        let Some(r) = running.or(self.report.as_ref()) else {
            if shown.model.is_none() {
                ui.label("Open a model file to lesion it live, or a lesion report (gatescope lesion --out FILE.json).");
                let (model, report) = (Example::first(ExampleKind::Model), Example::first(ExampleKind::LesionReport));
                if ui.button("Open the bundled 50-layer model, to lesion it live").on_hover_text(model.path).clicked() {
                    out.push(Command::Open(model.file()));
                }
                if ui.button(format!("Open the bundled {}", report.label.to_lowercase())).on_hover_text(report.path).clicked() {
                    out.push(Command::Open(report.file()));
                }
            } else if !lesionable.is_empty() && self.progress.is_none() {
                ui.label("Lesion every layer in turn to draw Figure 4 for this model (above), or one layer to see its maps change.");
            }
            return;
        };
        let text = if running.is_some() {
            let test = match r.test_examples {
                0 => "the test set next".to_string(),
                n => format!("{n} test examples"),
            };
            format!(
                "Figure 4 so far, over {} training examples and {test}: an estimate that sharpens until the analysis ends.",
                r.train_examples
            )
        } else {
            format!(
                "{}: error with all gates of one layer closed, {} training and {} test examples ({:.1} s). Dashed: no lesion. Click a bar to lesion that layer.",
                r.dataset, r.train_examples, r.test_examples, r.seconds
            )
        };
        ui.label(text);
        if let Some(l) = plot(ui, &figures::figure4(r), shown.lesioned) {
            if lesionable.contains(&l) {
                self.pick = l;
                out.push(Command::Lesion(Some(l)));
            }
        }
    }

    fn controls(&mut self, ui: &mut egui::Ui, lesionable: &[usize], lesioned: Option<usize>, out: &mut Out) {
        ui.horizontal(|ui| {
            if let Some((d, t)) = self.progress {
                ui.add(egui::ProgressBar::new(d as f32 / t.max(1) as f32).text(format!("lesioning {d}/{t}")).desired_width(220.0));
                if ui.button("Cancel").on_hover_text("Stop the lesion analysis (the figure so far goes)").clicked() {
                    out.push(Command::Cancel);
                }
            } else if ui.button("Lesion every layer (train and test sets)").clicked() {
                out.push(Command::LesionAll);
            }
            ui.separator();
            let (lo, hi) = (*lesionable.first().unwrap_or(&1), *lesionable.last().unwrap_or(&1));
            self.pick = self.pick.clamp(lo, hi);
            let label = ui.label("layer");
            ui.add(egui::DragValue::new(&mut self.pick).range(lo..=hi)).labelled_by(label.id);
            if ui.button("Lesion this layer").clicked() {
                out.push(Command::Lesion(Some(self.pick)));
            }
            if lesioned.is_some() && ui.button("Clear lesion").clicked() {
                out.push(Command::Lesion(None));
            }
        });
    }
}

/// Draws Figure 4; returns the layer whose bar was clicked.
fn plot(ui: &mut egui::Ui, fig: &figures::Figure4, lesioned: Option<usize>) -> Option<usize> {
    let bars: Vec<egui_plot::Bar> = fig
        .train
        .iter()
        .map(|&(layer, e)| {
            let b = egui_plot::Bar::new(layer as f64, e).width(0.8).name(format!("layer {layer}"));
            if Some(layer) == lesioned {
                b.fill(LESIONED)
            } else {
                b
            }
        })
        .collect();
    // (a test set not begun yet has no points)
    let test: egui_plot::PlotPoints = fig.test.iter().filter(|p| p.1.is_finite()).map(|&(l, e)| [l as f64, e]).collect::<Vec<_>>().into();
    let ((bt, bt_label), (be, be_label)) = (fig.baseline_train.clone(), fig.baseline_test.clone());
    let baseline = ui.visuals().text_color();
    let resp = egui_plot::Plot::new("lesions")
        .legend(egui_plot::Legend::default())
        .x_axis_label(fig.x_label)
        .y_axis_label(fig.y_label)
        .include_y(0.0)
        .y_axis_min_width(52.0)
        .allow_drag(false)
        .allow_zoom(false)
        .height((ui.available_height() - 10.0).max(200.0))
        .show(ui, |p| {
            p.bar_chart(egui_plot::BarChart::new(fig.train_label.as_str(), bars).color(egui::Color32::from_rgb(59, 81, 139)));
            p.line(egui_plot::Line::new(fig.test_label.as_str(), test).color(LESIONED));
            p.hline(egui_plot::HLine::new(bt_label, bt).style(egui_plot::LineStyle::dashed_loose()).color(baseline));
            if be.is_finite() {
                p.hline(egui_plot::HLine::new(be_label, be).style(egui_plot::LineStyle::dashed_dense()).color(LESIONED));
            }
        });
    if !resp.response.clicked() {
        return None;
    }
    let pos = resp.response.interact_pointer_pos()?;
    let x = resp.transform.value_from_position(pos).x.round();
    (x >= 0.0).then_some(x as usize)
}
