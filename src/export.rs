//! Publication figures with plotters: the paper's Figures 1–4 as PNG or SVG.
//!
//! Plain data in (a recording's header and snapshot, or a report), a file out. Text is drawn
//! with a font bundled in the binary (egui's Ubuntu-Light), so export works on a machine
//! without fonts. Heatmaps use the viewer's colormaps (`colormap`), with a colorbar each.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::colormap::{Colormap, Scale};
use crate::figures::{self, Map, Sample};
use crate::report::{AblationReport, LesionReport, SweepReport};
use crate::snapshot::{Header, Snapshot};

/// The one font family the figures use, registered from bytes inside the binary.
const FONT: &str = "sans-serif";

fn register_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique] {
            // The bytes are a valid TrueType font shipped with egui; failure would be a build error.
            let _ = plotters::style::register_font(FONT, style, epaint_default_fonts::UBUNTU_LIGHT);
        }
    });
}

/// What to draw.
pub enum Figure<'a> {
    /// Figure 1: training cross-entropy per epoch, a panel per family, a line per depth.
    Sweep(&'a SweepReport),
    /// Figure 1's curves for the runs of a gate ablation, one panel.
    Ablation(&'a AblationReport),
    /// Figure 2: gate biases, mean T, T and block outputs of one probe sample.
    Gates { header: &'a Header, snapshot: &'a Snapshot, sample: usize },
    /// Figure 3: mean T of each class minus the overall mean.
    Classes { header: &'a Header, snapshot: &'a Snapshot },
    /// Figure 4: training (and test) error with each layer lesioned.
    Lesion(&'a LesionReport),
}

impl Figure<'_> {
    /// The image size in pixels (SVG: user units).
    pub fn size(&self) -> (u32, u32) {
        match self {
            Figure::Sweep(r) => (480 * distinct_families(r).len().max(1) as u32 + 40, 520),
            Figure::Ablation(_) => (900, 560),
            Figure::Gates { .. } => (1600, 760),
            Figure::Classes { header, .. } => ((170 * header.class_names().len().max(1) as u32 + 120).max(600), 760),
            Figure::Lesion(_) => (1100, 560),
        }
    }
}

fn distinct_families(r: &SweepReport) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for run in &r.runs {
        if !out.contains(&run.family) {
            out.push(run.family.clone());
        }
    }
    out
}

/// Renders `figure` to `path`: `.png` or `.svg`, by extension.
pub fn save(figure: &Figure, path: &Path) -> anyhow::Result<()> {
    register_fonts();
    let size = figure.size();
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    let r = match ext.as_deref() {
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root, figure).and_then(|_| root.present().map_err(err))
        }
        Some("svg") => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
                draw(&root, figure).and_then(|_| root.present().map_err(err))?;
            }
            std::fs::write(path, embed_font(&text)).map_err(anyhow::Error::from)
        }
        _ => anyhow::bail!("{}: the figure file must end in .png or .svg", path.display()),
    };
    r.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The font's name inside an SVG, which carries the font itself (as an `@font-face` with the
/// TrueType bytes), so that the figure looks the same on a machine without that font.
const SVG_FONT: &str = "gatescope-ubuntu-light";

/// `svg` with the bundled font embedded and every text set in it.
fn embed_font(svg: &str) -> String {
    use base64::Engine;
    let Some(open) = svg.find("<svg").and_then(|i| svg[i..].find('>').map(|j| i + j + 1)) else { return svg.to_string() };
    let font = base64::engine::general_purpose::STANDARD.encode(epaint_default_fonts::UBUNTU_LIGHT);
    let style = format!("\n<defs><style>@font-face {{ font-family: \"{SVG_FONT}\"; src: url(data:font/ttf;base64,{font}) format(\"truetype\"); }}</style></defs>");
    let body = svg[open..].replace(&format!("font-family=\"{FONT}\""), &format!("font-family=\"{SVG_FONT}, {FONT}\""));
    format!("{}{style}{body}", &svg[..open])
}

/// A colorbar tick with two decimals; a value that rounds to zero reads "0.00", never "-0.00".
fn tick(v: f32) -> String {
    let t = format!("{v:.2}");
    if t == "-0.00" {
        "0.00".into()
    } else {
        t
    }
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e:?}")
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

