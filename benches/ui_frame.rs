//! CPU time of one viewer frame (egui layout, tessellation and texture updates) while the
//! timeline is scrubbed across the bundled recording, with the Figure-2 and the Figure-3 view.
//! Run: `scripts/bench ui_frame` (sets up libtorch first) or `cargo bench --bench ui_frame`.

use std::time::Instant;

use egui_kittest::Harness;
use gatescope::view::app::{Persisted, Tab, ViewerApp};

fn main() {
    let mut app = ViewerApp::new(Persisted::default());
    app.open_recording_now(&gatescope::recipe::default_recording()).expect("bundled recording");
    let n = app.store.snapshots.len();
    let mut h = Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut ViewerApp| app.show(ui), app);
    let mut report = Vec::new();
    for tab in [Tab::Figure2, Tab::Figure3] {
        h.state_mut().tab = tab;
        h.run();
        let mut ms = Vec::new();
        for round in 0..4 {
            for j in 0..n {
                let i = if round % 2 == 0 { j } else { n - 1 - j };
                h.state_mut().current = i;
                let t = Instant::now();
                h.step();
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
        report.push(format!(
            "{tab:?}: {} frames while scrubbing: median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            ms.len(),
            pct(0.5),
            pct(0.95),
            pct(1.0)
        ));
    }
    for r in report {
        println!("{r}");
    }
}
