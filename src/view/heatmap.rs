//! A layer × unit heatmap widget: a texture uploaded only when what it shows changes, layer
//! and unit ticks on the map, a colorbar, wheel zoom and drag pan, and a crosshair.
//!
//! A heatmap is keyed by a value of the panel's own type `K` (typed: which map, of which run,
//! snapshot and sample); the texture is rebuilt only when the key, the scale or the shape
//! changes. Maps shown side by side share a [`Link`]: one zoom and pan, one crosshair, so that
//! the same (layer, unit) is under the pointer in every one of them.

use eframe::egui::{self, Color32, ColorImage, Pos2, Rect, Sense, Stroke, TextureHandle, TextureOptions, Vec2};

use super::colormap::Scale;
pub use crate::figures::Grid;

/// One heatmap and its cached texture.
pub struct Heatmap<K> {
    texture: Option<TextureHandle>,
    key: Option<(K, [u32; 2], [usize; 2])>,
    /// Texture uploads so far (for tests and the speed budget).
    pub uploads: usize,
    /// Names of the row and column axes in the tooltip.
    pub axes: (&'static str, &'static str),
    /// Zoom, pan and crosshair when the map is shown alone.
    own: Link,
    /// Where the map's cells were drawn last (for tests and tools that point at them).
    pub last_rect: Option<Rect>,
}

impl<K> Default for Heatmap<K> {
    fn default() -> Self {
        Heatmap { texture: None, key: None, uploads: 0, axes: ("layer", "unit"), own: Link::default(), last_rect: None }
    }
}

/// What linked maps share: the visible part (fractions of the grid, so maps of different
/// sizes zoom alike) and the cell under the pointer, as (layer, column).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Visible columns, as fractions of the width: [from, to].
    pub x: [f32; 2],
    /// Visible rows, as fractions of the height: [from, to] (top to bottom).
    pub y: [f32; 2],
    /// The (layer, column) under the pointer in any of the maps, last frame.
    pub hover: Option<(usize, usize)>,
    /// Set while drawing this frame's maps; becomes `hover` at [`Link::end_frame`].
    next_hover: Option<(usize, usize)>,
    /// A click on a row (layer, time) that becomes a click once no second click follows.
    pending_click: Option<(usize, f64)>,
}

impl Default for Link {
    fn default() -> Self {
        Link { x: [0.0, 1.0], y: [0.0, 1.0], hover: None, next_hover: None, pending_click: None }
    }
}

impl Link {
    /// True when zoomed or panned away from the whole map.
    pub fn is_zoomed(&self) -> bool {
        self.x != [0.0, 1.0] || self.y != [0.0, 1.0]
    }

    /// Shows the whole map again.
    pub fn reset(&mut self) {
        (self.x, self.y) = ([0.0, 1.0], [0.0, 1.0]);
    }

    /// Call after drawing every map of the group, with the time: the crosshair follows the
    /// pointer. Returns the layer of a row clicked once (not twice: a double-click resets).
    pub fn end_frame(&mut self, now: f64) -> Option<usize> {
        self.hover = self.next_hover.take();
        match self.pending_click {
            Some((layer, t)) if now - t >= DOUBLE_CLICK => {
                self.pending_click = None;
                Some(layer)
            }
            _ => None,
        }
    }

    /// Zooms by `factor` (< 1: in) about the point `at` (fractions of the map).
    pub fn zoom(&mut self, factor: f32, at: [f32; 2], min_extent: [f32; 2]) {
        for (axis, (&a, &min)) in [&mut self.x, &mut self.y].into_iter().zip(at.iter().zip(&min_extent)) {
            let extent = axis[1] - axis[0];
            let new = (extent * factor).clamp(min.min(1.0), 1.0);
            let centre = axis[0] + a * extent;
            let from = (centre - a * new).clamp(0.0, 1.0 - new);
            *axis = [from, from + new];
        }
    }

    /// Pans by `delta` (fractions of the visible part).
    pub fn pan(&mut self, delta: [f32; 2]) {
        for (axis, d) in [&mut self.x, &mut self.y].into_iter().zip(delta) {
            let extent = axis[1] - axis[0];
            let from = (axis[0] - d * extent).clamp(0.0, 1.0 - extent);
            *axis = [from, from + extent];
        }
    }
}

/// What happened to a map this frame.
pub struct MapResponse {
    /// The cell under the pointer: (layer, column, value).
    pub hovered: Option<(usize, usize, f32)>,
    /// The map's response (for a tooltip).
    pub response: Option<egui::Response>,
}