/// Colour scales fixed from outside: an animation keeps one scale across its frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedScales {
    /// Figure 2: the scale of each of its four maps.
    pub gates: Option<[Scale; 4]>,
    /// Figure 3: the shared scale of the class maps.
    pub classes: Option<Scale>,
}

/// Renders `figure` into memory: (width, height, RGB bytes row by row).
pub fn render_rgb(figure: &Figure, fixed: &FixedScales) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    register_fonts();
    let (w, h) = figure.size();
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_with(&root, figure, fixed)?;
        root.present().map_err(err)?;
    }
    Ok((w, h, buf))
}

fn draw<DB: DrawingBackend>(root: &Area<DB>, figure: &Figure) -> anyhow::Result<()> {
    draw_with(root, figure, &FixedScales::default())
}

fn draw_with<DB: DrawingBackend>(root: &Area<DB>, figure: &Figure, fixed: &FixedScales) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    match figure {
        Figure::Sweep(r) => sweep(root, r),
        Figure::Ablation(r) => ablation(root, r),
        Figure::Gates { header, snapshot, sample } => gates(root, header, snapshot, *sample, fixed.gates),
        Figure::Classes { header, snapshot } => classes(root, header, snapshot, fixed.classes),
        Figure::Lesion(r) => lesion(root, r),
    }
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// A heatmap (layers down, units across) with its colorbar below.
fn heatmap<DB: DrawingBackend>(area: &Area<DB>, map: &Map) -> anyhow::Result<()> {
    let (title, grid, scale, bar_label) = (map.title.as_str(), &map.grid, map.scale, map.quantity);
    let (_, h) = area.dim_in_pixel();
    let (top, bottom) = area.split_vertically(h.saturating_sub(90));
    let rows = grid.rows.max(1);
    let cols = grid.cols.max(1);
    let first = grid.first_layer;
    let mut chart = ChartBuilder::on(&top)
        .caption(title, (FONT, 17))
        .margin(6)
        .x_label_area_size(34)
        .y_label_area_size(44)
        .build_cartesian_2d(0f32..cols as f32, 0f32..rows as f32)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(map.across)
        .y_desc("layer")
        .x_labels(6)
        .y_labels(8)
        .x_label_formatter(&|v| format!("{}", v.round() as i64))
        // row r is drawn at y ∈ [rows − r − 1, rows − r]: the first layer on top
        .y_label_formatter(&|v| format!("{}", first as i64 + rows as i64 - v.round() as i64))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    if grid.values.len() == grid.rows * grid.cols {
        chart
            .draw_series((0..grid.rows).flat_map(|r| {
                (0..grid.cols).map(move |c| {
                    let v = grid.values[r * grid.cols + c];
                    let y = (rows - r) as f32;
                    Rectangle::new([(c as f32, y - 1.0), (c as f32 + 1.0, y)], rgb(scale.map.rgb(v, scale.lo, scale.hi)).filled())
                })
            }))
            .map_err(err)?;
    }
    colorbar(&bottom, scale, bar_label)
}

fn colorbar<DB: DrawingBackend>(area: &Area<DB>, scale: Scale, label: &str) -> anyhow::Result<()> {
    let (lo, hi) = if scale.hi > scale.lo { (scale.lo, scale.hi) } else { (scale.lo - 0.5, scale.lo + 0.5) };
    let mut chart = ChartBuilder::on(area)
        .margin_left(50)
        .margin_right(12)
        .margin_top(8)
        .x_label_area_size(44)
        .build_cartesian_2d(lo..hi, 0f32..1f32)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_y_axis()
        .x_labels(5)
        .x_desc(label)
        .x_label_formatter(&|v| tick(*v))
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(err)?;
    let n = 128;
    chart
        .draw_series((0..n).map(|i| {
            let a = lo + (hi - lo) * i as f32 / n as f32;
            let b = lo + (hi - lo) * (i + 1) as f32 / n as f32;
            Rectangle::new([(a, 0.0), (b, 1.0)], rgb(scale.map.rgb((a + b) / 2.0, lo, hi)).filled())
        }))
        .map_err(err)?;
    Ok(())
}

