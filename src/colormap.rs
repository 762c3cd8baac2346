//! Colormaps as 256-entry lookup tables: viridis (perceptual, for T in [0, 1]) and a diverging
//! blue–white–red map centred at 0 (for biases, block outputs and deviations). Plain RGB, so
//! the viewer (`view::colormap`) and the figure export (`export`) draw with the same colours.

/// Viridis, sampled at 9 stops (matplotlib's values) and interpolated.
const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

/// A diverging map (RdBu reversed: negative blue, zero white, positive red).
const DIVERGING: [[u8; 3]; 9] = [
    [5, 48, 97],
    [33, 102, 172],
    [67, 147, 195],
    [146, 197, 222],
    [247, 247, 247],
    [244, 165, 130],
    [214, 96, 77],
    [178, 24, 43],
    [103, 0, 31],
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colormap {
    Viridis,
    Diverging,
}

fn lut(stops: &[[u8; 3]; 9]) -> [[u8; 3]; 256] {
    let mut out = [[0u8; 3]; 256];
    for (i, c) in out.iter_mut().enumerate() {
        let x = i as f32 / 255.0 * 8.0;
        let (k, f) = ((x.floor() as usize).min(7), x - x.floor().min(7.0));
        let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * f).round() as u8;
        let (a, b) = (stops[k], stops[k + 1]);
        *c = [mix(a[0], b[0]), mix(a[1], b[1]), mix(a[2], b[2])];
    }
    out
}

/// The colour of missing values (NaN).
pub const MISSING: [u8; 3] = [160, 160, 160];

impl Colormap {
    pub fn rgb_table(self) -> &'static [[u8; 3]; 256] {
        use std::sync::OnceLock;
        static V: OnceLock<[[u8; 3]; 256]> = OnceLock::new();
        static D: OnceLock<[[u8; 3]; 256]> = OnceLock::new();
        match self {
            Colormap::Viridis => V.get_or_init(|| lut(&VIRIDIS)),
            Colormap::Diverging => D.get_or_init(|| lut(&DIVERGING)),
        }
    }

    /// The colour of `v` on the scale `lo..=hi` (NaN: grey).
    pub fn rgb(self, v: f32, lo: f32, hi: f32) -> [u8; 3] {
        if !v.is_finite() {
            return MISSING;
        }
        let t = if hi > lo { ((v - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 };
        self.rgb_table()[(t * 255.0).round() as usize]
    }
}

/// A value range for a heatmap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub map: Colormap,
    pub lo: f32,
    pub hi: f32,
}

impl Scale {
    /// T in [0, 1] on viridis.
    pub fn unit() -> Self {
        Scale { map: Colormap::Viridis, lo: 0.0, hi: 1.0 }
    }
    /// Symmetric around zero on the diverging map, wide enough for `values`.
    pub fn symmetric(values: &[f32]) -> Self {
        let m = values.iter().filter(|v| v.is_finite()).fold(0f32, |m, v| m.max(v.abs()));
        let m = if m > 0.0 { m } else { 1.0 };
        Scale { map: Colormap::Diverging, lo: -m, hi: m }
    }
}
