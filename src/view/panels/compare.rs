//! Two recordings side by side (A: the open one, B: another), map by map, and A minus B.

use std::path::PathBuf;

use eframe::egui::{self, Vec2};

use super::{title, Out, Shown};
use crate::colormap::Scale;
use crate::figures::Grid;
use crate::snapshot::Array;
use crate::view::command::Command;
use crate::view::heatmap::Heatmap;
use crate::view::store::Store;

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

    /// T is drawn on [0, 1]; biases, outputs and differences around zero.
    fn scale(self, values: &[f32]) -> Scale {
        match self {
            Quantity::MeanGate | Quantity::SampleGate => Scale::unit(),
            _ => Scale::symmetric(values),
        }
    }
}

/// The map of `q` in a store's snapshot `i`, for probe sample `sample`.
fn quantity(store: &Store, i: usize, q: Quantity, sample: usize) -> Option<Grid<'_>> {
    let s = store.snapshots.get(i)?;
    let first = store.header.as_ref().and_then(|h| h.gated_layers().first().copied()).unwrap_or(1);
    let w = s.mean_gate.shape.get(1).copied().or(s.sample_blocks.shape.get(2).copied())?;
    let (values, first) = match q {
        Quantity::MeanGate => (&s.mean_gate.data[..], first),
        Quantity::GateBias => (&s.gate_bias.data[..], first),
        Quantity::SampleGate => (per_sample(&s.sample_gates, sample)?, first),
        Quantity::SampleBlocks => (per_sample(&s.sample_blocks, sample)?, 0),
    };
    (w > 0 && !values.is_empty()).then(|| Grid::new(values, w, first))
}

/// Row `sample` of a per-sample array [K, L, W].
fn per_sample(a: &Array, sample: usize) -> Option<&[f32]> {
    (a.shape.len() == 3 && sample < a.shape[0]).then(|| a.row(sample))
}

/// Which picture a comparison map shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapKey {
    generations: (u64, u64),
    snapshots: (usize, usize),
    quantity: Quantity,
    sample: usize,
}

#[derive(Default)]
pub struct ComparePanel {
    /// The second recording (B).
    pub other: Option<Store>,
    pub other_index: usize,
    pub quantity: Quantity,
    /// The path typed for B.
    pub other_path: String,
    /// B is being opened.
    pub loading: bool,
    maps: [Heatmap<MapKey>; 3],
}

impl ComparePanel {
    pub fn uploads(&self) -> usize {
        self.maps.iter().map(|h| h.uploads).sum()
    }

    /// B has arrived.
    pub fn set_other(&mut self, store: Store) {
        self.other_index = store.snapshots.len().saturating_sub(1);
        self.other = Some(store);
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, shown: &Shown, out: &mut Out) {
        ui.horizontal(|ui| {
            let label = ui.label("compare with");
            ui.add(egui::TextEdit::singleline(&mut self.other_path).desired_width(260.0)).labelled_by(label.id);
            if ui.button("Open B").clicked() {
                out.push(Command::OpenOther(PathBuf::from(self.other_path.trim())));
            }
            if ui.button("Browse...").clicked() {
                out.push(Command::PickOther);
            }
            if self.loading {
                ui.spinner();
            }
        });
        let Some(other) = &self.other else {
            ui.label("Open a second recording (B) to compare the open one (A) with it, map by map.");
            return;
        };
        ui.horizontal(|ui| {
            egui::ComboBox::new("cmp-quantity", "map").selected_text(self.quantity.label()).show_ui(ui, |ui| {
                for q in Quantity::ALL {
                    ui.selectable_value(&mut self.quantity, q, q.label());
                }
            });
            let n = other.snapshots.len();
            if n > 0 {
                self.other_index = self.other_index.min(n - 1);
                ui.add(egui::Slider::new(&mut self.other_index, 0..=n - 1).text("snapshot of B"));
            }
        });
        let (q, bi) = (self.quantity, self.other_index);
        let a = quantity(shown.store, shown.current, q, shown.sample);
        let b = quantity(other, bi, q, shown.sample);
        let key = MapKey {
            generations: (shown.store.generation, other.generation),
            snapshots: (shown.current, bi),
            quantity: q,
            sample: shown.sample,
        };
        let short = |s: &str| s.rsplit('/').next().unwrap_or_default().to_string();
        let step = |s: &Store, i: usize| s.snapshots.get(i).map_or(0, |s| s.step);
        let titles = [
            format!("A: {} (step {})", short(&shown.store.source), step(shown.store, shown.current)),
            format!("B: {} (step {})", short(&other.source), step(other, bi)),
        ];
        let size = Vec2::new(170.0, 360.0);
        let [map_a, map_b, map_diff] = &mut self.maps;
        ui.horizontal_top(|ui| {
            for (map, grid, heading, id) in [(map_a, &a, &titles[0], "cmp-0"), (map_b, &b, &titles[1], "cmp-1")] {
                ui.vertical(|ui| {
                    title(ui, heading.as_str());
                    match grid {
                        Some(g) => {
                            map.show(ui, id, key, g, q.scale(g.values), size);
                        }
                        None => {
                            ui.label("(not in this recording)");
                        }
                    }
                });
            }
            ui.vertical(|ui| difference(ui, map_diff, key, a, b, size));
        });
    }
}

/// A minus B, when both maps exist and have one shape.
fn difference(ui: &mut egui::Ui, map: &mut Heatmap<MapKey>, key: MapKey, a: Option<Grid>, b: Option<Grid>, size: Vec2) {
    title(ui, "A minus B");
    match (a, b) {
        (Some(a), Some(b)) if (a.rows, a.cols) == (b.rows, b.cols) => {
            let d: Vec<f32> = a.values.iter().zip(b.values).map(|(x, y)| x - y).collect();
            let grid = Grid { values: &d, ..a };
            map.show(ui, "cmp-diff", key, &grid, Scale::symmetric(&d), size);
            let max = d.iter().filter(|v| v.is_finite()).fold(0f32, |m, v| m.max(v.abs()));
            ui.label(format!("largest |A - B|: {max:.4}"));
        }
        (Some(a), Some(b)) => {
            ui.label(format!("The maps differ in shape (A: {} x {}, B: {} x {}): no difference.", a.rows, a.cols, b.rows, b.cols));
        }
        _ => {
            ui.label("No difference: a map is missing.");
        }
    }
}
