//! Figure 2: gate biases, mean T, T of one sample and its block outputs, layer × unit; the
//! sample picker; for conv nets, the traced example's spatial T map beside them.

use eframe::egui::{self, Vec2};

use super::{title, Out, Shown};
use crate::colormap::Scale;
use crate::figures::{self, Grid, Sample};
use crate::view::command::Command;
use crate::view::heatmap::{Heatmap, Link};
use crate::view::worker::SampleTrace;

/// Which picture a Figure-2 map shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapKey {
    generation: u64,
    snapshot: usize,
    whose: Whose,
}

/// Whose sample maps are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whose {
    Probe(usize),
    Traced(usize),
}

/// The image of a probe sample, and which one it is.
type SampleImage = ((u64, usize), egui::TextureHandle);

pub struct Figure2Panel {
    maps: [Heatmap<MapKey>; 4],
    sample_texture: Option<SampleImage>,
    /// The training example in the "trace" picker.
    pub example_index: usize,
    /// Conv nets: the traced example's spatial T map shown, (gated layer index, channel).
    pub spatial_pick: (usize, usize),
    spatial_map: Heatmap<(u64, usize, usize, usize)>,
    /// The four maps' shared zoom, pan and crosshair.
    pub link: Link,
}

impl Default for Figure2Panel {
    fn default() -> Self {
        Figure2Panel {
            maps: Default::default(),
            sample_texture: None,
            example_index: 0,
            spatial_pick: (0, 0),
            spatial_map: Heatmap::with_axes("row", "column"),
            link: Link::default(),
        }
    }
}

impl Figure2Panel {
    /// Where the four maps' cells were drawn last.
    pub fn map_rects(&self) -> Vec<egui::Rect> {
        self.maps.iter().filter_map(|m| m.last_rect).collect()
    }

    pub fn uploads(&self) -> usize {
        self.maps.iter().map(|h| h.uploads).sum::<usize>() + self.spatial_map.uploads
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, shown: &Shown, out: &mut Out) {
        self.sample_picker(ui, shown, out);
        let (Some(header), Some(snap)) = (shown.store.header.as_ref(), shown.snapshot()) else { return };
        let label = shown.example.map(|ex| shown.class_name(ex.label as usize));
        let (sample, whose) = match shown.example {
            Some(ex) => {
                (Sample::Traced { index: ex.index, label: label.as_deref(), gates: &ex.gates, blocks: &ex.blocks }, Whose::Traced(ex.index))
            }
            None => (Sample::Probe(shown.sample), Whose::Probe(shown.sample)),
        };
        if let Some(ex) = shown.example {
            let text = format!(
                "training example #{}: label {}, prediction {}",
                ex.index,
                shown.class_name(ex.label as usize),
                shown.class_name(ex.prediction as usize)
            );
            ui.label(text);
        }
        let fig = figures::figure2(header, snap, sample);
        let key = MapKey { generation: shown.store.generation, snapshot: shown.current, whose };
        let spatial = shown.example.filter(|ex| !ex.spatial.is_empty());
        let avail = ui.available_size();
        let side = if spatial.is_some() { 240.0 } else { 0.0 };
        let spacing = ui.spacing().item_spacing.x;
        let size = Vec2::new(((avail.x - side) / 4.0 - spacing).max(120.0), (avail.y - 48.0).max(160.0));
        let mut hovered = None;
        ui.horizontal_top(|ui| {
            for (i, map) in fig.maps.iter().enumerate() {
                // the two probe-set maps do not depend on the sample
                let key = if i < 2 { MapKey { whose: Whose::Probe(0), ..key } } else { key };
                let heading =
                    if i >= 2 { map.title.split(" (").next().unwrap_or_default().to_string() + " (sample)" } else { map.title.clone() };
                ui.vertical(|ui| {
                    ui.set_width(size.x);
                    title(ui, heading);
                    let hint = if self.link.is_zoomed() {
                        "zoomed: wheel, drag; double-click resets"
                    } else {
                        "wheel: zoom, drag: pan, click a row: inspect the layer"
                    };
                    ui.label(egui::RichText::new(hint).small());
                    self.maps[i].axes = ("layer", map.across);
                    let r = self.maps[i].show_linked(ui, &format!("fig2-{i}"), key, &map.grid, map.scale, size, true, &mut self.link);
                    if r.hovered.is_some() {
                        hovered = r.response.map(|resp| (resp, r.hovered));
                    }
                });
            }
            if let Some(ex) = spatial {
                ui.separator();
                let first = header.gated_layers().first().copied().unwrap_or(1);
                ui.vertical(|ui| self.spatial_gate_map(ui, ex, shown.store.generation, first));
            }
        });
        let clicked = self.link.end_frame(ui.input(|i| i.time));
        if let Some((resp, Some((layer, col, _)))) = hovered {
            resp.on_hover_text(cell_text(&fig.maps, layer, col));
        }
        if let Some(layer) = clicked {
            out.push(Command::Inspect(layer));
        }
    }

