//! Sweep (Figure 1) and ablation reports: the table of runs and their training curves.

use eframe::egui;

use super::{title, Out};
use crate::recipe::{Example, ExampleKind};
use crate::report::{Report, RunResult};
use crate::view::command::Command;

#[derive(Default)]
pub struct StudiesPanel {
    /// A sweep or ablation report opened from a file.
    pub report: Option<Report>,
}

impl StudiesPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, out: &mut Out) {
        let Some(report) = &self.report else {
            ui.label("Open a sweep or ablation report (gatescope sweep / gatescope ablate write runs/sweep.json and runs/ablation.json).");
            for kind in [ExampleKind::SweepReport, ExampleKind::AblationReport] {
                let e = Example::first(kind);
                if ui.button(format!("Open the bundled {}", e.label.to_lowercase())).on_hover_text(e.path).clicked() {
                    out.push(Command::Open(e.file()));
                }
            }
            return;
        };
        let (heading, runs): (String, &[RunResult]) = match report {
            Report::Sweep(r) => (format!("Depth sweep on {}: {} epochs per run, {:.0} s", r.dataset, r.epochs, r.seconds), &r.runs),
            Report::Ablation(r) => {
                (format!("Gate ablation on {}: depth {}, {} epochs per run, {:.0} s", r.dataset, r.depth, r.epochs, r.seconds), &r.runs)
            }
            Report::Lesion(_) => return,
        };
        title(ui, heading);
        table(ui, runs);
        ui.label("Training cross-entropy per epoch (log scale):");
        egui_plot::Plot::new("study-curves")
            .legend(egui_plot::Legend::default())
            .x_axis_label("epoch")
            .y_axis_label("log10 training cross-entropy")
            .y_axis_min_width(52.0)
            .height((ui.available_height() - 10.0).max(200.0))
            .show(ui, |p| {
                for r in runs {
                    let pts: Vec<[f64; 2]> = r
                        .epoch_train_loss
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite() && **v > 0.0)
                        .map(|(e, v)| [e as f64 + 1.0, v.log10()])
                        .collect();
                    p.line(egui_plot::Line::new(&r.name, pts));
                }
            });
    }
}

fn table(ui: &mut egui::Ui, runs: &[RunResult]) {
    egui::Grid::new("runs-table").striped(true).spacing([14.0, 4.0]).show(ui, |ui| {
        for h in ["run", "depth", "width", "params", "lr", "train loss", "train acc", "test loss", "test acc", "seconds"] {
            title(ui, h);
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
}
