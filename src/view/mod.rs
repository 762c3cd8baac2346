//! The desktop viewer (eframe/egui): the paper's Figures 1–4, live.
//!
//! `store` holds what is shown; `event` is the one channel by which everything from outside
//! arrives (files, model sessions, sockets, the in-viewer trainer); `panels` draw and return
//! commands; `layout` frames them; `app` drains events and carries out commands; `heatmap`
//! and `colormap` draw layer × unit maps as cached textures; `worker` runs the services of
//! `session` off the UI thread.

pub mod app;
pub mod colormap;
pub mod command;
pub mod event;
pub mod heatmap;
pub mod layout;
pub mod panels;
pub mod persisted;
pub mod store;
pub mod worker;

use std::path::PathBuf;

pub use app::ViewerApp;

/// How `gatescope view` starts.
pub struct ViewOptions {
    /// Files opened in turn (reports fill their own tabs).
    pub paths: Vec<PathBuf>,
    pub listen: Option<String>,
    /// The tab shown first (else the one shown last time).
    pub tab: Option<command::Tab>,
    /// A second recording to compare with.
    pub compare: Option<PathBuf>,
}

/// Opens the viewer window and blocks until it is closed.
pub fn run(opts: ViewOptions) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let native = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default().with_inner_size([1280.0, 800.0]).with_title("gatescope"),
        ..Default::default()
    };
    eframe::run_native(
        "gatescope",
        native,
        Box::new(move |cc| {
            let mut app = ViewerApp::from_storage(cc.storage);
            if std::env::var_os("GATESCOPE_TIMING").is_some() {
                app.timing = Some((start, false));
            }
            for p in opts.paths {
                app.queue(app::Command::Open(p));
            }
            if let Some(p) = opts.compare {
                app.queue(app::Command::OpenOther(p));
            }
            if let Some(tab) = opts.tab {
                app.pin_tab(tab);
            }
            if let Some(addr) = opts.listen {
                app.listen(&addr);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the viewer window could not start: {e}"))
}
