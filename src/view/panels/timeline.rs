//! The timeline: play, follow live, the snapshot slider, and the training curves with the
//! current snapshot marked.

use eframe::egui;

use super::{Out, Shown};
use crate::snapshot::Snapshot;
use crate::view::command::Command;

#[derive(Default)]
pub struct TimelinePanel {
    pub playing: bool,
    last_tick: f64,
}

impl TimelinePanel {
    /// While playing, steps through the snapshots (call once per frame).
    pub fn tick(&mut self, ctx: &egui::Context, shown: &Shown, out: &mut Out) {
        let n = shown.store.snapshots.len();
        if !self.playing || n == 0 {
            return;
        }
        let now = ctx.input(|i| i.time);
        if now - self.last_tick > 0.3 {
            self.last_tick = now;
            out.push(Command::Select { index: (shown.current + 1) % n, follow: false });
        }
        ctx.request_repaint_after(std::time::Duration::from_millis(100));
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, shown: &Shown, out: &mut Out) {
        let snaps = &shown.store.snapshots;
        let n = snaps.len();
        ui.horizontal(|ui| {
            let label = if self.playing { "Pause" } else { "Play" };
            if ui.button(label).on_hover_text("Step through the snapshots, one every 0.3 s (keys: left/right arrows)").clicked() {
                self.playing = !self.playing;
            }
            let mut follow = shown.follow_live;
            let check = ui.checkbox(&mut follow, "follow live").on_hover_text("Keep showing the newest snapshot as a live run streams in");
            if check.changed() {
                out.push(Command::Select { index: if follow { n.saturating_sub(1) } else { shown.current }, follow });
            }
            if n > 0 {
                let mut i = shown.current.min(n - 1);
                let s = &snaps[i];
                let text = format!("step {} (epoch {:.2})", s.step, s.epoch);
                ui.add(egui::Slider::new(&mut i, 0..=n - 1).text("snapshot").show_value(true));
                if i != shown.current {
                    out.push(Command::Select { index: i, follow: i + 1 == n });
                }
                ui.label(text);
            }
        });
        let pts = |f: &dyn Fn(&Snapshot) -> f64| -> egui_plot::PlotPoints<'static> {
            snaps.iter().filter(|s| f(s).is_finite()).map(|s| [s.step as f64, f(s)]).collect::<Vec<_>>().into()
        };
        let current_step = snaps.get(shown.current).map_or(0.0, |s| s.step as f64);
        let mut plot = egui_plot::Plot::new("curves")
            .legend(egui_plot::Legend::default())
            .x_axis_label("step")
            .y_axis_min_width(40.0)
            .include_y(0.0)
            .height(ui.available_height().max(80.0));
        if n <= 1 {
            // one snapshot: a point on an axis from 0, not a range of one step
            plot = plot.include_x(0.0).include_x((current_step * 1.1).max(10.0)).include_y(1.0);
        }
        plot.show(ui, |p| {
            for (name, f) in [
                ("train loss", &(|s: &Snapshot| s.train_loss) as &dyn Fn(&Snapshot) -> f64),
                ("train accuracy", &|s: &Snapshot| s.train_accuracy),
                ("test accuracy", &|s: &Snapshot| s.test_accuracy),
            ] {
                if n <= 1 {
                    p.points(egui_plot::Points::new(name, pts(f)).radius(4.0));
                } else {
                    p.line(egui_plot::Line::new(name, pts(f)));
                }
            }
            p.vline(egui_plot::VLine::new("current snapshot", current_step));
        });
    }
}