fn gates<DB: DrawingBackend>(
    root: &Area<DB>,
    header: &Header,
    snap: &Snapshot,
    sample: usize,
    fixed: Option<[Scale; 4]>,
) -> anyhow::Result<()> {
    let k = sample.min(snap.sample_gates.shape.first().copied().unwrap_or(1).saturating_sub(1));
    let mut fig = figures::figure2(header, snap, Sample::Probe(k));
    if let Some(scales) = fixed {
        fig.maps.iter_mut().zip(scales).for_each(|(m, s)| m.scale = s);
    }
    let root = root.titled(&fig.title, (FONT, 22)).map_err(err)?;
    let panels = root.split_evenly((1, 4));
    for (area, map) in panels.iter().zip(&fig.maps) {
        heatmap(area, map)?;
    }
    Ok(())
}

fn classes<DB: DrawingBackend>(root: &Area<DB>, header: &Header, snap: &Snapshot, fixed: Option<Scale>) -> anyhow::Result<()> {
    let fig = figures::figure3(header, snap);
    let root = root.titled(&fig.title, (FONT, 22)).map_err(err)?;
    let (_, h) = root.dim_in_pixel();
    let (maps, bar) = root.split_vertically(h.saturating_sub(80));
    let scale = fixed.unwrap_or(fig.scale);
    let first = fig.first_layer;
    let panels = maps.split_evenly((1, fig.classes.len().max(1)));
    for (i, panel) in panels.iter().enumerate().take(fig.classes.len()) {
        let Some(map) = fig.map(i) else { continue };
        let grid = map.grid;
        let rows = grid.rows.max(1);
        let mut chart = ChartBuilder::on(panel)
            .caption(&map.title, (FONT, 16))
            .margin(4)
            .x_label_area_size(28)
            .y_label_area_size(if i == 0 { 40 } else { 6 })
            .build_cartesian_2d(0f32..grid.cols.max(1) as f32, 0f32..rows as f32)
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh()
            .x_labels(3)
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .x_label_formatter(&|v| format!("{}", v.round() as i64));
        if i == 0 {
            mesh.y_desc("layer").y_labels(8);
        } else {
            mesh.y_labels(0);
        }
        let fmt = |v: &f32| format!("{}", first as i64 + rows as i64 - v.round() as i64);
        mesh.y_label_formatter(&fmt).x_desc(map.across).draw().map_err(err)?;
        chart
            .draw_series((0..grid.rows).flat_map(|r| {
                (0..grid.cols).map(move |col| {
                    let v = grid.values[r * grid.cols + col];
                    let y = (rows - r) as f32;
                    Rectangle::new([(col as f32, y - 1.0), (col as f32 + 1.0, y)], rgb(scale.map.rgb(v, scale.lo, scale.hi)).filled())
                })
            }))
            .map_err(err)?;
    }
    let (bw, _) = bar.dim_in_pixel();
    let bar = bar.margin(0, 0, bw as i32 / 4, bw as i32 / 4);
    colorbar(&bar, scale, fig.quantity)
}

/// A colour per curve, from viridis, kept away from its pale yellow end.
fn curve_color(i: usize, n: usize) -> RGBColor {
    let t = if n <= 1 { 0.0 } else { i as f32 / (n - 1) as f32 * 0.85 };
    rgb(Colormap::Viridis.rgb(t, 0.0, 1.0))
}

fn loss_range<'a>(curves: impl Iterator<Item = &'a Vec<f64>>) -> (f64, f64) {
    let vals: Vec<f64> = curves.flatten().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(0.0, f64::max);
    if vals.is_empty() {
        (1e-3, 10.0)
    } else {
        (lo * 0.8, hi * 1.25)
    }
}

