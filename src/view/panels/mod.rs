//! The viewer's panels, in the manner of egui's demo app: each is a struct that owns its own
//! state and draws with `ui(&mut self, ui, shown, out)`. A panel reads what is shown
//! ([`Shown`]) and pushes [`Command`]s into `out`; it never touches threads, channels or
//! files. The app carries the commands out after drawing.

mod compare;
mod figure2;
mod figure3;
mod layers;
mod lesion;
mod side;
mod studies;
mod timeline;

pub use compare::{ComparePanel, Quantity};
pub use figure2::Figure2Panel;
pub use figure3::{Figure3Panel, Layout as Figure3Layout};
pub use layers::LayersPanel;
pub use lesion::LesionPanel;
pub use side::{SidePanel, TrainForm};
pub use studies::StudiesPanel;
pub use timeline::TimelinePanel;

use super::command::Command;
use super::store::Store;
use super::worker::{ModelSession, SampleTrace};

/// What the panels read: the open run, the picks, and what is going on.
pub struct Shown<'a> {
    pub store: &'a Store,
    /// The snapshot shown.
    pub current: usize,
    /// The probe sample shown.
    pub sample: usize,
    pub follow_live: bool,
    /// A training example traced through the open model.
    pub example: Option<&'a SampleTrace>,
    /// The open model, if a model file is open.
    pub model: Option<&'a ModelSession>,
    /// The layer whose gates are closed in the open model.
    pub lesioned: Option<usize>,
    /// Progress of the open model's probe pass: (examples done, total).
    pub probing: Option<(usize, usize)>,
    /// The open model belongs to the open recording.
    pub attached: bool,
    /// A run trained in the viewer can be saved elsewhere.
    pub last_run: bool,
    /// Files opened lately, newest first.
    pub recent: &'a [std::path::PathBuf],
    pub training: bool,
    pub listening: bool,
}

impl Shown<'_> {
    pub fn snapshot(&self) -> Option<&crate::snapshot::Snapshot> {
        self.store.snapshots.get(self.current)
    }

    /// The class name of label `c`.
    pub fn class_name(&self, c: usize) -> String {
        self.store.header.as_ref().and_then(|h| h.class_names().get(c).cloned()).unwrap_or_else(|| c.to_string())
    }
}

/// Every panel of the viewer.
#[derive(Default)]
pub struct Panels {
    pub figure2: Figure2Panel,
    pub figure3: Figure3Panel,
    pub layers: LayersPanel,
    pub lesion: LesionPanel,
    pub studies: StudiesPanel,
    pub compare: ComparePanel,
    pub side: SidePanel,
    pub timeline: TimelinePanel,
}

impl Panels {
    /// Texture uploads of all heatmaps so far.
    pub fn uploads(&self) -> usize {
        self.figure2.uploads() + self.figure3.uploads() + self.compare.uploads()
    }

    /// A new run is shown: forget what belonged to the old one.
    pub fn reset_for_new_run(&mut self) {
        self.figure3.reset_for_new_run();
        self.figure2.link.reset();
    }
}

/// A label in the size of a panel's title.
pub(crate) fn title(ui: &mut eframe::egui::Ui, text: impl Into<String>) {
    ui.label(eframe::egui::RichText::new(text.into()).strong());
}

pub(crate) type Out = Vec<Command>;
