//! The desktop viewer (eframe/egui): Figure 2 and 3 of the highway paper, live.
//!
//! `store` holds what is shown; `heatmap` and `colormap` draw layer × unit maps as cached
//! textures; `app` lays out the panels and carries out their commands; `worker` does the heavy
//! work (opening, probing, training) off the UI thread.

pub mod app;
pub mod colormap;
pub mod heatmap;
pub mod store;
pub mod worker;

use std::path::PathBuf;

pub use app::ViewerApp;

/// How `gatescope view` starts.
pub struct ViewOptions {
    pub path: Option<PathBuf>,
    pub listen: Option<String>,
}

/// Opens the viewer window and blocks until it is closed.
pub fn run(opts: ViewOptions) -> anyhow::Result<()> {
    let native = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default().with_inner_size([1280.0, 800.0]).with_title("gatescope"),
        ..Default::default()
    };
    eframe::run_native(
        "gatescope",
        native,
        Box::new(move |cc| {
            let mut app = ViewerApp::from_storage(cc.storage);
            if let Some(p) = opts.path {
                app.queue(app::Command::Open(p));
            }
            if let Some(addr) = opts.listen {
                app.listen(&addr, &cc.egui_ctx);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the viewer window could not start: {e}"))
}
