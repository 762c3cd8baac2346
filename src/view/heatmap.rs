//! A layer × unit heatmap widget: a texture uploaded only when what it shows changes, a
//! colorbar with the value range, and a hover tooltip with layer, unit and value.
//!
//! A heatmap is keyed by a value of the panel's own type `K` (typed: which map, of which run,
//! snapshot and sample); the texture is rebuilt only when the key, the scale or the shape
//! changes.

use eframe::egui::{self, Color32, ColorImage, Rect, Sense, TextureHandle, TextureOptions, Vec2};

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
}

impl<K> Default for Heatmap<K> {
    fn default() -> Self {
        Heatmap { texture: None, key: None, uploads: 0, axes: ("layer", "unit") }
    }
}

/// A cell under the pointer: (layer, column, value).
pub type Hovered = Option<(usize, usize, f32)>;

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
        if grid.rows == 0 || grid.cols == 0 {
            ui.label("(no data)");
            return None;
        }
        if !grid.is_well_formed() {
            let text = format!("(malformed: {} values for {} x {})", grid.values.len(), grid.rows, grid.cols);
            ui.colored_label(Color32::from_rgb(220, 60, 60), text);
            return None;
        }
        let stamp = (key, [scale.lo.to_bits(), scale.hi.to_bits()], [grid.rows, grid.cols]);
        if self.key.as_ref() != Some(&stamp) || self.texture.is_none() {
            let pixels: Vec<Color32> = grid.values.iter().map(|&v| scale.map.color(v, scale.lo, scale.hi)).collect();
            let image = ColorImage::new([grid.cols, grid.rows], pixels);
            match &mut self.texture {
                Some(t) if t.size() == [grid.cols, grid.rows] => t.set(image, TextureOptions::NEAREST),
                _ => self.texture = Some(ui.ctx().load_texture(id, image, TextureOptions::NEAREST)),
            }
            self.key = Some(stamp);
            self.uploads += 1;
        }
        let texture = self.texture.as_ref()?;
        let mut hovered = None;
        ui.horizontal(|ui| {
            let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
            let uv = Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            ui.painter().image(texture.id(), rect, uv, Color32::WHITE);
            if let Some(pos) = response.hover_pos() {
                let col = (((pos.x - rect.left()) / rect.width()) * grid.cols as f32).floor() as usize;
                let row = (((pos.y - rect.top()) / rect.height()) * grid.rows as f32).floor() as usize;
                if let Some(v) = grid.at(row, col) {
                    hovered = Some((grid.first_layer + row, col, v));
                    let (ra, ca) = self.axes;
                    response.on_hover_text(format!("{ra} {}, {ca} {col}: {v:.4}", grid.first_layer + row));
                }
            }
            if with_colorbar {
                colorbar(ui, scale, size.y);
            }
        });
        hovered
    }
}

/// A vertical colorbar with its range.
pub fn colorbar(ui: &mut egui::Ui, scale: Scale, height: f32) {
    ui.vertical(|ui| {
        ui.label(egui::RichText::new(format!("{:.2}", scale.hi)).small());
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
        ui.label(egui::RichText::new(format!("{:.2}", scale.lo)).small());
    });
}
