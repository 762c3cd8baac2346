//! The window's frame: the menu bar with the tabs, the side panel, the timeline at the
//! bottom, and the central area that shows the current tab's panel.

use eframe::egui;

use super::command::{Command, Tab};
use super::panels::{Out, Panels, Shown};
use super::persisted::Persisted;

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
        let needs_run = matches!(chrome.tab, Tab::Figure2 | Tab::Figure3 | Tab::Layers | Tab::Compare);
        if shown.store.header.is_none() && needs_run {
            ui.heading("Open a recording, a model or a report (File > Open, or drop it here), or listen for a trainer.");
            return;
        }
        egui::ScrollArea::both().show(ui, |ui| match chrome.tab {
            Tab::Figure2 => panels.figure2.ui(ui, shown, out),
            Tab::Figure3 => panels.figure3.ui(ui, shown),
            Tab::Layers => panels.layers.ui(ui, shown),
            Tab::Lesion => panels.lesion.ui(ui, shown, out),
            Tab::Studies => panels.studies.ui(ui),
            Tab::Compare => panels.compare.ui(ui, shown, out),
        });
    });
}

fn top_bar(ui: &mut egui::Ui, shown: &Shown, chrome: &mut Chrome, out: &mut Out) {
    ui.horizontal(|ui| {
        ui.menu_button("File", |ui| {
            if ui.button("Open...").clicked() {
                out.push(Command::PickFile);
                ui.close();
            }
            ui.menu_button("Recent", |ui| {
                for p in &chrome.persisted.recent {
                    if ui.button(p.display().to_string()).clicked() {
                        out.push(Command::Open(p.clone()));
                        ui.close();
                    }
                }
            });
        });
        ui.separator();
        for (tab, label) in Tab::ALL {
            ui.selectable_value(chrome.tab, tab, label);
        }
        ui.separator();
        if ui.button("Export figure...").clicked() {
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
