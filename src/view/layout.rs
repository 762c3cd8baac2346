//! The window's frame: the menu bar with the tabs, the side panel, the timeline at the
//! bottom, and the central area that shows the current tab's panel.

use eframe::egui;

use super::command::{Command, Tab};
use super::panels::{Out, Panels, Shown};
use super::persisted::Persisted;
use crate::recipe::{Example, ExampleKind, EXAMPLES};

/// The app's state that the frame around the panels shows and edits.
pub struct Chrome<'a> {
    pub tab: &'a mut Tab,
    pub error: &'a mut Option<String>,
    pub status: &'a str,
    pub persisted: &'a mut Persisted,
    /// A file is being opened.
    pub opening: bool,
}

const RED: egui::Color32 = egui::Color32::from_rgb(220, 60, 60);

/// Draws the whole window; commands go to `out`.
pub fn draw(ui: &mut egui::Ui, panels: &mut Panels, shown: &Shown, chrome: &mut Chrome, out: &mut Out) {
    egui::Panel::top("menu").show(ui, |ui| top_bar(ui, shown, chrome, out));
    egui::Panel::left("side").default_size(240.0).show(ui, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| panels.side.ui(ui, shown, chrome.status, &mut chrome.persisted.listen_addr, out));
    });
    egui::Panel::bottom("timeline").resizable(true).default_size(190.0).show(ui, |ui| panels.timeline.ui(ui, shown, out));
    egui::CentralPanel::default().show(ui, |ui| {
        if let Some(e) = chrome.error.clone() {
            ui.horizontal(|ui| {
                ui.colored_label(RED, format!("Error: {e}"));
                if ui.small_button("dismiss").clicked() {
                    *chrome.error = None;
                }
            });
        }
        if let Some((d, t)) = shown.probing {
            ui.horizontal(|ui| {
                let text = format!("probing the model: {d} of {t} examples (the gate biases are shown meanwhile)");
                ui.add(egui::ProgressBar::new(d as f32 / t.max(1) as f32).text(text).desired_width(420.0));
                if ui.button("Cancel").on_hover_text("Stop the probe pass; the maps keep what the weights alone show").clicked() {
                    out.push(Command::Cancel);
                }
            });
        }
        let needs_run = matches!(chrome.tab, Tab::Figure2 | Tab::Figure3 | Tab::Layers | Tab::Compare);
        if shown.store.header.is_none() && needs_run {
            return empty_view(ui, out);
        }
        // The maps fill the panel (and the wheel zooms them); only the studies' table scrolls.
        match chrome.tab {
            Tab::Figure2 => panels.figure2.ui(ui, shown, out),
            Tab::Figure3 => panels.figure3.ui(ui, shown, out),
            Tab::Layers => panels.layers.ui(ui, shown),
            Tab::Lesion => panels.lesion.ui(ui, shown, out),
            Tab::Studies => {
                egui::ScrollArea::both().show(ui, |ui| panels.studies.ui(ui, out));
            }
            Tab::Compare => panels.compare.ui(ui, shown, out),
        }
    });
}

/// No run is open: what fills the view, one click away.
fn empty_view(ui: &mut egui::Ui, out: &mut Out) {
    ui.heading("Nothing is open yet.");
    ui.label("Open a recording, a model or a report (File > Open, or drop it here), listen for a trainer, or start one:");
    ui.add_space(8.0);
    let rec = Example::first(ExampleKind::Recording);
    if ui.button(format!("Open the bundled example: {}", rec.label)).clicked() {
        out.push(Command::Open(rec.file()));
    }
    if ui.button("Open a file...").clicked() {
        out.push(Command::PickFile);
    }
}

fn file_menu(ui: &mut egui::Ui, shown: &Shown, chrome: &mut Chrome, out: &mut Out) {
    if ui.button("Open...").clicked() {
        out.push(Command::PickFile);
        ui.close();
    }
    ui.menu_button("Recent", |ui| {
        if chrome.persisted.recent.is_empty() {
            ui.label("(nothing opened yet)");
        }
        for p in &chrome.persisted.recent {
            if ui.button(p.display().to_string()).clicked() {
                out.push(Command::Open(p.clone()));
                ui.close();
            }
        }
    });
    let save = ui.add_enabled(shown.last_run, egui::Button::new("Save trained run as..."));
    if save.on_hover_text("Copy the model and the recording of the run trained in this window").clicked() {
        out.push(Command::SaveRunAs(None));
        ui.close();
    }
    ui.separator();
    if ui.button("Export figure...").on_hover_text("The current tab's paper figure as PNG or SVG").clicked() {
        out.push(Command::Export(None));
        ui.close();
    }
    let anim = ui.add_enabled(shown.store.snapshots.len() > 1, egui::Button::new("Export animation..."));
    if anim.on_hover_text("Figure 2 (or 3, from its tab) over every snapshot, as a GIF").clicked() {
        out.push(Command::ExportAnimation(None));
        ui.close();
    }
}

fn examples_menu(ui: &mut egui::Ui, out: &mut Out) {
    for e in EXAMPLES {
        let file = e.file();
        if ui.add_enabled(file.is_file(), egui::Button::new(e.label)).on_hover_text(e.path).clicked() {
            out.push(Command::Open(file));
            ui.close();
        }
    }
}

fn top_bar(ui: &mut egui::Ui, shown: &Shown, chrome: &mut Chrome, out: &mut Out) {
    ui.horizontal(|ui| {
        ui.menu_button("File", |ui| file_menu(ui, shown, chrome, out));
        ui.menu_button("Examples", |ui| examples_menu(ui, out));
        ui.separator();
        for (tab, label) in Tab::ALL {
            ui.selectable_value(chrome.tab, tab, label);
        }
        ui.separator();
        if ui.button("Export figure...").on_hover_text("The current tab's paper figure as PNG or SVG").clicked() {
            out.push(Command::Export(None));
        }
        if let Some(l) = shown.lesioned {
            ui.colored_label(egui::Color32::from_rgb(214, 96, 77), format!("layer {l} lesioned"));
        }
        ui.separator();
        // the file name only (the full path on hover), so the bar reads the same anywhere
        let source = &shown.store.source;
        ui.label(source.rsplit('/').next().unwrap_or_default()).on_hover_text(source);
        if shown.store.dropped > 0 {
            ui.colored_label(egui::Color32::from_rgb(230, 160, 40), format!("{} snapshots dropped by the stream", shown.store.dropped));
        }
        if chrome.opening {
            ui.spinner();
        }
    });
}
