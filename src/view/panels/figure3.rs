//! Figure 3: each class's mean T minus the mean over all probe examples, as small multiples
//! on one scale; a class enlarged, or the difference of two classes.

use eframe::egui::{self, Vec2};

use super::{title, Shown};
use crate::figures::{self, Grid};
use crate::view::heatmap::{colorbar, Heatmap};

/// What is shown large instead of the small multiples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enlarged {
    /// One class's deviation from the mean.
    Class(usize),
    /// Mean T of class A minus that of class B (the classes picked in the panel).
    Difference,
}

/// Which picture a Figure-3 map shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapKey {
    generation: u64,
    snapshot: usize,
    shows: Shows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shows {
    Class(usize),
    Difference(usize, usize),
}

pub struct Figure3Panel {
    pub enlarged: Option<Enlarged>,
    /// The classes A and B of the difference.
    pub compare: (usize, usize),
    class_maps: Vec<Heatmap<MapKey>>,
    big_map: Heatmap<MapKey>,
}

impl Default for Figure3Panel {
    fn default() -> Self {
        Figure3Panel { enlarged: None, compare: (0, 1), class_maps: Vec::new(), big_map: Heatmap::default() }
    }
}

impl Figure3Panel {
    pub fn uploads(&self) -> usize {
        self.class_maps.iter().map(|h| h.uploads).sum::<usize>() + self.big_map.uploads
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, shown: &Shown) {
        let (Some(header), Some(snap)) = (shown.store.header.as_ref(), shown.snapshot()) else { return };
        let fig = figures::figure3(header, snap);
        let c = fig.classes.len();
        if c == 0 {
            ui.label("This run has no gates (plain or residual net).");
            return;
        }
        let key = |shows| MapKey { generation: shown.store.generation, snapshot: shown.current, shows };
        let text = format!(
            "Mean T per class minus mean T over all {} probe examples (shared scale +/-{:.3}). Click a class to enlarge it.",
            header.probe_size, fig.scale.hi
        );
        ui.label(text);
        self.class_pickers(ui, shown, c);
        match self.enlarged {
            Some(Enlarged::Difference) => {
                let (a, b) = (self.compare.0.min(c - 1), self.compare.1.min(c - 1));
                if let Some((name, d, scale)) = figures::class_difference(header, snap, a, b) {
                    title(ui, name);
                    let grid = Grid::new(&d, fig.cols, fig.first_layer);
                    self.big_map.show(ui, "fig3-big", key(Shows::Difference(a, b)), &grid, scale, Vec2::new(300.0, 420.0));
                }
                return;
            }
            Some(Enlarged::Class(i)) => {
                if let Some(map) = fig.map(i.min(c - 1)) {
                    title(ui, format!("class {}", map.title));
                    self.big_map.show(ui, "fig3-big", key(Shows::Class(i)), &map.grid, map.scale, Vec2::new(300.0, 420.0));
                }
                return;
            }
            None => {}
        }
        self.class_maps.resize_with(c, Heatmap::default);
        let cols = ((ui.available_width() / 90.0).floor() as usize).clamp(1, 12);
        ui.horizontal(|ui| {
            ui.label("shared scale:");
            colorbar(ui, fig.scale, 110.0);
        });
        egui::Grid::new("fig3-grid").spacing([8.0, 8.0]).show(ui, |ui| {
            for i in 0..c {
                let Some(map) = fig.map(i) else { continue };
                ui.vertical(|ui| {
                    if ui.button(&map.title).clicked() {
                        self.enlarged = Some(Enlarged::Class(i));
                    }
                    self.class_maps[i].show_with(
                        ui,
                        &format!("fig3-{i}"),
                        key(Shows::Class(i)),
                        &map.grid,
                        map.scale,
                        Vec2::new(70.0, 140.0),
                        false,
                    );
                });
                if (i + 1) % cols == 0 {
                    ui.end_row();
                }
            }
        });
    }

    fn class_pickers(&mut self, ui: &mut egui::Ui, shown: &Shown, c: usize) {
        ui.horizontal(|ui| {
            for (id, label, pick) in [("cmp-a", "class A", &mut self.compare.0), ("cmp-b", "class B", &mut self.compare.1)] {
                egui::ComboBox::new(id, label).selected_text(shown.class_name(*pick)).show_ui(ui, |ui| {
                    for i in 0..c {
                        ui.selectable_value(pick, i, shown.class_name(i));
                    }
                });
            }
            if ui.button("show A minus B").clicked() {
                self.enlarged = Some(Enlarged::Difference);
            }
            if self.enlarged.is_some() && ui.button("back to all classes").clicked() {
                self.enlarged = None;
            }
        });
    }
}