    fn sample_picker(&mut self, ui: &mut egui::Ui, shown: &Shown, out: &mut Out) {
        let Some(h) = &shown.store.header else { return };
        let k = h.num_samples();
        ui.horizontal(|ui| {
            if k > 0 {
                let mut s = shown.sample.min(k - 1);
                ui.add(egui::Slider::new(&mut s, 0..=k - 1).text("probe sample"))
                    .on_hover_text("One of the probe samples the recording keeps (spread over the classes; keys: up/down)");
                if s != shown.sample {
                    out.push(Command::SelectSample(s));
                }
                let label = h.sample_labels[s] as usize;
                let pred = shown.snapshot().and_then(|snap| snap.sample_predictions.get(s)).map(|&p| p as usize);
                ui.label(format!("label {}", shown.class_name(label)));
                ui.label(format!("prediction {}", pred.map(|p| shown.class_name(p)).unwrap_or_default()));
                let key = (shown.store.generation, s);
                if self.sample_texture.as_ref().map(|t| t.0) != Some(key) {
                    let dim = h.sample_images.len() / k;
                    let img = &h.sample_images[s * dim..(s + 1) * dim];
                    self.sample_texture = sample_texture(ui.ctx(), &h.card.dataset.image_shape, img).map(|t| (key, t));
                }
                if let Some((_, t)) = &self.sample_texture {
                    ui.image((t.id(), Vec2::new(56.0, 56.0)));
                }
            }
            let unprobed = shown.snapshot().is_some_and(|s| s.mean_gate.is_empty()) && shown.probing.is_none();
            if shown.model.is_some() && unprobed && ui.button("Probe the model").on_hover_text("Run the probe set through it").clicked() {
                out.push(Command::Probe);
            }
            if let Some(m) = shown.model {
                ui.separator();
                let mut i = self.example_index;
                ui.add(egui::DragValue::new(&mut i).range(0..=m.train_len.saturating_sub(1)).prefix("any training example #"))
                    .on_hover_text("Run any training example through the model and show its T and block outputs");
                if i != self.example_index || ui.button("trace").clicked() {
                    self.example_index = i;
                    out.push(Command::TraceExample(i));
                }
            }
        });
    }

    /// Conv nets: T over the image plane of the traced example, for one layer and channel.
    fn spatial_gate_map(&mut self, ui: &mut egui::Ui, ex: &SampleTrace, generation: u64, first_layer: usize) {
        title(ui, "Spatial transform gate map (conv net)");
        ui.label(egui::RichText::new("T of the traced example over the image plane").small());
        let layers = ex.spatial.len();
        let channels = ex.spatial[0].shape.first().copied().unwrap_or(1);
        let (mut l, mut c) = self.spatial_pick;
        ui.horizontal(|ui| {
            let label = ui.label("gated layer");
            let layer_number = move |v: f64, _| format!("{}", v as usize + first_layer);
            ui.add(egui::DragValue::new(&mut l).range(0..=layers - 1).custom_formatter(layer_number)).labelled_by(label.id);
            let label = ui.label("channel");
            ui.add(egui::DragValue::new(&mut c).range(0..=channels.saturating_sub(1))).labelled_by(label.id);
        });
        (l, c) = (l.min(layers - 1), c.min(channels.saturating_sub(1)));
        self.spatial_pick = (l, c);
        let a = &ex.spatial[l];
        let (h, w) = (a.shape.get(1).copied().unwrap_or(0), a.shape.get(2).copied().unwrap_or(0));
        let plane = if a.shape.len() == 3 && c < a.shape[0] { a.row(c) } else { &[] };
        let mean = plane.iter().sum::<f32>() / plane.len().max(1) as f32;
        ui.label(format!("layer {}, channel {c}: {h} x {w}, mean T {mean:.3}", l + first_layer));
        let grid = Grid { rows: h, cols: w, values: plane, first_layer: 0 };
        self.spatial_map.show(ui, "spatial-gate", (generation, ex.index, l, c), &grid, Scale::unit(), Vec2::new(200.0, 200.0));
    }
}

/// The tooltip of a cell: its value in each of the maps that has that layer.
pub fn cell_text(maps: &[figures::Map], layer: usize, col: usize) -> String {
    let across = maps.first().map_or("unit", |m| m.across);
    let mut text = format!("layer {layer}, {across} {col}");
    for m in maps {
        let v = layer.checked_sub(m.grid.first_layer).and_then(|row| m.grid.at(row, col));
        let name = m.title.split(" (").next().unwrap_or_default();
        text += &match v {
            Some(v) => format!("\n{name}: {v:.4}"),
            None => format!("\n{name}: -"),
        };
    }
    text
}

/// A dataset image (grey or RGB) as a texture.
fn sample_texture(ctx: &egui::Context, shape: &[usize; 3], pixels: &[u8]) -> Option<egui::TextureHandle> {
    let [c, h, w] = *shape;
    if c * h * w != pixels.len() || h == 0 {
        return None;
    }
    let rgba: Vec<egui::Color32> = (0..h * w)
        .map(|i| {
            if c == 3 {
                egui::Color32::from_rgb(pixels[i], pixels[h * w + i], pixels[2 * h * w + i])
            } else {
                egui::Color32::from_gray(pixels[i])
            }
        })
        .collect();
    Some(ctx.load_texture("probe-sample", egui::ColorImage::new([w, h], rgba), egui::TextureOptions::NEAREST))
}
