//! The architecture invariants of ARCHITECTURE.md, checked by reading `src/` as text: which
//! modules may use libtorch, clap, indicatif and egui, what plain-data modules may depend on,
//! and that no two modules depend on each other, directly or around a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules of plain data: no tensors, no UI, nothing of the libtorch side.
const PLAIN: &[&str] = &["data", "arch", "card", "snapshot", "report", "record", "stream", "figures", "recipe", "colormap", "collect"];
/// The modules that may use libtorch (`tch`).
const TCH: &[&str] = &["model", "train", "probe", "lesion", "capture", "session", "bench", "cli"];
/// Modules on the libtorch side, which plain-data modules must not name.
const TCH_SIDE: &[&str] = &["model", "train", "probe", "lesion", "capture", "session", "bench", "sweep"];

/// One source file: its module path (`view::panels::figure2`) and its code without comments.
struct Source {
    module: String,
    file: PathBuf,
    code: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
                    parts.pop();
                }
                let text = std::fs::read_to_string(&path).unwrap();
                out.push(Source { module: parts.join("::"), file: path, code: strip_comments(&text) });
            }
        }
    }
    out.sort_by(|a, b| a.module.cmp(&b.module));
    out
}

/// The code without `//` comments (doc comments name modules freely).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or("")
}

/// True if `code` names `word` as a path root or crate (`tch::`, `use tch`, `clap::`).
fn names_crate(code: &str, word: &str) -> bool {
    let bytes = code.as_bytes();
    code.match_indices(word).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j] as char);
        let after = &code[i + word.len()..];
        let starts = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        starts && (after.starts_with("::") || (after.starts_with(';') && code[..i].ends_with("use ")))
    })
}

/// Every `crate::…` and `super::…` path in `code` (groups `{a, b::c}` expanded one level),
/// as module-relative segment lists: (`crate` or the resolved parent, segments).
fn paths(code: &str, module: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        for (i, _) in code.match_indices(start) {
            if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':') {
                continue;
            }
            let mut base: Vec<String> = if start == "crate::" { vec![] } else { module.split("::").map(String::from).collect() };
            let mut rest = &code[i..];
            // resolve super:: chains
            if start == "super::" {
                base.pop();
                rest = &rest["super::".len()..];
                while let Some(r) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = r;
                }
            } else {
                rest = &rest["crate::".len()..];
            }
            let mut segs = base.clone();
            let mut cur = rest;
            loop {
                if let Some(group) = cur.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    for item in group[..end].split(',') {
                        let mut p = segs.clone();
                        p.extend(item.trim().split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
                        out.push(p);
                    }
                    break;
                }
                let len = cur.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(cur.len());
                if len == 0 {
                    out.push(segs.clone());
                    break;
                }
                segs.push(cur[..len].to_string());
                match cur[len..].strip_prefix("::") {
                    Some(next) => cur = next,
                    None => {
                        out.push(segs.clone());
                        break;
                    }
                }
            }
        }
    }
    out
}

/// The module dependencies between source files (the deepest existing module each path
/// names), leaving out a module's own ancestors and descendants.
fn graph(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = sources.iter().map(|s| s.module.clone()).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources {
        let deps = g.entry(s.module.clone()).or_default();
        for p in paths(&s.code, &s.module) {
            let mut dep = String::new();
            for k in (1..=p.len()).rev() {
                let candidate = p[..k].join("::");
                if modules.contains(&candidate) {
                    dep = candidate;
                    break;
                }
            }
            let related = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"));
            if !dep.is_empty() && !related(&dep, &s.module) && !s.module.is_empty() {
                deps.insert(dep);
            }
        }
    }
    g
}

/// A cycle in `g`, if there is one.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|x| x == m).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut vec![]) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn only_the_libtorch_side_uses_tch() {
    let bad: Vec<String> = sources()
        .iter()
        .filter(|s| !s.module.is_empty() && !TCH.contains(&top(&s.module)) && names_crate(&s.code, "tch"))
        .map(|s| s.file.display().to_string())
        .collect();
    assert!(bad.is_empty(), "these use tch but may not: {bad:?}");
}

