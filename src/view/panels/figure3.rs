//! Figure 3: each class's mean T minus the mean over all probe examples. Three layouts: the
//! paper's (the mean map, then two chosen classes, full height), every class as small
//! multiples (ordered by how much they deviate, scrolling when there are many), and the
//! difference of two classes. The big maps share one zoom, pan and crosshair.

use eframe::egui::{self, Vec2};

use super::{title, Out, Shown};
use crate::colormap::Scale;
use crate::figures::{self, Grid, Map};
use crate::view::command::Command;
use crate::view::heatmap::{colorbar, Heatmap, Link};

/// How Figure 3 is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The paper's: mean T, then classes A and B, full height.
    #[default]
    Paper,
    /// Every class, small multiples on one scale.
    AllClasses,
    /// Mean T of class A minus that of class B.
    Difference,
}

impl Layout {
    const ALL: [(Layout, &'static str, &'static str); 3] = [
        (Layout::Paper, "Paper layout", "The mean map, then classes A and B beside it, full height (the paper's Figure 3)"),
        (Layout::AllClasses, "All classes", "Every class's deviation from the mean, on one scale, the most deviating first"),
        (Layout::Difference, "A minus B", "Mean T of class A minus that of class B, on its own scale"),
    ];
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
    Mean,
    Class(usize),
    Difference(usize, usize),
}

pub struct Figure3Panel {
    pub layout: Layout,
    /// The classes A and B (of the paper layout and of the difference).
    pub compare: (usize, usize),
    /// The run whose A and B were chosen (the two most deviating classes, until the user picks).
    chosen_for: Option<u64>,
    /// Order the small multiples by deviation (else by label).
    pub by_deviation: bool,
    class_maps: Vec<Heatmap<MapKey>>,
    big_maps: [Heatmap<MapKey>; 3],
    /// The big maps' shared zoom, pan and crosshair.
    pub link: Link,
}

impl Default for Figure3Panel {
    fn default() -> Self {
        Figure3Panel {
            layout: Layout::Paper,
            compare: (0, 1),
            chosen_for: None,
            by_deviation: true,
            class_maps: Vec::new(),
            big_maps: Default::default(),
            link: Link::default(),
        }
    }
}

impl Figure3Panel {
    pub fn uploads(&self) -> usize {
        self.class_maps.iter().map(|h| h.uploads).sum::<usize>() + self.big_maps.iter().map(|h| h.uploads).sum::<usize>()
    }

    /// A new run: A and B are chosen again.
    pub fn reset_for_new_run(&mut self) {
        self.chosen_for = None;
        self.link.reset();
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, shown: &Shown, out: &mut Out) {
        let (Some(header), Some(snap)) = (shown.store.header.as_ref(), shown.snapshot()) else { return };
        let fig = figures::figure3(header, snap);
        let c = fig.classes.len();
        if c == 0 {
            match shown.probing {
                Some(_) => ui.label("Probing the model: the class maps follow."),
                None if header.card.arch.gated_layers().is_empty() => ui.label("This run has no gates (plain or residual net)."),
                None => ui.label("This snapshot has no class maps (the probe pass did not run)."),
            };
            return;
        }
        if self.chosen_for != Some(shown.store.generation) {
            let order = fig.by_deviation();
            self.compare = (order[0], *order.get(1).unwrap_or(&order[0]));
            self.chosen_for = Some(shown.store.generation);
        }
        self.controls(ui, shown, c);
        let text = format!(
            "Mean T per class minus mean T over all {} probe examples (shared scale +/-{:.3}), {}.",
            header.probe_size,
            fig.scale.hi,
            figures::when(snap)
        );
        ui.label(text);
        let key = |shows| MapKey { generation: shown.store.generation, snapshot: shown.current, shows };
        let (a, b) = (self.compare.0.min(c - 1), self.compare.1.min(c - 1));
        match self.layout {
            Layout::Paper => {
                let mean = Grid::new(&snap.mean_gate.data, fig.cols, fig.first_layer);
                let mean_map =
                    Map { title: "Mean T (all classes)".into(), grid: mean, scale: Scale::unit(), across: fig.across, quantity: "" };
                let maps = [Some(mean_map), fig.map(a).map(|m| named(m, "class")), fig.map(b).map(|m| named(m, "class"))];
                let keys = [key(Shows::Mean), key(Shows::Class(a)), key(Shows::Class(b))];
                self.big(ui, &maps, keys, out);
            }
            Layout::Difference => {
                if let Some((name, d, scale)) = figures::class_difference(header, snap, a, b) {
                    let grid = Grid::new(&d, fig.cols, fig.first_layer);
                    let map = Map { title: name, grid, scale, across: fig.across, quantity: "" };
                    self.big(ui, &[Some(map), None, None], [key(Shows::Difference(a, b)); 3], out);
                }
            }
            Layout::AllClasses => self.small_multiples(ui, &fig, key(Shows::Mean), out),
        }
    }

