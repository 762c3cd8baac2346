//! Data augmentation for training batches: random translations of the images.

use tch::{Kind, Tensor};

/// Shifts every image of a batch by its own random offset of up to `max` pixels in x and y,
/// filling with zeros (MNIST's background), as one `gather` over the zero-padded batch.
/// x: [batch, c·h·w] with `shape` = [c, h, w]; returns the same shape. Offsets come from
/// libtorch's generator, so a seeded run stays reproducible.
pub fn shift(x: &Tensor, shape: [usize; 3], max: usize) -> Tensor {
    if max == 0 {
        return x.shallow_clone();
    }
    let [c, h, w] = shape.map(|v| v as i64);
    let (m, b) = (max as i64, x.size()[0]);
    let (ph, pw) = (h + 2 * m, w + 2 * m);
    let dev = x.device();
    // [batch, c·ph·pw]: the images inside a zero border of `max` pixels
    let padded = x.view([b, c, h, w]).constant_pad_nd([m, m, m, m]).view([b, c * ph * pw]);
    // [c·h·w]: where pixel (ch, i, j) sits in the padded image when not shifted at all
    let ch = Tensor::arange(c, (Kind::Int64, dev)).view([c, 1, 1]) * (ph * pw);
    let i = Tensor::arange(h, (Kind::Int64, dev)).view([1, h, 1]) * pw;
    let j = Tensor::arange(w, (Kind::Int64, dev)).view([1, 1, w]);
    let base = (ch + i + j).view([1, c * h * w]);
    // [batch, 1]: offsets in 0..=2·max per axis; m means "not shifted"
    let dy = Tensor::randint(2 * m + 1, [b, 1], (Kind::Int64, dev));
    let dx = Tensor::randint(2 * m + 1, [b, 1], (Kind::Int64, dev));
    let index = base + dy * pw + dx; // [batch, c·h·w]
    padded.gather(1, &index, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_moves_the_image_and_fills_with_zeros() {
        tch::manual_seed(3);
        // one 1×5×5 image with a single lit pixel in the middle, many copies
        let mut img = vec![0f32; 25];
        img[12] = 1.0;
        let x = Tensor::from_slice(&img).view([1, 25]).repeat([200, 1]);
        let y = shift(&x, [1, 5, 5], 2);
        assert_eq!(y.size(), [200, 25]);
        let y: Vec<f32> = Vec::try_from(y.flatten(0, -1)).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for row in y.chunks(25) {
            // the pixel survives (a shift of at most 2 keeps the centre of 5×5 inside)
            assert_eq!(row.iter().filter(|&&v| v == 1.0).count(), 1);
            assert_eq!(row.iter().filter(|&&v| v == 0.0).count(), 24);
            seen.insert(row.iter().position(|&v| v == 1.0).unwrap());
        }
        // all 25 offsets happen among 200 draws
        assert_eq!(seen.len(), 25);
        // max 0 is the identity
        assert_eq!(Vec::<f32>::try_from(shift(&x, [1, 5, 5], 0).flatten(0, -1)).unwrap()[..25], img[..]);
    }

    #[test]
    fn shifted_pixels_come_from_the_same_channel_and_a_corner_can_fall_off() {
        tch::manual_seed(5);
        // 2×2×2: channel 0 all 1, channel 1 all 2
        let x = Tensor::from_slice(&[1f32, 1., 1., 1., 2., 2., 2., 2.]).view([1, 8]).repeat([50, 1]);
        let y: Vec<f32> = Vec::try_from(shift(&x, [2, 2, 2], 1).flatten(0, -1)).unwrap();
        let mut zeros = 0;
        for row in y.chunks(8) {
            assert!(row[..4].iter().all(|&v| v == 1.0 || v == 0.0), "{row:?}");
            assert!(row[4..].iter().all(|&v| v == 2.0 || v == 0.0), "{row:?}");
            zeros += row.iter().filter(|&&v| v == 0.0).count();
        }
        assert!(zeros > 0, "some shifts move pixels out of a 2×2 image");
    }
}
