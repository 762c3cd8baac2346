//! The layer inspector: per layer, mean T, the fraction of open gates and how much the layer
//! changes its input.

use eframe::egui;

use super::{title, Shown};
use crate::snapshot::LayerStats;

#[derive(Default)]
pub struct LayersPanel;

impl LayersPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, shown: &Shown) {
        let Some(snap) = shown.snapshot() else { return };
        ui.label(
            "Per layer: mean T, the fraction of open gates (T > 0.5), and how much each layer changes its input (mean |y_l - y_(l-1)|).",
        );
        let series = |f: &dyn Fn(&LayerStats) -> f32| -> egui_plot::PlotPoints<'static> {
            snap.layers.iter().filter(|l| f(l).is_finite()).map(|l| [l.layer as f64, f(l) as f64]).collect::<Vec<_>>().into()
        };
        let h = (ui.available_height() / 3.0 - 20.0).max(120.0);
        for (name, pts) in [
            ("mean transform gate output", series(&|l| l.mean_gate)),
            ("fraction of open gates (T > 0.5)", series(&|l| l.open_fraction)),
            ("mean change of block output", series(&|l| l.mean_change)),
        ] {
            title(ui, name);
            egui_plot::Plot::new(name).height(h).x_axis_label("layer").show(ui, |p| {
                p.line(egui_plot::Line::new(name, pts));
            });
        }
    }
}
