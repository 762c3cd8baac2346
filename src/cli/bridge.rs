//! The subcommands that bridge to other tools: `collect` (trainers → files, no window),
//! `dump` (a recording's arrays → safetensors) and `export-torch` (a model → a PyTorch
//! state_dict and its spec).

use std::process::ExitCode;

use super::args::{CollectArgs, DumpArgs, ExportTorchArgs};
use super::commands::stop_flag;
use crate::collect::{self, CollectEvent, CollectOpts};
use crate::model::{export_torch, file};
use crate::record;
use crate::session::{self, FileKind};

pub fn collect_cmd(a: CollectArgs) -> anyhow::Result<ExitCode> {
    let stop = stop_flag("stopping: every file holds what arrived whole")?;
    let opts = CollectOpts { addr: a.listen.clone(), out: a.out.clone(), once: a.once };
    let json = a.json;
    let files = collect::run(&opts, &stop, |e| {
        if json {
            println!("{}", event_json(e));
        } else {
            println!("{}", event_text(e));
        }
    })?;
    if !json {
        let snaps: u64 = files.iter().map(|f| f.snapshots).sum();
        println!(
            "collected {} snapshot{} into {} file{}",
            snaps,
            if snaps == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn event_text(e: &CollectEvent) -> String {
    match e {
        CollectEvent::Listening(addr) => format!("listening on {addr} (trainers: gatescope train --connect {addr})"),
        CollectEvent::Recording { peer, path, source } => format!("{peer}: recording {source} into {}", path.display()),
        CollectEvent::Snapshot { peer, step, written } => format!("{peer}: snapshot {written} (step {step})"),
        CollectEvent::Closed { peer, written, dropped, error } => {
            let why = error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            let lost = if *dropped > 0 { format!(", {dropped} dropped by the sender") } else { String::new() };
            format!("{peer}: closed after {written} snapshot{}{lost}{why}", if *written == 1 { "" } else { "s" })
        }
        CollectEvent::WriteFailed { peer, path, error } => format!("{peer}: cannot write {}: {error}", path.display()),
    }
}

fn event_json(e: &CollectEvent) -> serde_json::Value {
    use serde_json::json;
    match e {
        CollectEvent::Listening(addr) => json!({"event": "listening", "addr": addr.to_string()}),
        CollectEvent::Recording { peer, path, source } => {
            json!({"event": "recording", "peer": peer.to_string(), "path": path, "source": source})
        }
        CollectEvent::Snapshot { peer, step, written } => {
            json!({"event": "snapshot", "peer": peer.to_string(), "step": step, "written": written})
        }
        CollectEvent::Closed { peer, written, dropped, error } => {
            json!({"event": "closed", "peer": peer.to_string(), "written": written, "dropped": dropped, "error": error})
        }
        CollectEvent::WriteFailed { peer, path, error } => {
            json!({"event": "write_failed", "peer": peer.to_string(), "path": path, "error": error})
        }
    }
}

pub fn dump_cmd(a: DumpArgs) -> anyhow::Result<ExitCode> {
    let kind = session::sniff(&a.path)?;
    anyhow::ensure!(kind == FileKind::Recording, "{} is {}; dump needs a recording (.gsrec)", a.path.display(), kind.described());
    let rec = record::open(&a.path)?;
    if let Some(t) = rec.torn_tail {
        eprintln!("{}: {t}", a.path.display());
    }
    record::dump_arrays(&rec, &a.out)?;
    let n = rec.snapshots.len();
    println!("wrote {} ({n} snapshot{})", a.out.display(), if n == 1 { "" } else { "s" });
    Ok(ExitCode::SUCCESS)
}

pub fn export_torch_cmd(a: ExportTorchArgs) -> anyhow::Result<ExitCode> {
    session::expect_model(&a.path, "export-torch")?;
    let (model, card) = file::load(&a.path)?;
    let spec = export_torch::write(&model, &card, &a.out)?;
    println!(
        "wrote {} and {} (open it in PyTorch with gatescope.torch.load({:?}))",
        a.out.join(export_torch::WEIGHTS_FILE).display(),
        spec.display(),
        spec.display().to_string()
    );
    Ok(ExitCode::SUCCESS)
}