/// A cell under the pointer: (layer, column, value).
pub type Hovered = Option<(usize, usize, f32)>;

/// Room for the layer ticks left of a map and the unit ticks below it.
const LEFT: f32 = 30.0;
const BELOW: f32 = 16.0;
const TICK_FONT: f32 = 10.0;
/// Seconds within which a second click makes a double-click.
const DOUBLE_CLICK: f64 = 0.3;

impl<K: PartialEq> Heatmap<K> {
    /// A heatmap whose tooltip names its axes `rows` and `cols` (e.g. "row", "column").
    pub fn with_axes(rows: &'static str, cols: &'static str) -> Self {
        Heatmap { axes: (rows, cols), ..Default::default() }
    }

    /// Draws the heatmap in `size` with its colorbar and returns the hovered cell.
    pub fn show(&mut self, ui: &mut egui::Ui, id: &str, key: K, grid: &Grid<'_>, scale: Scale, size: Vec2) -> Hovered {
        self.show_with(ui, id, key, grid, scale, size, true)
    }

    /// As [`Self::show`], optionally without the colorbar (small multiples share one).
    #[allow(clippy::too_many_arguments)]
    pub fn show_with(
        &mut self,
        ui: &mut egui::Ui,
        id: &str,
        key: K,
        grid: &Grid<'_>,
        scale: Scale,
        size: Vec2,
        with_colorbar: bool,
    ) -> Hovered {
        let mut link = self.own;
        let shown = self.show_linked(ui, id, key, grid, scale, size, with_colorbar, &mut link);
        link.end_frame(ui.input(|i| i.time));
        self.own = link;
        if let (Some((l, c, v)), Some(r)) = (shown.hovered, shown.response) {
            let (ra, ca) = self.axes;
            r.on_hover_text(format!("{ra} {l}, {ca} {c}: {v:.4}"));
        }
        shown.hovered
    }

    /// Draws the heatmap in `size` (ticks and colorbar included) as one of the maps sharing
    /// `link`: its zoom and pan, its crosshair.
    #[allow(clippy::too_many_arguments)]
    pub fn show_linked(
        &mut self,
        ui: &mut egui::Ui,
        id: &str,
        key: K,
        grid: &Grid<'_>,
        scale: Scale,
        size: Vec2,
        with_colorbar: bool,
        link: &mut Link,
    ) -> MapResponse {
        let none = MapResponse { hovered: None, response: None };
        if grid.rows == 0 || grid.cols == 0 {
            ui.label("(no data)");
            return none;
        }
        if !grid.is_well_formed() {
            let text = format!("(malformed: {} values for {} x {})", grid.values.len(), grid.rows, grid.cols);
            ui.colored_label(Color32::from_rgb(220, 60, 60), text);
            return none;
        }
        self.upload(ui.ctx(), id, key, grid, scale);
        let Some(texture) = self.texture.as_ref().map(|t| t.id()) else { return none };
        let bar = if with_colorbar { 52.0 } else { 0.0 };
        let mut out = none;
        ui.horizontal(|ui| {
            let map_size = Vec2::new((size.x - bar).max(40.0), size.y.max(40.0));
            let (outer, response) = ui.allocate_exact_size(map_size, Sense::click_and_drag());
            let rect = Rect::from_min_max(outer.min + Vec2::new(LEFT, 0.0), outer.max - Vec2::new(0.0, BELOW));
            let uv = Rect::from_min_max(egui::pos2(link.x[0], link.y[0]), egui::pos2(link.x[1], link.y[1]));
            self.last_rect = Some(rect);
            let painter = ui.painter_at(outer);
            painter.image(texture, rect, uv, Color32::WHITE);
            ticks(&painter, rect, grid, link, ui.visuals().text_color());
            out = interact(ui, &response, rect, grid, link);
            crosshair(&painter, rect, grid, link);
            out.response = Some(response);
            if with_colorbar {
                colorbar(ui, scale, size.y);
            }
        });
        out
    }

    /// Rebuilds the texture if what it shows changed.
    fn upload(&mut self, ctx: &egui::Context, id: &str, key: K, grid: &Grid<'_>, scale: Scale) {
        let stamp = (key, [scale.lo.to_bits(), scale.hi.to_bits()], [grid.rows, grid.cols]);
        if self.key.as_ref() == Some(&stamp) && self.texture.is_some() {
            return;
        }
        let pixels: Vec<Color32> = grid.values.iter().map(|&v| scale.map.color(v, scale.lo, scale.hi)).collect();
        let image = ColorImage::new([grid.cols, grid.rows], pixels);
        match &mut self.texture {
            Some(t) if t.size() == [grid.cols, grid.rows] => t.set(image, TextureOptions::NEAREST),
            _ => self.texture = Some(ctx.load_texture(id, image, TextureOptions::NEAREST)),
        }
        self.key = Some(stamp);
        self.uploads += 1;
    }
}