#[test]
fn plain_data_modules_know_no_tensors_ui_or_libtorch_side_module() {
    let mut bad = Vec::new();
    let g = graph(&sources());
    for s in sources().iter().filter(|s| PLAIN.contains(&top(&s.module))) {
        for word in ["tch", "eframe", "egui", "egui_plot", "rfd"] {
            if names_crate(&s.code, word) {
                bad.push(format!("{} names {word}", s.file.display()));
            }
        }
        for dep in g.get(&s.module).into_iter().flatten() {
            if TCH_SIDE.contains(&top(dep)) || ["view", "cli", "export"].contains(&top(dep)) {
                bad.push(format!("{} depends on {dep}", s.file.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn clap_and_indicatif_stay_in_the_cli_and_the_viewer_never_imports_it() {
    let mut bad = Vec::new();
    let g = graph(&sources());
    for s in sources() {
        if top(&s.module) != "cli" {
            for word in ["clap", "indicatif"] {
                if names_crate(&s.code, word) {
                    bad.push(format!("{} names {word}", s.file.display()));
                }
            }
        }
        if top(&s.module) == "view" && g[&s.module].iter().any(|d| top(d) == "cli") {
            bad.push(format!("{} imports the cli", s.file.display()));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn panels_draw_without_threads_channels_or_files() {
    for s in sources().iter().filter(|s| s.module.starts_with("view::panels")) {
        for word in ["std::thread", "mpsc", "std::fs", "rfd::", "worker::open", "Listener", "TrainerHandle"] {
            assert!(!s.code.contains(word), "{} uses {word}", s.file.display());
        }
    }
}

#[test]
fn no_two_modules_depend_on_each_other_in_a_cycle() {
    let g = graph(&sources());
    assert!(g.len() > 30, "found only {} modules", g.len());
    if let Some(c) = find_cycle(&g) {
        panic!("a cycle between modules: {}", c.join(" -> "));
    }
    // and between the top-level modules (a file's submodules count as the module)
    let mut tops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in &g {
        let e = tops.entry(top(m).to_string()).or_default();
        e.extend(deps.iter().map(|d| top(d).to_string()).filter(|d| d != top(m)));
    }
    if let Some(c) = find_cycle(&tops) {
        panic!("a cycle between top-level modules: {}", c.join(" -> "));
    }
}

/// (line count, name) of every function in `code` (braces in string and char literals aside).
fn function_lengths(code: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = code.lines().collect();
    let braces = |l: &str| -> i64 {
        let (mut depth, mut in_str, mut prev) = (0i64, false, ' ');
        let chars: Vec<char> = l.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            match c {
                '"' if prev != '\\' => in_str = !in_str,
                '{' | '}' if !(in_str || prev == '\'' && chars.get(i + 1) == Some(&'\'')) => depth += if c == '{' { 1 } else { -1 },
                _ => {}
            }
            prev = c;
        }
        depth
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let t = t.strip_prefix("pub ").or_else(|| t.strip_prefix("pub(crate) ")).or_else(|| t.strip_prefix("pub(super) ")).unwrap_or(t);
        let Some(rest) = t.strip_prefix("fn ") else {
            i += 1;
            continue;
        };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let (mut depth, mut started, mut j) = (0i64, false, i);
        while j < lines.len() {
            depth += braces(lines[j]);
            started |= lines[j].contains('{');
            if (started && depth <= 0) || (!started && lines[j].trim_end().ends_with(';')) {
                break;
            }
            j += 1;
        }
        if started {
            out.push((j - i + 1, name));
        }
        i = if started { j + 1 } else { i + 1 };
    }
    out
}

#[test]
fn no_function_is_longer_than_80_lines() {
    let mut long = Vec::new();
    for s in sources() {
        for (n, name) in function_lengths(&s.code) {
            if n > 80 {
                long.push(format!("{}: fn {name}, {n} lines", s.file.display()));
            }
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn the_checker_sees_what_it_checks() {
    // the parsing above, on code written to break each rule
    let code = strip_comments(
        "use crate::model::{fast, Model};\nuse super::{app::Command, store};\n// use crate::cli;\nlet x = tch::Tensor::zeros();",
    );
    let p = paths(&code, "view::panels");
    assert!(p.contains(&vec!["model".to_string(), "fast".into()]));
    assert!(p.contains(&vec!["view".to_string(), "app".into(), "Command".into()]));
    assert!(!p.iter().any(|x| x.first().is_some_and(|s| s == "cli")));
    assert!(names_crate(&code, "tch") && !names_crate("let watch::x = 1;", "tch"));
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(find_cycle(&g).is_some());
    g.insert("b".to_string(), BTreeSet::new());
    assert!(find_cycle(&g).is_none());
    let f = "fn short() {\n    let c = '{';\n}\nfn long() {\n    let s = \"}}\";\n    x();\n}\n";
    assert_eq!(function_lengths(f), vec![(3, "short".to_string()), (4, "long".to_string())]);
}
