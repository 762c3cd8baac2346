//! A layer × unit heatmap widget: a texture uploaded only when its data changes, a colorbar
//! with the value range, and a hover tooltip with layer, unit and value.

use eframe::egui::{self, Color32, ColorImage, Rect, Sense, TextureHandle, TextureOptions, Vec2};

use super::colormap::Scale;

/// What identifies the picture a heatmap shows; the texture is rebuilt only when it changes.
pub type Key = (u64, u64);

/// One heatmap and its cached texture.
#[derive(Default)]
pub struct Heatmap {
    texture: Option<TextureHandle>,
    key: Option<(Key, [u32; 2], [u32; 2])>,
    /// Texture uploads so far (for tests and the speed budget).
    pub uploads: usize,
    /// Names of the row and column axes in the tooltip [default: layer, unit].
    pub axes: Option<(&'static str, &'static str)>,
}

/// What a heatmap shows: `rows` × `cols` values, row r being layer `first_layer + r`.
pub struct Grid<'a> {
    pub rows: usize,
    pub cols: usize,
    pub values: &'a [f32],
    pub first_layer: usize,
}

impl Heatmap {
    /// A heatmap whose tooltip names its axes `rows` and `cols` (e.g. "row", "column").
    pub fn with_axes(rows: &'static str, cols: &'static str) -> Self {
        Heatmap { axes: Some((rows, cols)), ..Default::default() }
    }

    /// Draws the heatmap in `size` with its colorbar and returns the hovered cell.
    pub fn show(&mut self, ui: &mut egui::Ui, id: &str, key: Key, grid: &Grid<'_>, scale: Scale, size: Vec2) -> Option<(usize, usize, f32)> {
        self.show_with(ui, id, key, grid, scale, size, true)
    }

    /// As [`Self::show`], optionally without the colorbar (small multiples share one).
    #[allow(clippy::too_many_arguments)]
    pub fn show_with(&mut self, ui: &mut egui::Ui, id: &str, key: Key, grid: &Grid<'_>, scale: Scale, size: Vec2, with_colorbar: bool) -> Option<(usize, usize, f32)> {
        if grid.rows == 0 || grid.cols == 0 {
            ui.label("(no data)");
            return None;
        }
        if grid.values.len() != grid.rows * grid.cols {
            ui.colored_label(Color32::from_rgb(220, 60, 60), format!("(malformed: {} values for {} x {})", grid.values.len(), grid.rows, grid.cols));
            return None;
        }
        let bits = [scale.lo.to_bits(), scale.hi.to_bits()];
        let dims = [grid.rows as u32, grid.cols as u32];
        if self.key != Some((key, bits, dims)) || self.texture.is_none() {
            let pixels: Vec<Color32> = grid.values.iter().map(|&v| scale.map.color(v, scale.lo, scale.hi)).collect();
            let image = ColorImage::new([grid.cols, grid.rows], pixels);
            match &mut self.texture {
                Some(t) if t.size() == [grid.cols, grid.rows] => t.set(image, TextureOptions::NEAREST),
                _ => self.texture = Some(ui.ctx().load_texture(id, image, TextureOptions::NEAREST)),
            }
            self.key = Some((key, bits, dims));
            self.uploads += 1;
        }
        let texture = self.texture.as_ref().expect("texture set above");
        let mut hovered = None;
        ui.horizontal(|ui| {
            let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
            ui.painter().image(texture.id(), rect, Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)), Color32::WHITE);
            if let Some(pos) = response.hover_pos() {
                let col = (((pos.x - rect.left()) / rect.width()) * grid.cols as f32).floor() as usize;
                let row = (((pos.y - rect.top()) / rect.height()) * grid.rows as f32).floor() as usize;
                if row < grid.rows && col < grid.cols {
                    let v = grid.values[row * grid.cols + col];
                    hovered = Some((grid.first_layer + row, col, v));
                    let (ra, ca) = self.axes.unwrap_or(("layer", "unit"));
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
