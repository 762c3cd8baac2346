//! The shared colormaps (`crate::colormap`) as egui colours.

use eframe::egui::Color32;

pub use crate::colormap::{Colormap, Scale};

impl Colormap {
    pub fn table(self) -> &'static [Color32; 256] {
        use std::sync::OnceLock;
        static V: OnceLock<[Color32; 256]> = OnceLock::new();
        static D: OnceLock<[Color32; 256]> = OnceLock::new();
        let make = |m: Colormap| {
            let mut out = [Color32::BLACK; 256];
            for (o, c) in out.iter_mut().zip(m.rgb_table()) {
                *o = Color32::from_rgb(c[0], c[1], c[2]);
            }
            out
        };
        match self {
            Colormap::Viridis => V.get_or_init(|| make(Colormap::Viridis)),
            Colormap::Diverging => D.get_or_init(|| make(Colormap::Diverging)),
        }
    }

    /// The colour of `v` on the scale `lo..=hi` (NaN: grey).
    pub fn color(self, v: f32, lo: f32, hi: f32) -> Color32 {
        if !v.is_finite() {
            return Color32::GRAY;
        }
        let c = self.rgb(v, lo, hi);
        Color32::from_rgb(c[0], c[1], c[2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ends_and_centre() {
        assert_eq!(Colormap::Viridis.color(0.0, 0.0, 1.0), Color32::from_rgb(68, 1, 84));
        assert_eq!(Colormap::Viridis.color(1.0, 0.0, 1.0), Color32::from_rgb(253, 231, 37));
        let mid = Colormap::Diverging.color(0.0, -1.0, 1.0);
        assert!(mid.r() > 240 && mid.g() > 240 && mid.b() > 240, "{mid:?}");
        assert_eq!(Colormap::Viridis.color(f32::NAN, 0.0, 1.0), Color32::GRAY);
        let s = Scale::symmetric(&[-0.5, 2.0]);
        assert_eq!((s.lo, s.hi), (-2.0, 2.0));
    }
}