    fn controls(&mut self, ui: &mut egui::Ui, shown: &Shown, c: usize) {
        ui.horizontal(|ui| {
            for (layout, label, tip) in Layout::ALL {
                ui.selectable_value(&mut self.layout, layout, label).on_hover_text(tip);
            }
            ui.separator();
            for (id, label, pick) in [("cmp-a", "class A", &mut self.compare.0), ("cmp-b", "class B", &mut self.compare.1)] {
                egui::ComboBox::new(id, label).selected_text(shown.class_name(*pick)).show_ui(ui, |ui| {
                    for i in 0..c {
                        ui.selectable_value(pick, i, shown.class_name(i));
                    }
                });
            }
            if self.layout == Layout::AllClasses {
                ui.checkbox(&mut self.by_deviation, "most deviating first").on_hover_text("Else in label order");
            }
        });
    }

    /// Up to three full-height maps side by side, linked; a click on a row inspects the layer.
    fn big(&mut self, ui: &mut egui::Ui, maps: &[Option<Map>; 3], keys: [MapKey; 3], out: &mut Out) {
        let n = maps.iter().flatten().count().max(1);
        let avail = ui.available_size();
        let spacing = ui.spacing().item_spacing.x;
        let size = Vec2::new((avail.x / n as f32 - spacing).clamp(120.0, 520.0), (avail.y - 30.0).max(160.0));
        let mut hovered = None;
        ui.horizontal_top(|ui| {
            for (i, map) in maps.iter().enumerate() {
                let Some(map) = map else { continue };
                ui.vertical(|ui| {
                    title(ui, &map.title);
                    let r = self.big_maps[i].show_linked(
                        ui,
                        &format!("fig3-big-{i}"),
                        keys[i],
                        &map.grid,
                        map.scale,
                        size,
                        true,
                        &mut self.link,
                    );
                    if r.hovered.is_some() {
                        hovered = r.response.map(|resp| (resp, r.hovered));
                    }
                });
            }
        });
        let clicked = self.link.end_frame(ui.input(|i| i.time));
        if let Some((resp, Some((layer, col, _)))) = hovered {
            let maps: Vec<Map> = maps.iter().flatten().cloned().collect();
            resp.on_hover_text(super::figure2::cell_text(&maps, layer, col));
        }
        if let Some(l) = clicked {
            out.push(Command::Inspect(l));
        }
    }

    /// Every class on one scale, in a grid that scrolls; a click on a class makes it A.
    fn small_multiples(&mut self, ui: &mut egui::Ui, fig: &figures::Figure3, key: MapKey, out: &mut Out) {
        let c = fig.classes.len();
        self.class_maps.resize_with(c, Heatmap::default);
        let order: Vec<usize> = if self.by_deviation { fig.by_deviation() } else { (0..c).collect() };
        ui.horizontal(|ui| {
            ui.label("shared scale:");
            colorbar(ui, fig.scale, 110.0);
            ui.label("Click a class to make it class A of the paper layout.");
        });
        let cell = Vec2::new(140.0, 260.0);
        let cols = ((ui.available_width() / (cell.x + 10.0)).floor() as usize).max(1);
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("fig3-grid").spacing([10.0, 10.0]).show(ui, |ui| {
                for (n, &i) in order.iter().enumerate() {
                    let Some(map) = fig.map(i) else { continue };
                    ui.vertical(|ui| {
                        if ui.button(&map.title).on_hover_text("Show this class beside the mean (paper layout)").clicked() {
                            (self.compare.0, self.layout) = (i, Layout::Paper);
                        }
                        let k = MapKey { shows: Shows::Class(i), ..key };
                        if let Some((l, _, _)) =
                            self.class_maps[i].show_with(ui, &format!("fig3-{i}"), k, &map.grid, map.scale, cell, false)
                        {
                            if ui.input(|inp| inp.pointer.primary_clicked()) {
                                out.push(Command::Inspect(l));
                            }
                        }
                    });
                    if (n + 1) % cols == 0 {
                        ui.end_row();
                    }
                }
            });
        });
    }
}

/// A class map titled "class NAME".
fn named<'a>(mut m: Map<'a>, what: &str) -> Map<'a> {
    m.title = format!("{what} {}", m.title);
    m
}
