//! Two recordings side by side (A: the open one, B: another), map by map, and A minus B.

use std::path::PathBuf;

use eframe::egui::{self, Vec2};

use super::{title, Out, Shown};
use crate::colormap::Scale;
use crate::figures::Grid;
use crate::recipe::{ExampleKind, EXAMPLES};
use crate::snapshot::Array;
use crate::view::command::Command;
use crate::view::heatmap::{Heatmap, Link};
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
    /// The three maps' shared zoom, pan and crosshair.
    pub link: Link,
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
            ui.label("Open a second recording (B) to compare the open one (A) with it, map by map:");
            let bundled = EXAMPLES.iter().filter(|e| e.kind == ExampleKind::Recording).map(|e| (e.label.to_string(), e.file()));
            let recent =
                shown.recent.iter().filter(|p| p.extension().is_some_and(|x| x == "gsrec")).map(|p| (p.display().to_string(), p.clone()));
            for (label, path) in bundled.chain(recent).take(10) {
                if ui.button(format!("B = {label}")).clicked() {
                    self.other_path = path.display().to_string();
                    out.push(Command::OpenOther(path));
                }
            }
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
        let titles = [title_of("A", shown.store, shown.current), title_of("B", other, bi)];
        let avail = ui.available_size();
        let size = Vec2::new((avail.x / 3.0 - ui.spacing().item_spacing.x).max(120.0), (avail.y - 50.0).max(160.0));
        let [map_a, map_b, map_diff] = &mut self.maps;
        let link = &mut self.link;
        let mut hover = None;
        ui.horizontal_top(|ui| {
            for (map, grid, heading, id) in [(map_a, &a, &titles[0], "cmp-0"), (map_b, &b, &titles[1], "cmp-1")] {
                ui.vertical(|ui| {
                    title(ui, heading.as_str());
                    match grid {
                        Some(g) => {
                            let r = map.show_linked(ui, id, key, g, q.scale(g.values), size, true, link);
                            if let (Some(h), Some(resp)) = (r.hovered, r.response) {
                                hover = Some((resp, h));
                            }
                        }
                        None => {
                            ui.label("(not in this recording)");
                        }
                    }
                });
            }
            ui.vertical(|ui| difference(ui, map_diff, key, &a, &b, size, link));
        });
        if let Some(l) = link.end_frame(ui.input(|i| i.time)) {
            out.push(Command::Inspect(l));
        }
        if let Some((resp, (layer, col, _))) = hover {
            resp.on_hover_text(cell_text(&a, &b, layer, col));
        }
    }
}

/// The tooltip of a cell: A, B and A minus B there.
fn cell_text(a: &Option<Grid>, b: &Option<Grid>, layer: usize, col: usize) -> String {
    let at = |g: &Option<Grid>| g.as_ref().and_then(|g| layer.checked_sub(g.first_layer).and_then(|r| g.at(r, col)));
    let v = |x: Option<f32>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let (va, vb) = (at(a), at(b));
    let d = va.zip(vb).map(|(x, y)| x - y);
    format!("layer {layer}, unit {col}\nA: {}\nB: {}\nA minus B: {}", v(va), v(vb), v(d))
}

/// "A: run.gsrec (step 9360)".
fn title_of(which: &str, store: &Store, i: usize) -> String {
    let name = store.source.rsplit('/').next().unwrap_or_default();
    format!("{which}: {name} (step {})", store.snapshots.get(i).map_or(0, |s| s.step))
}

/// A minus B, when both maps exist and have one shape.
fn difference(ui: &mut egui::Ui, map: &mut Heatmap<MapKey>, key: MapKey, a: &Option<Grid>, b: &Option<Grid>, size: Vec2, link: &mut Link) {
    title(ui, "A minus B");
    match (a, b) {
        (Some(a), Some(b)) if (a.rows, a.cols) == (b.rows, b.cols) => {
            let d: Vec<f32> = a.values.iter().zip(b.values).map(|(x, y)| x - y).collect();
            let grid = Grid { values: &d, ..*a };
            map.show_linked(ui, "cmp-diff", key, &grid, Scale::symmetric(&d), size, true, link);
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
