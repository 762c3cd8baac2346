//! What the panels ask the app to do ([`Command`]), and the tabs they live in ([`Tab`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::recipe::{Cadence, TrainConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    Figure2,
    Figure3,
    Layers,
    /// Figure 4: lesions.
    Lesion,
    /// Sweep (Figure 1) and ablation reports.
    Studies,
    /// Two recordings side by side.
    Compare,
}

impl Tab {
    pub const ALL: [(Tab, &'static str); 6] = [
        (Tab::Figure2, "Figure 2: gates per layer"),
        (Tab::Figure3, "Figure 3: classes"),
        (Tab::Layers, "Layer inspector"),
        (Tab::Lesion, "Figure 4: lesions"),
        (Tab::Studies, "Sweep / ablation"),
        (Tab::Compare, "Compare runs"),
    ];
}

/// Side effects the panels ask for; carried out after drawing.
#[derive(Debug, Clone)]
pub enum Command {
    Open(PathBuf),
    PickFile,
    Listen,
    StartTraining(Box<TrainConfig>, Cadence),
    StopTraining,
    TraceExample(usize),
    /// Close all gates of a layer of the open model (None: reopen them) and probe again.
    Lesion(Option<usize>),
    /// Lesion every layer of the open model in turn (Figure 4).
    LesionAll,
    /// Open a second recording to compare with.
    OpenOther(PathBuf),
    PickOther,
    /// Export the current view's figure (None: ask where with a file dialog).
    Export(Option<PathBuf>),
    /// Show snapshot `index`; `follow`: keep showing the newest as snapshots arrive.
    Select {
        index: usize,
        follow: bool,
    },
    SelectSample(usize),
    /// Stop the open model's work under way: a probe pass (the maps keep the weights only) or
    /// a lesion analysis.
    Cancel,
    /// Probe the open model again.
    Probe,
    /// Show a layer in the layer inspector.
    Inspect(usize),
    /// Copy the last run trained in the viewer elsewhere (None: ask with a file dialog).
    SaveRunAs(Option<PathBuf>),
    /// Export Figure 2 or 3 over all snapshots as a GIF (None: ask with a file dialog).
    ExportAnimation(Option<PathBuf>),
}
