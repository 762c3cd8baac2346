//! The side panel: what run is open, the stream listener, and the training form.

use eframe::egui;

use super::{Out, Shown};
use crate::arch::Family;
use crate::recipe::{default_gate_bias, default_width, Cadence, TrainConfig, PANEL_EPOCHS, PANEL_EVERY_STEPS, RECIPE};
use crate::view::command::Command;

/// The training form: the recipe with a few of its settings exposed.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainForm {
    pub arch: Family,
    pub depth: usize,
    pub width: usize,
    /// `None`: the family's default (−2; conv nets −1).
    pub gate_bias: Option<f32>,
    pub lr: f64,
    pub epochs: usize,
    pub every_steps: usize,
}

impl Default for TrainForm {
    fn default() -> Self {
        TrainForm {
            arch: RECIPE.arch,
            depth: RECIPE.depth,
            width: default_width(RECIPE.arch),
            gate_bias: None,
            lr: RECIPE.lr,
            epochs: PANEL_EPOCHS,
            every_steps: PANEL_EVERY_STEPS,
        }
    }
}

impl TrainForm {
    /// The run the form describes: the recipe with the form's settings.
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            arch: self.arch,
            depth: self.depth,
            width: Some(self.width),
            gate_bias: self.gate_bias,
            lr: self.lr,
            epochs: self.epochs,
            ..RECIPE
        }
    }

    pub fn cadence(&self) -> Cadence {
        Cadence::Steps(self.every_steps.max(1))
    }
}

#[derive(Default)]
pub struct SidePanel {
    pub form: TrainForm,
}

const FAMILIES: [Family; 4] = [Family::Highway, Family::Plain, Family::Residual, Family::Conv];

impl SidePanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, shown: &Shown, status: &str, listen_addr: &mut String, out: &mut Out) {
        ui.heading("Run");
        if let Some(h) = &shown.store.header {
            let a = &h.card.arch;
            ui.label(format!("{} net, depth {}, width {}", a.family.label(), a.depth, a.width));
            ui.label(format!("{}, gate bias {}", a.activation.name(), a.gate_bias));
            ui.label(format!("{} on {}", h.card.dataset.name.name(), h.probe_size));
            let n = shown.store.snapshots.len();
            ui.label(format!("{n} snapshot{}", if n == 1 { "" } else { "s" }));
        }
        if let Some(m) = shown.model {
            let name = m.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let how = if shown.attached { "attached: trace and lesion it" } else { "open" };
            ui.label(format!("model {name} ({how})")).on_hover_text(m.path.display().to_string());
        }
        ui.label(status);
        ui.separator();
        ui.heading("Stream");
        ui.horizontal(|ui| {
            let label = ui.label("address");
            ui.text_edit_singleline(listen_addr).labelled_by(label.id);
        });
        let listen = ui.add_enabled(!shown.listening, egui::Button::new("Listen for trainers"));
        if listen.on_hover_text("Accept `gatescope train --connect` or a Python gatescope.Writer at this address").clicked() {
            out.push(Command::Listen);
        }
        ui.separator();
        ui.heading("Train");
        self.form_ui(ui);
        if shown.training {
            if ui.button("Stop training").clicked() {
                out.push(Command::StopTraining);
            }
        } else if ui.button("Start training").on_hover_text("Train on MNIST here; the run is kept under runs/ with its model").clicked() {
            out.push(Command::StartTraining(Box::new(self.form.config()), self.form.cadence()));
        }
    }

    fn form_ui(&mut self, ui: &mut egui::Ui) {
        let f = &mut self.form;
        let before = f.arch;
        egui::ComboBox::from_label("architecture").selected_text(f.arch.label()).show_ui(ui, |ui| {
            for fam in FAMILIES {
                ui.selectable_value(&mut f.arch, fam, fam.label());
            }
        });
        if f.arch != before {
            f.width = default_width(f.arch);
        }
        ui.add(egui::DragValue::new(&mut f.depth).range(2..=200).prefix("depth "))
            .on_hover_text("Hidden layers, counting the plain first layer (the paper's Figure 2: 50)");
        ui.add(egui::DragValue::new(&mut f.width).range(2..=512).prefix("width ")).on_hover_text("Units per layer (conv nets: channels)");
        let mut own = f.gate_bias.is_some();
        let default = default_gate_bias(f.arch);
        ui.checkbox(&mut own, "own gate bias").on_hover_text(format!("otherwise the family's default: {default}"));
        match (own, f.gate_bias) {
            (true, None) => f.gate_bias = Some(default),
            (false, Some(_)) => f.gate_bias = None,
            _ => {}
        }
        match &mut f.gate_bias {
            Some(b) => {
                ui.add(egui::DragValue::new(b).range(-10.0..=10.0).speed(0.1).prefix("gate bias "));
            }
            None => {
                ui.label(format!("gate bias {default} (default)"));
            }
        }
        ui.add(egui::DragValue::new(&mut f.lr).range(1e-4..=1.0).speed(0.001).prefix("lr "))
            .on_hover_text("SGD learning rate (momentum 0.9)");
        ui.add(egui::DragValue::new(&mut f.epochs).range(1..=200).prefix("epochs "));
        ui.add(egui::DragValue::new(&mut f.every_steps).range(1..=10_000).prefix("snapshot every ").suffix(" steps"))
            .on_hover_text("How often the gates are probed and drawn (and recorded under runs/)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conv_run_from_the_form_starts_at_the_conv_gate_bias() {
        let form = TrainForm { arch: Family::Conv, ..TrainForm::default() };
        assert_eq!(form.config().gate_bias(), -1.0);
        assert_eq!(TrainForm::default().config().gate_bias(), -2.0);
        let own = TrainForm { arch: Family::Conv, gate_bias: Some(-3.0), ..TrainForm::default() };
        assert_eq!(own.config().gate_bias(), -3.0);
    }
}
