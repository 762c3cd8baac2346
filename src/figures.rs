//! What each of the paper's figures shows, decided once: the maps of Figure 2 and 3 (grids,
//! colour scales, titles, axis names) and the series of Figure 4. Plain data: the viewer draws
//! these with egui (`view`), the export with plotters (`export`), so both show the same thing.

use crate::colormap::Scale;
use crate::report::LesionReport;
use crate::snapshot::{Array, Header, Snapshot};

/// A row-major grid of `rows × cols` values; row r is layer `first_layer + r`.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    pub rows: usize,
    pub cols: usize,
    pub values: &'a [f32],
    pub first_layer: usize,
}

impl<'a> Grid<'a> {
    /// `values` as rows of `cols` values (no rows when `cols` is 0).
    pub fn new(values: &'a [f32], cols: usize, first_layer: usize) -> Self {
        let rows = values.len().checked_div(cols).unwrap_or(0);
        Grid { rows, cols, values, first_layer }
    }

    /// True if the values fill the grid exactly (and there is something to draw).
    pub fn is_well_formed(&self) -> bool {
        self.rows > 0 && self.cols > 0 && self.values.len() == self.rows * self.cols
    }

    /// The value of (row, col), or `None` outside the grid.
    pub fn at(&self, row: usize, col: usize) -> Option<f32> {
        (row < self.rows && col < self.cols).then(|| self.values.get(row * self.cols + col).copied()).flatten()
    }
}

/// One layer × unit heatmap of a figure.
#[derive(Debug, Clone)]
pub struct Map<'a> {
    pub title: String,
    pub grid: Grid<'a>,
    pub scale: Scale,
    /// The name of the columns: "unit", or "channel" in conv nets.
    pub across: &'static str,
    /// What the colour means (the colorbar's label).
    pub quantity: &'static str,
}

/// Whose T and block outputs Figure 2 shows.
#[derive(Debug, Clone, Copy)]
pub enum Sample<'a> {
    /// Probe sample k of the snapshot.
    Probe(usize),
    /// Any training example traced through the model: its T [L, W] and y [depth, W].
    Traced { index: usize, label: Option<&'a str>, gates: &'a Array, blocks: &'a Array },
}

/// Figure 2: gate biases, mean T, T of one sample, block outputs of that sample.
pub struct Figure2<'a> {
    pub title: String,
    pub maps: [Map<'a>; 4],
}

/// The first gated layer's index (layer 0 is the plain layer).
fn first_gated(header: &Header) -> usize {
    header.gated_layers().first().copied().unwrap_or(1)
}

fn class_name(header: &Header, class: u32) -> String {
    header.class_names().get(class as usize).cloned().unwrap_or_else(|| class.to_string())
}

/// When a snapshot was taken, for titles: "step 9360, epoch 20.0, test accuracy 97.74 %".
pub fn when(snap: &Snapshot) -> String {
    let acc = if snap.test_accuracy.is_finite() { format!(", test accuracy {:.2} %", snap.test_accuracy * 100.0) } else { String::new() };
    format!("step {}, epoch {:.1}{acc}", snap.step, snap.epoch)
}

/// Figure 2 of `snap`, for `sample`.
pub fn figure2<'a>(header: &Header, snap: &'a Snapshot, sample: Sample<'a>) -> Figure2<'a> {
    let arch = &header.card.arch;
    let across = arch.unit_name();
    let w = snap.mean_gate.shape.get(1).copied().unwrap_or(arch.width);
    let first = first_gated(header);
    let (t, y, who): (&[f32], &[f32], String) = match sample {
        Sample::Probe(k) if snap.sample_gates.shape.len() == 3 && k < snap.sample_gates.shape[0] => {
            let class = header.sample_labels.get(k).map(|&l| class_name(header, l));
            (snap.sample_gates.row(k), snap.sample_blocks.row(k), class.map_or("sample".into(), |c| format!("sample {k}, class {c}")))
        }
        Sample::Probe(_) => (&[], &[], "sample".into()),
        Sample::Traced { index, label, gates, blocks } => {
            (&gates.data, &blocks.data, label.map_or(format!("example #{index}"), |c| format!("example #{index}, class {c}")))
        }
    };
    let title = format!("{}-layer {} net on {}, {}", arch.depth, arch.family.label(), header.card.dataset.name.name(), when(snap));
    let map = |title: String, grid, scale, quantity| Map { title, grid, scale, across, quantity };
    Figure2 {
        title,
        maps: [
            map(
                "Transform gate biases".into(),
                Grid::new(&snap.gate_bias.data, w, first),
                Scale::symmetric(&snap.gate_bias.data),
                "bias b_T",
            ),
            map(
                "Mean transform gate outputs".into(),
                Grid::new(&snap.mean_gate.data, w, first),
                Scale::unit(),
                "mean T over the probe set",
            ),
            map(format!("Transform gate outputs ({who})"), Grid::new(t, w, first), Scale::unit(), "T"),
            map(format!("Block outputs ({who})"), Grid::new(y, w, 0), Scale::symmetric(y), "y"),
        ],
    }
}

