//! The layer inspector: per layer, mean T, the fraction of open gates and how much the layer
//! changes its input.

use eframe::egui;

use super::{title, Shown};
use crate::snapshot::LayerStats;

#[derive(Default)]
pub struct LayersPanel {
    /// A layer picked elsewhere (a click on a map's row), marked in every plot.
    pub highlight: Option<usize>,
}

impl LayersPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, shown: &Shown) {
        let Some(snap) = shown.snapshot() else { return };
        ui.label(
            "Per layer: mean T, the fraction of open gates (T > 0.5), and how much each layer changes its input (mean |y_l - y_(l-1)|).",
        );
        let series = |f: &dyn Fn(&LayerStats) -> f32| -> egui_plot::PlotPoints<'static> {
            snap.layers.iter().filter(|l| f(l).is_finite()).map(|l| [l.layer as f64, f(l) as f64]).collect::<Vec<_>>().into()
        };
        if let Some(l) = self.highlight {
            ui.horizontal(|ui| {
                let stats = snap.layers.iter().find(|s| s.layer as usize == l);
                match stats {
                    Some(s) => ui.strong(format!(
                        "layer {l}: mean T {:.4}, open gates {:.1} %, mean change {:.4}",
                        s.mean_gate,
                        100.0 * s.open_fraction,
                        s.mean_change
                    )),
                    None => ui.strong(format!("layer {l}")),
                };
                if ui.small_button("clear").clicked() {
                    self.highlight = None;
                }
            });
        }
        let h = (ui.available_height() / 3.0 - 20.0).max(120.0);
        for (name, pts) in [
            ("mean transform gate output", series(&|l| l.mean_gate)),
            ("fraction of open gates (T > 0.5)", series(&|l| l.open_fraction)),
            ("mean change of block output", series(&|l| l.mean_change)),
        ] {
            title(ui, name);
            // from 0 (every quantity here is ≥ 0), which also gives the y axis its tick labels
            egui_plot::Plot::new(name).height(h).x_axis_label("layer").y_axis_min_width(52.0).include_y(0.0).show(ui, |p| {
                p.line(egui_plot::Line::new(name, pts));
                if let Some(l) = self.highlight {
                    p.vline(egui_plot::VLine::new(format!("layer {l}"), l as f64));
                }
            });
        }
    }
}