/// The cell of `grid` at screen position `pos` inside `rect`, with `link`'s zoom.
fn cell_at(pos: Pos2, rect: Rect, grid: &Grid, link: &Link) -> Option<(usize, usize)> {
    let fx = link.x[0] + (pos.x - rect.left()) / rect.width() * (link.x[1] - link.x[0]);
    let fy = link.y[0] + (pos.y - rect.top()) / rect.height() * (link.y[1] - link.y[0]);
    let (col, row) = ((fx * grid.cols as f32).floor(), (fy * grid.rows as f32).floor());
    (col >= 0.0 && row >= 0.0 && (col as usize) < grid.cols && (row as usize) < grid.rows).then_some((row as usize, col as usize))
}

/// Wheel zoom, drag pan, double-click reset, hover and click.
fn interact(ui: &egui::Ui, response: &egui::Response, rect: Rect, grid: &Grid, link: &mut Link) -> MapResponse {
    let mut out = MapResponse { hovered: None, response: None };
    if response.dragged() {
        let d = response.drag_delta();
        link.pan([d.x / rect.width(), d.y / rect.height()]);
    }
    let Some(pos) = response.hover_pos().filter(|p| rect.contains(*p)) else { return out };
    let scroll = ui.input(|i| i.smooth_scroll_delta.y);
    if scroll != 0.0 {
        let at = [(pos.x - rect.left()) / rect.width(), (pos.y - rect.top()) / rect.height()];
        let min = [4.0 / grid.cols as f32, 4.0 / grid.rows as f32];
        link.zoom((-scroll * 0.003).exp(), at, min);
        ui.ctx().input_mut(|i| i.smooth_scroll_delta = Vec2::ZERO); // the wheel zooms; it does not also scroll
    }
    if let Some((row, col)) = cell_at(pos, rect, grid, link) {
        let layer = grid.first_layer + row;
        link.next_hover = Some((layer, col));
        out.hovered = grid.at(row, col).map(|v| (layer, col, v));
        if response.clicked() {
            let now = ui.input(|i| i.time);
            match link.pending_click {
                // the second click of a double-click: show the whole map
                Some((_, t)) if now - t < DOUBLE_CLICK => (link.pending_click, _) = (None, link.reset()),
                _ => link.pending_click = Some((layer, now)),
            }
            ui.ctx().request_repaint_after(std::time::Duration::from_secs_f64(DOUBLE_CLICK));
        }
    }
    out
}

/// A step between ticks that keeps labels `min_px` apart: 1, 2, 5, 10, 20, 50, ...
fn tick_step(cells: f32, px: f32, min_px: f32) -> usize {
    let per_cell = px / cells.max(1.0);
    [1usize, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000].into_iter().find(|&s| s as f32 * per_cell >= min_px).unwrap_or(1000)
}

/// Layer ticks left of the map, unit ticks below it, for the visible part.
fn ticks(painter: &egui::Painter, rect: Rect, grid: &Grid, link: &Link, color: Color32) {
    let font = egui::FontId::proportional(TICK_FONT);
    let (r0, r1) = (link.y[0] * grid.rows as f32, link.y[1] * grid.rows as f32);
    let step = tick_step(r1 - r0, rect.height(), 14.0);
    let first_layer = grid.first_layer;
    // label the layers that are multiples of the step (and the first)
    for row in (0..grid.rows).filter(|r| (first_layer + r).is_multiple_of(step)) {
        let centre = row as f32 + 0.5;
        if centre < r0 || centre > r1 {
            continue;
        }
        let y = rect.top() + (centre - r0) / (r1 - r0) * rect.height();
        let p = egui::pos2(rect.left() - 3.0, y);
        painter.line_segment([p, p + Vec2::new(2.0, 0.0)], Stroke::new(1.0, color));
        painter.text(p - Vec2::new(1.0, 0.0), egui::Align2::RIGHT_CENTER, (first_layer + row).to_string(), font.clone(), color);
    }
    let (c0, c1) = (link.x[0] * grid.cols as f32, link.x[1] * grid.cols as f32);
    let step = tick_step(c1 - c0, rect.width(), 22.0);
    for col in (0..grid.cols).step_by(step) {
        let centre = col as f32 + 0.5;
        if centre < c0 || centre > c1 {
            continue;
        }
        let x = rect.left() + (centre - c0) / (c1 - c0) * rect.width();
        let p = egui::pos2(x, rect.bottom() + 1.0);
        painter.line_segment([p, p + Vec2::new(0.0, 2.0)], Stroke::new(1.0, color));
        painter.text(p + Vec2::new(0.0, 2.0), egui::Align2::CENTER_TOP, col.to_string(), font.clone(), color);
    }
}