/// Figure 3: each class's mean T minus the mean over all probe examples, on one scale.
pub struct Figure3 {
    pub title: String,
    /// Per class: its name and its deviation map ([L, W] values).
    pub classes: Vec<(String, Vec<f32>)>,
    pub cols: usize,
    pub first_layer: usize,
    pub scale: Scale,
    pub across: &'static str,
    pub quantity: &'static str,
}

impl Figure3 {
    pub fn map(&self, class: usize) -> Option<Map<'_>> {
        let (name, values) = self.classes.get(class)?;
        let grid = Grid::new(values, self.cols, self.first_layer);
        Some(Map { title: name.clone(), grid, scale: self.scale, across: self.across, quantity: self.quantity })
    }

    /// Classes ordered by how far their gating departs from the mean (largest first).
    pub fn by_deviation(&self) -> Vec<usize> {
        let size = |v: &[f32]| v.iter().filter(|x| x.is_finite()).map(|x| x.abs()).sum::<f32>();
        let mut order: Vec<usize> = (0..self.classes.len()).collect();
        order.sort_by(|&a, &b| size(&self.classes[b].1).total_cmp(&size(&self.classes[a].1)));
        order
    }
}

/// Figure 3 of `snap` (no classes for nets without gates).
pub fn figure3(header: &Header, snap: &Snapshot) -> Figure3 {
    let names = header.class_names();
    let c = snap.class_mean_gate.shape.first().copied().unwrap_or(0);
    let c = if snap.mean_gate.is_empty() { 0 } else { c };
    let classes: Vec<(String, Vec<f32>)> =
        (0..c).map(|i| (names.get(i).cloned().unwrap_or_else(|| i.to_string()), snap.class_deviation(i).data)).collect();
    let all: Vec<f32> = classes.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    Figure3 {
        title: format!("Mean transform gate output per class minus the overall mean, {}", when(snap)),
        classes,
        cols: snap.mean_gate.shape.get(1).copied().unwrap_or(0),
        first_layer: first_gated(header),
        scale: Scale::symmetric(&all),
        across: header.card.arch.unit_name(),
        quantity: "class mean T minus overall mean T",
    }
}

/// Mean T of class `a` minus that of class `b`, on its own symmetric scale.
pub fn class_difference(header: &Header, snap: &Snapshot, a: usize, b: usize) -> Option<(String, Vec<f32>, Scale)> {
    let c = snap.class_mean_gate.shape.first().copied().unwrap_or(0);
    if a >= c || b >= c || snap.class_mean_gate.shape.len() != 3 {
        return None;
    }
    let d: Vec<f32> = snap.class_mean_gate.row(a).iter().zip(snap.class_mean_gate.row(b)).map(|(x, y)| x - y).collect();
    let title = format!("class {} minus class {}", class_name(header, a as u32), class_name(header, b as u32));
    let scale = Scale::symmetric(&d);
    Some((title, d, scale))
}

/// Figure 4: per lesioned layer, the training error (bars) and the test error (a line), with
/// the errors of the intact model as dashed lines.
pub struct Figure4 {
    pub title: String,
    pub x_label: &'static str,
    pub y_label: &'static str,
    /// (layer, training error)
    pub train: Vec<(usize, f64)>,
    pub train_label: String,
    /// (layer, test error)
    pub test: Vec<(usize, f64)>,
    pub test_label: String,
    /// (error, label) of the model without a lesion.
    pub baseline_train: (f64, String),
    pub baseline_test: (f64, String),
    /// The largest error shown (for the y range).
    pub top: f64,
}

pub fn figure4(r: &LesionReport) -> Figure4 {
    let (bt, be) = (r.baseline_train.error(), r.baseline_test.error());
    let top = r.layers.iter().flat_map(|x| [x.train.error(), x.test.error()]).chain([bt, be]).filter(|v| v.is_finite()).fold(0.0, f64::max);
    Figure4 {
        title: format!("Lesioned layers: all transform gates of one layer closed ({})", r.dataset),
        x_label: "lesioned layer",
        y_label: "error rate",
        train: r.layers.iter().map(|x| (x.layer, x.train.error())).collect(),
        train_label: format!("training error, layer lesioned ({} examples)", r.train_examples),
        test: r.layers.iter().map(|x| (x.layer, x.test.error())).collect(),
        test_label: format!("test error, layer lesioned ({} examples)", r.test_examples),
        baseline_train: (bt, format!("training error, no lesion ({:.2} %)", bt * 100.0)),
        baseline_test: (be, format!("test error, no lesion ({:.2} %)", be * 100.0)),
        top,
    }
}
