//! What the viewer remembers between runs (eframe persistence).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::command::Tab;

/// What the viewer remembers between runs (eframe persistence).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Persisted {
    pub recent: Vec<PathBuf>,
    pub last_path: Option<PathBuf>,
    pub tab: Tab,
    pub listen_addr: String,
    pub sample: usize,
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted { recent: vec![], last_path: None, tab: Tab::Figure2, listen_addr: crate::stream::DEFAULT_ADDR.into(), sample: 0 }
    }
}