/// Outlines the row and column of the linked cell under the pointer.
fn crosshair(painter: &egui::Painter, rect: Rect, grid: &Grid, link: &Link) {
    let Some((layer, col)) = link.hover else { return };
    let Some(row) = layer.checked_sub(grid.first_layer).filter(|r| *r < grid.rows) else { return };
    let (r0, r1) = (link.y[0] * grid.rows as f32, link.y[1] * grid.rows as f32);
    let (c0, c1) = (link.x[0] * grid.cols as f32, link.x[1] * grid.cols as f32);
    let y = |r: f32| rect.top() + (r - r0) / (r1 - r0) * rect.height();
    let x = |c: f32| rect.left() + (c - c0) / (c1 - c0) * rect.width();
    // a dark line under a light one: visible on viridis and on the diverging map's white
    let (under, over) = (Stroke::new(2.5, Color32::from_black_alpha(170)), Stroke::new(1.0, Color32::from_white_alpha(230)));
    let clip = |r: Rect| r.intersect(rect);
    let row_band = clip(Rect::from_min_max(egui::pos2(rect.left(), y(row as f32)), egui::pos2(rect.right(), y(row as f32 + 1.0))));
    let col_band = clip(Rect::from_min_max(egui::pos2(x(col as f32), rect.top()), egui::pos2(x(col as f32 + 1.0), rect.bottom())));
    for band in [row_band, col_band] {
        if band.is_positive() {
            painter.rect_stroke(band, 0.0, under, egui::StrokeKind::Middle);
            painter.rect_stroke(band, 0.0, over, egui::StrokeKind::Middle);
        }
    }
}

/// A colorbar tick with two decimals; never "-0.00".
fn tick_label(v: f32) -> String {
    let t = format!("{v:.2}");
    if t == "-0.00" {
        "0.00".into()
    } else {
        t
    }
}

/// A vertical colorbar with its range.
pub fn colorbar(ui: &mut egui::Ui, scale: Scale, height: f32) {
    ui.vertical(|ui| {
        ui.label(egui::RichText::new(tick_label(scale.hi)).small());
        let h = (height - 36.0).max(20.0);
        let (rect, _) = ui.allocate_exact_size(Vec2::new(12.0, h), Sense::hover());
        let steps = 64;
        for i in 0..steps {
            let t = 1.0 - i as f32 / (steps - 1) as f32;
            let v = scale.lo + t * (scale.hi - scale.lo);
            let y0 = rect.top() + rect.height() * i as f32 / steps as f32;
            let r = Rect::from_min_max(egui::pos2(rect.left(), y0), egui::pos2(rect.right(), y0 + rect.height() / steps as f32 + 0.5));
            ui.painter().rect_filled(r, 0.0, scale.map.color(v, scale.lo, scale.hi));
        }
        ui.label(egui::RichText::new(tick_label(scale.lo)).small());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_keeps_the_point_under_the_pointer_and_pan_stays_inside() {
        let mut l = Link::default();
        l.zoom(0.5, [0.25, 0.5], [0.01, 0.01]);
        assert!((l.x[0] - 0.125).abs() < 1e-6 && (l.x[1] - 0.625).abs() < 1e-6, "{:?}", l.x);
        assert!((l.y[0] - 0.25).abs() < 1e-6 && (l.y[1] - 0.75).abs() < 1e-6, "{:?}", l.y);
        l.pan([10.0, -10.0]); // far past the edges: clamped
        assert_eq!((l.x, l.y), ([0.0, 0.5], [0.5, 1.0]));
        l.zoom(100.0, [0.5, 0.5], [0.01, 0.01]);
        assert!(!l.is_zoomed());
        l.zoom(1e-6, [0.5, 0.5], [0.1, 0.2]);
        assert!((l.x[1] - l.x[0] - 0.1).abs() < 1e-6 && (l.y[1] - l.y[0] - 0.2).abs() < 1e-6);
    }

    #[test]
    fn ticks_keep_their_distance() {
        assert_eq!(tick_step(49.0, 700.0, 14.0), 1);
        assert_eq!(tick_step(49.0, 300.0, 14.0), 5);
        assert_eq!(tick_step(200.0, 400.0, 22.0), 20);
    }
}