fn curves_panel<DB: DrawingBackend>(
    area: &Area<DB>,
    title: &str,
    runs: &[(&str, &Vec<f64>)],
    (lo, hi): (f64, f64),
    epochs: usize,
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..epochs.max(2) as f64, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("training cross-entropy")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .x_labels(epochs.clamp(2, 11))
        .x_label_formatter(&|v| if (v - v.round()).abs() < 1e-6 { format!("{}", v.round() as i64) } else { String::new() })
        .y_labels(6)
        .y_label_formatter(&|v| if *v >= 1.0 { format!("{v:.1}") } else { format!("{v:.2}") })
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for (i, (name, losses)) in runs.iter().enumerate() {
        let color = curve_color(i, runs.len());
        let pts: Vec<(f64, f64)> =
            losses.iter().enumerate().filter(|(_, v)| v.is_finite() && **v > 0.0).map(|(e, &v)| (e as f64 + 1.0, v)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(name.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;
    Ok(())
}

fn sweep<DB: DrawingBackend>(root: &Area<DB>, r: &SweepReport) -> anyhow::Result<()> {
    let root = root.titled(&format!("Training cross-entropy by depth ({}, {} epochs)", r.dataset, r.epochs), (FONT, 22)).map_err(err)?;
    let families = distinct_families(r);
    let range = loss_range(r.runs.iter().map(|x| &x.epoch_train_loss));
    let panels = root.split_evenly((1, families.len().max(1)));
    for (f, panel) in families.iter().zip(&panels) {
        let runs: Vec<(String, &Vec<f64>)> =
            r.runs.iter().filter(|x| &x.family == f).map(|x| (format!("{} layers", x.depth), &x.epoch_train_loss)).collect();
        let refs: Vec<(&str, &Vec<f64>)> = runs.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        curves_panel(panel, &format!("{f} networks"), &refs, range, r.epochs)?;
    }
    Ok(())
}

fn ablation<DB: DrawingBackend>(root: &Area<DB>, r: &AblationReport) -> anyhow::Result<()> {
    let root =
        root.titled(&format!("Gate ablation: {}-layer nets on {}, {} epochs", r.depth, r.dataset, r.epochs), (FONT, 22)).map_err(err)?;
    let range = loss_range(r.runs.iter().map(|x| &x.epoch_train_loss));
    let runs: Vec<(&str, &Vec<f64>)> = r.runs.iter().map(|x| (x.name.as_str(), &x.epoch_train_loss)).collect();
    curves_panel(&root, "training cross-entropy per epoch", &runs, range, r.epochs)
}

fn lesion<DB: DrawingBackend>(root: &Area<DB>, r: &LesionReport) -> anyhow::Result<()> {
    let fig = figures::figure4(r);
    let root = root.titled(&fig.title, (FONT, 22)).map_err(err)?;
    let first = fig.train.first().map_or(1, |x| x.0);
    let last = fig.train.last().map_or(1, |x| x.0);
    let mut chart = ChartBuilder::on(&root)
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(first as f64 - 0.5..last as f64 + 0.5, 0f64..(fig.top * 1.15).max(1e-3))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(fig.x_label)
        .y_desc(fig.y_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .x_label_formatter(&|v| format!("{}", v.round() as i64))
        .y_label_formatter(&|v| format!("{:.1} %", v * 100.0))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    let bar = RGBColor(59, 81, 139);
    chart
        .draw_series(fig.train.iter().map(|&(l, e)| Rectangle::new([(l as f64 - 0.4, 0.0), (l as f64 + 0.4, e)], bar.mix(0.85).filled())))
        .map_err(err)?
        .label(fig.train_label.as_str())
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], bar.filled()));
    let test = RGBColor(214, 96, 77);
    chart
        .draw_series(LineSeries::new(fig.test.iter().map(|&(l, e)| (l as f64, e)), test.stroke_width(2)).point_size(3))
        .map_err(err)?
        .label(fig.test_label.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], test.stroke_width(2)));
    let (bt, be) = (fig.baseline_train.0, fig.baseline_test.0);
    let span = [(first as f64 - 0.5, bt), (last as f64 + 0.5, bt)];
    chart
        .draw_series(DashedLineSeries::new(span, 8, 5, BLACK.stroke_width(2)))
        .map_err(err)?
        .label(fig.baseline_train.1.as_str())
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 6, y)], BLACK.stroke_width(2)));
    let span = [(first as f64 - 0.5, be), (last as f64 + 0.5, be)];
    chart
        .draw_series(DashedLineSeries::new(span, 4, 4, test.stroke_width(1)))
        .map_err(err)?
        .label(fig.baseline_test.1.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 6, y)], test.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 14))
        .draw()
        .map_err(err)?;
    Ok(())
}
